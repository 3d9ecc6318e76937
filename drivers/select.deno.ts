/**
 * Storage selection on Deno (the CLI, `cli.ts`): {@linkcode createStorageDriver} opens the
 * driver the settings ask for, with Deno's pieces: the fs driver on Deno's own file operations
 * (`./fs.deno.ts`) and Deno KV on `Deno.openKv` (`./deno_kv.deno.ts`). The choice itself is in
 * `./select.ts`; `./select.node.ts` is the Node counterpart.
 *
 * @module
 */

import type { StorageDriver } from "../src/storage/driver.ts";
import { selectStorageDriver, type StorageSettings } from "./select.ts";
import { denoFsOps } from "./fs.deno.ts";
import { DenoKvDriver } from "./deno_kv.deno.ts";

export type { StorageSettings };
export { CacheDirError, type StorageAccess } from "./select.ts";

/**
 * Creates the storage driver the settings ask for.
 *
 * @param settings The storage kind, cache directory, and the access to check the directory for.
 * @returns An open driver; close it when done.
 * @throws {CacheDirError} When `access` is given and the cache directory cannot serve it.
 *
 * @example In memory
 * ```ts
 * import { createStorageDriver } from "./select.deno.ts";
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
