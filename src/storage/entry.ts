/**
 * What a cache entry is: response metadata stored with a body, and a verified entry as the
 * cache hands it out.
 *
 * @module
 */

import { readAll } from "../_util/bytes.ts";

/** Response metadata stored with a body. */
export interface CacheMetadata {
  /** The HTTP status the body came with (200, or 404 for a recorded "not found"). */
  status: number;
  /** The `ETag` response header. */
  etag?: string;
  /** The `Last-Modified` response header. */
  lastModified?: string;
  /** The `Cache-Control` response header. */
  cacheControl?: string;
  /** The `Age` response header, in seconds: how old the response already was when it arrived
   * (from caches on the way), which shortens its freshness. Absent means 0. */
  age?: number;
  /** The `Content-Type` response header. */
  contentType?: string;
  /** Which representation the body is (`full`, `abbreviated`, `partition`, ...). */
  representation?: string;
  /** The document revision (`_rev`) the body holds, when known. */
  rev?: string;
  /** A row count or similar figure the writer wants to keep beside the body. */
  count?: number;
}

/** What the cache knows about an entry without reading its body. */
export interface CacheEntryInfo extends CacheMetadata {
  /** The entry's key. */
  key: string;
  /** `sha256-<base64>` of the body bytes. */
  integrity: string;
  /** The body size in bytes. */
  size: number;
  /** When the body was fetched or last revalidated (ms since the epoch, from the clock). */
  fetchedAt: number;
}

/** A verified cache entry: its metadata and ways to read the body. */
export interface CacheEntry {
  /** The metadata. */
  info: CacheEntryInfo;
  /** The body as a stream. Each call opens a new stream; a stream errors if the bytes changed. */
  stream(): ReadableStream<Uint8Array>;
  /** The whole body. */
  bytes(): Promise<Uint8Array>;
  /** The body decoded as UTF-8. */
  text(): Promise<string>;
  /** The body parsed as JSON. */
  json(): Promise<unknown>;
}

const decoder = new TextDecoder();

/**
 * Makes a {@linkcode CacheEntry}.
 *
 * @param info The metadata.
 * @param open Opens a new stream of the body.
 * @param whole The body, when it is in memory already (`bytes()` then copies it).
 * @returns The entry.
 */
export function entryOf(
  info: CacheEntryInfo,
  open: () => ReadableStream<Uint8Array>,
  whole?: Uint8Array,
): CacheEntry {
  const bytes = () => whole ? Promise.resolve(whole.slice()) : readAll(open());
  return {
    info,
    stream: open,
    bytes,
    text: async () => decoder.decode(await bytes()),
    json: async () => JSON.parse(decoder.decode(await bytes())),
  };
}
