/**
 * The Node CLI's storage (`cli.node.ts` and its view workers, `./view_worker.node.ts`):
 * `drivers/select.node.ts`, with `@deno/kv` (`drivers/deno_kv.node.ts`) loaded only when a kv
 * storage is opened, so that no other command needs that optional peer, nor pays for loading it.
 *
 * @module
 */

import type { StorageDriver } from "../src/storage/driver.ts";
import { createStorageDriver, type StorageSettings } from "../drivers/select.node.ts";
import { loadWithPeers } from "./peers.ts";

/**
 * Opens the storage `settings` ask for.
 *
 * @param settings The storage kind, cache directory, and the access to check the directory for.
 * @returns An open driver; close it when done.
 * @throws {CacheDirError} When `access` is given and the cache directory cannot serve it.
 */
export function openNodeStorage(settings: StorageSettings): Promise<StorageDriver> {
  return createStorageDriver(settings, async (path) => {
    const { DenoKvDriver } = await loadWithPeers(
      "The kv storage",
      ["@deno/kv"],
      () => import("../drivers/deno_kv.node.ts"),
    );
    return await DenoKvDriver.open(path);
  });
}
