/**
 * Storage selection for Node (the npm package's CLI, `cli_node.ts`): the counterpart of
 * `./for_deno.ts`, with the Deno KV driver on the `@deno/kv` package instead of `Deno.openKv`.
 * The same settings open the same files: `fs` under `cacheDir/fs`, `kv` in `cacheDir/deno.kv`.
 *
 * @module
 */

import type { StorageDriver } from "../src/storage/driver.ts";
import { selectStorageDriver, type StorageSettings } from "./_select.ts";
import { DenoKvDriver } from "./deno_kv_node.ts";

export type { StorageSettings };

/**
 * Creates the storage driver the settings ask for.
 *
 * @param settings The storage kind and cache directory.
 * @returns An open driver; close it when done.
 */
export function createStorageDriver(settings: StorageSettings): Promise<StorageDriver> {
  return selectStorageDriver(settings, {
    openKv: (path) => DenoKvDriver.open(path),
  });
}
