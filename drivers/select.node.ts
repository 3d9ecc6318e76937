/**
 * Storage selection on Node (the npm package's CLI, `cli.node.ts`): the counterpart of
 * `./select.deno.ts`, with the fs driver on `node:fs/promises` and Deno KV on the `@deno/kv`
 * package (`./deno_kv.node.ts`, which the caller loads only when a kv storage is asked for:
 * `@deno/kv` is an optional peer of sixty modules). The same settings open the same files: `fs`
 * under `cacheDir/fs`, `kv` in `cacheDir/deno.kv`.
 *
 * @module
 */

import type { StorageDriver } from "../src/storage/driver.ts";
import { selectStorageDriver, type StorageSettings } from "./select.ts";
import { nodeFsOps } from "./fs.ts";

export type { StorageSettings };
export { CacheDirError, type StorageAccess } from "./select.ts";

/**
 * Creates the storage driver the settings ask for.
 *
 * @param settings The storage kind, cache directory, and the access to check the directory for.
 * @param openKv Opens the Deno KV file at `path`: `DenoKvDriver.open` of `./deno_kv.node.ts`.
 * @returns An open driver; close it when done.
 * @throws {CacheDirError} When `access` is given and the cache directory cannot serve it.
 */
export function createStorageDriver(
  settings: StorageSettings,
  openKv: (path: string) => Promise<StorageDriver>,
): Promise<StorageDriver> {
  return selectStorageDriver(settings, { fsOps: nodeFsOps, openKv });
}
