/**
 * A {@linkcode StorageDriver} over a Fastly Compute KV Store, for the read replica on Fastly
 * (`workers/fastly.ts`).
 *
 * The store is typed by the small {@linkcode FastlyKvStoreLike} interface, the part of the
 * `KVStore` class of `fastly:kv-store` (`@fastly/js-compute` 3.46.0) the driver uses, so this
 * module imports nothing from Fastly: the real store, or a stand-in in tests. Only web-standard
 * APIs are used.
 *
 * - Keys: Fastly refuses keys holding any of `#;?^|` or a line break, so the driver escapes
 *   them, and `%`, as `%` plus one digit (`%` → `%0`, `#` → `%1`, `;` → `%2`, `?` → `%3`,
 *   `^` → `%4`, `|` → `%5`, `\n` → `%6`, `\r` → `%7`). The cache's own keys hold none of these,
 *   so they are stored as they are. An escape doubles a 1-byte character, so a key may have at
 *   most half of Fastly's 1024 UTF-8 bytes ({@linkcode FASTLY_KV_MAX_KEY_BYTES}) left after
 *   `keyPrefix`. Fastly also refuses the keys `""`, `.`, `..` and those starting with
 *   `.well-known/acme-challenge/`, so the driver does too (a `TypeError`) unless a `keyPrefix`
 *   makes every stored key differ from them.
 * - Order: Fastly does not document the order of its listing, and escaping changes the order
 *   anyway, so `list` reads every key under the narrowest prefix the options allow (the common
 *   prefix of `start` and `end` when it is longer than `prefix`), then sorts in code-point order
 *   and applies `start`, `end` and `limit`. A listing holds its keys in memory: fine for the
 *   partition and packument prefixes the replica lists.
 * - Values: bytes. A stream is read whole before it is written, and a value above `maxValueBytes`
 *   (Fastly's documented 25 MB by default, raised to at most 100 MB for accounts where Fastly
 *   raised it) is a `RangeError`, thrown before anything is written. One `put` replaces the value
 *   of its key whole, so a reader never sees part of a value.
 * - Consistency: what Fastly gives, which is eventual across POPs; a replica filled from
 *   elsewhere and only read at the edge needs no more.
 * - Errors: a store call that fails is a {@linkcode StorageError} whose `cause` is the store's
 *   error; a bad key or option, or a closed driver, is a `TypeError` or `RangeError`.
 *
 * @module
 */

import { compareKeys, type StorageError } from "../src/storage/driver.ts";
import type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
import { checkKey, checkListOptions } from "./_checks.ts";
import { bindingFailure, narrowListPrefix, oneChunkStream, readBounded } from "./_whole_values.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";

/** The longest key a Fastly KV Store accepts, in UTF-8 bytes (before the driver's escaping). */
export const FASTLY_KV_MAX_KEY_BYTES = 1024;
/** The largest value a Fastly KV Store accepts by default: 25 MB. */
export const FASTLY_KV_MAX_VALUE_BYTES: number = 25 * 1000 * 1000;
/** The largest value Fastly raises the limit to on request: 100 MB. */
const FASTLY_KV_RAISED_VALUE_BYTES = 100 * 1000 * 1000;
/** The most keys asked for per `list` call. */
const MAX_PAGE = 1000;
/** Keys Fastly refuses. */
const REFUSED = new Set(["", ".", ".."]);
/** A key prefix Fastly refuses. */
const REFUSED_START = ".well-known/acme-challenge/";
/** The characters the driver escapes, in the order of their escape digit. */
const ESCAPED = "%#;?^|\n\r";
/** Finds a character to escape. */
const NEEDS_ESCAPE = /[%#;?^|\n\r]/;
const ESCAPE_ALL = /[%#;?^|\n\r]/g;
const UNESCAPE_ALL = /%([0-7])/g;

/** The part of a `KVStore` entry (`KVStoreEntry`) the driver uses. */
export interface FastlyKvEntryLike {
  /** The whole value. */
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** One page of a `KVStore.list`. */
export interface FastlyKvListResult {
  /** The keys of this page. */
  list: string[];
  /** Where the next page starts; `undefined` after the last page. */
  cursor: string | undefined;
}

/** The part of a Fastly `KVStore` (`new KVStore(name)` from `fastly:kv-store`) the driver uses. */
export interface FastlyKvStoreLike {
  /** The entry of `key`, or `null` when absent. */
  get(key: string): Promise<FastlyKvEntryLike | null>;
  /** Stores `value` under `key`, replacing any earlier value. */
  put(key: string, value: Uint8Array): Promise<unknown>;
  /** Removes `key`. */
  delete(key: string): Promise<unknown>;
  /** One page of the keys that start with `prefix`. */
  list(options: { prefix?: string; cursor?: string; limit?: number }): Promise<FastlyKvListResult>;
}

/** Options of {@linkcode FastlyKvDriver}. */
export interface FastlyKvDriverOptions {
  /** Put before every key in the store (to share one store, or to allow any key). It may not
   * hold a character Fastly refuses in keys.
   * @default {""} */
  keyPrefix?: string;
  /** The most keys asked for per `list` call, from 1 to 1000.
   * @default {1000} */
  pageSize?: number;
  /** The largest value accepted, in bytes: Fastly's limit for the account (25 MB unless Fastly
   * raised it, at most 100 MB).
   * @default {25000000} */
  maxValueBytes?: number;
}

/**
 * A {@linkcode StorageDriver} over a Fastly KV Store.
 *
 * @example Over a tiny in-memory stand-in for a KV Store
 * ```ts
 * import { FastlyKvDriver, type FastlyKvStoreLike } from "./fastly_kv.ts";
 *
 * const data = new Map<string, Uint8Array>();
 * const store: FastlyKvStoreLike = {
 *   get: (key) => {
 *     const value = data.get(key);
 *     return Promise.resolve(
 *       value === undefined ? null : { arrayBuffer: () => Promise.resolve(value.slice().buffer) },
 *     );
 *   },
 *   put: (key, value) => Promise.resolve(data.set(key, value.slice())),
 *   delete: (key) => Promise.resolve(data.delete(key)),
 *   list: ({ prefix = "" }) =>
 *     Promise.resolve({
 *       list: [...data.keys()].filter((k) => k.startsWith(prefix)),
 *       cursor: undefined,
 *     }),
 * };
 * const driver = new FastlyKvDriver(store);
 * await driver.put("a:1", new TextEncoder().encode("one"));
 * await driver.put("a:#2", new TextEncoder().encode("two"));
 * console.assert(new TextDecoder().decode(await driver.get("a:1")) === "one");
 * console.assert(data.has("a:%12"), "'#' is escaped");
 * console.assert((await Array.fromAsync(driver.list({ prefix: "a:" }))).join() === "a:#2,a:1");
 * await driver.close();
 * ```
 */
export class FastlyKvDriver implements StorageDriver {
  /** Always `"fastly_kv"`. */
  readonly name: string = "fastly_kv";
  /** Keys up to half of what {@linkcode FASTLY_KV_MAX_KEY_BYTES} leaves after `keyPrefix`. */
  readonly limits: StorageLimits;
  #store: FastlyKvStoreLike;
  #prefix: string;
  #pageSize: number;
  #maxValueBytes: number;
  #closed = false;

  /**
   * Wraps a KV Store.
   *
   * @param store The store (`new KVStore(name)` on Fastly Compute).
   * @param options Key prefix, list page size and value limit.
   * @throws {TypeError} When `keyPrefix` holds a character Fastly refuses in keys.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(store: FastlyKvStoreLike, options: FastlyKvDriverOptions = {}) {
    const prefix = options.keyPrefix ?? "";
    checkKey("use", prefix);
    if (NEEDS_ESCAPE.test(prefix) || prefix.startsWith(REFUSED_START)) {
      throw new TypeError(
        `Cannot use key prefix: Fastly refuses it in keys, received ${JSON.stringify(prefix)}`,
      );
    }
    const prefixBytes = new TextEncoder().encode(prefix).byteLength;
    const maxKeyBytes = Math.floor((FASTLY_KV_MAX_KEY_BYTES - prefixBytes) / 2);
    if (maxKeyBytes < 1) {
      throw new RangeError(
        `Cannot use key prefix: it must be shorter than ${FASTLY_KV_MAX_KEY_BYTES - 1} UTF-8 ` +
          `bytes, received ${prefixBytes}`,
      );
    }
    const pageSize = options.pageSize ?? MAX_PAGE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE) {
      throw new RangeError(
        `Cannot use page size: 'pageSize' must be an integer from 1 to ${MAX_PAGE}, ` +
          `received ${pageSize}`,
      );
    }
    const maxValueBytes = options.maxValueBytes ?? FASTLY_KV_MAX_VALUE_BYTES;
    if (
      !Number.isInteger(maxValueBytes) || maxValueBytes < 1 ||
      maxValueBytes > FASTLY_KV_RAISED_VALUE_BYTES
    ) {
      throw new RangeError(
        `Cannot use value limit: 'maxValueBytes' must be an integer from 1 to ` +
          `${FASTLY_KV_RAISED_VALUE_BYTES}, received ${maxValueBytes}`,
      );
    }
    this.#store = store;
    this.#prefix = prefix;
    this.#pageSize = pageSize;
    this.#maxValueBytes = maxValueBytes;
    this.limits = { maxKeyBytes };
  }

  /**
   * The whole value of `key`, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns The stored bytes.
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    const stored = this.#check("get", key);
    return await this.#read("get", key, stored);
  }

  /**
   * The value of `key` as a one-chunk stream, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns A stream of the stored bytes.
   */
  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const bytes = await this.get(key);
    return bytes === undefined ? undefined : oneChunkStream(bytes);
  }

  /**
   * Stores `value` under `key`. A stream is read whole first; if it errors, or the value is
   * larger than `maxValueBytes`, nothing is written and the old value stays.
   *
   * @param key The key to write.
   * @param value The bytes, whole or as a stream.
   * @returns A promise that resolves once the store has taken the value.
   */
  async put(key: string, value: StorageValue): Promise<void> {
    const stored = this.#check("put", key);
    let bytes: Uint8Array;
    if (value instanceof Uint8Array) {
      if (value.byteLength > this.#maxValueBytes) throw this.#tooLarge(key, "", value.byteLength);
      bytes = value.slice();
    } else {
      const max = this.#maxValueBytes;
      bytes = await readBounded(value, max, () => this.#tooLarge(key, "more than ", max));
    }
    this.#assertOpen("put");
    try {
      await this.#store.put(stored, bytes);
    } catch (error) {
      throw storeFailure("put", key, error);
    }
  }

  /**
   * Removes `key`; absent keys are not an error.
   *
   * @param key The key to remove.
   * @returns A promise that resolves once the store has removed it.
   */
  async delete(key: string): Promise<void> {
    const stored = this.#check("delete", key);
    try {
      await this.#store.delete(stored);
    } catch (error) {
      throw storeFailure("delete", key, error);
    }
  }

  /**
   * Whether `key` is present (the store has no existence check, so this reads the value).
   *
   * @param key The key to look up.
   * @returns `true` when the key has a value.
   */
  async has(key: string): Promise<boolean> {
    const stored = this.#check("check", key);
    return (await this.#read("check", key, stored)) !== undefined;
  }

  /**
   * Keys in code-point order that match `options`: every key under the narrowest prefix is read
   * from the store, then sorted and bounded.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   */
  async *list(options: ListOptions = {}): AsyncIterable<string> {
    this.#assertOpen("list");
    const { prefix, start, end, limit } = checkListOptions(options);
    if (limit === 0) return;
    if (start !== undefined && end !== undefined && compareKeys(start, end) >= 0) return;
    const listPrefix = narrowListPrefix(prefix, start, end);
    const keys: string[] = [];
    let cursor: string | undefined;
    while (true) {
      const request: { prefix: string; limit: number; cursor?: string } = {
        prefix: this.#prefix + escapeKey(listPrefix),
        limit: this.#pageSize,
      };
      if (cursor !== undefined) request.cursor = cursor;
      let page: FastlyKvListResult;
      try {
        page = await this.#store.list(request);
      } catch (error) {
        throw storeFailure("list", undefined, error);
      }
      this.#assertOpen("list");
      for (const name of page.list) {
        if (!name.startsWith(this.#prefix)) continue;
        const key = unescapeKey(name.slice(this.#prefix.length));
        if (!key.startsWith(prefix)) continue;
        if (start !== undefined && compareKeys(key, start) < 0) continue;
        if (end !== undefined && compareKeys(key, end) >= 0) continue;
        keys.push(key);
      }
      if (page.cursor === undefined || page.cursor === "" || page.list.length === 0) break;
      cursor = page.cursor;
    }
    keys.sort(compareKeys);
    let count = 0;
    for (const key of keys) {
      yield key;
      if (++count >= limit) return;
      this.#assertOpen("list");
    }
  }

  /**
   * Marks the driver closed (the store itself needs no closing). Further calls are errors;
   * closing twice is fine.
   *
   * @returns A promise that resolves at once.
   */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw new TypeError(`Cannot ${op} key: the fastly_kv driver is closed`);
  }

  /** Reads the stored key `stored`; a failing store is a {@linkcode StorageError}. */
  async #read(op: string, key: string, stored: string): Promise<Uint8Array | undefined> {
    try {
      const entry = await this.#store.get(stored);
      if (entry === null) return undefined;
      return new Uint8Array(await entry.arrayBuffer());
    } catch (error) {
      throw storeFailure(op, key, error);
    }
  }

  /** Checks `key` and returns the key stored in the KV Store. */
  #check(op: string, key: string): string {
    this.#assertOpen(op);
    checkKey(op, key, this.limits.maxKeyBytes);
    const stored = this.#prefix + escapeKey(key);
    if (REFUSED.has(stored) || stored.startsWith(REFUSED_START)) {
      throw new TypeError(
        `Cannot ${op} key: a Fastly KV Store does not accept the key ${JSON.stringify(stored)} ` +
          `(use a keyPrefix)`,
      );
    }
    return stored;
  }

  /** The error of a value too large for the store. */
  #tooLarge(key: string, more: string, size: number): RangeError {
    return new RangeError(
      `Cannot put key ${JSON.stringify(key)}: value exceeds the Fastly KV Store limit of ` +
        `${this.#maxValueBytes} bytes, received ${more}${size}`,
    );
  }
}

/** `key` with the characters Fastly refuses (and `%`) escaped. */
function escapeKey(key: string): string {
  if (!NEEDS_ESCAPE.test(key)) return key;
  return key.replace(ESCAPE_ALL, (c) => `%${ESCAPED.indexOf(c)}`);
}

/** The key `escapeKey` was given. */
function unescapeKey(stored: string): string {
  if (!stored.includes("%")) return stored;
  return stored.replace(UNESCAPE_ALL, (_, digit: string) => ESCAPED[Number(digit)]!);
}

/** A store call that threw, as a {@linkcode StorageError}. */
function storeFailure(op: string, key: string | undefined, error: unknown): StorageError {
  return bindingFailure("fastly_kv", "the Fastly KV Store", op, key, error);
}
