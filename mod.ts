/**
 * _all_docs: mirror npm registry metadata at scale.
 *
 * The core is runtime-agnostic: it takes an injected `fetch`, storage driver and clock, and uses
 * web standards only. Storage drivers are subpath exports (`./drivers/memory`, `./drivers/fs`,
 * `./drivers/deno_kv`).
 *
 * @example Cache an entry in memory
 * ```ts
 * import { Cache, packumentKey } from "./mod.ts";
 * import { MemoryDriver } from "./drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const key = packumentKey("npm", "left-pad");
 * await cache.put(key, new TextEncoder().encode("{}"), { status: 200 });
 * console.assert(await cache.has(key));
 * ```
 *
 * @module
 */

export * from "./src/storage/keys.ts";
export * from "./src/storage/cache.ts";
export * from "./src/clock.ts";
export * from "./src/storage/driver.ts";
export * from "./src/http/client.ts";
export * from "./src/http/errors.ts";
export * from "./src/http/token_bucket.ts";
export * from "./src/_util/bloom.ts";
export * from "./src/runtime.ts";
export * from "./src/version.ts";
export * from "./src/couchdb/pivots.ts";
export * from "./src/couchdb/rows.ts";
export * from "./src/couchdb/all_docs.ts";
export * from "./src/storage/checkpoint.ts";
export * from "./src/jobs/refresh_partitions.ts";
export * from "./src/couchdb/partition_lines.ts";
export * from "./src/jobs/create_index.ts";
export * from "./src/npm/package_name.ts";
export * from "./src/jobs/fetch_packuments.ts";
export * from "./src/jobs/sync_packuments.ts";
export * from "./src/jobs/partition_status.ts";
export * from "./src/jobs/index_lines.ts";
export * from "./src/npm/media_types.ts";
export * from "./src/jobs/export.ts";
