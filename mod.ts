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

export * from "./src/keys.ts";
export * from "./src/cache.ts";
export * from "./src/clock.ts";
export * from "./src/storage.ts";
export * from "./src/http_client.ts";
export * from "./src/rate_limiter.ts";
export * from "./src/bloom.ts";
export * from "./src/runtime.ts";
export * from "./src/version.ts";
export * from "./src/pivots.ts";
export * from "./src/all_docs.ts";
export * from "./src/checkpoint.ts";
export * from "./src/partition_refresh.ts";
export * from "./src/partition_rows.ts";
export * from "./src/create_index.ts";
export * from "./src/package_name.ts";
export * from "./src/packument_fetch.ts";
export * from "./src/export.ts";
