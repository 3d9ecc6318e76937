/**
 * The cache: HTTP-style entries (body bytes plus response metadata) over any storage driver.
 *
 * Each entry is one record under its own key: a small header (status, validators,
 * `cache-control`, `content-type`, integrity, size, fetch time, representation, `_rev`) followed
 * by the body when the body is small (at most `inlineMax` bytes). Larger bodies are streamed to a
 * separate body key (`v1:body:...`) first, and the header that points at them is written last,
 * so a reader never sees a header whose body is incomplete. A 304 rewrites only the header; a put
 * and a refresh of one key in two handles leave an entry that reads and verifies in any order
 * (see {@linkcode Cache.refresh}).
 *
 * A body is stored as it is (`identity`) or gzipped (`gzip`, `CompressionStream`), as each put
 * says; the jobs that write packuments and partitions use the cache's `storeEncoding` (gzip
 * unless told otherwise). The record keeps the encoding beside the integrity and size of the
 * stored bytes; a read hands out the decoded document (streamed through `DecompressionStream`,
 * never whole in memory unless the body is stored inline) unless it asks for the stored bytes
 * (`decode: false`). A gzip body that does not decode is corrupt, as one that does not hash.
 *
 * Integrity (`sha256-<base64>`, the Subresource Integrity form) is verified on every read: a
 * corrupt or incomplete entry is reported (`onCorrupt`, `stats.corrupt`) and treated as a miss,
 * never returned; a body found corrupt while it streams errors the stream and is reported the
 * same way. With `dropCorrupt` the entry is removed too (unless it was replaced meanwhile), as
 * npm's cache removes content that fails its integrity check, so that the next fetch gets it
 * again.
 *
 * @module
 */

import type { ListOptions, StorageDriver } from "./driver.ts";
import { type Clock, systemClock } from "../clock.ts";
import { BloomFilter } from "../_util/bloom.ts";
import { readAll } from "../_util/bytes.ts";
import { prepended, readPrefix, sameBytes, streamOf } from "./_streams.ts";
import { SingleFlight } from "../_util/single_flight.ts";
import { BODY_PREFIX, CHECKPOINT_PREFIX } from "./keys.ts";
import { bodyKeyOf, entryKeyOf, refreshMarkerOf } from "./_body_keys.ts";
import {
  type CacheEntry,
  type CacheEntryInfo,
  type CacheMetadata,
  decodedSizeOf,
  entryOf,
} from "./entry.ts";
import { CorruptEntry, decodeRecord, encodeRecord, infoOf, type RecordHeader } from "./record.ts";
import {
  type BodyEncoding,
  counting,
  gunzipStream,
  gzipStream,
  isBodyEncoding,
} from "./encoding.ts";
import { type Freshness, freshness } from "./freshness.ts";
import {
  NOT_GZIP,
  readsWhole,
  readWholeGzip,
  WHOLE_GZIP_MAX,
  wholeGzipStream,
} from "./_whole_gzip.ts";
import {
  CacheIntegrityError,
  createSha256,
  integrityOf,
  measuring,
  type Sha256Hasher,
  verifying,
} from "./integrity.ts";

// What moved out of this module stays importable from here (and from mod.ts) as before.
export type { CacheEntry, CacheEntryInfo, CacheMetadata } from "./entry.ts";
export { ageSeconds, type Freshness, freshness, maxAgeSeconds } from "./freshness.ts";
export { CacheIntegrityError, type Sha256Hasher } from "./integrity.ts";
export type { BodyEncoding } from "./encoding.ts";
export type { CacheOptions, CacheStats, GetOptions, PutOptions } from "./cache_options.ts";
import type { CacheOptions, CacheStats, GetOptions, PutOptions } from "./cache_options.ts";

/**
 * HTTP-style cache entries over a {@linkcode StorageDriver}.
 *
 * @example Store and read an entry
 * ```ts
 * import { Cache } from "./cache.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 * const cache = await Cache.open(new MemoryDriver());
 * await cache.put("v1:packument:npm:6d73", new TextEncoder().encode('{"name":"ms"}'), {
 *   status: 200,
 *   etag: '"1"',
 * });
 * const entry = await cache.get("v1:packument:npm:6d73");
 * console.assert((await entry?.json() as { name: string }).name === "ms");
 * ```
 */
export class Cache {
  /** The storage driver underneath. */
  readonly driver: StorageDriver;
  /** The clock. */
  readonly clock: Clock;
  #inlineMax: number;
  #createHash: () => Sha256Hasher;
  #nativeHash: (() => Sha256Hasher) | undefined;
  #defaultMaxAgeMs: number;
  #bloom: BloomFilter | undefined;
  #bloomSeeded = false;
  #seedLimit: number;
  #seeded: Promise<void> = Promise.resolve();
  #onCorrupt: ((key: string, reason: string) => void) | undefined;
  #dropCorrupt: boolean;
  #storeEncoding: BodyEncoding;
  #gzipSync: ((bytes: Uint8Array) => Uint8Array) | undefined;
  #gunzipSync: ((bytes: Uint8Array) => Uint8Array) | undefined;
  #loads = new SingleFlight();
  #stats: CacheStats = { hits: 0, misses: 0, corrupt: 0, puts: 0, bloomNegatives: 0 };

  private constructor(driver: StorageDriver, options: CacheOptions) {
    const inlineMax = options.inlineMax ?? 65536;
    if (!Number.isInteger(inlineMax) || inlineMax < 0) {
      throw new RangeError(
        `Cannot open cache: 'inlineMax' must be a non-negative integer, received ${inlineMax}`,
      );
    }
    const defaultMaxAgeMs = options.defaultMaxAgeMs ?? 0;
    if (!(defaultMaxAgeMs >= 0)) {
      throw new RangeError(
        `Cannot open cache: 'defaultMaxAgeMs' must be a non-negative number, received ${defaultMaxAgeMs}`,
      );
    }
    const seedLimit = options.bloom ? options.bloom.seedLimit ?? Infinity : Infinity;
    if (!(seedLimit === Infinity || (Number.isInteger(seedLimit) && seedLimit >= 0))) {
      throw new RangeError(
        `Cannot open cache: 'bloom.seedLimit' must be a non-negative integer or Infinity, received ${seedLimit}`,
      );
    }
    const storeEncoding = options.storeEncoding ?? "gzip";
    if (!isBodyEncoding(storeEncoding)) {
      throw new RangeError(
        `Cannot open cache: 'storeEncoding' must be "identity" or "gzip", received ${
          JSON.stringify(storeEncoding)
        }`,
      );
    }
    this.#storeEncoding = storeEncoding;
    this.#gzipSync = options.gzipSync;
    this.#gunzipSync = options.gunzipSync;
    this.driver = driver;
    this.#seedLimit = seedLimit;
    this.clock = options.clock ?? systemClock;
    this.#inlineMax = inlineMax;
    this.#createHash = options.createHash ?? createSha256;
    this.#nativeHash = options.createHash;
    this.#defaultMaxAgeMs = defaultMaxAgeMs;
    this.#onCorrupt = options.onCorrupt;
    this.#dropCorrupt = options.dropCorrupt ?? false;
    if (options.bloom !== false) {
      this.#bloom = new BloomFilter({
        expectedItems: options.bloom?.expectedItems ?? 1_000_000,
        falsePositiveRate: options.bloom?.falsePositiveRate ?? 0.01,
      });
    }
  }

  /**
   * Opens a cache over a driver. The bloom filter is seeded in the background from the keys
   * already stored; `has()` waits for the seeding, so keys written by earlier runs are never
   * reported missing.
   *
   * @param driver The storage driver.
   * @param options Cache options.
   * @returns The cache.
   * @throws {RangeError} When an option is out of range.
   */
  static async open(driver: StorageDriver, options: CacheOptions = {}): Promise<Cache> {
    const cache = new Cache(driver, options);
    const bloom = cache.#bloom;
    if (bloom) {
      cache.#seeded = (async () => {
        let count = 0;
        for await (const key of cache.keys()) {
          if (++count > cache.#seedLimit) {
            cache.#bloom = undefined;
            return;
          }
          bloom.add(key);
        }
        cache.#bloomSeeded = true;
      })();
      // A failed seeding surfaces from has(); avoid an unhandled rejection meanwhile.
      cache.#seeded.catch(() => {});
    }
    return await Promise.resolve(cache);
  }

  /** How packument and partition bodies are stored (the `storeEncoding` option): the jobs that
   * write them pass it to {@linkcode Cache.put} as `encoding`. */
  get storeEncoding(): BodyEncoding {
    return this.#storeEncoding;
  }

  /**
   * Decodes a whole gzip body held in memory (with the injected `gunzipSync` when there is one).
   *
   * @param bytes The gzip bytes.
   * @returns The decoded bytes.
   * @throws {TypeError} When the bytes are not gzip (with `DecompressionStream`; an injected
   *   decoder throws its own error).
   */
  async gunzip(bytes: Uint8Array): Promise<Uint8Array> {
    if (this.#gunzipSync) return this.#gunzipSync(bytes);
    return await readAll(streamOf(bytes).pipeThrough(gunzipStream()));
  }

  /** Counters since the cache was opened. */
  get stats(): CacheStats {
    return { ...this.#stats };
  }

  /** Resolves once the bloom filter holds every key stored when the cache opened. */
  ready(): Promise<void> {
    return this.#seeded;
  }

  /** Counts and reports a corrupt entry, whose record read `raw`; drops it if asked to. */
  async #corrupt(key: string, reason: string, raw: Uint8Array): Promise<undefined> {
    this.#stats.corrupt++;
    this.#stats.misses++;
    this.#onCorrupt?.(key, reason);
    if (this.#dropCorrupt) await this.#drop(key, raw).catch(() => {});
    return undefined;
  }

  /** Removes the entry `key` and its body if its record still reads `raw`. */
  async #drop(key: string, raw: Uint8Array): Promise<void> {
    const now = await this.driver.get(key);
    if (now === undefined || !sameBytes(now, raw)) return;
    let bodyKey: string | null = null;
    try {
      bodyKey = decodeRecord(key, now).header.body;
    } catch {
      // A corrupt record points at no body we can trust; an orphaned one is found by
      // orphanBodies().
    }
    await this.driver.delete(key);
    if (bodyKey) await this.driver.delete(bodyKey);
  }

  async #readHeader(
    key: string,
    report = true,
    raise = false,
  ): Promise<{ header: RecordHeader; inline: Uint8Array; raw: Uint8Array } | undefined> {
    const raw = await this.driver.get(key);
    if (raw === undefined) return undefined;
    try {
      return { ...decodeRecord(key, raw), raw };
    } catch (error) {
      if (!(error instanceof CorruptEntry)) throw error;
      if (!report) return undefined;
      await this.#corrupt(key, error.message, raw);
      if (raise) throw corruptError(key, error.message);
      return undefined;
    }
  }

  /**
   * The metadata of an entry, without reading a separately stored body.
   *
   * @param key The entry key.
   * @param options `absentIfUnseen: true` answers `undefined` without reading storage when the
   *   bloom filter is seeded and has never seen `key`: cheaper for keys that are probably new,
   *   but blind to an entry another process wrote after this cache opened.
   * @returns The metadata, or `undefined` when absent or corrupt.
   */
  async info(
    key: string,
    options: { absentIfUnseen?: boolean } = {},
  ): Promise<CacheEntryInfo | undefined> {
    if (options.absentIfUnseen && this.#bloomSeeded && !this.#bloom?.has(key)) {
      this.#stats.bloomNegatives++;
      return undefined;
    }
    const record = await this.#readHeader(key);
    return record && infoOf(record.header);
  }

  /**
   * Reads a verified entry.
   *
   * @param key The entry key.
   * @param options When to verify a separately stored body, what corruption gives, and whether
   *   to decode a compressed body.
   * @returns The entry, or `undefined` when absent or corrupt (corruption is reported).
   * @throws {CacheIntegrityError} When the entry is corrupt and `corrupt` is `throw`.
   */
  async get(key: string, options: GetOptions = {}): Promise<CacheEntry | undefined> {
    const raise = options.corrupt === "throw";
    const record = await this.#readHeader(key, true, raise);
    if (!record) {
      this.#stats.misses++;
      return undefined;
    }
    const { header, inline, raw } = record;
    const info = infoOf(header);
    const corrupt = async (reason: string): Promise<undefined> => {
      await this.#corrupt(key, reason, raw);
      if (raise) throw corruptError(key, reason);
      return undefined;
    };
    const gzip = header.encoding === "gzip";
    const decode = gzip && options.decode !== false;
    if (header.body === null) {
      if ((await integrityOf(inline, this.#nativeHash)) !== header.integrity) {
        return await corrupt("inline body does not match its integrity");
      }
      let whole = inline;
      if (gzip) {
        // Small enough to store inline: decoded (and so checked) whole, once.
        let decoded: Uint8Array;
        try {
          decoded = await this.gunzip(inline);
        } catch {
          // The decoder's own error (web or injected): inline bytes have no other source.
          return await corrupt(NOT_GZIP);
        }
        if (decode) whole = decoded;
      }
      this.#stats.hits++;
      return entryOf(info, () => streamOf(whole), whole);
    }
    const bodyKey = header.body;
    const gunzip = this.#gunzipSync;
    const whole = gunzip && readsWhole(header, decodedSizeOf(info))
      ? (check = true) =>
        readWholeGzip(this.driver, bodyKey, header, this.#nativeHash, check ? gunzip : undefined)
      : undefined;
    if (whole && options.verify !== "while") {
      const read = await whole();
      if ("corrupt" in read) return await corrupt(read.corrupt);
      const bytes = decode ? read.decoded! : read.stored;
      this.#stats.hits++;
      return entryOf(info, () => streamOf(bytes), bytes);
    }
    if (!whole && options.verify !== "while") {
      const stream = await this.driver.getStream(bodyKey);
      if (!stream) return await corrupt("body is missing");
      const m = measuring(this.#createHash);
      let checked = stream.pipeThrough(m.stream);
      if (gzip) checked = checked.pipeThrough(gunzipStream());
      let notGzip = false;
      try {
        await checked.pipeTo(new WritableStream());
      } catch (error) {
        // The decoder's own error; a driver's is a StorageError, and is thrown.
        if (!(gzip && error instanceof TypeError)) throw error;
        notGzip = true;
      }
      const seen = m.result();
      if (!notGzip && (seen.size !== header.size || seen.integrity !== header.integrity)) {
        return await corrupt("body does not match its integrity");
      }
      if (notGzip) return await corrupt(NOT_GZIP);
    } else if (!(await this.driver.has(bodyKey))) {
      return await corrupt("body is missing");
    }
    this.#stats.hits++;
    const driver = this.driver;
    const createHash = this.#createHash;
    // A body found wrong as it streams is reported (and dropped) before the stream errors.
    const found = (reason: string) => this.#corrupt(key, reason, raw);
    const open = () => {
      // Sent on as stored (the replica to a gzip client): checked, never decoded.
      if (whole) {
        return wholeGzipStream(() => whole(decode), decode, found, (why) => corruptError(key, why));
      }
      let source: ReadableStreamDefaultReader<Uint8Array> | undefined;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (!source) {
            const stream = await driver.getStream(bodyKey);
            if (!stream) {
              await found("body is missing");
              controller.error(new CacheIntegrityError(key, `Cache entry '${key}' lost its body`));
              return;
            }
            const checked = stream.pipeThrough(verifying(key, info, createHash));
            source = (decode ? checked.pipeThrough(gunzipStream()) : checked).getReader();
          }
          let next: ReadableStreamReadResult<Uint8Array>;
          try {
            next = await source.read();
          } catch (error) {
            if (error instanceof CacheIntegrityError) {
              await found("body does not match its integrity");
            } else if (decode && error instanceof TypeError) {
              await found(NOT_GZIP);
              throw new CacheIntegrityError(key, `Cache entry '${key}' is corrupt: ${NOT_GZIP}`);
            }
            throw error;
          }
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel(reason) {
          return source?.cancel(reason);
        },
      });
    };
    return entryOf(info, open);
  }

  /**
   * Stores a body with its metadata, replacing any earlier entry. A stream is written without
   * holding it in memory; its integrity and size are computed on the way.
   *
   * @param key The entry key.
   * @param body The body bytes or stream.
   * @param metadata The response metadata, or a function called once the body has been read
   *   (for figures such as a row count that are known only at the end).
   * @param options Whether the caller knows the key is absent, the fetch time to keep, how to
   *   store the body and what it is (see {@linkcode PutOptions}).
   * @returns The stored entry's metadata.
   * @throws {RangeError} When an encoding option is unknown.
   */
  async put(
    key: string,
    body: Uint8Array | ReadableStream<Uint8Array>,
    metadata: CacheMetadata | (() => CacheMetadata),
    options: PutOptions = {},
  ): Promise<CacheEntryInfo> {
    const meta = () => typeof metadata === "function" ? metadata() : metadata;
    const fetchedAt = options.fetchedAt ?? this.clock.now();
    const store = options.encoding ?? "identity";
    let given = options.bodyEncoding ?? "identity";
    if (!isBodyEncoding(store) || !isBodyEncoding(given)) {
      const [name, value] = isBodyEncoding(store) ? ["bodyEncoding", given] : ["encoding", store];
      throw new RangeError(
        `Cannot store '${key}': '${name}' must be "identity" or "gzip", received ${
          JSON.stringify(value)
        }`,
      );
    }
    let decodedSize: (() => number) | undefined;
    if (store === "gzip" && given === "identity" && this.#gzipSync) {
      // A body up to WHOLE_GZIP_MAX is compressed in one call; a longer one streams below.
      let whole: Uint8Array | undefined;
      if (body instanceof Uint8Array) {
        if (body.length <= WHOLE_GZIP_MAX) whole = body;
      } else {
        const prefix = await readPrefix(body, WHOLE_GZIP_MAX);
        if (prefix.done) whole = prefix.head;
        else body = prepended(prefix.head, prefix.reader);
      }
      if (whole) {
        const size = whole.length;
        decodedSize = () => size;
        body = this.#gzipSync(whole);
        given = "gzip";
      }
    }
    if (store !== given) {
      const source = body instanceof Uint8Array ? streamOf(body) : body;
      if (store === "gzip") {
        const c = counting();
        decodedSize = c.count;
        body = source.pipeThrough(c.stream).pipeThrough(gzipStream());
      } else body = source.pipeThrough(gunzipStream());
    }
    const encoded = store === "gzip"
      ? () => ({
        encoding: "gzip" as const,
        ...(decodedSize ? { decodedSize: decodedSize() } : {}),
      })
      : () => ({});
    let inline: Uint8Array | undefined;
    let bodyStream: ReadableStream<Uint8Array> | undefined;
    if (body instanceof Uint8Array) {
      if (body.length <= this.#inlineMax) inline = body;
      else bodyStream = streamOf(body);
    } else {
      const prefix = await readPrefix(body, this.#inlineMax);
      if (prefix.done) inline = prefix.head;
      else {
        bodyStream = prepended(prefix.head, prefix.reader);
      }
    }
    const previous = options.absent
      ? undefined
      : await this.#readHeader(key, false).catch(() => undefined);
    let header: RecordHeader;
    let record: Uint8Array;
    if (inline) {
      header = {
        ...meta(),
        key,
        integrity: await integrityOf(inline, this.#nativeHash),
        size: inline.length,
        ...encoded(),
        fetchedAt,
        body: null,
      };
      record = encodeRecord(header, inline);
      await this.driver.put(key, record);
    } else {
      const bodyKey = bodyKeyOf(key);
      const m = measuring(this.#createHash);
      try {
        await this.driver.put(bodyKey, bodyStream!.pipeThrough(m.stream));
      } catch (error) {
        await this.driver.delete(bodyKey).catch(() => {});
        throw error;
      }
      header = { ...meta(), key, ...m.result(), ...encoded(), fetchedAt, body: bodyKey };
      record = encodeRecord(header);
      await this.driver.put(key, record);
    }
    const oldBody = previous?.header.body;
    if (oldBody && oldBody !== header.body) await this.#retire(key, oldBody, record);
    this.#bloom?.add(key);
    this.#stats.puts++;
    return infoOf(header);
  }

  /**
   * Updates an entry's metadata without rewriting a separately stored body: the 304 path.
   * `fetchedAt` becomes now unless the patch says otherwise; `age` is the patch's (the `Age` of
   * the 304) or none, since the renewed entry's age counts from the revalidation. Safe against a concurrent
   * {@linkcode Cache.put} of the same key in another handle or process: while it runs, a marker
   * key keeps that put from removing the body the header being renewed points at, and the put
   * writes its own header again if this one landed over it.
   *
   * @param key The entry key.
   * @param patch Metadata to change.
   * @returns The new metadata, or `undefined` when the entry is absent or corrupt.
   */
  async refresh(
    key: string,
    patch: Partial<CacheMetadata> & { fetchedAt?: number } = {},
  ): Promise<CacheEntryInfo | undefined> {
    const record = await this.#readHeader(key);
    if (!record) return undefined;
    // An inline record is whole: written back over a newer put, it still reads and verifies.
    if (record.header.body === null) return await this.#renew(key, record, patch);
    // A body stored apart may be removed by a put of another handle meanwhile: the marker tells
    // that put to leave it (see #retire), and the header is read again under the marker.
    const marker = refreshMarkerOf(key);
    await this.driver.put(marker, MARKER_VALUE);
    try {
      const current = await this.#readHeader(key);
      return current && await this.#renew(key, current, patch);
    } finally {
      // A marker left behind (a killed refresh) only keeps old bodies: `cache verify --fix`
      // removes it with the orphans.
      await this.driver.delete(marker).catch(() => {});
    }
  }

  /** Writes `record`'s header back with `patch` applied. */
  async #renew(
    key: string,
    record: { header: RecordHeader; inline: Uint8Array },
    patch: Partial<CacheMetadata> & { fetchedAt?: number },
  ): Promise<CacheEntryInfo> {
    // The age the entry arrived with is the old response's: the renewal starts a new one.
    const { age: _age, ...kept } = record.header;
    const header: RecordHeader = {
      ...kept,
      ...patch,
      fetchedAt: patch.fetchedAt ?? this.clock.now(),
    };
    await this.driver.put(
      key,
      encodeRecord(header, header.body === null ? record.inline : undefined),
    );
    return infoOf(header);
  }

  /**
   * Removes `oldBody`, the body `key` pointed at before a put wrote `record`, unless a refresh of
   * `key` is under way (its header may still point there), then checks that no refresh wrote an
   * older header over `record`: if one did, `record` is written again, so that the newer put
   * wins and no header is left pointing at a removed body.
   */
  async #retire(key: string, oldBody: string, record: Uint8Array): Promise<void> {
    if (!(await this.driver.has(refreshMarkerOf(key)))) await this.driver.delete(oldBody);
    const now = await this.#readHeader(key, false).catch(() => undefined);
    if (now?.header.body === oldBody) await this.driver.put(key, record);
  }

  /**
   * Whether an entry is present. Answered by the bloom filter alone when it can.
   *
   * @param key The entry key.
   * @returns `true` when present.
   */
  async has(key: string): Promise<boolean> {
    if (this.#bloom) {
      await this.#seeded;
      if (this.#bloom && !this.#bloom.has(key)) {
        this.#stats.bloomNegatives++;
        return false;
      }
    }
    return await this.driver.has(key);
  }

  /**
   * Removes an entry and its separately stored body.
   *
   * @param key The entry key.
   * @returns `true` when something was removed.
   */
  async delete(key: string): Promise<boolean> {
    const raw = await this.driver.get(key);
    if (raw === undefined) return false;
    let bodyKey: string | null = null;
    try {
      bodyKey = decodeRecord(key, raw).header.body;
    } catch {
      // A corrupt record is deleted all the same.
    }
    await this.driver.delete(key);
    if (bodyKey) await this.driver.delete(bodyKey);
    return true;
  }

  /**
   * Entry keys in key order (internal body and checkpoint keys are left out).
   *
   * @param prefix Only keys that start with this.
   * @param options Further range options for the driver.
   * @returns The keys.
   */
  async *keys(prefix = "", options: Omit<ListOptions, "prefix"> = {}): AsyncGenerator<string> {
    for await (const key of this.driver.list({ ...options, prefix })) {
      if (!key.startsWith(BODY_PREFIX) && !key.startsWith(CHECKPOINT_PREFIX)) yield key;
    }
  }

  /**
   * Verified entries in key order; corrupt ones are reported and skipped.
   *
   * @param prefix Only keys that start with this.
   * @returns Pairs of key and entry.
   */
  async *entries(prefix = ""): AsyncGenerator<[string, CacheEntry]> {
    for await (const key of this.keys(prefix)) {
      const entry = await this.get(key);
      if (entry) yield [key, entry];
    }
  }

  /**
   * Separately stored bodies that no entry points at: left by a writer that stopped between
   * writing a body and its header, or by concurrent writers of one key.
   *
   * @returns The body keys, in key order.
   */
  async *orphanBodies(): AsyncGenerator<string> {
    for await (const bodyKey of this.driver.list({ prefix: BODY_PREFIX })) {
      const entryKey = entryKeyOf(bodyKey);
      // Not reported: a corrupt record is counted where it is read as an entry, not again here.
      const record = await this.#readHeader(entryKey, false).catch(() => undefined);
      if (record?.header.body !== bodyKey) yield bodyKey;
    }
  }

  /**
   * Runs `loader` for `key` unless a load of the same key is already running, in which case the
   * caller shares that load's result. Concurrent requests for one document become one fetch.
   *
   * @param key The key being loaded.
   * @param loader Does the work (fetching, storing) and returns its result.
   * @returns The loader's result.
   */
  load<T>(key: string, loader: () => Promise<T>): Promise<T> {
    return this.#loads.run(key, loader);
  }

  /**
   * Freshness of an entry now, by its `Cache-Control` and the clock.
   *
   * @param info The entry's metadata.
   * @returns The freshness.
   */
  freshness(info: CacheEntryInfo): Freshness {
    return freshness(info, this.clock.now(), this.#defaultMaxAgeMs);
  }
}

/** The error `get(key, { corrupt: "throw" })` throws. */
function corruptError(key: string, reason: string): CacheIntegrityError {
  return new CacheIntegrityError(key, `Cache entry '${key}' is corrupt: ${reason}`);
}

const MARKER_VALUE = new Uint8Array(0);
