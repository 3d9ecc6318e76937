/**
 * The options and counters of a `Cache`: how it is opened, how a body is stored and
 * read, what it counts.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { BodyEncoding } from "./encoding.ts";
import type { Sha256Hasher } from "./integrity.ts";

/** Options for `Cache.open`. */
export interface CacheOptions {
  /** The clock for fetch times and freshness.
   * @default {systemClock} */
  clock?: Clock;
  /** Bodies up to this many bytes are stored inside the entry record.
   * @default {65536} */
  inlineMax?: number;
  /** Freshness lifetime for entries whose `Cache-Control` gives none, in milliseconds.
   * @default {0} */
  defaultMaxAgeMs?: number;
  /** Bloom filter sizing, or `false` to go without one. Seeding lists every stored key; past
   * `seedLimit` keys it stops and the cache goes without a filter (on a large cache most keys
   * asked for are present, so the filter would save little and cost a long listing).
   * @default {{ expectedItems: 1_000_000, falsePositiveRate: 0.01, seedLimit: Infinity }} */
  bloom?: false | { expectedItems?: number; falsePositiveRate?: number; seedLimit?: number };
  /** Called for each corrupt entry found on a read (once per read that finds it). */
  onCorrupt?: (key: string, reason: string) => void;
  /** Removes a corrupt entry when a read finds it, unless another writer replaced it since
   * (`cache verify` leaves them, to list them).
   * @default {false} */
  dropCorrupt?: boolean;
  /**
   * Makes an incremental SHA-256 for bodies that stream. Web standards have no incremental
   * digest, so the default is a SHA-256 in plain TypeScript (`src/_util/sha256.ts`); an entry
   * point may pass its runtime's native hash (`() => createHash("sha256")` from `node:crypto` on
   * Deno and Node, several times faster).
   * @default {() => new Sha256()}
   */
  createHash?: () => Sha256Hasher;
  /** How packument and partition bodies are stored: `gzip` (compressed, about a tenth of the
   * bytes of npm's JSON) or `identity` (as fetched). Other puts store what they are told
   * (`PutOptions.encoding`, identity by default).
   * @default {"gzip"} */
  storeEncoding?: BodyEncoding;
  /**
   * Gzips a whole body in one call, for bodies up to 8 MiB that are stored gzip (larger ones
   * stream through `CompressionStream`). Web standards compress only through streams, about
   * 100 MB/s; an entry point may pass its runtime's zlib (`(b) => gzipSync(b, { level: 4 })`
   * from `node:zlib` on Deno and Node, at level 4: two to three times faster, as small).
   * @default {undefined (CompressionStream)}
   */
  gzipSync?: (bytes: Uint8Array) => Uint8Array;
  /**
   * Decodes a whole gzip body in one call, for bodies read whole (stored inline, or by views),
   * and for any body of at most 8 MiB stored and decoded (read, checked and decoded in one call
   * each rather than streamed): an entry point may pass its runtime's zlib (`gunzipSync` from `node:zlib`), several times
   * faster than `DecompressionStream` on small bodies. It throws on bytes that are not gzip.
   * @default {undefined (DecompressionStream)}
   */
  gunzipSync?: (bytes: Uint8Array) => Uint8Array;
}

/** Options for `Cache.put`. */
export interface PutOptions {
  /** The caller has just found no entry under the key, which saves reading it again (an entry
   * written meanwhile by another process would only leave an orphaned body, which
   * `cache verify --fix` removes). */
  absent?: boolean;
  /** Keeps the fetch time of an entry edited in place.
   * @default {the clock's now} */
  fetchedAt?: number;
  /** How to store the body: `gzip` compresses an identity body on the way in.
   * @default {"identity"} */
  encoding?: BodyEncoding;
  /** What the given body is: `gzip` bytes (such as a response body read undecoded) are stored
   * as they are when `encoding` is `gzip` too, else decoded on the way in.
   * @default {"identity"} */
  bodyEncoding?: BodyEncoding;
}

/** Options for `Cache.get`. */
export interface GetOptions {
  /**
   * When to verify a body that is stored apart from its header: `before` reads it once to
   * check it before returning the entry; `while` checks as the body streams and errors the
   * stream at its end, withholding the last chunk, when the bytes are wrong.
   * @default {"before"}
   */
  verify?: "before" | "while";
  /**
   * What a corrupt entry found before the entry is returned gives: `miss` answers `undefined`,
   * as for an absent one; `throw` throws a `CacheIntegrityError`, so a caller can
   * tell the two apart. It is reported (`onCorrupt`) either way.
   * @default {"miss"}
   */
  corrupt?: "miss" | "throw";
  /**
   * Whether the entry's stream gives the decoded document (`true`) or the bytes as stored
   * (`false`; `info.encoding` says how they are encoded, absent for `identity`).
   * @default {true}
   */
  decode?: boolean;
}

/** Counters kept by a cache. */
export interface CacheStats {
  /** Reads that found a valid entry. */
  hits: number;
  /** Reads that found nothing (including corrupt entries). */
  misses: number;
  /** Corrupt entries found. */
  corrupt: number;
  /** Entries written. */
  puts: number;
  /** `has()` and `info(key, { absentIfUnseen: true })` calls answered by the bloom filter
   * alone. */
  bloomNegatives: number;
}
