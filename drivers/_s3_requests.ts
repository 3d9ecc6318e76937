/**
 * Requests to one S3 bucket: URLs, Signature Version 4 (by `aws4fetch`'s signer), sending
 * through an {@linkcode HttpClient}, and failures as {@linkcode StorageError}s.
 *
 * @module
 */

import { AwsV4Signer } from "aws4fetch";
import { StorageError, type StorageErrorOptions } from "../src/storage/driver.ts";
import type { HttpClient } from "../src/http/client.ts";
import { HttpError } from "../src/http/errors.ts";
import { bytesToHex } from "../src/_util/hex.ts";
import { parseError } from "./_s3_xml.ts";

/** The SHA-256 of no bytes. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Credentials for AWS Signature Version 4. */
export interface S3Credentials {
  /** The access key id. */
  accessKeyId: string;
  /** The secret access key. */
  secretAccessKey: string;
  /** A session token, for temporary credentials.
   * @default {undefined} */
  sessionToken?: string;
}

/** Where requests go and how they are signed and sent. */
export interface S3Target {
  /** The endpoint's origin and path, without a trailing slash. */
  base: string;
  bucket: string;
  region: string;
  credentials: S3Credentials;
  client: HttpClient;
}

/**
 * Percent-encodes every UTF-8 byte of `text` except the unreserved characters
 * (`A-Z a-z 0-9 - . _ ~`), and `/` too unless `keepSlash`.
 */
export function s3Encode(text: string, keepSlash = false): string {
  const encoded = encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
  return keepSlash ? encoded.replace(/%2F/g, "/") : encoded;
}

/** What {@linkcode S3Requests.send} may add to a request. */
export interface SendOptions {
  /** Whether a POST may be sent again (see `HttpClient`'s `idempotent`).
   * @default {undefined} */
  idempotent?: boolean;
  /** More headers (lower-case names), all signed, such as `if-none-match`.
   * @default {{}} */
  headers?: Record<string, string>;
}

/** Sends signed requests to one bucket. */
export class S3Requests {
  /** The bucket name. */
  readonly bucket: string;
  #base: string;
  #region: string;
  #credentials: S3Credentials;
  #client: HttpClient;
  /** Signing keys by day, shared by every signature of this bucket. */
  #signingKeys = new Map<string, ArrayBuffer>();

  constructor(target: S3Target) {
    this.#base = target.base;
    this.bucket = target.bucket;
    this.#region = target.region;
    this.#credentials = { ...target.credentials };
    this.#client = target.client;
  }

  /**
   * Sends one signed request; `stored` undefined addresses the bucket itself. The client
   * retries it as its policy says (a POST only when `idempotent`); the signature is made once,
   * and S3 accepts it for 15 minutes. Every header in `options.headers` is signed.
   *
   * @throws {StorageError} When the request fails for good (network errors, timeouts,
   *   retryable statuses after the retries).
   */
  async send(
    op: string,
    key: string,
    method: string,
    stored: string | undefined,
    query: Record<string, string> = {},
    body?: Uint8Array,
    options: SendOptions = {},
  ): Promise<Response> {
    const { idempotent } = options;
    const url = this.#url(stored, query);
    const payloadHash = body === undefined ? EMPTY_SHA256 : bytesToHex(
      await crypto.subtle.digest("SHA-256", body as Uint8Array<ArrayBuffer>),
    );
    const { accessKeyId, secretAccessKey, sessionToken } = this.#credentials;
    const signer = new AwsV4Signer({
      method,
      url,
      headers: { ...options.headers, "x-amz-content-sha256": payloadHash },
      accessKeyId,
      secretAccessKey,
      ...(sessionToken === undefined ? {} : { sessionToken }),
      service: "s3",
      region: this.#region,
      cache: this.#signingKeys,
    });
    const { headers } = await signer.sign();
    try {
      return await this.#client.request(url, {
        method,
        headers,
        body,
        ...(idempotent === undefined ? {} : { idempotent }),
      });
    } catch (error) {
      throw error instanceof HttpError ? this.httpFailure(op, key, error) : error;
    }
  }

  /** Throws a {@linkcode StorageError} unless `response.status` is one of `ok`. */
  async expect(response: Response, op: string, key: string, ok: readonly number[]): Promise<void> {
    if (ok.includes(response.status)) return;
    const { code, message } = parseError(await response.text().catch(() => ""));
    const detail = code === undefined
      ? ""
      : `: ${code}${message === undefined ? "" : ` (${message})`}`;
    throw this.failure(op, key, `S3 answered HTTP ${response.status}${detail}`, {
      code: response.status,
    });
  }

  /** The body as text; a body that breaks is a {@linkcode StorageError}. */
  async text(response: Response, op: string, key: string): Promise<string> {
    try {
      return await response.text();
    } catch (error) {
      throw error instanceof HttpError ? this.httpFailure(op, key, error) : error;
    }
  }

  /** The body as bytes; a body that breaks is a {@linkcode StorageError}. */
  async bytes(response: Response, op: string, key: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      throw error instanceof HttpError ? this.httpFailure(op, key, error) : error;
    }
  }

  /** A service failure about `key`: `Cannot {op} key "{key}": {why}`. */
  failure(
    op: string,
    key: string,
    why: string,
    options: { code?: number | undefined; cause?: unknown } = {},
  ): StorageError {
    const details: StorageErrorOptions = { driver: "s3", key };
    if (options.code !== undefined) details.code = options.code;
    if (options.cause !== undefined) details.cause = options.cause;
    return new StorageError(`Cannot ${op} key ${JSON.stringify(key)}: ${why}`, details);
  }

  /** A request or body that failed for good, as a {@linkcode StorageError}. */
  httpFailure(op: string, key: string, error: HttpError): StorageError {
    const status = error.status;
    // A retryable status is never returned as a response: the client gave up on it.
    const gaveUp = status !== undefined && (status === 408 || status === 429 || status >= 500);
    const attempts = `${error.attempts} attempt${error.attempts === 1 ? "" : "s"}`;
    const why = gaveUp
      ? `S3 answered HTTP ${status} after ${attempts}`
      : `S3 request failed: ${error.message}`;
    return this.failure(op, key, why, { code: error.status, cause: error });
  }

  #url(stored: string | undefined, query: Record<string, string>): string {
    let path = `${this.#base}/${this.bucket}`;
    if (stored !== undefined) path += "/" + s3Encode(stored, true);
    const search = Object.entries(query)
      .map(([name, value]) => [s3Encode(name), s3Encode(value)] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => `${name}=${value}`)
      .join("&");
    return search === "" ? path : `${path}?${search}`;
  }
}
