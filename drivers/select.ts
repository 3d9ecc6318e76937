/**
 * Storage selection: which driver the CLI's `--storage` and `--cache-dir` settings open. Shared
 * by the runtime flavours `./select.deno.ts` and `./select.node.ts`, which pass what differs on
 * their runtime (file operations, how to open Deno KV) and export `createStorageDriver`.
 *
 * @module
 */

import { join } from "node:path";
import type { StorageDriver } from "../src/storage/driver.ts";
import { MemoryDriver } from "./memory.ts";
import { FsDriverBase, type FsOps } from "./_fs_driver.ts";
import { S3Driver, type S3DriverOptions } from "./s3.ts";
import { cacheDirOps, checkCacheDir, type StorageAccess } from "./select_cache_dir.ts";

export { CacheDirError, type StorageAccess } from "./select_cache_dir.ts";

/** Which storage to use, and where. */
export interface StorageSettings {
  /**
   * `fs` (files under `cacheDir/fs`), `kv` (Deno KV file `cacheDir/deno.kv`), `memory`, or `s3`
   * (an S3-compatible bucket, configured by `s3`).
   */
  storage: "fs" | "kv" | "memory" | "s3";
  /** The cache directory. */
  cacheDir: string;
  /** Endpoint, bucket, prefix, region and credentials, for `s3`. */
  s3?: Omit<S3DriverOptions, "fetch" | "partSize" | "pageSize"> | undefined;
  /**
   * Checks the cache directory first, for `fs` and `kv`: `write` makes a missing one and
   * writes a probe file in it, `read` needs it to exist (see `./select_cache_dir.ts`).
   * @default {undefined: no check} */
  access?: StorageAccess | undefined;
}

/** What a runtime supplies to {@linkcode selectStorageDriver}. */
export interface RuntimeStorage {
  /** The runtime's file operations, for the fs driver and the cache directory's check. */
  fsOps: FsOps;
  /** Opens the Deno KV file at `path`. */
  openKv(path: string): Promise<StorageDriver>;
}

/**
 * Creates the driver the settings ask for, with the runtime's pieces.
 *
 * @throws {CacheDirError} When `access` is given and the cache directory cannot serve it.
 */
export async function selectStorageDriver(
  settings: StorageSettings,
  runtime: RuntimeStorage,
): Promise<StorageDriver> {
  if (settings.access !== undefined && (settings.storage === "fs" || settings.storage === "kv")) {
    await checkCacheDir(settings.cacheDir, settings.access, cacheDirOps(runtime.fsOps));
  }
  switch (settings.storage) {
    case "memory":
      return new MemoryDriver();
    case "fs":
      return new FsDriverBase(join(settings.cacheDir, "fs"), runtime.fsOps);
    case "kv":
      await runtime.fsOps.mkdir(settings.cacheDir, true);
      return await runtime.openKv(join(settings.cacheDir, "deno.kv"));
    case "s3":
      if (settings.s3 === undefined) {
        throw new TypeError("Cannot open s3 storage: no endpoint, bucket or credentials given");
      }
      return new S3Driver(settings.s3);
  }
}
