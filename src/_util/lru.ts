/**
 * A small least-recently-used map, bounded by its number of entries and by their total size.
 *
 * @module
 */

/** Options of {@linkcode Lru}. */
export interface LruOptions<V> {
  /** At most this many entries are kept. */
  maxEntries: number;
  /** At most this many bytes are kept in all, as {@linkcode LruOptions.sizeOf} measures them.
   * @default {Infinity} */
  maxBytes?: number;
  /** Values larger than this are not kept at all (so one value never evicts everything).
   * @default {maxBytes} */
  maxEntryBytes?: number;
  /** The size of a value in bytes.
   * @default {() => 0} */
  sizeOf?: (value: V) => number;
}

/**
 * A map that forgets its least recently used entries once it holds more than `maxEntries` of
 * them or more than `maxBytes` in all. `get` and `set` count as uses.
 *
 * @example
 * ```ts
 * import { Lru } from "./lru.ts";
 * const lru = new Lru<string, Uint8Array>({
 *   maxEntries: 2,
 *   maxBytes: 8,
 *   sizeOf: (value) => value.byteLength,
 * });
 * lru.set("a", new Uint8Array(3));
 * lru.set("b", new Uint8Array(3));
 * lru.get("a"); // "a" is now the most recently used
 * lru.set("c", new Uint8Array(3)); // over 8 bytes: "b" goes
 * console.assert(lru.get("b") === undefined);
 * console.assert(lru.size === 2 && lru.bytes === 6);
 * console.assert(!lru.set("huge", new Uint8Array(9)), "larger than maxBytes: not kept");
 * ```
 */
export class Lru<K, V> {
  #items = new Map<K, V>();
  #bytes = 0;
  #maxEntries: number;
  #maxBytes: number;
  #maxEntryBytes: number;
  #sizeOf: (value: V) => number;

  /**
   * @param options The bounds and how to measure a value.
   * @throws {RangeError} When a bound is not a positive number (`maxEntries`: integer).
   */
  constructor(options: LruOptions<V>) {
    const { maxEntries, maxBytes = Infinity, sizeOf = () => 0 } = options;
    const maxEntryBytes = options.maxEntryBytes ?? maxBytes;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot create LRU: 'maxEntries' must be a positive integer, received ${maxEntries}`,
      );
    }
    for (const [name, value] of [["maxBytes", maxBytes], ["maxEntryBytes", maxEntryBytes]]) {
      if (typeof value !== "number" || Number.isNaN(value) || value <= 0) {
        throw new RangeError(
          `Cannot create LRU: '${name}' must be a positive number, received ${value}`,
        );
      }
    }
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
    this.#maxEntryBytes = maxEntryBytes;
    this.#sizeOf = sizeOf;
  }

  /** How many entries are kept. */
  get size(): number {
    return this.#items.size;
  }

  /** The total size of the entries kept, in bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The value of `key`, which becomes the most recently used entry.
   *
   * @param key The key.
   * @returns The value, or `undefined` when it is not kept.
   */
  get(key: K): V | undefined {
    const items = this.#items;
    const value = items.get(key);
    if (value !== undefined) {
      items.delete(key);
      items.set(key, value);
    }
    return value;
  }

  /**
   * Keeps `value` under `key` as the most recently used entry (replacing an earlier one), then
   * forgets the least recently used entries until the bounds hold again.
   *
   * @param key The key.
   * @param value The value.
   * @returns `false` when the value is larger than `maxEntryBytes`: it is not kept (and an
   *   earlier value of `key` is forgotten).
   */
  set(key: K, value: V): boolean {
    const size = this.#sizeOf(value);
    this.delete(key);
    if (size > this.#maxEntryBytes) return false;
    const items = this.#items;
    items.set(key, value);
    this.#bytes += size;
    for (const [oldKey, old] of items) {
      if (items.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      items.delete(oldKey);
      this.#bytes -= this.#sizeOf(old);
    }
    return true;
  }

  /**
   * Forgets `key`.
   *
   * @param key The key.
   * @returns Whether it was kept.
   */
  delete(key: K): boolean {
    const items = this.#items;
    if (!items.has(key)) return false;
    this.#bytes -= this.#sizeOf(items.get(key)!);
    items.delete(key);
    return true;
  }
}
