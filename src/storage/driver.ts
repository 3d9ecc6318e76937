/**
 * The storage driver interface: the small capability every backend implements.
 *
 * Keys are strings (valid Unicode, no lone surrogates) ordered by their UTF-8 bytes, which is the
 * same as code-point order. Values are bytes, given either whole or as a stream.
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
}
