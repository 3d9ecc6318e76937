/**
 * What a cache entry is: response metadata stored with a body, and a verified entry as the
 * cache hands it out.
 *
 * @module
 */

import { readAll } from "../_util/bytes.ts";
import type { BodyEncoding } from "./encoding.ts";

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
  /** `sha256-<base64>` of the body bytes as stored (gzip bytes for a gzip body). */
  integrity: string;
  /** The body size in bytes, as stored. */
  size: number;
  /** How the body is stored: absent for `identity` (every record written before encodings
   * existed), `gzip` for a compressed body. {@linkcode CacheEntry.stream} decodes either way. */
  encoding?: BodyEncoding;
  /** The decoded size of a `gzip` body, when known (it is when the cache compressed it). */
  decodedSize?: number;
  /** When the body was fetched or last revalidated (ms since the epoch, from the clock). */
  fetchedAt: number;
}

/** A verified cache entry: its metadata and ways to read the body. */
export interface CacheEntry {
  /** The metadata. */
  info: CacheEntryInfo;
  /** The body as a stream (decoded unless the entry was read with `decode: false`). Each call
   * opens a new stream; a stream errors if the bytes changed. */
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
 * The size of an entry's decoded document: its stored size for an `identity` body, the
 * recorded `decodedSize` for a `gzip` one (`undefined` when it was not recorded).
 *
 * @param info The entry's metadata.
 * @returns The decoded size in bytes, when known.
 *
 * @example
 * ```ts
 * import { decodedSizeOf } from "./entry.ts";
 * const info = { key: "k", status: 200, integrity: "", size: 20, fetchedAt: 0 };
 * console.assert(decodedSizeOf(info) === 20);
 * console.assert(decodedSizeOf({ ...info, encoding: "gzip", decodedSize: 0 }) === 0);
 * ```
 */
export function decodedSizeOf(info: CacheEntryInfo): number | undefined {
  return info.encoding === "gzip" ? info.decodedSize : info.size;
}

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
