/**
 * Storage selection for the Deno runtime (CLI and Deno Deploy): statically imports only the
 * drivers that run on Deno and picks one from settings.
 *
 * @module
 */

import type { StorageDriver } from "../src/storage/driver.ts";
import { selectStorageDriver, type StorageSettings } from "./_select.ts";
import { type FsOps, nodeFsOps } from "./fs.ts";
import { DenoKvDriver } from "./deno_kv.ts";

/** Runs a short blocking call; a throw becomes a rejection. */
const blocking = <T>(call: () => T): Promise<T> => new Promise((resolve) => resolve(call()));

/** Whole-file writes up to this size are made with one blocking call. */
const SYNC_WRITE_MAX = 256 * 1024;

/**
 * {@linkcode FsOps} on Deno's own file APIs: several times cheaper on Deno than
 * `node:fs/promises` for writes, renames and directories. Deno's errors carry Node's `code`.
 *
 * Renames, directory calls and small writes are made with Deno's blocking calls: each takes
 * tens of microseconds, and handing it to a worker thread and back cost about twice the CPU on
 * a 2-core machine (`bench/fetch_list.ts`).
 */
export const denoFsOps: FsOps = {
  // Deno.readFile was slower than node:fs for large files here, so whole reads stay on node:fs.
  readFile: nodeFsOps.readFile,
  writeFileExclusive: (path, data) =>
    data.length <= SYNC_WRITE_MAX
      ? blocking(() => Deno.writeFileSync(path, data, { createNew: true }))
      : Deno.writeFile(path, data, { createNew: true }),
  rename: (from, to) => blocking(() => Deno.renameSync(from, to)),
  mkdir: (path, recursive) => blocking(() => Deno.mkdirSync(path, { recursive })),
  unlink: (path) => blocking(() => Deno.removeSync(path)),
  // Only ever given directories: without `recursive`, Deno removes an empty one and fails with
  // ENOTEMPTY otherwise.
  rmdir: (path) => blocking(() => Deno.removeSync(path)),
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
