/**
 * Storage selection for Node (the npm package's CLI, `cli_node.ts`): the counterpart of
 * `./for_deno.ts`, with the Deno KV driver on the `@deno/kv` package instead of `Deno.openKv`.
 * The same settings open the same files: `fs` under `cacheDir/fs`, `kv` in `cacheDir/deno.kv`.
 *
 * @module
 */

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { StorageDriver } from "../src/storage.ts";
import { MemoryDriver } from "./memory.ts";
import { FsDriver } from "./fs.ts";
import { DenoKvDriver } from "./deno_kv_node.ts";

/** Which embedded storage to use, and where. */
export interface StorageSettings {
  /** `fs` (files under `cacheDir/fs`), `kv` (Deno KV file `cacheDir/deno.kv`) or `memory`. */
  storage: "fs" | "kv" | "memory";
  /** The cache directory. */
  cacheDir: string;
}

/**
 * Creates the storage driver the settings ask for.
 *
 * @param settings The storage kind and cache directory.
 * @returns An open driver; close it when done.
 */
export async function createStorageDriver(settings: StorageSettings): Promise<StorageDriver> {
  switch (settings.storage) {
    case "memory":
      return new MemoryDriver();
    case "fs":
      return new FsDriver(join(settings.cacheDir, "fs"));
    case "kv":
      await mkdir(settings.cacheDir, { recursive: true });
      return await DenoKvDriver.open(join(settings.cacheDir, "deno.kv"));
  }
}
