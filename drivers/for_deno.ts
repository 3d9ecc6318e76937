/**
 * Storage selection for the Deno runtime (CLI and Deno Deploy): statically imports only the
 * drivers that run on Deno and picks one from settings.
 *
 * @module
 */

import type { StorageDriver } from "../src/storage.ts";
import { selectStorageDriver, type StorageSettings } from "./_select.ts";
import { type FsOps, nodeFsOps } from "./fs.ts";
import { DenoKvDriver } from "./deno_kv.ts";

/**
 * {@linkcode FsOps} on Deno's own file APIs: several times cheaper on Deno than
 * `node:fs/promises` for writes, renames and directories. Deno's errors carry Node's `code`.
 */
export const denoFsOps: FsOps = {
  // Deno.readFile was slower than node:fs for large files here, so whole reads stay on node:fs.
  readFile: nodeFsOps.readFile,
  writeFileExclusive: (path, data) => Deno.writeFile(path, data, { createNew: true }),
  rename: (from, to) => Deno.rename(from, to),
  mkdir: (path, recursive) => Deno.mkdir(path, { recursive }),
  unlink: (path) => Deno.remove(path),
  access: async (path) => {
    await Deno.lstat(path);
  },
  readdir: async (path) => {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return names;
  },
};

export type { StorageSettings };

/**
 * Creates the storage driver the settings ask for.
 *
 * @param settings The storage kind and cache directory.
 * @returns An open driver; close it when done.
 *
 * @example In memory
 * ```ts
 * import { createStorageDriver } from "./for_deno.ts";
 * const driver = await createStorageDriver({ storage: "memory", cacheDir: "" });
 * await driver.put("k", new Uint8Array([1]));
 * console.assert(await driver.has("k"));
 * await driver.close();
 * ```
 */
export function createStorageDriver(settings: StorageSettings): Promise<StorageDriver> {
  return selectStorageDriver(settings, {
    fsOps: denoFsOps,
    openKv: (path) => DenoKvDriver.open(path),
  });
}
