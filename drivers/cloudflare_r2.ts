/**
 * A {@linkcode StorageDriver} over a Cloudflare R2 bucket binding, for the bodies the worker
 * keeps on Workers (`env.BODIES`).
 *
 * The binding is typed by the small {@linkcode R2BucketLike} interface (no dependency on
 * `@cloudflare/workers-types`): the real binding, Miniflare's, or a fake in tests. Only
 * web-standard APIs are used.
 *
 * - Order: R2 lists keys in UTF-8 byte order, which is the order of the driver interface.
 *   `prefix` is passed to R2 and the listing is paged by R2's `cursor`; an inclusive `start` is
 *   looked up with a `head` and then passed as R2's exclusive `startAfter`; `end` and `limit`
 *   are applied while paging. A prefix holding U+0000 is listed only up to it (Miniflare's R2
 *   lists nothing for such a prefix), from the prefix itself, and the rest is filtered.
 * - Values: bytes. A `put` of bytes is one R2 `put`. R2's `put` refuses a stream of unknown
 *   length, so a stream is cut into parts of `partSize` bytes (8 MiB by default): a stream that
 *   ends within one part is buffered and stored with one `put`; a longer one goes up as a
 *   multipart upload, one part in memory at a time (so a put holds at most about two parts,
 *   whatever the size of the value: a Worker has 128 MB). R2 needs every part but the last to
 *   have the same size, of at least {@linkcode R2_MIN_PART_BYTES}, and takes at most
 *   {@linkcode R2_MAX_PARTS} parts, so a stream may hold up to `partSize` x 10,000 bytes (about
 *   84 GB by default); R2 refuses the part after that (a {@linkcode StorageError}).
 * - Atomicity: an R2 `put` replaces its object whole, and a multipart upload becomes the object
 *   only when it completes, so no reader ever sees part of a value. When the stream or R2
 *   fails midway, the upload is aborted (best effort: a lifecycle rule removes what a killed
 *   Worker leaves; R2 aborts incomplete uploads after 7 days by default) and the old value
 *   stays. A stream that fails rejects the put with the stream's own error.
 * - Claims: {@linkcode CloudflareR2Driver.putIfAbsent} is one conditional `put` with
 *   `onlyIf: { etagDoesNotMatch: "*" }` (R2's `If-None-Match: *`), which R2 answers with
 *   `null` when the key exists, so of racing calls exactly one stores its value. Each claim
 *   carries a random token in its custom metadata: when the `put` throws (its answer lost, or
 *   refused because R2 takes about one write a second per key), a `head` tells whether this
 *   call's write landed (`true`), another writer holds the key (`false`), or neither (the error
 *   is thrown).
 * - Keys: at most {@linkcode R2_MAX_KEY_BYTES} UTF-8 bytes including `keyPrefix`. Miniflare's
 *   R2 accepts every other key, `""`, `.` and `..` included; whether Cloudflare's R2 takes an
 *   empty key is not verified here (the project's own keys never are empty).
 * - Errors: a binding call that fails is a {@linkcode StorageError} whose `cause` is R2's error
 *   and whose `code` is R2's error code when it has one; a bad key or option, or a closed
 *   driver, is a `TypeError` or `RangeError`.
 *
 * @module
 */

import { compareKeys, StorageError } from "../src/storage/driver.ts";
import type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
import { checkKey, checkListOptions, keyBytesAfterPrefix, listedKey } from "./_checks.ts";
import { describe } from "../src/_util/describe.ts";

export type {
  ListOptions,
  StaleWrite,
  StorageDriver,
  StorageLimits,
  StorageValue,
  SweepOptions,
} from "../src/storage/driver.ts";
export { StorageError } from "../src/storage/driver.ts";

/** The longest object key R2 accepts, in UTF-8 bytes. */
export const R2_MAX_KEY_BYTES = 1024;
/** The smallest multipart part R2 accepts (except the last one): 5 MiB. */
export const R2_MIN_PART_BYTES: number = 5 * 1024 * 1024;
/** The largest single `put` R2 accepts, and so the largest part size: 5 GiB less 5 MiB. */
export const R2_MAX_PART_BYTES: number = 5 * 1024 * 1024 * 1024 - 5 * 1024 * 1024;
/** The default part size, and the largest stream stored with a single `put`: 8 MiB. */
export const R2_DEFAULT_PART_BYTES: number = 8 * 1024 * 1024;
/** The most parts of one multipart upload. */
export const R2_MAX_PARTS = 10_000;
/** The most keys one R2 `list` call returns. */
const R2_MAX_PAGE = 1000;
/** The custom metadata field naming the writer of a claim (see {@linkcode putIfAbsent}). */
const WRITER = "all-docs-writer";

const encoder = new TextEncoder();

/** An object's metadata, as R2's `head` and `put` give it. */
export interface R2ObjectLike {
  /** The object's key. */
  readonly key: string;
  /** The custom metadata it was stored with. */
  readonly customMetadata?: Record<string, string>;
}

/** An object with its value, as R2's `get` gives it. */
export interface R2ObjectBodyLike extends R2ObjectLike {
  /** The value as a stream. */
  readonly body: ReadableStream<Uint8Array>;
  /** The whole value. */
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** One page of an R2 `list`. */
export interface R2ObjectsLike {
  /** The objects of this page, in UTF-8 byte order of their keys. */
  objects: { key: string }[];
  /** Whether more pages follow. */
  truncated: boolean;
  /** Where the next page starts, when `truncated`. */
  cursor?: string;
}

/** What R2's `put` takes besides the key and value. */
export interface R2PutOptionsLike {
  /** Store only when the condition holds; the driver uses `{ etagDoesNotMatch: "*" }`. */
  onlyIf?: { etagDoesNotMatch: string };
  /** Custom metadata stored with the object. */
  customMetadata?: Record<string, string>;
}

/** A part uploaded to a multipart upload. */
export interface R2UploadedPartLike {
  /** Its number, from 1. */
  partNumber: number;
  /** Its ETag. */
  etag: string;
}

/** A multipart upload in progress. */
export interface R2MultipartUploadLike {
  /** Uploads part `partNumber` (from 1). */
  uploadPart(partNumber: number, value: Uint8Array): Promise<R2UploadedPartLike>;
  /** Makes the uploaded parts the object. */
  complete(parts: R2UploadedPartLike[]): Promise<unknown>;
  /** Drops the upload and its parts. */
  abort(): Promise<unknown>;
}

/** The part of an R2 bucket binding the driver uses. */
export interface R2BucketLike {
  /** The object with its value, or `null` when absent. */
  get(key: string): Promise<R2ObjectBodyLike | null>;
  /** The object's metadata, or `null` when absent. */
  head(key: string): Promise<R2ObjectLike | null>;
  /** Stores `value`; `null` when `options.onlyIf` does not hold. */
  put(key: string, value: Uint8Array, options?: R2PutOptionsLike): Promise<R2ObjectLike | null>;
  /** Removes `key`. */
  delete(key: string): Promise<unknown>;
  /** One page of the keys that start with `prefix`, after `startAfter` or `cursor`. */
  list(
    options: { prefix?: string; cursor?: string; startAfter?: string; limit?: number },
  ): Promise<R2ObjectsLike>;
  /** Starts a multipart upload to `key`. */
  createMultipartUpload(key: string): Promise<R2MultipartUploadLike>;
}

/** Options of {@linkcode CloudflareR2Driver}. */
export interface CloudflareR2DriverOptions {
  /** Put before every key in the bucket (to share one bucket).
   * @default {""} */
  keyPrefix?: string;
  /** The size of a multipart part, from {@linkcode R2_MIN_PART_BYTES} to
   * {@linkcode R2_MAX_PART_BYTES}: also the largest stream stored with one `put`, and what a
   * streamed put holds in memory (about twice this).
   * @default {8388608} */
  partSize?: number;
  /** The most keys asked for per R2 `list` call (R2 returns at most 1000).
   * @default {1000} */
  pageSize?: number;
}

/**
 * A {@linkcode StorageDriver} over an R2 bucket binding.
 *
 * @example Over a tiny in-memory stand-in for an R2 binding
 * ```ts
 * import { CloudflareR2Driver, type R2BucketLike } from "./cloudflare_r2.ts";
 *
 * const data = new Map<string, Uint8Array>();
 * const object = (key: string) => ({ key });
 * const bucket: R2BucketLike = {
 *   head: (key) => Promise.resolve(data.has(key) ? object(key) : null),
 *   get: (key) => {
 *     const value = data.get(key);
 *     if (value === undefined) return Promise.resolve(null);
 *     const body = new Response(value.slice()).body!;
 *     const arrayBuffer = () => Promise.resolve(value.slice().buffer);
 *     return Promise.resolve({ key, body, arrayBuffer });
 *   },
 *   put: (key, value) => Promise.resolve((data.set(key, value.slice()), object(key))),
 *   delete: (key) => Promise.resolve(data.delete(key)),
 *   list: ({ prefix = "" }) =>
 *     Promise.resolve({
 *       objects: [...data.keys()].filter((k) => k.startsWith(prefix)).sort().map(object),
 *       truncated: false,
 *     }),
 *   createMultipartUpload: () => Promise.reject(new Error("values here stay under one part")),
 * };
 * const driver = new CloudflareR2Driver(bucket, { keyPrefix: "bodies:" });
 * await driver.put("a:1", new TextEncoder().encode("one"));
 * console.assert(new TextDecoder().decode(await driver.get("a:1")) === "one");
 * console.assert([...data.keys()].join() === "bodies:a:1");
 * console.assert((await Array.fromAsync(driver.list({ prefix: "a:" }))).join() === "a:1");
 * await driver.close();
 * ```
 */
export class CloudflareR2Driver implements StorageDriver {
  /** Always `"cloudflare_r2"`. */
  readonly name: string = "cloudflare_r2";
  /** Keys up to {@linkcode R2_MAX_KEY_BYTES} UTF-8 bytes, less those of `keyPrefix`. */
  readonly limits: StorageLimits;
  #bucket: R2BucketLike;
  #prefix: string;
  #partSize: number;
  #pageSize: number;
  #closed = false;

  /**
   * Wraps an R2 bucket binding.
   *
   * @param bucket The binding (`env.BODIES` in a Worker).
   * @param options Key prefix, part size and list page size.
   * @throws {TypeError} When the bucket is not an object or the prefix not a well-formed string.
   * @throws {RangeError} When a size is out of range or the prefix leaves no room for a key.
   */
  constructor(bucket: R2BucketLike, options: CloudflareR2DriverOptions = {}) {
    if (typeof bucket !== "object" || bucket === null) {
      throw new TypeError(`Cannot use R2 bucket: expected a binding, received ${describe(bucket)}`);
    }
    const prefix = options.keyPrefix ?? "";
    const maxKeyBytes = keyBytesAfterPrefix(prefix, R2_MAX_KEY_BYTES);
    const partSize = options.partSize ?? R2_DEFAULT_PART_BYTES;
    if (
      !Number.isInteger(partSize) || partSize < R2_MIN_PART_BYTES || partSize > R2_MAX_PART_BYTES
    ) {
      throw new RangeError(
        `Cannot use R2 option: 'partSize' must be an integer from ${R2_MIN_PART_BYTES} to ` +
          `${R2_MAX_PART_BYTES}, received ${partSize}`,
      );
    }
    const pageSize = options.pageSize ?? R2_MAX_PAGE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > R2_MAX_PAGE) {
      throw new RangeError(
        `Cannot use R2 option: 'pageSize' must be an integer from 1 to ${R2_MAX_PAGE}, ` +
          `received ${pageSize}`,
      );
    }
    this.#bucket = bucket;
    this.#prefix = prefix;
    this.#partSize = partSize;
    this.#pageSize = pageSize;
    this.limits = { maxKeyBytes };
  }

  /**
   * The whole value of `key`, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns The stored bytes.
   * @throws {StorageError} When R2 fails.
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    const stored = this.#check("get", key);
    try {
      const object = await this.#bucket.get(stored);
      return object === null ? undefined : new Uint8Array(await object.arrayBuffer());
    } catch (error) {
      throw r2Failure("get", key, error);
    }
  }

  /**
   * The value of `key` as a stream straight from R2, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns A stream of the stored bytes.
   * @throws {StorageError} When R2 fails.
   */
  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const stored = this.#check("get", key);
    let object: R2ObjectBodyLike | null;
    try {
      object = await this.#bucket.get(stored);
    } catch (error) {
      throw r2Failure("get", key, error);
    }
    return object === null ? undefined : object.body;
  }

  /**
   * Stores `value` under `key`. Bytes, and a stream that ends within one part, go in one R2
   * `put`; a longer stream goes up as a multipart upload that is aborted when the stream or R2
   * fails, so the old value stays.
   *
   * @param key The key to write.
   * @param value The bytes, whole or as a stream.
   * @returns A promise that resolves once R2 has the whole value.
   * @throws {StorageError} When R2 fails (or refuses a stream longer than `partSize` x
   *   {@linkcode R2_MAX_PARTS}).
   */
  async put(key: string, value: StorageValue): Promise<void> {
    const stored = this.#check("put", key);
    if (value instanceof Uint8Array) {
      await this.#putBytes(key, stored, value);
      return;
    }
    if (typeof (value as Partial<ReadableStream> | null)?.getReader !== "function") {
      throw new TypeError(
        `Cannot put key: the value must be a Uint8Array or a ReadableStream, ` +
          `received ${describe(value)}`,
      );
    }
    const parts = new PartReader(value.getReader());
    let upload: R2MultipartUploadLike | undefined;
    try {
      let part = await parts.next(this.#partSize);
      if (part.last) {
        await this.#putBytes(key, stored, part.bytes);
        return;
      }
      this.#assertOpen("put");
      upload = await this.#call("put", key, () => this.#bucket.createMultipartUpload(stored));
      const uploaded: R2UploadedPartLike[] = [];
      while (true) {
        this.#assertOpen("put");
        const number = uploaded.length + 1;
        const bytes = part.bytes;
        uploaded.push(await this.#call("put", key, () => upload!.uploadPart(number, bytes)));
        if (part.last) break;
        // A full part leaves at least one byte behind, so the next part is never empty.
        part = await parts.next(this.#partSize);
      }
      this.#assertOpen("put");
      await this.#call("put", key, () => upload!.complete(uploaded));
      upload = undefined;
    } catch (error) {
      await parts.cancel(error);
      if (upload !== undefined) {
        try {
          await upload.abort();
        } catch {
          // Best effort: the put already failed, and that error is what the caller sees.
        }
      }
      throw error;
    }
  }

  /**
   * Stores `value` under `key` only when `key` is absent, with one conditional R2 `put`
   * (`onlyIf: { etagDoesNotMatch: "*" }`): of racing calls (in any Worker) exactly one stores
   * its value and resolves `true`; the others resolve `false` and change nothing.
   *
   * @param key The key to write.
   * @param value The bytes.
   * @returns Whether this call stored the value.
   * @throws {StorageError} When R2 fails and the outcome cannot be told.
   */
  async putIfAbsent(key: string, value: Uint8Array): Promise<boolean> {
    const stored = this.#check("put", key);
    if (!(value instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot put key if absent: the value must be a Uint8Array, received ${describe(value)}`,
      );
    }
    const token = crypto.randomUUID();
    try {
      const object = await this.#bucket.put(stored, value, {
        onlyIf: { etagDoesNotMatch: "*" },
        customMetadata: { [WRITER]: token },
      });
      return object !== null;
    } catch (error) {
      // The answer may be lost after the write landed, or R2 refused a write racing another
      // (a key takes about one write a second): the object, if any, tells.
      let holder: R2ObjectLike | null;
      try {
        holder = await this.#bucket.head(stored);
      } catch {
        throw r2Failure("put", key, error);
      }
      if (holder === null) throw r2Failure("put", key, error);
      return holder.customMetadata?.[WRITER] === token;
    }
  }

  /**
   * Removes `key`; absent keys are not an error.
   *
   * @param key The key to remove.
   * @returns A promise that resolves once R2 has removed it.
   * @throws {StorageError} When R2 fails.
   */
  async delete(key: string): Promise<void> {
    const stored = this.#check("delete", key);
    await this.#call("delete", key, () => this.#bucket.delete(stored));
  }

  /**
   * Whether `key` is present (an R2 `head`).
   *
   * @param key The key to look up.
   * @returns `true` when the key has a value.
   * @throws {StorageError} When R2 fails.
   */
  async has(key: string): Promise<boolean> {
    const stored = this.#check("check", key);
    return (await this.#call("check", key, () => this.#bucket.head(stored))) !== null;
  }

  /**
   * Keys in code-point order that match `options`, paged from R2 by prefix and cursor.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   * @throws {StorageError} When R2 fails.
   */
  async *list(options: ListOptions = {}): AsyncIterable<string> {
    this.#assertOpen("list");
    const checked = checkListOptions(options);
    const { prefix, start, end, limit } = checked;
    if (limit === 0) return;
    const full = this.#prefix + prefix;
    // Miniflare's R2 lists nothing for a prefix holding U+0000: list up to it and filter.
    const nul = full.indexOf("\u0000");
    const r2Prefix = nul < 0 ? full : full.slice(0, nul);
    // Where the listing starts (inclusive): `start` when it is past the prefix, or the prefix
    // itself when R2 cannot be given it whole.
    let from: string | undefined;
    if (start !== undefined && compareKeys(start, prefix) > 0) {
      // A start past the prefix that does not begin with it is past every key with it.
      if (!start.startsWith(prefix)) return;
      from = start;
    } else if (nul >= 0) {
      from = prefix;
    }
    if (from !== undefined && end !== undefined && compareKeys(from, end) >= 0) return;
    let count = 0;
    let startAfter: string | undefined;
    if (from !== undefined && this.#storable(from)) {
      // R2's startAfter is exclusive: yield `from` itself first when it is present.
      const stored = this.#prefix + from;
      if ((await this.#call("list", undefined, () => this.#bucket.head(stored))) !== null) {
        yield from;
        if (++count >= limit) return;
      }
      startAfter = stored;
    }
    let cursor: string | undefined;
    while (true) {
      this.#assertOpen("list");
      const request: { prefix: string; limit: number; cursor?: string; startAfter?: string } = {
        prefix: r2Prefix,
        limit: Math.min(this.#pageSize, limit - count),
      };
      if (cursor !== undefined) request.cursor = cursor;
      else if (startAfter !== undefined) request.startAfter = startAfter;
      const page = await this.#call("list", undefined, () => this.#bucket.list(request));
      for (const { key: name } of page.objects) {
        if (!name.startsWith(full)) {
          if (compareKeys(name, full) > 0) return;
          continue;
        }
        const key = listedKey(name, this.#prefix, checked);
        if (key === null) return;
        if (key === undefined) continue;
        yield key;
        if (++count >= limit) return;
        this.#assertOpen("list");
      }
      if (!page.truncated) return;
      if (page.cursor === undefined || page.cursor === "") {
        throw r2Failure(
          "list",
          undefined,
          new Error("R2 said the listing goes on but gave no cursor"),
        );
      }
      cursor = page.cursor;
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
    if (this.#closed) throw new TypeError(`Cannot ${op} key: the cloudflare_r2 driver is closed`);
  }

  /** Checks `key` and returns the object key stored in R2. */
  #check(op: string, key: string): string {
    this.#assertOpen(op);
    checkKey(op, key, this.limits.maxKeyBytes);
    return this.#prefix + key;
  }

  /** Whether `key` fits in an object key. */
  #storable(key: string): boolean {
    return encoder.encode(this.#prefix + key).byteLength <= R2_MAX_KEY_BYTES;
  }

  async #putBytes(key: string, stored: string, bytes: Uint8Array): Promise<void> {
    this.#assertOpen("put");
    await this.#call("put", key, () => this.#bucket.put(stored, bytes));
  }

  /** Runs a binding call; a failure is a {@linkcode StorageError}. */
  async #call<T>(op: string, key: string | undefined, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw r2Failure(op, key, error);
    }
  }
}

/** A binding call that threw, as a {@linkcode StorageError}. */
function r2Failure(op: string, key: string | undefined, error: unknown): StorageError {
  const what = key === undefined ? "keys" : `key ${JSON.stringify(key)}`;
  const reason = error instanceof Error ? error.message : String(error);
  // The binding's errors end their message with R2's code, as in "put: ... (10020)".
  let code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "number" && typeof code !== "string") {
    code = /\((\d{5})\)$/.exec(reason)?.[1];
    if (code !== undefined) code = Number(code);
  }
  return new StorageError(`Cannot ${op} ${what}: R2 failed: ${reason}`, {
    driver: "cloudflare_r2",
    ...(key === undefined ? {} : { key }),
    ...(typeof code === "number" || typeof code === "string" ? { code } : {}),
    cause: error,
  });
}

/** A stream read in parts of a given size, with what was read past the last part. */
class PartReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #rest: Uint8Array | undefined;
  /** The one part buffer of an upload, filled again for every part once the last was sent. */
  #buffer: Uint8Array | undefined;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  /**
   * The next `size` bytes, or fewer when the stream ends; `last` when nothing follows them.
   * The bytes of a full part live in one buffer that the next call overwrites, so each part
   * must be sent before the next is read.
   */
  async next(size: number): Promise<{ bytes: Uint8Array; last: boolean }> {
    return this.#buffer === undefined ? await this.#first(size) : await this.#fill(size);
  }

  /**
   * The first part: chunks are gathered (no part buffer for a value that turns out small)
   * until there is more than a part, so a stream of exactly one part is known to end there.
   */
  async #first(size: number): Promise<{ bytes: Uint8Array; last: boolean }> {
    const chunks: Uint8Array[] = [];
    let length = 0;
    while (length <= size) {
      const chunk = await this.#read();
      if (chunk === undefined) return { bytes: concat(chunks, length), last: true };
      chunks.push(chunk);
      length += chunk.byteLength;
    }
    const part = this.#buffer = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      const take = Math.min(chunk.byteLength, size - offset);
      part.set(take === chunk.byteLength ? chunk : chunk.subarray(0, take), offset);
      offset += take;
      if (take < chunk.byteLength) this.#rest = chunk.subarray(take);
    }
    return { bytes: part, last: false };
  }

  /** A later part, copied into the part buffer chunk by chunk as it is read. */
  async #fill(size: number): Promise<{ bytes: Uint8Array; last: boolean }> {
    const part = this.#buffer!;
    let length = 0;
    while (length < size) {
      const chunk = this.#rest ?? await this.#read();
      this.#rest = undefined;
      if (chunk === undefined) return { bytes: part.subarray(0, length), last: true };
      const take = Math.min(chunk.byteLength, size - length);
      part.set(take === chunk.byteLength ? chunk : chunk.subarray(0, take), length);
      length += take;
      if (take < chunk.byteLength) this.#rest = chunk.subarray(take);
    }
    // A full part: look one chunk ahead, so a stream that ends here makes this the last part.
    this.#rest ??= await this.#read();
    return { bytes: part, last: this.#rest === undefined };
  }

  /** The next non-empty chunk, or `undefined` at the end of the stream. */
  async #read(): Promise<Uint8Array | undefined> {
    while (true) {
      const { done, value } = await this.#reader.read();
      if (done) return undefined;
      if (value.byteLength > 0) return value;
    }
  }

  /** Cancels the stream after a failure, and releases it. */
  async cancel(reason: unknown): Promise<void> {
    await this.#reader.cancel(reason).catch(() => {});
    this.#reader.releaseLock();
  }
}

/** `chunks` (of `length` bytes in all) as one new array. */
function concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!.slice();
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
