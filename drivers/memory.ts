/**
 * An in-memory {@linkcode StorageDriver}: a sorted key array plus a `Map`, with binary search for
 * `list()`. It is the reference implementation the other drivers are measured against, and the
 * driver of choice for tests.
 *
 * Values are copied on `put` (a stream is read whole into one `Uint8Array`) and again on `get`, so
 * callers can never change the stored bytes. Nothing survives the process.
 *
 * @example Store, read and list
 * ```ts
 * import { MemoryDriver } from "./memory.ts";
 *
 * const driver = new MemoryDriver();
 * await driver.put("a:1", new TextEncoder().encode("one"));
 * await driver.put("a:2", new TextEncoder().encode("two"));
 * const keys = await Array.fromAsync(driver.list({ prefix: "a:" }));
 * console.assert(keys.join() === "a:1,a:2");
 * await driver.close();
 * ```
 *
 * @module
 */

import { compareKeys } from "../src/storage/driver.ts";
import type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
import { checkKey, checkListOptions } from "./_checks.ts";
import { readAll } from "../src/_util/bytes.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";

/** The longest key, in UTF-8 bytes, that {@linkcode MemoryDriver} accepts. */
export const MEMORY_MAX_KEY_BYTES = 2048;

/**
 * A {@linkcode StorageDriver} that keeps everything in memory.
 *
 * @example Overwrite and delete
 * ```ts
 * import { MemoryDriver } from "./memory.ts";
 *
 * const driver = new MemoryDriver();
 * await driver.put("k", new Uint8Array([1]));
 * await driver.put("k", new Uint8Array([2]));
 * console.assert((await driver.get("k"))?.[0] === 2);
 * await driver.delete("k");
 * console.assert(!(await driver.has("k")));
 * await driver.close();
 * ```
 */
export class MemoryDriver implements StorageDriver {
  /** Always `"memory"`. */
  readonly name: string = "memory";
  /** Keys up to {@linkcode MEMORY_MAX_KEY_BYTES} UTF-8 bytes. */
  readonly limits: StorageLimits = { maxKeyBytes: MEMORY_MAX_KEY_BYTES };
  #keys: string[] = [];
  #values: Map<string, Uint8Array> = new Map();
  #closed = false;

  /**
   * The whole value of `key`, copied, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns A fresh copy of the stored bytes.
   */
  get(key: string): Promise<Uint8Array | undefined> {
    try {
      this.#check("get", key);
      const value = this.#values.get(key);
      return Promise.resolve(value === undefined ? undefined : value.slice());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The value of `key` as a one-chunk stream, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns A stream of a copy of the stored bytes.
   */
  getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    try {
      this.#check("get", key);
      const value = this.#values.get(key);
      if (value === undefined) return Promise.resolve(undefined);
      const copy = value.slice();
      return Promise.resolve(
        new ReadableStream<Uint8Array>({
          start(controller): void {
            if (copy.byteLength > 0) controller.enqueue(copy);
            controller.close();
          },
        }),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Stores a copy of `value` under `key`. A stream is read whole first; if it errors, the old
   * value stays.
   *
   * @param key The key to write.
   * @param value The bytes, whole or as a stream.
   * @returns A promise that resolves once the value is stored.
   */
  async put(key: string, value: StorageValue): Promise<void> {
    this.#check("put", key);
    const bytes = value instanceof Uint8Array ? value.slice() : await readAll(value);
    this.#assertOpen("put");
    if (!this.#values.has(key)) {
      const at = lowerBound(this.#keys, key);
      this.#keys.splice(at, 0, key);
    }
    this.#values.set(key, bytes);
  }

  /**
   * Stores a copy of `value` under `key` only when `key` is absent.
   *
   * @param key The key to write.
   * @param value The bytes.
   * @returns Whether the value was stored (`false`: the key was present and is unchanged).
   */
  putIfAbsent(key: string, value: Uint8Array): Promise<boolean> {
    try {
      this.#check("put", key);
      if (this.#values.has(key)) return Promise.resolve(false);
      this.#keys.splice(lowerBound(this.#keys, key), 0, key);
      this.#values.set(key, value.slice());
      return Promise.resolve(true);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Removes `key`; absent keys are not an error.
   *
   * @param key The key to remove.
   * @returns A promise that resolves once the key is gone.
   */
  delete(key: string): Promise<void> {
    try {
      this.#check("delete", key);
      if (this.#values.delete(key)) {
        const at = lowerBound(this.#keys, key);
        this.#keys.splice(at, 1);
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Whether `key` is present.
   *
   * @param key The key to look up.
   * @returns `true` when the key has a value.
   */
  has(key: string): Promise<boolean> {
    try {
      this.#check("check", key);
      return Promise.resolve(this.#values.has(key));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Keys in code-point order that match `options`. Keys added or removed while iterating are
   * seen or not depending on where the iteration is.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   */
  async *list(options: ListOptions = {}): AsyncIterable<string> {
    this.#assertOpen("list");
    const { prefix, start, end, limit } = checkListOptions(options);
    if (limit === 0) return;
    let from = prefix;
    if (start !== undefined && compareKeys(start, from) > 0) from = start;
    let at = lowerBound(this.#keys, from);
    let count = 0;
    while (true) {
      const key = this.#keys[at];
      if (key === undefined) return;
      if (!key.startsWith(prefix)) return;
      if (end !== undefined && compareKeys(key, end) >= 0) return;
      yield key;
      if (++count >= limit) return;
      this.#assertOpen("list");
      // The array may have changed while the consumer held the key: find the next one again.
      at = upperBound(this.#keys, key);
    }
  }

  /**
   * Drops every value. Further calls are errors; closing twice is fine.
   *
   * @returns A promise that resolves once closed.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#keys = [];
    this.#values.clear();
    return Promise.resolve();
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw new TypeError(`Cannot ${op} key: the memory driver is closed`);
  }

  #check(op: string, key: string): void {
    this.#assertOpen(op);
    checkKey(op, key, MEMORY_MAX_KEY_BYTES);
  }
}

/** The first index whose key is `>= key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index whose key is `> key`. */
function upperBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
