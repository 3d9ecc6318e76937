/**
 * A {@linkcode StorageDriver} over a Cloudflare Workers KV namespace binding, for the read
 * replica on Workers (`workers/cloudflare.ts`).
 *
 * The binding is typed by the small {@linkcode KvNamespaceLike} interface (no dependency on
 * `@cloudflare/workers-types`), so any object with KV's `get`/`put`/`delete`/`list` works: the
 * real binding, Miniflare's, or a fake in tests. Only web-standard APIs are used.
 *
 * - Order: KV lists keys in UTF-8 byte order, which is the order of the driver interface.
 *   `prefix` is passed to KV; `start`, `end` and `limit` are applied on top (keys before `start`
 *   are skipped, listing stops at `end` or `limit`). When `start` and `end` share a longer
 *   prefix than `prefix`, that one is listed instead, so a narrow range never pages through a
 *   wide prefix. A prefix holding U+0000 is listed only up to it (Miniflare's KV lists nothing
 *   for such a prefix) and the rest is filtered.
 * - Values: bytes. A stream is read whole before it is written, and a value above
 *   {@linkcode KV_MAX_VALUE_BYTES} (KV's 25 MiB limit) is a `RangeError`, thrown before anything
 *   is written. A KV `put` replaces the value of its key atomically.
 * - Keys: at most {@linkcode KV_MAX_KEY_BYTES} UTF-8 bytes including `keyPrefix`. KV refuses the
 *   keys `""`, `.` and `..`, so the driver does too (a `TypeError`) unless a `keyPrefix` makes
 *   every stored key differ from them.
 * - Consistency: what Workers KV gives, which is eventual across locations; a replica that is
 *   filled from elsewhere and only read at the edge needs no more.
 * - Errors: a binding call that fails (KV unreachable, a limit of the account) is a
 *   {@linkcode StorageError} whose `cause` is the binding's error; a bad key or option, or a
 *   closed driver, is a `TypeError` or `RangeError`.
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
import { checkKey, checkListOptions, keyBytesAfterPrefix, listedKey } from "./_checks.ts";
import { bindingFailure, narrowListPrefix, oneChunkStream, readBounded } from "./_whole_values.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";

/** The longest key Workers KV accepts, in UTF-8 bytes. */
export const KV_MAX_KEY_BYTES = 512;
/** The largest value Workers KV accepts: 25 MiB. */
export const KV_MAX_VALUE_BYTES: number = 25 * 1024 * 1024;
/** The most keys one KV `list` call returns. */
const KV_MAX_PAGE = 1000;

/** One page of a KV `list`. */
export interface KvListResult {
  /** The keys of this page, in UTF-8 byte order. */
  keys: { name: string }[];
  /** Whether this is the last page. */
  list_complete: boolean;
  /** Where the next page starts, when `list_complete` is false. */
  cursor?: string;
}

/** The part of a Workers KV namespace binding the driver uses. */
export interface KvNamespaceLike {
  /** The value of `key` as bytes, or `null` when absent. */
  get(key: string, type: "arrayBuffer"): Promise<ArrayBuffer | null>;
  /** Stores `value` under `key`. */
  put(key: string, value: Uint8Array | ArrayBuffer): Promise<unknown>;
  /** Removes `key`. */
  delete(key: string): Promise<unknown>;
  /** One page of the keys that start with `prefix`. */
  list(options: { prefix?: string; cursor?: string; limit?: number }): Promise<KvListResult>;
}

/** Options of {@linkcode CloudflareKvDriver}. */
export interface CloudflareKvDriverOptions {
  /** Put before every key in the namespace (to share one namespace, or to allow any key).
   * @default {""} */
  keyPrefix?: string;
  /** The most keys asked for per KV `list` call (KV returns at most 1000).
   * @default {1000} */
  pageSize?: number;
}

/**
 * A {@linkcode StorageDriver} over a Workers KV namespace.
 *
 * @example Over a tiny in-memory stand-in for a KV binding
 * ```ts
 * import { CloudflareKvDriver, type KvNamespaceLike } from "./cloudflare_kv.ts";
 *
 * const data = new Map<string, Uint8Array>();
 * const kv: KvNamespaceLike = {
 *   get: (key) => Promise.resolve(data.get(key)?.slice().buffer ?? null),
 *   put: (key, value) => Promise.resolve(data.set(key, new Uint8Array(value).slice())),
 *   delete: (key) => Promise.resolve(data.delete(key)),
 *   list: ({ prefix = "" }) =>
 *     Promise.resolve({
 *       keys: [...data.keys()].filter((k) => k.startsWith(prefix)).sort().map((name) => ({ name })),
 *       list_complete: true,
 *     }),
 * };
 * const driver = new CloudflareKvDriver(kv);
 * await driver.put("a:1", new TextEncoder().encode("one"));
 * console.assert(new TextDecoder().decode(await driver.get("a:1")) === "one");
 * console.assert((await Array.fromAsync(driver.list({ prefix: "a:" }))).join() === "a:1");
 * await driver.close();
 * ```
 */
export class CloudflareKvDriver implements StorageDriver {
  /** Always `"cloudflare_kv"`. */
  readonly name: string = "cloudflare_kv";
  /** Keys up to {@linkcode KV_MAX_KEY_BYTES} UTF-8 bytes, less those of `keyPrefix`. */
  readonly limits: StorageLimits;
  #kv: KvNamespaceLike;
  #prefix: string;
  #pageSize: number;
  #closed = false;

  /**
   * Wraps a KV namespace binding.
   *
   * @param namespace The binding (`env.CACHE` in a Worker).
   * @param options Key prefix and list page size.
   */
  constructor(namespace: KvNamespaceLike, options: CloudflareKvDriverOptions = {}) {
    const prefix = options.keyPrefix ?? "";
    const maxKeyBytes = keyBytesAfterPrefix(prefix, KV_MAX_KEY_BYTES);
    const pageSize = options.pageSize ?? KV_MAX_PAGE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > KV_MAX_PAGE) {
      throw new RangeError(
        `Cannot use page size: it must be an integer from 1 to ${KV_MAX_PAGE}, received ${pageSize}`,
      );
    }
    this.#kv = namespace;
    this.#prefix = prefix;
    this.#pageSize = pageSize;
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
    const value = await this.#read("get", key, stored);
    return value === null ? undefined : new Uint8Array(value);
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
   * larger than {@linkcode KV_MAX_VALUE_BYTES}, nothing is written and the old value stays.
   *
   * @param key The key to write.
   * @param value The bytes, whole or as a stream.
   * @returns A promise that resolves once KV has taken the value.
   */
  async put(key: string, value: StorageValue): Promise<void> {
    const stored = this.#check("put", key);
    let bytes: Uint8Array;
    if (value instanceof Uint8Array) {
      checkSize(key, value.byteLength);
      bytes = value.slice();
    } else {
      bytes = await readBounded(
        value,
        KV_MAX_VALUE_BYTES,
        () => tooLarge(key, "more than ", KV_MAX_VALUE_BYTES),
      );
    }
    this.#assertOpen("put");
    try {
      await this.#kv.put(stored, bytes);
    } catch (error) {
      throw kvFailure("put", key, error);
    }
  }

  /**
   * Removes `key`; absent keys are not an error.
   *
   * @param key The key to remove.
   * @returns A promise that resolves once KV has removed it.
   */
  async delete(key: string): Promise<void> {
    const stored = this.#check("delete", key);
    try {
      await this.#kv.delete(stored);
    } catch (error) {
      throw kvFailure("delete", key, error);
    }
  }

  /**
   * Whether `key` is present (KV has no existence check, so this reads the value).
   *
   * @param key The key to look up.
   * @returns `true` when the key has a value.
   */
  async has(key: string): Promise<boolean> {
    const stored = this.#check("check", key);
    return (await this.#read("check", key, stored)) !== null;
  }

  /**
   * Keys in code-point order that match `options`, paged from KV by prefix.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   */
  async *list(options: ListOptions = {}): AsyncIterable<string> {
    this.#assertOpen("list");
    const checked = checkListOptions(options);
    const { prefix, start, end, limit } = checked;
    if (limit === 0) return;
    if (start !== undefined && end !== undefined && compareKeys(start, end) >= 0) return;
    // Miniflare's KV lists nothing for a prefix holding U+0000: list up to it and filter.
    let kvPrefix = this.#prefix + narrowListPrefix(prefix, start, end);
    const nul = kvPrefix.indexOf("\u0000");
    if (nul >= 0) kvPrefix = kvPrefix.slice(0, nul);
    let cursor: string | undefined;
    let count = 0;
    while (true) {
      const want = Math.min(this.#pageSize, start === undefined ? limit - count : Infinity);
      const request: { prefix: string; limit: number; cursor?: string } = {
        prefix: kvPrefix,
        limit: want,
      };
      if (cursor !== undefined) request.cursor = cursor;
      let page: KvListResult;
      try {
        page = await this.#kv.list(request);
      } catch (error) {
        throw kvFailure("list", undefined, error);
      }
      for (const { name } of page.keys) {
        const key = listedKey(name, this.#prefix, checked);
        if (key === null) return;
        if (key === undefined) continue;
        yield key;
        if (++count >= limit) return;
        this.#assertOpen("list");
      }
      if (page.list_complete || page.cursor === undefined || page.cursor === "") return;
      cursor = page.cursor;
      this.#assertOpen("list");
    }
  }

  /**
   * Marks the driver closed (the binding itself needs no closing). Further calls are errors;
   * closing twice is fine.
   *
   * @returns A promise that resolves at once.
   */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw new TypeError(`Cannot ${op} key: the cloudflare_kv driver is closed`);
  }

  /** Reads the stored key `stored`; a failing binding is a {@linkcode StorageError}. */
  async #read(op: string, key: string, stored: string): Promise<ArrayBuffer | null> {
    try {
      return await this.#kv.get(stored, "arrayBuffer");
    } catch (error) {
      throw kvFailure(op, key, error);
    }
  }

  /** Checks `key` and returns the key stored in KV. */
  #check(op: string, key: string): string {
    this.#assertOpen(op);
    checkKey(op, key, this.limits.maxKeyBytes);
    const stored = this.#prefix + key;
    if (stored === "" || stored === "." || stored === "..") {
      throw new TypeError(
        `Cannot ${op} key: Workers KV does not accept the key ${JSON.stringify(stored)} ` +
          `(use a keyPrefix)`,
      );
    }
    return stored;
  }
}

/** A binding call that threw, as a {@linkcode StorageError}. */
function kvFailure(op: string, key: string | undefined, error: unknown): StorageError {
  return bindingFailure("cloudflare_kv", "Workers KV", op, key, error);
}

/** The error of a value too large for KV. */
function tooLarge(key: string, more: string, size: number): RangeError {
  return new RangeError(
    `Cannot put key ${JSON.stringify(key)}: value exceeds the Workers KV limit of ` +
      `${KV_MAX_VALUE_BYTES} bytes (25 MiB), received ${more}${size}`,
  );
}

/** Throws when a value of `size` bytes is too large for KV. */
function checkSize(key: string, size: number): void {
  if (size > KV_MAX_VALUE_BYTES) throw tooLarge(key, "", size);
}
