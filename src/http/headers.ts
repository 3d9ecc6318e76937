/**
 * Reading the response headers the HTTP client and the packument fetcher act on:
 * `Content-Length` and `Retry-After`.
 *
 * @module
 */

/**
 * Bodies that declare at most this many bytes are read whole: the client reads them straight
 * from the runtime's response, and the packument fetcher stores them without streaming.
 */
export const WHOLE_BODY_MAX: number = 1024 * 1024;

/**
 * A `Content-Length` value as a number, or `undefined` when absent or not a plain decimal.
 *
 * @param value The header value.
 * @returns The length.
 *
 * @example
 * ```ts
 * import { parseContentLength } from "./headers.ts";
 * console.assert(parseContentLength(" 42 ") === 42);
 * console.assert(parseContentLength("4e2") === undefined && parseContentLength(null) === undefined);
 * ```
 */
export function parseContentLength(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/**
 * A `Retry-After` value as a wait in milliseconds: delta-seconds, or an HTTP-date read
 * relative to `now` (a date in the past is no wait). Anything else is `undefined`.
 *
 * @param value The header value.
 * @param now The current time, in milliseconds since the epoch.
 * @returns The wait, in milliseconds.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./headers.ts";
 * const now = Date.UTC(2024, 0, 1);
 * console.assert(parseRetryAfter("120", now) === 120_000);
 * console.assert(parseRetryAfter("Mon, 01 Jan 2024 00:00:05 GMT", now) === 5_000);
 * console.assert(parseRetryAfter("soon", now) === undefined);
 * ```
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
