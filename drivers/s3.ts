/**
 * A {@linkcode StorageDriver} over an S3-compatible object store, using only web-standard APIs
 * (`fetch`, `crypto.subtle`, `URL`, streams), so it can run on Deno, Node 20 and Workers (the
 * tests run it on Deno against s3rver; on Node the npm build only checks that it imports).
 *
 * - Requests are path-style (`endpoint/bucket/key`) and signed with AWS Signature Version 4.
 *   Every byte of a key except the unreserved characters (`A-Z a-z 0-9 - . _ ~`) and `/` is
 *   percent-encoded, in the URL and in the canonical request alike.
 * - Order: S3's ListObjectsV2 lists keys in UTF-8 byte order, which is the order of the driver
 *   interface. `prefix` and `start` are passed to S3 (`start` is inclusive here and exclusive in
 *   S3, so a listing from `start` first checks whether `start` itself is present); `end` and
 *   `limit` are applied while paging.
 * - Values: bytes. A stream up to one part ({@linkcode S3_DEFAULT_PART_BYTES}) is buffered and
 *   sent in one PUT; a longer one goes up as a multipart upload, one part in memory at a time.
 *   An upload becomes the object only when it completes, so no partial object is ever visible;
 *   a failed one is aborted, best effort (a bucket lifecycle rule for incomplete multipart
 *   uploads removes what a killed process leaves).
 * - Requests that fail with a network error, a timeout waiting for the response headers, or
 *   HTTP 500, 502, 503 or 504 are signed and sent again, `retries` times, after a doubling
 *   pause; every other answer is final.
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
import { checkKey, checkListOptions, keyBytesAfterPrefix, listedKey } from "./_checks.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";

/** The longest object key S3 accepts, in UTF-8 bytes. */
export const S3_MAX_KEY_BYTES = 1024;
/** The size of a multipart upload part, and the largest stream sent in a single PUT: 8 MiB. */
export const S3_DEFAULT_PART_BYTES: number = 8 * 1024 * 1024;
/** The smallest part S3 accepts (except the last one): 5 MiB. */
export const S3_MIN_PART_BYTES: number = 5 * 1024 * 1024;
/** The most keys one ListObjectsV2 call returns. */
const S3_MAX_PAGE = 1000;
/** Statuses worth sending a request again for. */
const RETRY_STATUSES = new Set([500, 502, 503, 504]);

/** Checks an option that must be a non-negative integer. */
function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot use S3 driver: '${name}' must be a non-negative integer, received ${value}`,
    );
  }
  return value;
}

/** The SHA-256 of no bytes. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const encoder = new TextEncoder();

/** Credentials for AWS Signature Version 4. */
export interface S3Credentials {
  /** The access key id. */
  accessKeyId: string;
  /** The secret access key. */
  secretAccessKey: string;
  /** A session token, for temporary credentials. */
  sessionToken?: string;
}

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
  /** The `fetch` to use.
   * @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** How many times a request is sent again after a network error, a timeout or HTTP 500,
   * 502, 503 or 504.
   * @default {3} */
  retries?: number;
  /** The pause before the first repeat, in ms; it doubles for each further one.
   * @default {100} */
  retryDelayMs?: number;
  /** How long to wait for the response headers of one request, in ms.
   * @default {30000} */
  timeoutMs?: number;
  /** The most keys asked for per ListObjectsV2 call (S3 returns at most 1000).
   * @default {1000} */
  pageSize?: number;
  /** The multipart part size in bytes, at least {@linkcode S3_MIN_PART_BYTES}.
   * @default {8388608} */
  partSize?: number;
}

/** A request to sign with {@linkcode signS3Request}. */
export interface S3SignInput {
  /** The HTTP method. */
  method: string;
  /** The full URL, already encoded as it will be sent (path and query in canonical form). */
  url: URL;
  /** Extra headers to sign, beyond `host`, `x-amz-date` and `x-amz-content-sha256`. */
  headers?: Record<string, string>;
  /** The hex SHA-256 of the body. */
  payloadHash: string;
  /** The signing credentials. */
  credentials: S3Credentials;
  /** The signing region. */
  region: string;
  /** The time of the request. */
  date: Date;
}

/** The pieces of a Signature Version 4 signature, see {@linkcode signS3Request}. */
export interface S3Signature {
  /** The canonical request. */
  canonicalRequest: string;
  /** The string to sign. */
  stringToSign: string;
  /** The hex signature. */
  signature: string;
  /** The headers to send, `authorization` included (but not `host`, which `fetch` sets). */
  headers: Record<string, string>;
}

/** Percent-encodes every UTF-8 byte of `text` except the unreserved characters (and `/` if kept). */
export function s3Encode(text: string, keepSlash = false): string {
  let out = "";
  for (const byte of encoder.encode(text)) {
    if (
      (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) ||
      (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2e || byte === 0x5f ||
      byte === 0x7e || (keepSlash && byte === 0x2f)
    ) {
      out += String.fromCharCode(byte);
    } else {
      out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
    }
  }
  return out;
}

function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The hex SHA-256 of `data`. */
async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return toHex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

async function hmac(key: Uint8Array | ArrayBuffer, data: string): Promise<ArrayBuffer> {
  const imported = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return crypto.subtle.sign("HMAC", imported, encoder.encode(data));
}

/** `20060102T150405Z` for `date`. */
function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * Signs a request with AWS Signature Version 4 for the `s3` service. The canonical URI is the
 * URL's path as given (S3 does not normalize it) and the canonical query string is built from the
 * URL's query, re-encoded and sorted.
 *
 * @param input The request and credentials.
 * @returns The canonical request, string to sign, signature and headers to send.
 */
export async function signS3Request(input: S3SignInput): Promise<S3Signature> {
  const stamp = amzDate(input.date);
  const day = stamp.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    headers[name.toLowerCase()] = value;
  }
  headers["host"] = input.url.host;
  headers["x-amz-date"] = stamp;
  headers["x-amz-content-sha256"] = input.payloadHash;
  if (input.credentials.sessionToken !== undefined) {
    headers["x-amz-security-token"] = input.credentials.sessionToken;
  }
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names
    .map((name) => `${name}:${headers[name]!.trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const signedHeaders = names.join(";");
  const query = [...input.url.searchParams]
    .map(([name, value]) => [s3Encode(name), s3Encode(value)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
  const canonicalRequest = [
    input.method,
    // Each segment encoded once, as S3 reads it: the URL parser leaves `!*'()` and more as
    // they are, and S3 encodes them.
    input.url.pathname.split("/").map((part) => s3Encode(decodeURIComponent(part))).join("/"),
    query,
    canonicalHeaders,
    signedHeaders,
    input.payloadHash,
  ].join("\n");
  const scope = `${day}/${input.region}/s3/aws4_request`;
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    stamp,
    scope,
    await sha256Hex(canonicalRequest),
  ].join("\n");
  let key = await hmac(encoder.encode("AWS4" + input.credentials.secretAccessKey), day);
  key = await hmac(key, input.region);
  key = await hmac(key, "s3");
  key = await hmac(key, "aws4_request");
  const signature = toHex(await hmac(key, stringToSign));
  const out: Record<string, string> = {};
  for (const name of names) if (name !== "host") out[name] = headers[name]!;
  out["authorization"] = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, ` +
    `SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { canonicalRequest, stringToSign, signature, headers: out };
}

/** A stream being cut into parts, with what was read past the last part. */
interface PartSource {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  rest: Uint8Array | undefined;
  /** The one part buffer of an upload, filled again for every part once the last was sent. */
  buffer: Uint8Array | undefined;
}

/** Decodes the XML entities of a text node. */
function xmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    switch (entity) {
      case "amp":
        return "&";
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "quot":
        return '"';
      case "apos":
        return "'";
    }
    const code = entity[1] === "x" ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
    return String.fromCodePoint(code);
  });
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The text of every `<tag>` element in `xml`. */
function xmlAll(xml: string, tag: string): string[] {
  const out: string[] = [];
  const pattern = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g");
  for (const match of xml.matchAll(pattern)) out.push(xmlText(match[1]!));
  return out;
}

/** The text of the first `<tag>` element in `xml`. */
function xmlFirst(xml: string, tag: string): string | undefined {
  return xmlAll(xml, tag)[0];
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
 * });
 * console.assert(driver.limits.maxKeyBytes === 1024 - "all-docs:".length);
 * await driver.close();
 * ```
 */
export class S3Driver implements StorageDriver {
  /** Always `"s3"`. */
  readonly name: string = "s3";
  /** Keys up to {@linkcode S3_MAX_KEY_BYTES} UTF-8 bytes, less those of `prefix`. */
  readonly limits: StorageLimits;
  #base: string;
  #bucket: string;
  #prefix: string;
  #region: string;
  #credentials: S3Credentials;
  #fetch: typeof fetch;
  #retries: number;
  #retryDelayMs: number;
  #timeoutMs: number;
  #partSize: number;
  #bucketChecked: Promise<void> | undefined;
  #pageSize: number;
  #closed = false;

  /**
   * Configures the driver; nothing is requested until a method is called.
   *
   * @param options Endpoint, bucket, prefix, region, credentials, `fetch`, page and part size.
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
    const { accessKeyId, secretAccessKey } = options.credentials ?? {};
    if (typeof accessKeyId !== "string" || accessKeyId === "") {
      throw new TypeError("Cannot use S3 credentials: accessKeyId is missing");
    }
    if (typeof secretAccessKey !== "string" || secretAccessKey === "") {
      throw new TypeError("Cannot use S3 credentials: secretAccessKey is missing");
    }
    this.#base = endpoint.origin + endpoint.pathname.replace(/\/+$/, "");
    this.#bucket = options.bucket;
    this.#prefix = prefix;
    this.#region = options.region ?? "us-east-1";
    this.#credentials = { ...options.credentials };
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#retries = nonNegativeInteger("retries", options.retries ?? 3);
    this.#retryDelayMs = nonNegativeInteger("retryDelayMs", options.retryDelayMs ?? 100);
    this.#timeoutMs = nonNegativeInteger("timeoutMs", options.timeoutMs ?? 30_000);
    this.#partSize = partSize;
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
    const response = await this.#request("get", key, "GET", stored);
    if (await this.#missing(response, "get", key)) return undefined;
    await this.#expect(response, "get", key, [200]);
    return new Uint8Array(await response.arrayBuffer());
  }

  /**
   * The value of `key` as a stream straight from the response, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns A stream of the stored bytes.
   */
  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const stored = this.#check("get", key);
    const response = await this.#request("get", key, "GET", stored);
    if (await this.#missing(response, "get", key)) return undefined;
    await this.#expect(response, "get", key, [200]);
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
   */
  async put(key: string, value: StorageValue): Promise<void> {
    const stored = this.#check("put", key);
    if (value instanceof Uint8Array) {
      await this.#putWhole(key, stored, value);
      return;
    }
    const reader = value.getReader();
    const source: PartSource = { reader, rest: undefined, buffer: undefined };
    let uploadId: string | undefined;
    try {
      let part = await this.#readPart(source);
      if (!part.done) {
        uploadId = await this.#startUpload(key, stored);
        const etags: string[] = [];
        while (true) {
          this.#assertOpen("put");
          etags.push(await this.#uploadPart(key, stored, uploadId, etags.length + 1, part.bytes));
          if (part.done) break;
          part = await this.#readPart(source);
          if (part.done && part.bytes.byteLength === 0) break;
        }
        await this.#completeUpload(key, stored, uploadId, etags);
        uploadId = undefined;
        return;
      }
      this.#assertOpen("put");
      await this.#putWhole(key, stored, part.bytes);
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      if (uploadId !== undefined) await this.#abortUpload(stored, uploadId);
      throw error;
    } finally {
      reader.releaseLock();
    }
  }

  /**
   * Removes `key`; absent keys are not an error.
   *
   * @param key The key to remove.
   * @returns A promise that resolves once S3 has removed it.
   */
  async delete(key: string): Promise<void> {
    const stored = this.#check("delete", key);
    const response = await this.#request("delete", key, "DELETE", stored);
    if (await this.#missing(response, "delete", key)) return;
    await this.#expect(response, "delete", key, [200, 204]);
    await response.body?.cancel();
  }

  /**
   * Whether `key` is present (a HEAD request).
   *
   * @param key The key to look up.
   * @returns `true` when the key has a value.
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
      const response = await this.#request("list", prefix, "GET", undefined, query);
      await this.#expect(response, "list", prefix, [200]);
      const xml = await response.text();
      const encoded = xmlFirst(xml, "EncodingType") === "url";
      for (const raw of xmlAll(xml, "Key")) {
        // S3's URL encoding of listed keys writes a space as "+" (and "+" as "%2B").
        const name = encoded ? decodeURIComponent(raw.replace(/\+/g, " ")) : raw;
        const key = listedKey(name, this.#prefix, checked);
        if (key === null) return;
        if (key === undefined) continue;
        yield key;
        if (++count >= limit) return;
        this.#assertOpen("list");
      }
      token = xmlFirst(xml, "NextContinuationToken");
      if (xmlFirst(xml, "IsTruncated") !== "true") return;
      if (token === undefined || token === "") {
        throw new Error(
          `Cannot list keys: S3 said the listing goes on but gave no continuation token`,
        );
      }
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

  /** Sends one signed request; `stored` undefined addresses the bucket itself. */
  async #request(
    op: string,
    key: string,
    method: string,
    stored: string | undefined,
    query: Record<string, string> = {},
    body?: Uint8Array,
  ): Promise<Response> {
    let path = `${this.#base}/${this.#bucket}`;
    if (stored !== undefined) path += "/" + s3Encode(stored, true);
    const search = Object.entries(query)
      .map(([name, value]) => [s3Encode(name), s3Encode(value)] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => (value === "" ? `${name}=` : `${name}=${value}`))
      .join("&");
    const url = new URL(search === "" ? path : `${path}?${search}`);
    const payloadHash = body === undefined ? EMPTY_SHA256 : await sha256Hex(body);
    for (let attempt = 0;; attempt++) {
      const signed = await signS3Request({
        method,
        url,
        payloadHash,
        credentials: this.#credentials,
        region: this.#region,
        date: new Date(),
      });
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new Error(`no response headers within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
      try {
        const response = await this.#fetch(url, {
          method,
          headers: signed.headers,
          signal: controller.signal,
          ...(body === undefined ? {} : { body: body as Uint8Array<ArrayBuffer> }),
        });
        if (!RETRY_STATUSES.has(response.status) || attempt >= this.#retries) return response;
        await response.body?.cancel();
      } catch (error) {
        if (attempt >= this.#retries) {
          const reason = controller.signal.aborted ? controller.signal.reason : error;
          throw new Error(
            `Cannot ${op} key ${JSON.stringify(key)}: S3 request ${method} failed: ` +
              (reason instanceof Error ? reason.message : String(reason)),
            { cause: reason },
          );
        }
      } finally {
        clearTimeout(timer);
      }
      await new Promise((resolve) => setTimeout(resolve, this.#retryDelayMs * 2 ** attempt));
    }
  }

  /** Throws a clear error unless `response.status` is one of `ok`. */
  async #expect(response: Response, op: string, key: string, ok: number[]): Promise<void> {
    if (ok.includes(response.status)) return;
    const text = await response.text().catch(() => "");
    const code = xmlFirst(text, "Code");
    const message = xmlFirst(text, "Message");
    const detail = code === undefined
      ? ""
      : `: ${code}${message === undefined ? "" : ` (${message})`}`;
    throw new Error(
      `Cannot ${op} key ${JSON.stringify(key)}: S3 answered HTTP ${response.status}${detail}`,
    );
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
    throw new Error(
      `Cannot ${op} key ${JSON.stringify(key)}: S3 answered HTTP 404: ${code}` +
        ` (bucket ${JSON.stringify(this.#bucket)})`,
    );
  }

  async #head(op: string, key: string, stored: string): Promise<boolean> {
    const response = await this.#request(op, key, "HEAD", stored);
    await response.body?.cancel();
    if (response.status === 404) {
      // A HEAD 404 has no body to tell a missing key from a missing bucket: ask about the
      // bucket once, so a wrong bucket never looks empty.
      this.#bucketChecked ??= this.#checkBucket(op, key);
      await this.#bucketChecked;
      return false;
    }
    await this.#expect(response, op, key, [200]);
    return true;
  }

  async #checkBucket(op: string, key: string): Promise<void> {
    const response = await this.#request(op, key, "HEAD", undefined);
    await response.body?.cancel();
    if (response.status === 404) {
      this.#bucketChecked = undefined;
      throw new Error(
        `Cannot ${op} key ${JSON.stringify(key)}: S3 answered HTTP 404: NoSuchBucket ` +
          `(bucket ${JSON.stringify(this.#bucket)})`,
      );
    }
    await this.#expect(response, op, key, [200]);
  }

  async #putWhole(key: string, stored: string, bytes: Uint8Array): Promise<void> {
    const response = await this.#request("put", key, "PUT", stored, {}, bytes);
    await this.#expect(response, "put", key, [200]);
    await response.body?.cancel();
  }

  /**
   * Reads up to one part; `done` when the stream ended within it. The bytes live in the
   * upload's one buffer, so each part must be sent before the next is read.
   */
  async #readPart(source: PartSource): Promise<{ bytes: Uint8Array; done: boolean }> {
    const part = source.buffer ??= new Uint8Array(this.#partSize);
    let length = 0;
    while (length < this.#partSize) {
      let chunk: Uint8Array;
      if (source.rest !== undefined) {
        chunk = source.rest;
        source.rest = undefined;
      } else {
        const { done, value } = await source.reader.read();
        if (done) return { bytes: part.subarray(0, length), done: true };
        chunk = value;
      }
      const take = Math.min(chunk.byteLength, this.#partSize - length);
      part.set(chunk.subarray(0, take), length);
      length += take;
      // Keep the rest for the next part.
      if (take < chunk.byteLength) source.rest = chunk.subarray(take);
    }
    // A full part: look one chunk ahead, so a stream of exactly one part is one PUT.
    if (source.rest === undefined) {
      const { done, value } = await source.reader.read();
      if (done) return { bytes: part, done: true };
      source.rest = value;
    }
    return { bytes: part, done: false };
  }

  async #startUpload(key: string, stored: string): Promise<string> {
    const response = await this.#request("put", key, "POST", stored, { uploads: "" });
    await this.#expect(response, "put", key, [200]);
    const uploadId = xmlFirst(await response.text(), "UploadId");
    if (uploadId === undefined || uploadId === "") {
      throw new Error(`Cannot put key ${JSON.stringify(key)}: S3 returned no multipart UploadId`);
    }
    return uploadId;
  }

  async #uploadPart(
    key: string,
    stored: string,
    uploadId: string,
    number: number,
    bytes: Uint8Array,
  ): Promise<string> {
    const query = { partNumber: String(number), uploadId };
    const response = await this.#request("put", key, "PUT", stored, query, bytes);
    await this.#expect(response, "put", key, [200]);
    await response.body?.cancel();
    const etag = response.headers.get("etag");
    if (etag === null) {
      throw new Error(`Cannot put key ${JSON.stringify(key)}: S3 returned no ETag for part`);
    }
    return etag;
  }

  async #completeUpload(
    key: string,
    stored: string,
    uploadId: string,
    etags: string[],
  ): Promise<void> {
    const xml = "<CompleteMultipartUpload>" +
      etags.map((etag, i) =>
        `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEscape(etag)}</ETag></Part>`
      ).join("") +
      "</CompleteMultipartUpload>";
    const body = encoder.encode(xml);
    const response = await this.#request("put", key, "POST", stored, { uploadId }, body);
    await this.#expect(response, "put", key, [200]);
    // S3 may answer 200 with an error document when completing fails late.
    const text = await response.text();
    if (/<Error>/.test(text)) {
      throw new Error(
        `Cannot put key ${JSON.stringify(key)}: S3 failed to complete the upload: ` +
          `${xmlFirst(text, "Code") ?? "unknown error"}`,
      );
    }
  }

  /** Aborts a multipart upload, best effort: the original error is what the caller sees. */
  async #abortUpload(stored: string, uploadId: string): Promise<void> {
    try {
      const response = await this.#request("put", stored, "DELETE", stored, { uploadId });
      await response.body?.cancel();
    } catch {
      // Ignore: the put already failed.
    }
  }
}
