/**
 * A read-only async Map view over a cache, whose values are body bytes (`cacheMap(cache)`).
 *
 * @module
 */

import type { CacheEntry, CacheMetadata } from "./entry.ts";

/** A read-only async Map over a cache: keys to body bytes. */
export interface CacheMap extends AsyncIterable<[string, Uint8Array]> {
  /** The body of `key`, or `undefined`. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores `value` under `key` as a 200 response. */
  set(key: string, value: Uint8Array): Promise<CacheMap>;
  /** Whether `key` is present. */
  has(key: string): Promise<boolean>;
  /** Removes `key`; resolves `true` when it was present. */
  delete(key: string): Promise<boolean>;
  /** Keys in order. */
  keys(prefix?: string): AsyncIterable<string>;
  /** Keys and bodies in order. */
  entries(prefix?: string): AsyncIterable<[string, Uint8Array]>;
}

/** The part of a cache the view reads and writes through. */
export interface CacheMapSource {
  /** Reads a verified entry. */
  get(key: string): Promise<CacheEntry | undefined>;
  /** Stores a body with its metadata. */
  put(key: string, body: Uint8Array, metadata: CacheMetadata): Promise<unknown>;
  /** Whether an entry is present. */
  has(key: string): Promise<boolean>;
  /** Removes an entry. */
  delete(key: string): Promise<boolean>;
  /** Entry keys in order. */
  keys(prefix?: string): AsyncIterable<string>;
  /** Verified entries in order. */
  entries(prefix?: string): AsyncIterable<[string, CacheEntry]>;
}

/**
 * A Map-like view of `cache` whose values are body bytes.
 *
 * @param cache The cache.
 * @returns The view.
 */
export function cacheMap(cache: CacheMapSource): CacheMap {
  async function* entries(prefix = ""): AsyncGenerator<[string, Uint8Array]> {
    for await (const [key, entry] of cache.entries(prefix)) yield [key, await entry.bytes()];
  }
  const view: CacheMap = {
    async get(key) {
      return await (await cache.get(key))?.bytes();
    },
    async set(key, value) {
      await cache.put(key, value, { status: 200 });
      return view;
    },
    has: (key) => cache.has(key),
    delete: (key) => cache.delete(key),
    keys: (prefix) => cache.keys(prefix),
    entries,
    [Symbol.asyncIterator]: () => entries(),
  };
  return view;
}
