/**
 * The HTTP client: `fetch` with retries, timeouts, a concurrency cap, a rate limit and request
 * tracing, written against web standards only so it runs on every supported runtime.
 *
 * What it does with each request:
 *
 * - **Concurrency.** At most `concurrency` requests are in flight. A request holds its slot from
 *   before it is sent until its response body has been read to the end, cancelled or has
 *   errored; a response without a body (`HEAD`, 204, 304) and a failed attempt give the slot
 *   back at once. A caller that neither reads nor cancels a body keeps its slot, so always do
 *   one or the other.
 * - **Rate limit.** Every attempt, retries included, takes a token from a
 *   {@linkcode TokenBucket} (after taking its slot, so tokens are spent when requests are
 *   actually sent). A `429 Too Many Requests` opens a penalty window: the bucket hands out no
 *   token to any request of this client until the wait the client computed for that 429
 *   (`Retry-After`, or the backoff delay when absent) is over. Retries count against the rate
 *   limit too, or the penalty window would never end.
 * - **Methods and bodies.** Any method but CONNECT, TRACE and TRACK, with a body that can be
 *   sent again: a string, `Uint8Array`, `ArrayBuffer`, `Blob` or `URLSearchParams`, or a
 *   function that makes a new body (a stream, say) for each attempt. A retry sends the same
 *   bytes again.
 * - **Retries.** Network errors, timeouts, 408, 429 and every 5xx are retried up to `retries`
 *   times, with exponential backoff and full jitter: the retry after attempt `n` (1-based) waits
 *   `random() * min(backoffMax, backoffBase * 2 ** (n - 1))`. A `Retry-After` header (seconds
 *   or an HTTP-date, read relative to `clock.now()`) replaces the backoff; it is capped at
 *   `retryAfterMax`, and a longer `Retry-After` still waits the cap and then retries instead of
 *   failing early. The bodies of retried responses are cancelled. When no retry is left the
 *   request rejects with an {@linkcode HttpError}. Every other status (2xx, 3xx including 304,
 *   4xx other than 408 and 429) is returned as the `Response`: a 404 is an answer, not an error.
 *   A request that is not idempotent (POST, PATCH and every method but GET, HEAD, OPTIONS, PUT
 *   and DELETE, unless the caller says `idempotent: true`) is never retried: each of those
 *   failures may come after the server acted on it, so it rejects after its one attempt.
 * - **Timeouts.** Each attempt gets its own `AbortSignal`, merged with the caller's `signal`
 *   through `AbortSignal.any`. If the response headers do not arrive within `timeout` ms the
 *   attempt is aborted and retried. While the body streams, the same value is an idle timeout:
 *   when a read waits `timeout` ms for the next chunk, the connection is aborted and the body
 *   stream errors with an {@linkcode HttpError} whose `cause` is a `TimeoutError`
 *   `DOMException` (a body is never retried: it belongs to the caller by then). Timeouts watch
 *   real I/O, so they run on their own clock, `timeoutClock` (default {@linkcode systemClock}),
 *   while `clock` drives backoff, `Retry-After` and the rate limit; tests can fake one without
 *   the other.
 * - **Caller aborts.** When the caller's `signal` aborts, the request rejects (or its body
 *   stream errors) with the signal's reason, and nothing is retried.
 * - **Body size.** A `Content-Length` above `maxBodyBytes` rejects at once (not retried); a body
 *   without one that grows past the cap errors its stream with an {@linkcode HttpError}. The
 *   limit counts decoded bytes while streaming; `Content-Length` counts the bytes on the wire.
 * - **Tracing.** Every attempt carries a W3C `traceparent` header,
 *   `00-<32 hex trace id>-<16 hex span id>-01`, from `crypto.getRandomValues`. The trace id
 *   names the logical request and stays the same across its retries (a caller may pass its own
 *   `traceId` to tie requests together); the span id is new for every attempt, so the server
 *   logs of one request can be grouped and its attempts still told apart.
 * - **Bodies stay streams.** The client never buffers a body it was not asked to; a response
 *   with a body is a {@linkcode GuardedResponse} over the network stream, which enforces the
 *   rules above and keeps the original `url` and `redirected`. A small body read whole skips
 *   the watching stream (see {@linkcode GuardedResponse}); `timeout` then bounds the whole read
 *   of that body rather than each wait for a chunk.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { parseContentLength, parseRetryAfter } from "./headers.ts";
import { TokenBucket } from "./token_bucket.ts";
import { Slots } from "./slots.ts";
import { GuardedResponse } from "./guarded_response.ts";
import { HttpError } from "./errors.ts";
import { VERSION } from "../version.ts";
import { detectRuntime } from "../runtime.ts";
import { describe } from "../_util/describe.ts";
import { withStop } from "../_util/signals.ts";
import { discard, noop, randomId } from "./_response_util.ts";
import {
  bodyOption,
  clockOption,
  delayOption,
  errorMessage,
  headersOption,
  isIdempotentMethod,
  methodOption,
  numberOption,
  optionalBoolean,
  optionalFunction,
  retriesOption,
  timeoutOption,
  traceIdOption,
  urlOption,
} from "./_options.ts";

import type { HttpClientStats, HttpEvent, RetryReason } from "./events.ts";

export { HttpError } from "./errors.ts";
export type { HttpErrorOptions } from "./errors.ts";
export type {
  HttpClientStats,
  HttpEvent,
  HttpRequestEvent,
  HttpResponseEvent,
  HttpRetryEvent,
  RetryReason,
} from "./events.ts";

/** A `fetch`-compatible function; the global `fetch` is one. */
export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

/** Options for {@linkcode HttpClient}. */
export interface HttpClientOptions {
  /** The `fetch` to use. It is always called as a plain function, never as a method.
   * @default {globalThis.fetch, looked up at every call} */
  fetch?: FetchFunction;
  /** The clock for backoff, `Retry-After` and the rate limit.
   * @default {systemClock} */
  clock?: Clock;
  /** The clock for timeouts (header and idle timeouts), which watch real I/O.
   * @default {systemClock} */
  timeoutClock?: Clock;
  /** A source of numbers in `[0, 1)` for the backoff jitter.
   * @default {Math.random} */
  random?: () => number;
  /** The most requests in flight at once; a positive integer, or `Infinity` for no limit.
   * @default {16} */
  concurrency?: number;
  /** Attempts per second, retries included; a positive number, or `Infinity` for no limit.
   * @default {Infinity} */
  rateLimit?: number;
  /** How many attempts may be sent at once after a quiet period; a finite number, at least 1.
   * @default {Math.max(1, rateLimit)} */
  burst?: number;
  /** How many times a failed attempt is retried; a non-negative integer.
   * @default {5} */
  retries?: number;
  /** The backoff cap of the first retry, doubled for each later one, in milliseconds.
   * @default {250} */
  backoffBase?: number;
  /** The largest backoff cap, in milliseconds.
   * @default {30_000} */
  backoffMax?: number;
  /** The longest wait a `Retry-After` header can ask for, in milliseconds; longer ones wait
   * this long.
   * @default {300_000} */
  retryAfterMax?: number;
  /** Milliseconds to wait for response headers, and then for each body chunk; `Infinity`
   * disables it (so does any value above 2³¹ − 1).
   * @default {30_000} */
  timeout?: number;
  /** The largest response body accepted, in bytes; a non-negative integer or `Infinity`.
   * @default {536_870_912 (512 MiB)} */
  maxBodyBytes?: number;
  /** The `user-agent` header. An explicit value wins over a `user-agent` in `headers`.
   * @default {`_all_docs/${VERSION} (${detectRuntime()})`} */
  userAgent?: string;
  /** Headers sent with every request; per-request headers override them.
   * @default {{}} */
  headers?: HeadersInit;
  /** Called synchronously for every {@linkcode HttpEvent}; errors it throws are ignored.
   * @default {undefined} */
  onEvent?: (event: HttpEvent) => void;
}

/** Validators for a conditional request. A cache entry's metadata fits as is. */
export interface ConditionalRequest {
  /** Sent as `If-None-Match`.
   * @default {undefined} */
  etag?: string | undefined;
  /** Sent as `If-Modified-Since`.
   * @default {undefined} */
  lastModified?: string | undefined;
}

/**
 * A request body the client can send again on a retry: bytes or text kept as given, or a
 * function returning a new body for each attempt (use one for a stream, which can be read only
 * once).
 */
export type RequestBody =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | URLSearchParams
  | (() => BodyInit);

/** Options for {@linkcode HttpClient.request}. */
export interface RequestOptions {
  /** The HTTP method: any token but CONNECT, TRACE and TRACK. `DELETE`, `GET`, `HEAD`,
   * `OPTIONS`, `POST` and `PUT` are sent in upper case whatever the case given, as `fetch`
   * does.
   * @default {"GET"} */
  method?: string | undefined;
  /** The body, sent again as is on each retry; none with GET and HEAD.
   * @default {undefined} */
  body?: RequestBody | undefined;
  /** Whether the request may be sent again after it may have reached the server. When
   * `false`, the request makes one attempt whatever `retries` says. Set it to `true` for a
   * POST or PATCH that is safe to repeat.
   * @default {true for GET, HEAD, OPTIONS, PUT and DELETE; false for every other method} */
  idempotent?: boolean | undefined;
  /** Headers for this request, over the client's `headers`.
   * @default {{}} */
  headers?: HeadersInit | undefined;
  /** Aborts the request and its body; the request then rejects with the signal's reason.
   * @default {undefined} */
  signal?: AbortSignal | undefined;
  /** Overrides the client's `timeout` for this request.
   * @default {the client's timeout} */
  timeout?: number | undefined;
  /** Overrides the client's `retries` for this request.
   * @default {the client's retries} */
  retries?: number | undefined;
  /** Makes the request conditional; these headers win over the same ones in `headers`.
   * @default {undefined} */
  conditional?: ConditionalRequest | undefined;
  /** The trace id of the `traceparent` header: 32 lowercase hex digits, not all zero.
   * @default {a random id} */
  traceId?: string | undefined;
}

const MAX_TIMER_MS = 2_147_483_647;
const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([101, 103, 204, 205, 304]);
const CLIENT = "Cannot create HTTP client";
const REQUEST = "Cannot send HTTP request";

/** Why an attempt failed, when it can be retried. */
interface Failure {
  reason: RetryReason;
  status: number | undefined;
  retryAfter: number | undefined;
  cause: unknown;
  message: string;
}

type Outcome = { response: Response } | { failure: Failure };

/** What one attempt needs to know. */
interface Attempt {
  url: string;
  method: string;
  headers: Headers;
  body: RequestBody | undefined;
  traceId: string;
  signal: AbortSignal | undefined;
  timeout: number;
  number: number;
}

/**
 * An HTTP client with retries, timeouts, a concurrency cap and a rate limit. See the module
 * documentation for the rules it applies.
 *
 * @example Fetch a document
 * ```ts
 * import { HttpClient } from "./client.ts";
 * const client = new HttpClient({
 *   fetch: () => Promise.resolve(new Response('{"name":"left-pad"}')),
 * });
 * const response = await client.request("https://registry.example/left-pad");
 * console.assert(response.status === 200);
 * console.assert((await response.json()).name === "left-pad");
 * ```
 *
 * @example Retry a 503
 * ```ts
 * import { HttpClient } from "./client.ts";
 * const statuses = [503, 200];
 * const slept: number[] = [];
 * const client = new HttpClient({
 *   fetch: () => Promise.resolve(new Response("ok", { status: statuses.shift() ?? 200 })),
 *   clock: { now: () => 0, sleep: (ms) => (slept.push(ms), Promise.resolve()) },
 *   random: () => 0.5,
 * });
 * const response = await client.request("https://registry.example/left-pad");
 * console.assert(response.status === 200 && (await response.text()) === "ok");
 * console.assert(slept[0] === 125 && client.stats.retries === 1);
 * ```
 */
export class HttpClient {
  #fetch: FetchFunction;
  #clock: Clock;
  #timeoutClock: Clock;
  #random: () => number;
  #slots: Slots;
  #bucket: TokenBucket;
  #retries: number;
  #backoffBase: number;
  #backoffMax: number;
  #retryAfterMax: number;
  #timeout: number;
  #maxBodyBytes: number;
  #headers: Headers;
  #onEvent: ((event: HttpEvent) => void) | undefined;
  #requestCount = 0;
  #retryCount = 0;
  /** {@linkcode HttpClient.#startTimer}, bound once for every guarded body. */
  #timer = (ms: number, onFire: () => void): () => void => this.#startTimer(ms, onFire);

  /**
   * Creates a client.
   *
   * @param options Limits, retry policy, defaults and injected capabilities.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When a numeric option is out of range.
   */
  constructor(options: HttpClientOptions = {}) {
    const fetchImpl = optionalFunction(CLIENT, "fetch", options.fetch);
    this.#fetch = fetchImpl === undefined
      ? (input, init) => globalThis.fetch(input, init)
      : (input, init) => fetchImpl(input, init);
    this.#clock = clockOption(CLIENT, "clock", options.clock);
    this.#timeoutClock = clockOption(CLIENT, "timeoutClock", options.timeoutClock);
    this.#random = optionalFunction(CLIENT, "random", options.random) ?? Math.random;
    const concurrency = numberOption(
      CLIENT,
      "concurrency",
      options.concurrency ?? 16,
      (n) => n === Infinity || (Number.isInteger(n) && n > 0),
      "a positive integer",
    );
    const rateLimit = numberOption(
      CLIENT,
      "rateLimit",
      options.rateLimit ?? Infinity,
      (n) => n > 0,
      "a positive number",
    );
    const burst = numberOption(
      CLIENT,
      "burst",
      options.burst ?? Math.max(1, rateLimit),
      (n) => n >= 1 && (Number.isFinite(n) || rateLimit === Infinity),
      "a finite number of at least 1",
    );
    this.#retries = retriesOption(CLIENT, options.retries ?? 5);
    this.#backoffBase = delayOption(CLIENT, "backoffBase", options.backoffBase ?? 250);
    this.#backoffMax = delayOption(CLIENT, "backoffMax", options.backoffMax ?? 30_000);
    this.#retryAfterMax = delayOption(CLIENT, "retryAfterMax", options.retryAfterMax ?? 300_000);
    this.#timeout = timeoutOption(CLIENT, options.timeout ?? 30_000);
    this.#maxBodyBytes = numberOption(
      CLIENT,
      "maxBodyBytes",
      options.maxBodyBytes ?? 512 * 1024 * 1024,
      (n) => n === Infinity || (Number.isInteger(n) && n >= 0),
      "a non-negative integer",
    );
    if (options.userAgent !== undefined && typeof options.userAgent !== "string") {
      throw new TypeError(
        `${CLIENT}: 'userAgent' must be a string, received ${describe(options.userAgent)}`,
      );
    }
    this.#headers = headersOption(CLIENT, options.headers);
    if (options.userAgent !== undefined || !this.#headers.has("user-agent")) {
      this.#headers.set(
        "user-agent",
        options.userAgent ?? `_all_docs/${VERSION} (${detectRuntime()})`,
      );
    }
    this.#onEvent = optionalFunction(CLIENT, "onEvent", options.onEvent);
    this.#slots = new Slots(concurrency);
    this.#bucket = new TokenBucket(rateLimit, { burst, clock: this.#clock });
  }

  /** A snapshot of the counters. */
  get stats(): HttpClientStats {
    return {
      requests: this.#requestCount,
      retries: this.#retryCount,
      inFlight: this.#slots.used,
    };
  }

  /**
   * Sends a request, retrying as the client's policy says.
   *
   * @param url The absolute `http:` or `https:` URL.
   * @param init Method, headers, signal, per-request limits, validators and trace id.
   * @returns The response, with its body still a stream. Any status that is not retried is
   *   returned, 4xx included.
   * @throws {HttpError} When retries are exhausted or `Content-Length` is above
   *   `maxBodyBytes`.
   * @throws {TypeError} When `url` or an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   * @throws The reason of `init.signal` when it aborts.
   *
   * @example Revalidate a cached document
   * ```ts
   * import { HttpClient } from "./client.ts";
   * const client = new HttpClient({
   *   fetch: (_url, init) =>
   *     Promise.resolve(
   *       new Headers(init.headers).get("if-none-match") === '"v1"'
   *         ? new Response(null, { status: 304 })
   *         : new Response("{}", { headers: { etag: '"v1"' } }),
   *     ),
   * });
   * const cached = { etag: '"v1"' };
   * const response = await client.request("https://registry.example/left-pad", {
   *   conditional: cached,
   * });
   * console.assert(response.status === 304 && response.body === null);
   * ```
   */
  async request(url: string | URL, init: RequestOptions = {}): Promise<Response> {
    const href = urlOption(REQUEST, url);
    const method = init.method === undefined ? "GET" : methodOption(REQUEST, init.method);
    const body = bodyOption(REQUEST, method, init.body);
    const idempotent = optionalBoolean(REQUEST, "idempotent", init.idempotent) ??
      isIdempotentMethod(method);
    const signal = init.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(
        `${REQUEST}: 'signal' must be an AbortSignal, received ${describe(signal)}`,
      );
    }
    const timeout = init.timeout === undefined
      ? this.#timeout
      : timeoutOption(REQUEST, init.timeout);
    let retries = init.retries === undefined ? this.#retries : retriesOption(REQUEST, init.retries);
    if (!idempotent) retries = 0;
    const traceId = init.traceId === undefined
      ? randomId(16)
      : traceIdOption(REQUEST, init.traceId);
    const headers = new Headers(this.#headers);
    if (init.headers !== undefined) {
      for (const [name, value] of headersOption(REQUEST, init.headers)) headers.set(name, value);
    }
    const conditional = init.conditional;
    if (conditional !== undefined) {
      if (typeof conditional !== "object" || conditional === null) {
        throw new TypeError(
          `${REQUEST}: 'conditional' must be an object, received ${describe(conditional)}`,
        );
      }
      if (conditional.etag !== undefined) headers.set("if-none-match", conditional.etag);
      if (conditional.lastModified !== undefined) {
        headers.set("if-modified-since", conditional.lastModified);
      }
    }
    signal?.throwIfAborted();

    for (let number = 1;; number++) {
      const outcome = await this.#attempt({
        url: href,
        method,
        headers,
        body,
        traceId,
        signal,
        timeout,
        number,
      });
      if ("response" in outcome) return outcome.response;
      const failure = outcome.failure;
      const delay = this.#delay(number, failure.retryAfter);
      if (failure.status === 429) this.#bucket.pauseUntil(this.#clock.now() + delay);
      if (number > retries) {
        throw new HttpError(
          `${method} ${href} failed after ${number} attempt${
            number === 1 ? "" : "s"
          }: ${failure.message}`,
          href,
          {
            status: failure.status,
            retryAfter: failure.retryAfter,
            attempts: number,
            cause: failure.cause,
          },
        );
      }
      this.#retryCount++;
      this.#emit({
        type: "retry",
        url: href,
        attempt: number,
        delay,
        reason: failure.reason,
        status: failure.status,
      });
      await this.#clock.sleep(delay, signal);
    }
  }

  /**
   * Waits before asking again for a response whose body broke off while the caller read it (a
   * body is never retried by the client, as it belongs to the caller by then). The wait is the
   * one after a failed attempt: `Retry-After` when given, else the backoff with jitter; it
   * counts as a retry and emits a `retry` event with reason `body`.
   *
   * @param url The requested URL, for the event.
   * @param failures How many bodies of this request have failed so far, from 1.
   * @param options The caller's `signal`, and the response's `Retry-After` header.
   * @returns `false` at once when `failures` is above the client's `retries`, else `true`
   *   after the wait.
   * @throws The reason of `options.signal` when it aborts.
   *
   * @example
   * ```ts
   * import { HttpClient } from "./client.ts";
   * const slept: number[] = [];
   * const client = new HttpClient({
   *   retries: 1,
   *   clock: { now: () => 0, sleep: (ms) => (slept.push(ms), Promise.resolve()) },
   *   random: () => 0.5,
   * });
   * console.assert(await client.retryBody("https://registry.example/ms", 1));
   * console.assert(!(await client.retryBody("https://registry.example/ms", 2)));
   * console.assert(slept.length === 1 && slept[0] === 125 && client.stats.retries === 1);
   * ```
   */
  async retryBody(
    url: string,
    failures: number,
    options: { signal?: AbortSignal | undefined; retryAfter?: string | null } = {},
  ): Promise<boolean> {
    if (failures > this.#retries) return false;
    const retryAfter = parseRetryAfter(options.retryAfter ?? null, this.#clock.now());
    const delay = this.#delay(failures, retryAfter);
    this.#retryCount++;
    this.#emit({ type: "retry", url, attempt: failures, delay, reason: "body", status: undefined });
    await this.#clock.sleep(delay, options.signal);
    return true;
  }

  /** The wait after failed attempt `number`: `Retry-After` (capped), else the backoff. */
  #delay(number: number, retryAfter: number | undefined): number {
    if (retryAfter !== undefined) return Math.min(retryAfter, this.#retryAfterMax);
    const cap = Math.min(this.#backoffMax, this.#backoffBase * 2 ** Math.min(number - 1, 1000));
    return this.#random() * cap;
  }

  async #attempt(attempt: Attempt): Promise<Outcome> {
    const { url, method, signal, timeout } = attempt;
    const release = await this.#slots.acquire(signal);
    let body: BodyInit | undefined;
    try {
      await this.#bucket.take(signal);
      // A body made for this attempt, once it is about to be sent: a function's stream can be
      // read only once.
      body = typeof attempt.body === "function" ? attempt.body() : attempt.body as BodyInit;
    } catch (error) {
      release();
      throw error;
    }
    const headers = new Headers(attempt.headers);
    headers.set("traceparent", `00-${attempt.traceId}-${randomId(8)}-01`);
    this.#requestCount++;
    this.#emit({ type: "request", url, attempt: attempt.number });

    const controller = new AbortController();
    const fetchSignal = withStop(signal, controller);
    const stopTimer = this.#startTimer(timeout, () => {
      controller.abort(
        new DOMException(`No response headers within ${timeout} ms`, "TimeoutError"),
      );
    });
    let response: Response;
    try {
      const init: RequestInit & { duplex?: "half" } = { method, headers, signal: fetchSignal };
      if (body !== undefined) {
        init.body = body;
        // A stream body needs it (and only a stream body accepts it everywhere).
        if (body instanceof ReadableStream) init.duplex = "half";
      }
      response = await this.#fetch(url, init);
    } catch (error) {
      stopTimer();
      release();
      // A stream fetch never took is not read by anyone else.
      if (body instanceof ReadableStream && !body.locked) body.cancel(error).catch(noop);
      if (signal?.aborted) throw signal.reason;
      if (controller.signal.aborted) {
        return {
          failure: {
            reason: "timeout",
            status: undefined,
            retryAfter: undefined,
            cause: controller.signal.reason,
            message: `no response headers within ${timeout} ms`,
          },
        };
      }
      return {
        failure: {
          reason: "network",
          status: undefined,
          retryAfter: undefined,
          cause: error,
          message: `network error (${errorMessage(error)})`,
        },
      };
    }
    stopTimer();
    const status = response.status;
    this.#emit({ type: "response", url, status, attempt: attempt.number });

    if (signal?.aborted) {
      discard(response);
      release();
      throw signal.reason;
    }
    if (status === 408 || status === 429 || (status >= 500 && status <= 599)) {
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"), this.#clock.now());
      discard(response);
      release();
      return {
        failure: {
          reason: "status",
          status,
          retryAfter,
          cause: undefined,
          message: `HTTP ${status}`,
        },
      };
    }
    if (response.body === null || method === "HEAD" || NULL_BODY_STATUSES.has(status)) {
      discard(response);
      release();
      return { response };
    }
    const length = parseContentLength(response.headers.get("content-length"));
    if (length !== undefined && length > this.#maxBodyBytes) {
      discard(response);
      release();
      throw new HttpError(
        `The response body of ${method} ${url} is ${length} bytes, more than 'maxBodyBytes' (${this.#maxBodyBytes})`,
        url,
        { status, attempts: attempt.number },
      );
    }
    return {
      response: new GuardedResponse(response, {
        method,
        url,
        attempts: attempt.number,
        signal: fetchSignal,
        callerSignal: signal,
        abort: (reason) => controller.abort(reason),
        timeout,
        maxBodyBytes: this.#maxBodyBytes,
        startTimer: this.#timer,
        onSettle: release,
      }),
    };
  }

  /** Calls `onFire` after `ms` on the timeout clock; the returned function cancels it. */
  #startTimer(ms: number, onFire: () => void): () => void {
    if (!(ms <= MAX_TIMER_MS)) return noop;
    if (this.#timeoutClock.timer) return this.#timeoutClock.timer(ms, onFire);
    const controller = new AbortController();
    let active = true;
    this.#timeoutClock.sleep(ms, controller.signal).then(() => {
      if (!active) return;
      active = false;
      onFire();
    }, noop);
    return () => {
      if (!active) return;
      active = false;
      controller.abort();
    };
  }

  #emit(event: HttpEvent): void {
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch {
      // A listener's failure must not break requests or leak their slots.
    }
  }
}
