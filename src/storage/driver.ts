/**
 * The storage driver interface: the small capability every backend implements.
 *
 * Keys are strings (valid Unicode, no lone surrogates) ordered by their UTF-8 bytes, which is the
 * same as code-point order ({@linkcode compareKeys}). Values are bytes, given either whole or as a
 * stream. A driver throws `TypeError`/`RangeError` for misuse (a bad key or option) and
 * {@linkcode StorageError} when the service or disk behind it fails.
 *
 * @module
 */

/** A value handed to {@linkcode StorageDriver.put}: whole bytes or a stream of bytes. */
export type StorageValue = Uint8Array | ReadableStream<Uint8Array>;

/** Options for {@linkcode StorageDriver.list}. All bounds compare keys in code-point order. */
export interface ListOptions {
  /** Only keys that start with this string.
   * @default {""} */
  prefix?: string;
  /** Only keys greater than or equal to this one (inclusive).
   * @default {undefined} */
  start?: string;
  /** Only keys less than this one (exclusive).
   * @default {undefined} */
  end?: string;
  /** At most this many keys.
   * @default {Infinity} */
  limit?: number;
}

/** Limits a driver declares, so callers and the contract suite can respect them. */
export interface StorageLimits {
  /** The longest key, in UTF-8 bytes, that the driver accepts. */
  maxKeyBytes: number;
}

/** A file an interrupted write left behind, found by {@linkcode StorageDriver.sweep}. */
export interface StaleWrite {
  /** Where it is (for the fs driver, the file's path). */
  path: string;
  /** Its size in bytes. */
  bytes: number;
}

/** Options for {@linkcode StorageDriver.sweep}. */
export interface SweepOptions {
  /** Remove each leftover found (it is yielded once removed).
   * @default {false} */
  remove?: boolean;
  /** A leftover whose writer cannot be shown to be dead counts as stale once nothing has written
   * to it for this long, in ms.
   * @default {3600000} */
  maxAgeMs?: number;
}

/**
 * A storage backend. Every method is asynchronous; `put` is atomic: a concurrent reader sees
 * either the old value or the whole new value, never part of one.
 */
export interface StorageDriver {
  /** A short name for logs and stats (`memory`, `fs`, `deno_kv`, ...). */
  readonly name: string;
  /** Limits of this driver. */
  readonly limits: StorageLimits;
  /** The whole value of `key`, or `undefined` when absent. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** The value of `key` as a stream, or `undefined` when absent. */
  getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined>;
  /** Stores `value` under `key`, replacing any earlier value atomically. */
  put(key: string, value: StorageValue): Promise<void>;
  /** Removes `key`; absent keys are not an error. */
  delete(key: string): Promise<void>;
  /** Whether `key` is present. */
  has(key: string): Promise<boolean>;
  /** Keys in code-point order that match the options. */
  list(options?: ListOptions): AsyncIterable<string>;
  /** Releases resources (open handles, databases). Further calls are errors. */
  close(): Promise<void>;
  /**
   * Optional: finds (and with `remove`, removes) what writes killed midway left behind and no
   * live writer holds, such as the fs driver's temporary files. Drivers whose writes leave
   * nothing behind do not have it.
   */
  sweep?(options?: SweepOptions): AsyncIterable<StaleWrite>;
  /**
   * Optional: stores `value` under `key` only when `key` is absent, atomically: of several
   * calls racing for one absent key (in any process), exactly one stores its value and returns
   * `true`; the others return `false` and change nothing. Values up to 60 KiB are accepted by
   * every driver that has it. Drivers that cannot do it atomically do not have it.
   */
  putIfAbsent?(key: string, value: Uint8Array): Promise<boolean>;
}

/** Characters at or above the first surrogate: where UTF-16 order and code-point order part. */
const HIGH = /[\ud800-\uffff]/;

/**
 * The order of keys that every driver's `list` follows. Compares two strings in code-point order (the same as UTF-8 byte order), unlike the `<`
 * operator, which compares UTF-16 code units. The two orders differ only where a surrogate
 * (part of a code point above U+FFFF) meets a code unit from U+E000 to U+FFFF, so strings
 * without any code unit from U+D800 up are compared natively.
 *
 * @param a A key.
 * @param b Another key.
 * @returns A negative number, zero or a positive number.
 *
 * @example
 * ```ts
 * import { compareKeys } from "./driver.ts";
 * console.assert(compareKeys("\u{1f600}", "\ufffd") > 0); // "<" says the opposite
 * ```
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  if (!HIGH.test(a) || !HIGH.test(b)) return a < b ? -1 : 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above 0xFFFF, which sort after every BMP
    // code unit, including 0xE000-0xFFFF.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs === ys) return x - y;
    return xs ? 1 : -1;
  }
  return a.length - b.length;
}

/** Options for {@linkcode StorageError}. */
export interface StorageErrorOptions {
  /** The driver that failed (its {@linkcode StorageDriver.name}). */
  driver?: string;
  /** The key being read or written, when there is one. */
  key?: string;
  /** The HTTP status or system error code the service answered, when there is one. */
  code?: string | number;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A storage service or disk failed: a network error, a 5xx, a full or read-only disk, a
 * conflict the driver could not resolve. Misuse (a bad key, a bad option) is a `TypeError` or
 * `RangeError` instead, so callers can tell "try again later" from "fix the call".
 *
 * @example
 * ```ts
 * import { StorageError } from "./driver.ts";
 * const error = new StorageError("Cannot put key: disk full", { driver: "fs", code: "ENOSPC" });
 * console.assert(error.name === "StorageError" && error.code === "ENOSPC");
 * ```
 */
export class StorageError extends Error {
  /** The driver that failed. */
  readonly driver: string | undefined;
  /** The key being read or written, when there is one. */
  readonly key: string | undefined;
  /** The HTTP status or system error code, when there is one. */
  readonly code: string | number | undefined;

  /**
   * Creates the error.
   *
   * @param message What failed, in sentence case.
   * @param options The driver, key, code and cause.
   */
  constructor(message: string, options: StorageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "StorageError";
    this.driver = options.driver;
    this.key = options.key;
    this.code = options.code;
  }
}
