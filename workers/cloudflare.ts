/**
 * The Cloudflare Workers entry of the read replica: the app of `src/replica/app.ts` over a cache
 * kept in a Workers KV namespace.
 *
 * Bindings (`wrangler.toml` or Miniflare):
 *
 * - `CACHE`: the KV namespace holding the cache records (the keys and values a
 *   {@linkcode Cache} writes, for instance copied from a `MemoryDriver` or an `fs` cache).
 * - `REGISTRY_ORIGIN_KEY`: the origin key the packuments were cached under (a string).
 * - `PARTITIONS_ORIGIN_KEY` (optional): the origin key of the partitions `/_all_docs` serves;
 *   every cached partition when absent.
 *
 * The app is built once per isolate, on its first request. Only web-standard APIs are used:
 * `deno task bundle:edge` bundles this module, Hono included, into one ES module.
 *
 * @module
 */

import type { ExecutionContext, Hono } from "hono";
import { Cache } from "../src/storage/cache.ts";
import { createReplicaApp } from "../src/replica/app.ts";
import { CloudflareKvDriver, type KvNamespaceLike } from "../drivers/cloudflare_kv.ts";

/** The bindings the Worker reads. */
export interface CloudflareEnv {
  /** The KV namespace holding the cache. */
  CACHE: KvNamespaceLike;
  /** The origin key the packuments were cached under. */
  REGISTRY_ORIGIN_KEY: string;
  /** The origin key of the partitions `/_all_docs` serves; every partition when absent. */
  PARTITIONS_ORIGIN_KEY?: string;
}

/** The Workers `ExecutionContext` (`waitUntil`, `passThroughOnException`, `props`), as Hono types it. */
export type CloudflareContext = ExecutionContext;

/** The app of this isolate, built on the first request. */
let app: Promise<Hono> | undefined;

/** Builds the replica app over the KV namespace of `env`. */
async function build(env: CloudflareEnv): Promise<Hono> {
  const origin = env.REGISTRY_ORIGIN_KEY;
  if (typeof origin !== "string" || origin === "") {
    throw new TypeError("Cannot start replica: the REGISTRY_ORIGIN_KEY binding is not set");
  }
  const cache = await Cache.open(new CloudflareKvDriver(env.CACHE), { bloom: false });
  const partitionsOrigin = env.PARTITIONS_ORIGIN_KEY;
  return createReplicaApp({
    cache,
    packumentOrigin: () => origin,
    ...(typeof partitionsOrigin === "string" && partitionsOrigin !== ""
      ? { partitionsOrigin }
      : {}),
  });
}

/** The Worker: `fetch` answers every request from the replica app. */
const worker: {
  fetch(request: Request, env: CloudflareEnv, ctx: CloudflareContext): Promise<Response>;
} = {
  async fetch(request: Request, env: CloudflareEnv, ctx: CloudflareContext): Promise<Response> {
    if (app === undefined) {
      app = build(env);
      app.catch(() => app = undefined);
    }
    return await (await app).fetch(request, env, ctx);
  },
};

export default worker;
