/**
 * Up-front checks of the options of the HTTP client and of its requests. Each throws a
 * `TypeError` (wrong type) or `RangeError` (out of range) naming the option and the value.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { describe } from "../_util/describe.ts";

/** The methods `fetch` writes in upper case whatever the case given (and only these). */
const NORMALIZED_METHODS: ReadonlySet<string> = new Set([
  "DELETE",
  "GET",
  "HEAD",
  "OPTIONS",
  "POST",
  "PUT",
]);
/** Methods that may be sent again without changing the outcome (RFC 9110, section 9.2.2). */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  "DELETE",
  "GET",
  "HEAD",
  "OPTIONS",
  "PUT",
]);
/** Methods `fetch` refuses. */
const FORBIDDEN_METHODS: ReadonlySet<string> = new Set(["CONNECT", "TRACE", "TRACK"]);
/** An HTTP token (RFC 9110, section 5.6.2). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The message of an error, or the value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A number that `valid` accepts; `RangeError` for other numbers, `TypeError` for the rest. */
export function numberOption(
  context: string,
  name: string,
  value: unknown,
  valid: (value: number) => boolean,
  expected: string,
): number {
  if (typeof value === "number" && valid(value)) return value;
  const error = typeof value === "number" ? RangeError : TypeError;
  throw new error(`${context}: '${name}' must be ${expected}, received ${describe(value)}`);
}

/** A count of retries: a non-negative integer. */
export function retriesOption(context: string, value: unknown): number {
  return numberOption(
    context,
    "retries",
    value,
    (n) => Number.isInteger(n) && n >= 0,
    "a non-negative integer",
  );
}

/** A timeout in milliseconds: a positive number (`Infinity` included). */
export function timeoutOption(context: string, value: unknown): number {
  return numberOption(context, "timeout", value, (n) => n > 0, "a positive number");
}

/** A delay in milliseconds: a non-negative finite number. */
export function delayOption(context: string, name: string, value: unknown): number {
  return numberOption(
    context,
    name,
    value,
    (n) => Number.isFinite(n) && n >= 0,
    "a non-negative finite number",
  );
}

/** A function, or `undefined`. */
export function optionalFunction<T>(
  context: string,
  name: string,
  value: T | undefined,
): T | undefined {
  if (value === undefined || typeof value === "function") return value;
  throw new TypeError(`${context}: '${name}' must be a function, received ${describe(value)}`);
}

/** A clock (`now()` and `sleep()`), or the system clock when `undefined`. */
export function clockOption(context: string, name: string, value: unknown): Clock {
  if (value === undefined) return systemClock;
  const clock = value as Partial<Clock> | null;
  if (
    typeof clock === "object" && clock !== null && typeof clock.now === "function" &&
    typeof clock.sleep === "function"
  ) {
    return clock as Clock;
  }
  throw new TypeError(
    `${context}: '${name}' must have now() and sleep() methods, received ${describe(value)}`,
  );
}

/** Headers, copied. */
export function headersOption(context: string, value: HeadersInit | undefined): Headers {
  try {
    return new Headers(value);
  } catch (error) {
    throw new TypeError(
      `${context}: 'headers' must be valid headers, received ${describe(value)} (${
        errorMessage(error)
      })`,
      { cause: error },
    );
  }
}

/** A boolean, or `undefined`. */
export function optionalBoolean(
  context: string,
  name: string,
  value: unknown,
): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw new TypeError(`${context}: '${name}' must be a boolean, received ${describe(value)}`);
}

/** An absolute `http:` or `https:` URL, as its `href`. */
export function urlOption(context: string, url: unknown): string {
  let parsed: URL | undefined;
  if (url instanceof URL) parsed = url;
  else if (typeof url === "string" && URL.canParse(url)) parsed = new URL(url);
  if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw new TypeError(
      `${context}: 'url' must be an absolute http or https URL, received ${describe(url)}`,
    );
  }
  return parsed.href;
}

/**
 * An HTTP method, written as `fetch` sends it: `DELETE`, `GET`, `HEAD`, `OPTIONS`, `POST` and
 * `PUT` in upper case whatever the case given, any other token as given.
 */
export function methodOption(context: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new TypeError(`${context}: 'method' must be a string, received ${describe(value)}`);
  }
  const upper = value.toUpperCase();
  if (!TOKEN.test(value) || FORBIDDEN_METHODS.has(upper)) {
    throw new RangeError(
      `${context}: 'method' must be an HTTP method other than CONNECT, TRACE and TRACK, ` +
        `received ${describe(value)}`,
    );
  }
  return NORMALIZED_METHODS.has(upper) ? upper : value;
}

/** Whether a method (as {@linkcode methodOption} returns it) is idempotent by definition. */
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method);
}

/**
 * A body that can be sent again: a string, `Uint8Array`, `ArrayBuffer`, `Blob`,
 * `URLSearchParams`, or a function making a new body for each attempt. None for GET and HEAD.
 */
export function bodyOption<T>(
  context: string,
  method: string,
  value: T | undefined,
): T | undefined {
  if (value === undefined) return undefined;
  if (method === "GET" || method === "HEAD") {
    throw new TypeError(
      `${context}: 'body' must be undefined for a ${method} request, received ${describe(value)}`,
    );
  }
  if (
    typeof value === "string" || typeof value === "function" || value instanceof Uint8Array ||
    value instanceof ArrayBuffer || value instanceof Blob || value instanceof URLSearchParams
  ) {
    return value;
  }
  throw new TypeError(
    `${context}: 'body' must be a string, Uint8Array, ArrayBuffer, Blob, URLSearchParams or a ` +
      `function returning a new body for each attempt, received ${bodyDescription(value)}`,
  );
}

/** Names the kind of a refused body (a stream is the likely mistake). */
function bodyDescription(value: unknown): string {
  if (value instanceof ReadableStream) return "a ReadableStream (pass a function making one)";
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return describe(value);
}

/** A W3C trace id: 32 lowercase hex digits, not all zero. */
export function traceIdOption(context: string, value: unknown): string {
  if (typeof value === "string" && /^[0-9a-f]{32}$/.test(value) && !/^0+$/.test(value)) {
    return value;
  }
  const error = typeof value === "string" ? RangeError : TypeError;
  throw new error(
    `${context}: 'traceId' must be 32 lowercase hex digits, not all zero, received ${
      describe(value)
    }`,
  );
}
