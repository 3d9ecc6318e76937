/**
 * The embedded-storage choice shared by the per-runtime entry modules (`for_deno.ts`,
 * `for_node.ts`): each passes what differs on its runtime (file operations, how to open Deno KV).
 *
 * @module
 */

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { StorageDriver } from "../src/storage.ts";
import { MemoryDriver } from "./memory.ts";
import { FsDriver, type FsOps } from "./fs.ts";

/** Which embedded storage to use, and where. */
export interface StorageSettings {
  /** `fs` (files under `cacheDir/fs`), `kv` (Deno KV file `cacheDir/deno.kv`) or `memory`. */
  storage: "fs" | "kv" | "memory";
  /** The cache directory. */
  cacheDir: string;
}

/** What a runtime supplies to {@linkcode selectStorageDriver}. */
export interface RuntimeStorage {
  /** File operations for the fs driver (its default when absent). */
  fsOps?: FsOps;
  /** Opens the Deno KV file at `path`. */
  openKv(path: string): Promise<StorageDriver>;
}

/** Creates the driver the settings ask for, with the runtime's pieces. */
export async function selectStorageDriver(
  settings: StorageSettings,
  runtime: RuntimeStorage,
): Promise<StorageDriver> {
  switch (settings.storage) {
    case "memory":
      return new MemoryDriver();
    case "fs":
      return new FsDriver(
        join(settings.cacheDir, "fs"),
        runtime.fsOps ? { ops: runtime.fsOps } : {},
      );
    case "kv":
      await mkdir(settings.cacheDir, { recursive: true });
      return await runtime.openKv(join(settings.cacheDir, "deno.kv"));
  }
}
