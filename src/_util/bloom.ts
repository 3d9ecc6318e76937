/**
 * A Bloom filter for cache keys: a compact set that answers "definitely absent" or "maybe
 * present", so a lookup for a key that was never stored can skip the storage round trip.
 *
 * @module
 */

/** Options for {@linkcode BloomFilter}. */
export interface BloomFilterOptions {
  /**
   * How many distinct keys the filter is sized for. Adding more still works, but the false
   * positive rate climbs above `falsePositiveRate`.
   *
   * @default {1_000_000}
   */
  expectedItems?: number;
  /**
   * The false positive rate wanted once `expectedItems` keys have been added, between 0 and 1
   * exclusive.
   *
   * @default {0.01}
   */
  falsePositiveRate?: number;
}

/** The largest filter: bit indexes come from 32-bit hashes. */
const MAX_BITS = 0xffffffff;
/** `toBytes` layout: "ADBF", format version, 3 reserved bytes, m, k (u32) and size (f64). */
const MAGIC = [0x41, 0x44, 0x42, 0x46];
const FORMAT_VERSION = 1;
const HEADER_BYTES = 24;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The two hashes of the last key passed to {@linkcode hashKey}, as unsigned 32-bit numbers. */
let hash1 = 0;
let hash2 = 0;

/**
 * Hashes a string's UTF-16 code units with two independent 32-bit hashes, leaving them in
 * `hash1` and `hash2` (module variables, so the hot path allocates nothing).
 *
 * - `hash1` is FNV-1a over the code units (for ASCII keys, the same as FNV-1a over the UTF-8
 *   bytes), followed by the MurmurHash3 finalizer so every output bit depends on every input bit.
 * - `hash2` is MurmurHash3_x86_32 with seed 0 over the UTF-16LE bytes of the string, taking
 *   code units in pairs as 32-bit blocks.
 *
 * Hashing code units instead of UTF-8 bytes skips the encoding step and is just as good for
 * membership: it is deterministic per string, and, unlike `TextEncoder`, it does not map
 * distinct strings with lone surrogates to the same bytes.
 */
function hashKey(key: string): void {
  const length = key.length;
  let a = 0x811c9dc5 | 0;
  let b = 0;
  let i = 0;
  for (; i + 1 < length; i += 2) {
    const c0 = key.charCodeAt(i);
    const c1 = key.charCodeAt(i + 1);
    a = Math.imul(a ^ c0, 0x01000193);
    a = Math.imul(a ^ c1, 0x01000193);
    let k = Math.imul(c0 | (c1 << 16), 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    b ^= k;
    b = (b << 13) | (b >>> 19);
    b = (Math.imul(b, 5) + 0xe6546b64) | 0;
  }
  if (i < length) {
    const c0 = key.charCodeAt(i);
    a = Math.imul(a ^ c0, 0x01000193);
    let k = Math.imul(c0, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    b ^= k;
  }
  b ^= length << 1;
  hash1 = fmix32(a) >>> 0;
  hash2 = fmix32(b) >>> 0;
}

/** The MurmurHash3 32-bit finalizer. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Counts the set bits of a 32-bit number. */
function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) | 0;
}

function describe(value: unknown): string {
  return typeof value === "string" ? `'${value}'` : String(value);
}

/**
 * A Bloom filter over strings: {@linkcode BloomFilter.has} returning `false` means the key was
 * definitely never added; `true` means it probably was.
 *
 * The filter has `m` bits and sets `k` of them per key, with
 * `m = ceil(-n ln p / (ln 2)^2)` and `k = round(m / n * ln 2)` for `n` expected items and false
 * positive rate `p`. The `k` bit indexes come from two 32-bit hashes by double hashing,
 * `h1 + i * h2 mod m`.
 *
 * @example Skip lookups for keys that were never stored
 * ```ts
 * import { BloomFilter } from "./bloom.ts";
 * const seen = new BloomFilter({ expectedItems: 1000, falsePositiveRate: 0.01 });
 * seen.add("v1:packument:npm:6d73");
 * console.assert(seen.has("v1:packument:npm:6d73"));
 * console.assert(seen.size === 1);
 * ```
 *
 * @example Persist a filter and load it back
 * ```ts
 * import { BloomFilter } from "./bloom.ts";
 * const filter = new BloomFilter({ expectedItems: 100 });
 * filter.add("a");
 * const copy = BloomFilter.fromBytes(filter.toBytes());
 * console.assert(copy.has("a") && copy.size === 1);
 * ```
 */
export class BloomFilter {
  #bits: Uint32Array<ArrayBuffer>;
  #bitCount: number;
  #hashCount: number;
  #size = 0;
  #setBits = 0;

  /**
   * Creates an empty filter sized for `expectedItems` keys at `falsePositiveRate`.
   *
   * @throws {RangeError} When `expectedItems` is not a positive integer, `falsePositiveRate` is
   * not between 0 and 1, or the filter would need more than 2^32 - 1 bits.
   */
  constructor(options: BloomFilterOptions = {}) {
    const { expectedItems = 1_000_000, falsePositiveRate = 0.01 } = options;
    if (!Number.isSafeInteger(expectedItems) || expectedItems <= 0) {
      throw new RangeError(
        `Cannot create bloom filter: 'expectedItems' must be a positive integer, received ${
          describe(expectedItems)
        }`,
      );
    }
    if (
      typeof falsePositiveRate !== "number" || !(falsePositiveRate > 0 && falsePositiveRate < 1)
    ) {
      throw new RangeError(
        `Cannot create bloom filter: 'falsePositiveRate' must be between 0 and 1, received ${
          describe(falsePositiveRate)
        }`,
      );
    }
    const bitCount = Math.ceil(-expectedItems * Math.log(falsePositiveRate) / (Math.LN2 ** 2));
    if (bitCount > MAX_BITS) {
      throw new RangeError(
        `Cannot create bloom filter: 'expectedItems' ${expectedItems} at 'falsePositiveRate' ` +
          `${falsePositiveRate} needs ${bitCount} bits, more than the maximum of ${MAX_BITS}`,
      );
    }
    this.#bitCount = bitCount;
    this.#hashCount = Math.max(1, Math.round(bitCount / expectedItems * Math.LN2));
    this.#bits = new Uint32Array(Math.ceil(bitCount / 32));
  }

  /** How many times {@linkcode BloomFilter.add} has been called, counting repeated keys. */
  get size(): number {
    return this.#size;
  }

  /** The number of bits in the filter, `m`. */
  get bitCount(): number {
    return this.#bitCount;
  }

  /** The number of bits set per key, `k`. */
  get hashCount(): number {
    return this.#hashCount;
  }

  /** Adds a key. */
  add(key: string): void {
    hashKey(key);
    const m = this.#bitCount;
    const bits = this.#bits;
    let index = hash1 % m;
    const step = hash2 % m || 1;
    let added = 0;
    for (let i = this.#hashCount; i > 0; i--) {
      const word = index >>> 5;
      const mask = 1 << (index & 31);
      const value = bits[word]!;
      if ((value & mask) === 0) {
        bits[word] = value | mask;
        added++;
      }
      index += step;
      if (index >= m) index -= m;
    }
    this.#setBits += added;
    this.#size++;
  }

  /**
   * Tests a key.
   *
   * @returns `false` when the key was definitely never added, `true` when it probably was.
   */
  has(key: string): boolean {
    hashKey(key);
    const m = this.#bitCount;
    const bits = this.#bits;
    let index = hash1 % m;
    const step = hash2 % m || 1;
    for (let i = this.#hashCount; i > 0; i--) {
      if ((bits[index >>> 5]! & (1 << (index & 31))) === 0) return false;
      index += step;
      if (index >= m) index -= m;
    }
    return true;
  }

  /**
   * Estimates the current false positive rate from the fraction of bits set: `(set / m)^k`.
   *
   * @returns A probability between 0 and 1.
   */
  estimatedFalsePositiveRate(): number {
    return (this.#setBits / this.#bitCount) ** this.#hashCount;
  }

  /**
   * Serializes the filter: a 24-byte header (`ADBF`, format version 1, three zero bytes, then
   * little-endian `bitCount` and `hashCount` as 32-bit unsigned integers and `size` as a 64-bit
   * float) followed by the bitset as little-endian 32-bit words.
   *
   * @returns Bytes that {@linkcode BloomFilter.fromBytes} reads back.
   */
  toBytes(): Uint8Array<ArrayBuffer> {
    const words = this.#bits;
    const out = new Uint8Array(HEADER_BYTES + words.length * 4);
    out.set(MAGIC, 0);
    out[4] = FORMAT_VERSION;
    const view = new DataView(out.buffer);
    view.setUint32(8, this.#bitCount, true);
    view.setUint32(12, this.#hashCount, true);
    view.setFloat64(16, this.#size, true);
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), HEADER_BYTES);
    } else {
      for (let i = 0; i < words.length; i++) {
        view.setUint32(HEADER_BYTES + i * 4, words[i]!, true);
      }
    }
    return out;
  }

  /**
   * Reads a filter written by {@linkcode BloomFilter.toBytes}.
   *
   * @returns A new filter with the same bits, hash count and size.
   * @throws {TypeError} When the bytes are not a serialized filter.
   */
  static fromBytes(bytes: Uint8Array): BloomFilter {
    const fail = (reason: string) => new TypeError(`Cannot read bloom filter: ${reason}`);
    if (bytes.length < HEADER_BYTES) {
      throw fail(`'bytes' must be at least ${HEADER_BYTES} bytes, received ${bytes.length}`);
    }
    if (MAGIC.some((b, i) => bytes[i] !== b)) {
      throw fail("'bytes' does not start with the 'ADBF' magic");
    }
    if (bytes[4] !== FORMAT_VERSION) {
      throw fail(`unsupported format version, received ${bytes[4]}`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const bitCount = view.getUint32(8, true);
    const hashCount = view.getUint32(12, true);
    const size = view.getFloat64(16, true);
    if (bitCount === 0) throw fail("'bitCount' must be positive, received 0");
    if (hashCount === 0) throw fail("'hashCount' must be positive, received 0");
    if (!Number.isSafeInteger(size) || size < 0) {
      throw fail(`'size' must be a non-negative integer, received ${size}`);
    }
    const wordCount = Math.ceil(bitCount / 32);
    const expected = HEADER_BYTES + wordCount * 4;
    if (bytes.length !== expected) {
      throw fail(
        `'bytes' must be ${expected} bytes for ${bitCount} bits, received ${bytes.length}`,
      );
    }
    const bits = new Uint32Array(wordCount);
    if (LITTLE_ENDIAN) {
      new Uint8Array(bits.buffer).set(bytes.subarray(HEADER_BYTES));
    } else {
      for (let i = 0; i < wordCount; i++) bits[i] = view.getUint32(HEADER_BYTES + i * 4, true);
    }
    // Clear any bits past the end: they are never read, but would skew the fill estimate.
    if (bitCount % 32 !== 0) {
      bits[wordCount - 1] = bits[wordCount - 1]! & ((1 << bitCount % 32) - 1);
    }
    let setBits = 0;
    for (let i = 0; i < wordCount; i++) setBits += popcount32(bits[i]!);
    const filter = new BloomFilter({ expectedItems: 1, falsePositiveRate: 0.5 });
    filter.#bits = bits;
    filter.#bitCount = bitCount;
    filter.#hashCount = hashCount;
    filter.#size = size;
    filter.#setBits = setBits;
    return filter;
  }
}
