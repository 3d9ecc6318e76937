/**
 * `Content-Length` handling shared by the HTTP client and the packument fetcher.
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
 */
export function parseContentLength(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  return /^\d+$/.test(text) ? Number(text) : undefined;
}
