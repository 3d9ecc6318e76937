/**
 * The Fastly Compute entry of the read replica: the app of `src/replica/app.ts` over a cache kept
 * in a Fastly KV Store ({@linkcode FastlyKvDriver}).
 *
 * Configuration comes from a Config Store named {@linkcode FASTLY_CONFIG_STORE}
 * (`all_docs`), linked to the service:
 *
 * - `kv_store`: the name of the KV Store holding the cache records (the keys and values a
 *   {@linkcode Cache} writes); `all_docs_cache` when absent.
 * - `registry_origin_key`: the origin key the packuments were cached under (required).
 * - `partitions_origin_key` (optional): the origin key of the partitions `/_all_docs` serves;
 *   every cached partition when absent.
 * - `key_prefix` (optional): the `keyPrefix` the cache was written with.
 *
 * This module is plain TypeScript with no `fastly:*` import, so Deno can check and test it: the
 * Fastly classes come in through {@linkcode listen}. `scripts/build_fastly.ts` bundles it and
 * compiles a three-line entry (`import { KVStore } from "fastly:kv-store"`, ... ,
 * `listen({ KVStore, ConfigStore })`) to a `.wasm` with `js-compute-runtime`. The app is built
 * once per instance, on its first request (Fastly allows store access only while handling one).
 *
 * @module
 */

import type { Hono } from "hono";
import { Cache } from "../src/storage/cache.ts";
import { createReplicaApp } from "../src/replica/app.ts";
import { FastlyKvDriver, type FastlyKvStoreLike } from "../drivers/fastly_kv.ts";

/** The Config Store the entry reads its settings from. */
export const FASTLY_CONFIG_STORE = "all_docs";
/** The KV Store name used when the Config Store names none. */
export const FASTLY_DEFAULT_KV_STORE = "all_docs_cache";

/** The part of Fastly's `ConfigStore` (`fastly:config-store`) the entry uses. */
export interface FastlyConfigStoreLike {
  /** The value of `key`, or `null` when absent. */
  get(key: string): string | null;
}

/** The Fastly classes the entry opens stores with (from `fastly:kv-store`/`fastly:config-store`). */
export interface FastlyModules {
  /** `KVStore`: opens a KV Store by name. */
  KVStore: new (name: string) => FastlyKvStoreLike;
  /** `ConfigStore`: opens a Config Store by name. */
  ConfigStore: new (name: string) => FastlyConfigStoreLike;
}

/** The part of Fastly's `FetchEvent` the entry uses. */
export interface FastlyFetchEvent {
  /** The client request. */
  readonly request: Request;
  /** Sends the response. */
  respondWith(response: Response | PromiseLike<Response>): void;
}

/** Builds the replica app over the stores named in the Config Store. */
async function build(modules: FastlyModules): Promise<Hono> {
  const config = new modules.ConfigStore(FASTLY_CONFIG_STORE);
  const setting = (key: string): string | undefined => {
    const value = config.get(key);
    return value === null || value === "" ? undefined : value;
  };
  const origin = setting("registry_origin_key");
  if (origin === undefined) {
    throw new TypeError(
      `Cannot start replica: 'registry_origin_key' is not set in the Config Store ` +
        `'${FASTLY_CONFIG_STORE}'`,
    );
  }
  const store = new modules.KVStore(setting("kv_store") ?? FASTLY_DEFAULT_KV_STORE);
  const keyPrefix = setting("key_prefix");
  const driver = new FastlyKvDriver(store, keyPrefix === undefined ? {} : { keyPrefix });
  const cache = await Cache.open(driver, { bloom: false });
  const partitionsOrigin = setting("partitions_origin_key");
  return createReplicaApp({
    cache,
    packumentOrigin: () => origin,
    ...(partitionsOrigin === undefined ? {} : { partitionsOrigin }),
  });
}

/**
 * A request handler serving the replica from the stores `modules` opens; the app is built on the
 * first call (again after a failed build).
 *
 * @param modules Fastly's `KVStore` and `ConfigStore` classes, or stand-ins.
 * @returns The handler.
 *
 * @example Over stand-in stores
 * ```ts
 * import { createFastlyHandler } from "./fastly.ts";
 *
 * const handler = createFastlyHandler({
 *   KVStore: class {
 *     get = () => Promise.resolve(null);
 *     put = () => Promise.resolve();
 *     delete = () => Promise.resolve();
 *     list = () => Promise.resolve({ list: [], cursor: undefined });
 *   },
 *   ConfigStore: class {
 *     get = (key: string) => (key === "registry_origin_key" ? "npm" : null);
 *   },
 * });
 * const response = await handler(new Request("http://replica.test/left-pad"));
 * console.assert(response.status === 404);
 * ```
 */
export function createFastlyHandler(
  modules: FastlyModules,
): (request: Request) => Promise<Response> {
  let app: Promise<Hono> | undefined;
  return async (request: Request): Promise<Response> => {
    if (app === undefined) {
      app = build(modules);
      app.catch(() => app = undefined);
    }
    return await (await app).fetch(request);
  };
}

/**
 * Registers the Fastly Compute `fetch` listener: every request is answered by the replica.
 *
 * @param modules Fastly's `KVStore` and `ConfigStore` classes.
 */
export function listen(modules: FastlyModules): void {
  const handler = createFastlyHandler(modules);
  const target = globalThis as unknown as {
    addEventListener(type: "fetch", listener: (event: FastlyFetchEvent) => void): void;
  };
  target.addEventListener("fetch", (event) => event.respondWith(handler(event.request)));
}
