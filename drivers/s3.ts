/**
 * A {@linkcode StorageDriver} over an S3-compatible object store, using only web-standard APIs
 * (`fetch`, `crypto.subtle`, `URL`, streams), so it can run on Deno, Node 20 and Workers (the
 * tests run it on Deno against s3rver; on Node the npm build only checks that it imports).
 *
 * - Requests are path-style (`endpoint/bucket/key`) and signed with AWS Signature Version 4 by
 *   `aws4fetch`'s signer. Every byte of a key except the unreserved characters
 *   (`A-Z a-z 0-9 - . _ ~`) and `/` is percent-encoded in the URL.
 * - Every request goes through an {@linkcode HttpClient}: network errors, timeouts, 408, 429
 *   and 5xx answers are sent again after a backoff with jitter (or the wait `Retry-After` asks
 *   for), and every other answer is final. The default client retries 3 times from a 100 ms
 *   backoff, with no concurrency cap and no body size limit; pass `http` to change that, or a
 *   `client` of your own. A request is signed once; S3 accepts a signature for 15 minutes.
 * - Failures of the service (an answer other than the expected ones, such as 403; retries
 *   exhausted; a network error; a missing bucket) are {@linkcode StorageError}s with the HTTP
 *   status as `code`; misuse (a bad key, a closed driver, bad options) is a `TypeError` or
 *   `RangeError`. A stream from {@linkcode S3Driver.getStream} that breaks while being read
 *   errors with the client's {@linkcode HttpError}.
 * - Order: S3's ListObjectsV2 lists keys in UTF-8 byte order, which is the order of the driver
 *   interface. `prefix` and `start` are passed to S3 (`start` is inclusive here and exclusive in
 *   S3, so a listing from `start` first checks whether `start` itself is present); `end` and
 *   `limit` are applied while paging.
 * - Values: bytes. A stream up to one part ({@linkcode S3_DEFAULT_PART_BYTES}) is buffered and
 *   sent in one PUT; a longer one goes up as a multipart upload, one part in memory at a time.
 *   An upload becomes the object only when it completes, so no partial object is ever visible;
 *   a failed one is aborted, best effort (a bucket lifecycle rule for incomplete multipart
 *   uploads removes what a killed process leaves).
 * - Claims: {@linkcode S3Driver.putIfAbsent} is one PutObject with `If-None-Match: *` (a
 *   conditional write), so partition claims are atomic across processes. S3 refuses it with
 *   412 PreconditionFailed when the key exists and with 409 ConditionalRequestConflict when
 *   another write or delete of the key is in flight; the client retries neither, and both
 *   resolve `false`: nothing was changed and another writer is at the key, so the caller reads
 *   again rather than insist (should that other write then fail, the key stays absent for a
 *   later call). A PUT the client sent again (after a network error, a timeout or a 5xx) may
 *   be refused because its first attempt stored the object and the answer was lost, so each
 *   conditional PUT carries a random token in its metadata (`x-amz-meta-all-docs-writer`) and
 *   a refusal is checked with a HEAD: an object with this call's token counts as won. Values
 *   go in one PUT, so at most `partSize` bytes (8 MiB by default). AWS S3 has conditional
 *   writes since August 2024; some S3-compatible servers ignore the header and overwrite. The
 *   driver cannot tell (such a server answers 200, as S3 does for an absent key): give
 *   `conditionalWrites: false` for those, and the driver has no `putIfAbsent` (partition
 *   claims then fall back to read-then-write, and a refresh reports partitions fetched twice
 *   as `duplicated`).
 * - Keys: at most {@linkcode S3_MAX_KEY_BYTES} UTF-8 bytes including `prefix`. A stored key
 *   (prefix plus key) that is empty, or has a `.` or `..` path segment, cannot be addressed in a
 *   URL and is a `TypeError`; give a `prefix` such as `cache:` to allow every key.
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
import { HttpClient, type HttpClientOptions } from "../src/http/client.ts";
import { checkKey, checkListOptions, keyBytesAfterPrefix, listedKey } from "./_checks.ts";
import { type S3Credentials, S3Requests } from "./_s3_requests.ts";
import { parseListPage, xmlFirst } from "./_s3_xml.ts";
import { putObject, putObjectIfAbsent, putStream } from "./_s3_upload.ts";
import { describe } from "../src/_util/describe.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
export { StorageError } from "../src/storage/driver.ts";
export type { S3Credentials } from "./_s3_requests.ts";

/** The longest object key S3 accepts, in UTF-8 bytes. */
export const S3_MAX_KEY_BYTES = 1024;
/** The size of a multipart upload part, and the largest stream sent in a single PUT: 8 MiB. */
export const S3_DEFAULT_PART_BYTES: number = 8 * 1024 * 1024;
/** The smallest part S3 accepts (except the last one): 5 MiB. */
export const S3_MIN_PART_BYTES: number = 5 * 1024 * 1024;
/** The most keys one ListObjectsV2 call returns. */
const S3_MAX_PAGE = 1000;
/** What the driver's default client does unless `http` says otherwise. */
const DEFAULT_HTTP: HttpClientOptions = {
  concurrency: Infinity,
  maxBodyBytes: Infinity,
  retries: 3,
  backoffBase: 100,
};

const encoder = new TextEncoder();

/** Options of {@linkcode S3Driver}. */
export interface S3DriverOptions {
  /** The service endpoint, such as `http://127.0.0.1:4569`; requests go to `endpoint/bucket/key`. */
  endpoint: string;
  /** The bucket, which must exist. */
  bucket: string;
  /** Put before every key in the bucket.
   * @default {""} */
  prefix?: string;
  /** The signing region.
   * @default {"us-east-1"} */
  region?: string;
  /** The credentials requests are signed with. */
  credentials: S3Credentials;
  /** The client every request goes through. Give either this or `http`, not both.
   * @default {a new HttpClient made with `http`} */
  client?: HttpClient;
  /** Options of the default client (its `fetch`, `retries`, `timeout`, ...), over the driver's
   * own defaults: no concurrency cap, no body size limit, 3 retries from a 100 ms backoff.
   * @default {{}} */
  http?: HttpClientOptions;
  /** The most keys asked for per ListObjectsV2 call (S3 returns at most 1000).
   * @default {1000} */
  pageSize?: number;
  /** The multipart part size in bytes, at least {@linkcode S3_MIN_PART_BYTES}; also the
   * largest value of {@linkcode S3Driver.putIfAbsent}.
   * @default {8388608} */
  partSize?: number;
  /** Whether the service honours `If-None-Match: *` on PutObject (AWS S3 does since August
   * 2024). When `false`, the driver has no `putIfAbsent`, so callers fall back to what they do
   * without it: set it for a server that ignores the header, or claims would not be atomic.
   * @default {true} */
  conditionalWrites?: boolean;
}

/**
 * A {@linkcode StorageDriver} over an S3-compatible object store.
 *
 * @example Configure a driver (no request is made until a method is called)
 * ```ts
 * import { S3Driver } from "./s3.ts";
 *
 * const driver = new S3Driver({
 *   endpoint: "http://127.0.0.1:4569",
 *   bucket: "cache",
 *   prefix: "all-docs:",
 *   credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
 *   http: { timeout: 10_000 },
 * });
 * console.assert(driver.limits.maxKeyBytes === 1024 - "all-docs:".length);
 * console.assert(typeof driver.putIfAbsent === "function");
 * await driver.close();
 * ```
 *
 * @example A server that ignores conditional writes: no `putIfAbsent`
 * ```ts
 * import { S3Driver } from "./s3.ts";
 *
 * const driver = new S3Driver({
 *   endpoint: "http://127.0.0.1:9000",
 *   bucket: "cache",
 *   credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
 *   conditionalWrites: false,
 * });
 * console.assert(driver.putIfAbsent === undefined);
 * ```
 */
export class S3Driver implements StorageDriver {
  /** Always `"s3"`. */
  readonly name: string = "s3";
  /** Keys up to {@linkcode S3_MAX_KEY_BYTES} UTF-8 bytes, less those of `prefix`. */
  readonly limits: StorageLimits;
  /**
   * Stores `value` under `key` only when `key` is absent, with one PutObject carrying
   * `If-None-Match: *`: of racing calls (in any process) exactly one stores its value and
   * resolves `true`. `undefined` when the driver was made with `conditionalWrites: false`.
   * Resolves `false` when S3 refuses (412: the key exists; 409: another write or delete of it
   * is in flight), unless the refused request was a retry of this call's own write whose
   * answer was lost (see the module doc). Rejects with a `RangeError` for a value longer than
   * `partSize` (8 MiB by default), a `TypeError` for a bad key or a closed driver, and a
   * {@linkcode StorageError} when S3 fails.
   */
  readonly putIfAbsent?: (key: string, value: Uint8Array) => Promise<boolean>;
  #requests: S3Requests;
  #prefix: string;
  #partSize: number;
  #bucketChecked: Promise<void> | undefined;
  #pageSize: number;
  #closed = false;

  /**
   * Configures the driver; nothing is requested until a method is called.
   *
   * @param options Endpoint, bucket, prefix, region, credentials, HTTP client, page and part
   *   size.
   * @throws {TypeError} When the endpoint, bucket, credentials or client are unusable.
   * @throws {RangeError} When a size or the prefix is out of range.
   */
  constructor(options: S3DriverOptions) {
    let endpoint: URL;
    try {
      endpoint = new URL(options.endpoint);
    } catch {
      throw new TypeError(`Cannot use S3 endpoint: not a URL, received ${options.endpoint}`);
    }
    if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
      throw new TypeError(
        `Cannot use S3 endpoint: it must be http or https, received ${options.endpoint}`,
      );
    }
    if (endpoint.search !== "" || endpoint.hash !== "") {
      throw new TypeError(
        `Cannot use S3 endpoint: it must have no query or fragment, received ${options.endpoint}`,
      );
    }
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new TypeError(
        `Cannot use S3 bucket: 3 to 63 lower-case letters, digits, dots and hyphens, ` +
          `received ${JSON.stringify(options.bucket)}`,
      );
    }
    const prefix = options.prefix ?? "";
    const maxKeyBytes = keyBytesAfterPrefix(prefix, S3_MAX_KEY_BYTES);
    const partSize = options.partSize ?? S3_DEFAULT_PART_BYTES;
    if (!Number.isInteger(partSize) || partSize < S3_MIN_PART_BYTES) {
      throw new RangeError(
        `Cannot use part size: it must be an integer of at least ${S3_MIN_PART_BYTES}, ` +
          `received ${partSize}`,
      );
    }
    const pageSize = options.pageSize ?? S3_MAX_PAGE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > S3_MAX_PAGE) {
      throw new RangeError(
        `Cannot use page size: it must be an integer from 1 to ${S3_MAX_PAGE}, received ${pageSize}`,
      );
    }
    const conditionalWrites = options.conditionalWrites ?? true;
    if (typeof conditionalWrites !== "boolean") {
      throw new TypeError(
        `Cannot use S3 option: 'conditionalWrites' must be a boolean, ` +
          `received ${describe(conditionalWrites)}`,
      );
    }
    const { accessKeyId, secretAccessKey, sessionToken } = options.credentials ?? {};
    if (typeof accessKeyId !== "string" || accessKeyId === "") {
      throw new TypeError("Cannot use S3 credentials: accessKeyId is missing");
    }
    if (typeof secretAccessKey !== "string" || secretAccessKey === "") {
      throw new TypeError("Cannot use S3 credentials: secretAccessKey is missing");
    }
    if (sessionToken !== undefined && typeof sessionToken !== "string") {
      throw new TypeError("Cannot use S3 credentials: sessionToken must be a string");
    }
    this.#requests = new S3Requests({
      base: endpoint.origin + endpoint.pathname.replace(/\/+$/, ""),
      bucket: options.bucket,
      region: options.region ?? "us-east-1",
      credentials: options.credentials,
      client: clientOption(options),
    });
    this.#prefix = prefix;
    this.#partSize = partSize;
    this.#pageSize = pageSize;
    this.limits = { maxKeyBytes };
    if (conditionalWrites) {
      this.putIfAbsent = (key, value) => this.#putIfAbsent(key, value);
    }
  }

  /**
   * The whole value of `key`, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns The stored bytes.
   * @throws {StorageError} When S3 fails or refuses.
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    const stored = this.#check("get", key);
    const response = await this.#requests.send("get", key, "GET", stored);
    if (await this.#missing(response, "get", key)) return undefined;
    await this.#requests.expect(response, "get", key, [200]);
    return await this.#requests.bytes(response, "get", key);
  }

  /**
   * The value of `key` as a stream straight from the response, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns A stream of the stored bytes.
   * @throws {StorageError} When S3 fails or refuses.
   */
  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const stored = this.#check("get", key);
    const response = await this.#requests.send("get", key, "GET", stored);
    if (await this.#missing(response, "get", key)) return undefined;
    await this.#requests.expect(response, "get", key, [200]);
    return response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  }

  /**
   * Stores `value` under `key`. Bytes, and a stream up to one part, go in one PUT; a longer
   * stream goes up as a multipart upload that is aborted if the stream or a request fails, so
   * the old value stays.
   *
   * @param key The key to write.
   * @param value The bytes, whole or as a stream.
   * @returns A promise that resolves once S3 has the whole value.
   * @throws {StorageError} When S3 fails or refuses.
   */
  async put(key: string, value: StorageValue): Promise<void> {
    const stored = this.#check("put", key);
    if (value instanceof Uint8Array) {
      await putObject(this.#requests, key, stored, value);
      return;
    }
    await putStream({
      requests: this.#requests,
      key,
      stored,
      partSize: this.#partSize,
      assertOpen: () => this.#assertOpen("put"),
    }, value);
  }

  async #putIfAbsent(key: string, value: Uint8Array): Promise<boolean> {
    const stored = this.#check("put", key);
    if (!(value instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot put key if absent: the value must be a Uint8Array, received ${describe(value)}`,
      );
    }
    if (value.byteLength > this.#partSize) {
      throw new RangeError(
        `Cannot put key if absent: the value exceeds ${this.#partSize} bytes (one PUT), ` +
          `received ${value.byteLength}`,
      );
    }
    return await putObjectIfAbsent(this.#requests, key, stored, value);
  }

  /**
   * Removes `key`; absent keys are not an error.
   *
   * @param key The key to remove.
   * @returns A promise that resolves once S3 has removed it.
   * @throws {StorageError} When S3 fails or refuses.
   */
  async delete(key: string): Promise<void> {
    const stored = this.#check("delete", key);
    const response = await this.#requests.send("delete", key, "DELETE", stored);
    if (await this.#missing(response, "delete", key)) return;
    await this.#requests.expect(response, "delete", key, [200, 204]);
    await response.body?.cancel();
  }

  /**
   * Whether `key` is present (a HEAD request).
   *
   * @param key The key to look up.
   * @returns `true` when the key has a value.
   * @throws {StorageError} When S3 fails or refuses.
   */
  async has(key: string): Promise<boolean> {
    const stored = this.#check("check", key);
    return await this.#head("check", key, stored);
  }

  /**
   * Keys in code-point order that match `options`, paged with ListObjectsV2.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   * @throws {StorageError} When S3 fails or refuses.
   */
  async *list(options: ListOptions = {}): AsyncIterable<string> {
    this.#assertOpen("list");
    const checked = checkListOptions(options);
    const { prefix, start, end, limit } = checked;
    if (limit === 0) return;
    let count = 0;
    let startAfter: string | undefined;
    if (start !== undefined && compareKeys(start, prefix) > 0) {
      if (!start.startsWith(prefix)) return;
      if (end !== undefined && compareKeys(start, end) >= 0) return;
      // S3's start-after is exclusive: yield `start` itself first when it is present.
      if (this.#storable(start) && (await this.#head("list", start, this.#prefix + start))) {
        yield start;
        if (++count >= limit) return;
      }
      startAfter = this.#prefix + start;
    }
    let token: string | undefined;
    while (true) {
      this.#assertOpen("list");
      const query: Record<string, string> = {
        "list-type": "2",
        "encoding-type": "url",
        "max-keys": String(Math.min(this.#pageSize, limit - count)),
        "prefix": this.#prefix + prefix,
      };
      if (token !== undefined) query["continuation-token"] = token;
      else if (startAfter !== undefined) query["start-after"] = startAfter;
      const response = await this.#requests.send("list", prefix, "GET", undefined, query);
      await this.#requests.expect(response, "list", prefix, [200]);
      const page = parseListPage(await this.#requests.text(response, "list", prefix));
      for (const name of page.keys) {
        const key = listedKey(name, this.#prefix, checked);
        if (key === null) return;
        if (key === undefined) continue;
        yield key;
        if (++count >= limit) return;
        this.#assertOpen("list");
      }
      if (!page.truncated) return;
      if (page.token === undefined) {
        throw this.#requests.failure(
          "list",
          prefix,
          "S3 said the listing goes on but gave no continuation token",
        );
      }
      token = page.token;
    }
  }

  /**
   * Marks the driver closed. Further calls are errors; closing twice is fine.
   *
   * @returns A promise that resolves at once.
   */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw new TypeError(`Cannot ${op} key: the s3 driver is closed`);
  }

  /** Whether `prefix + key` can be addressed as an object (see {@linkcode #check}). */
  #storable(key: string): boolean {
    const stored = this.#prefix + key;
    if (stored === "") return false;
    if (encoder.encode(stored).byteLength > S3_MAX_KEY_BYTES) return false;
    return !stored.split("/").some((segment) => segment === "." || segment === "..");
  }

  /** Checks `key` and returns the object key stored in S3. */
  #check(op: string, key: string): string {
    this.#assertOpen(op);
    checkKey(op, key, this.limits.maxKeyBytes);
    if (!this.#storable(key)) {
      throw new TypeError(
        `Cannot ${op} key: the S3 object key ${JSON.stringify(this.#prefix + key)} is empty or ` +
          `has a "." or ".." path segment, which a URL cannot address (use a prefix)`,
      );
    }
    return this.#prefix + key;
  }

  /**
   * Whether a response says the object is absent. A 404 for a missing bucket (or any other
   * 404 error than `NoSuchKey`) is an error instead, so a wrong bucket never looks empty.
   */
  async #missing(response: Response, op: string, key: string): Promise<boolean> {
    if (response.status !== 404) return false;
    const text = await response.text().catch(() => "");
    const code = xmlFirst(text, "Code");
    if (code === undefined || code === "NoSuchKey") return true;
    throw this.#requests.failure(
      op,
      key,
      `S3 answered HTTP 404: ${code} (bucket ${JSON.stringify(this.#requests.bucket)})`,
      { code: 404 },
    );
  }

  async #head(op: string, key: string, stored: string): Promise<boolean> {
    const response = await this.#requests.send(op, key, "HEAD", stored);
    await response.body?.cancel();
    if (response.status === 404) {
      // A HEAD 404 has no body to tell a missing key from a missing bucket: ask about the
      // bucket once, so a wrong bucket never looks empty.
      this.#bucketChecked ??= this.#checkBucket(op, key);
      await this.#bucketChecked;
      return false;
    }
    await this.#requests.expect(response, op, key, [200]);
    return true;
  }

  async #checkBucket(op: string, key: string): Promise<void> {
    const response = await this.#requests.send(op, key, "HEAD", undefined);
    await response.body?.cancel();
    if (response.status === 404) {
      this.#bucketChecked = undefined;
      throw this.#requests.failure(
        op,
        key,
        `S3 answered HTTP 404: NoSuchBucket (bucket ${JSON.stringify(this.#requests.bucket)})`,
        { code: 404 },
      );
    }
    await this.#requests.expect(response, op, key, [200]);
  }
}

/** The client of the options: `client`, or a new one made with `http`. */
function clientOption(options: S3DriverOptions): HttpClient {
  const { client, http } = options;
  if (client !== undefined) {
    if (!(client instanceof HttpClient)) {
      throw new TypeError("Cannot use S3 client: 'client' must be an HttpClient");
    }
    if (http !== undefined) {
      throw new TypeError("Cannot use S3 client: give 'client' or 'http', not both");
    }
    return client;
  }
  if (http !== undefined && (typeof http !== "object" || http === null)) {
    throw new TypeError("Cannot use S3 client: 'http' must be HttpClient options");
  }
  return new HttpClient({ ...DEFAULT_HTTP, ...http });
}
