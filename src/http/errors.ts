/**
 * The errors of HTTP exchanges that callers catch and branch on: {@linkcode HttpError} for a
 * request that failed for good, {@linkcode BadResponseError} for an answer that arrived but
 * cannot be used.
 *
 * @module
 */

/** Options for {@linkcode HttpError}. */
export interface HttpErrorOptions {
  /** The HTTP status of the response involved, if one arrived.
   * @default {undefined} */
  status?: number | undefined;
  /** The wait the server asked for with `Retry-After`, in milliseconds.
   * @default {undefined} */
  retryAfter?: number | undefined;
  /** How many attempts were made.
   * @default {1} */
  attempts?: number;
  /** The underlying error.
   * @default {undefined} */
  cause?: unknown;
}

/**
 * A request that failed for good: retries exhausted, a body over the size limit, or a body
 * that stalled or broke while streaming.
 *
 * @example Inspect a failure
 * ```ts
 * import { HttpError } from "./errors.ts";
 * const error = new HttpError("GET failed", "https://registry.example/x", { status: 503 });
 * console.assert(error.name === "HttpError" && error.status === 503 && error.attempts === 1);
 * ```
 */
export class HttpError extends Error {
  /** Always `HttpError`. */
  override name: string = "HttpError";
  /** The HTTP status of the response involved; `undefined` when none arrived (network errors,
   * timeouts before the headers). */
  readonly status: number | undefined;
  /** The requested URL. */
  readonly url: string;
  /** The wait the last response asked for with `Retry-After` (uncapped), in milliseconds. */
  readonly retryAfter: number | undefined;
  /** How many attempts were made. */
  readonly attempts: number;

  /**
   * Creates an error.
   *
   * @param message What failed.
   * @param url The requested URL.
   * @param options Status, `Retry-After`, attempts and cause.
   */
  constructor(message: string, url: string, options: HttpErrorOptions = {}) {
    super(message, "cause" in options ? { cause: options.cause } : undefined);
    this.status = options.status;
    this.url = url;
    this.retryAfter = options.retryAfter;
    this.attempts = options.attempts ?? 1;
  }
}

/**
 * An answer that arrived but cannot be used (an `_all_docs` page that is not JSON, is cut
 * short or has rows out of order, for example). Readers ask for it again like after a network
 * failure, and throw this error when it stays unusable.
 *
 * @example Tell a bad answer from other failures
 * ```ts
 * import { BadResponseError } from "./errors.ts";
 * const error = new BadResponseError("Bad _all_docs page: no rows array");
 * console.assert(error instanceof BadResponseError && error.name === "BadResponseError");
 * ```
 */
export class BadResponseError extends Error {
  /** Always `BadResponseError`. */
  override name: string = "BadResponseError";
}
