/**
 * A response whose body is watched while it streams: an idle timeout, a size limit, the
 * caller's abort signal, and one notice when the body is done with (read to the end,
 * cancelled or failed), which the HTTP client uses to give back its concurrency slot.
 *
 * @module
 */

import { HttpError } from "./errors.ts";
import { parseContentLength, WHOLE_BODY_MAX } from "./headers.ts";

/** Options for {@linkcode GuardedResponse}. */
export interface GuardedResponseOptions {
  /** The request method, for error messages.
   * @default {"GET"} */
  method?: string;
  /** The requested URL, for error messages and {@linkcode HttpError.url}.
   * @default {the response's url} */
  url?: string;
  /** How many attempts the request took, for {@linkcode HttpError.attempts}.
   * @default {1} */
  attempts?: number;
  /** The signal the fetch was given. When it aborts, the body errors: with the reason of
   * `callerSignal` when that one aborted, otherwise with an {@linkcode HttpError}.
   * @default {undefined} */
  signal?: AbortSignal | undefined;
  /** The caller's own signal, part of `signal`.
   * @default {undefined} */
  callerSignal?: AbortSignal | undefined;
  /** Tears the connection down; called with a `TimeoutError` `DOMException` when a read
   * waited `timeout` ms. It should abort `signal`.
   * @default {a function that cancels the body} */
  abort?: (reason: unknown) => void;
  /** Milliseconds a read may wait for the next chunk; for a small body read whole, for the
   * whole body. `Infinity` disables it.
   * @default {Infinity} */
  timeout?: number;
  /** The largest body accepted, in decoded bytes.
   * @default {Infinity} */
  maxBodyBytes?: number;
  /** Calls `onFire` after `ms` milliseconds; the returned function cancels the timer.
   * @default {setTimeout and clearTimeout} */
  startTimer?: (ms: number, onFire: () => void) => () => void;
  /** Called exactly once when the body is done with: read to the end, cancelled or failed.
   * @default {undefined} */
  onSettle?: () => void;
}

/**
 * A `Response` over another one's body that enforces, while the body streams:
 *
 * - an idle timeout: when a read waits `timeout` ms for the next chunk, `abort` is called and
 *   the body errors with an {@linkcode HttpError} caused by a `TimeoutError`;
 * - a size limit: a body growing past `maxBodyBytes` errors with an {@linkcode HttpError};
 * - the caller's abort: the body errors with the reason of `callerSignal`;
 * - a body that breaks (a connection cut short) errors with an {@linkcode HttpError} whose
 *   `cause` is the runtime's error;
 * - `onSettle` runs exactly once, when the body ends, is cancelled or errors.
 *
 * It keeps the `status`, `statusText`, headers, `url` and `redirected` of the original.
 *
 * A body without a `Content-Encoding` that declares at most {@linkcode WHOLE_BODY_MAX} bytes
 * and is read whole (`arrayBuffer()`, `bytes()`, `text()`, `json()`) before anything touched
 * its stream is read straight from the original response, which costs much less than going
 * through the watching stream. The same rules hold, with `timeout` bounding the whole read;
 * `bodyUsed` is then `true` and the stream errors if read.
 *
 * @example Cap a body's size
 * ```ts
 * import { GuardedResponse } from "./guarded_response.ts";
 * import { HttpError } from "./errors.ts";
 * let settled = 0;
 * const guarded = new GuardedResponse(new Response("0123456789"), {
 *   url: "https://registry.example/big",
 *   maxBodyBytes: 4,
 *   onSettle: () => settled++,
 * });
 * const error = await guarded.text().catch((error) => error);
 * console.assert(error instanceof HttpError && settled === 1);
 * ```
 */
export class GuardedResponse extends Response {
  #guard: BodyGuard;
  #url: string;
  #redirected: boolean;

  /**
   * Wraps the body of `response`, which the new response then owns.
   *
   * @param response A response with a body nothing has read yet.
   * @param options The limits and callbacks.
   * @throws {TypeError} When `response` has no body or its body was used.
   */
  constructor(response: Response, options: GuardedResponseOptions = {}) {
    const source = response.body;
    if (source === null || response.bodyUsed) {
      throw new TypeError(
        `Cannot guard response: it must have an unread body, received ${
          source === null ? "no body" : "a used body"
        }`,
      );
    }
    const guard = new BodyGuard(response, source, options);
    super(new ReadableStream<Uint8Array>(guard, { highWaterMark: 0 }), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
    this.#guard = guard;
    this.#url = response.url;
    this.#redirected = response.redirected;
  }

  /** The URL of the original response. */
  override get url(): string {
    return this.#url;
  }

  /** Whether the original response was redirected. */
  override get redirected(): boolean {
    return this.#redirected;
  }

  /** Whether the body was read, by its stream or whole. */
  override get bodyUsed(): boolean {
    return this.#guard.readWhole || super.bodyUsed;
  }

  /**
   * The whole body.
   *
   * @returns The bytes.
   */
  override async arrayBuffer(): Promise<ArrayBuffer> {
    const whole = await this.#whole();
    return whole ?? await super.arrayBuffer();
  }

  /**
   * The whole body.
   *
   * @returns The bytes.
   */
  override async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    const whole = await this.#whole();
    return new Uint8Array(whole ?? await super.arrayBuffer());
  }

  /**
   * The whole body, decoded as UTF-8.
   *
   * @returns The text.
   */
  override async text(): Promise<string> {
    const whole = await this.#whole();
    return whole === undefined ? await super.text() : decoder.decode(whole);
  }

  /**
   * The whole body, parsed as JSON.
   *
   * @returns The parsed value.
   */
  override async json(): Promise<unknown> {
    const whole = await this.#whole();
    return whole === undefined ? await super.json() : JSON.parse(decoder.decode(whole));
  }

  /**
   * A copy; both then read through the watching stream.
   *
   * @returns The copy.
   */
  override clone(): Response {
    this.#guard.touched = true;
    return super.clone();
  }

  /** The body read straight from the original, or `undefined` when it must go through the
   * stream (not eligible, or the stream was touched or locked). */
  #whole(): Promise<ArrayBuffer | undefined> {
    if (!this.#guard.wholeAllowed || this.#guard.touched || this.body?.locked) {
      return Promise.resolve(undefined);
    }
    return this.#guard.readAll();
  }
}

const decoder = new TextDecoder();

function noop(): void {}

function defaultTimer(ms: number, onFire: () => void): () => void {
  if (!(ms <= 2_147_483_647)) return noop;
  const id = setTimeout(onFire, ms);
  return () => clearTimeout(id);
}

/**
 * The underlying source of a {@linkcode GuardedResponse}'s stream, and the state of its body.
 * The stream calls `start`, `pull` and `cancel` with this object as `this`.
 */
class BodyGuard implements UnderlyingDefaultSource<Uint8Array> {
  /** Set once the stream was pulled or cancelled: the body can no longer be read whole. */
  touched = false;
  /** Set once the body was read straight from the original response. */
  readWhole = false;
  /** Whether the body may be read straight from the original response. */
  readonly wholeAllowed: boolean;
  #response: Response;
  #source: ReadableStream<Uint8Array>;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #url: string;
  #label: string;
  #status: number;
  #attempts: number;
  #signal: AbortSignal | undefined;
  #callerSignal: AbortSignal | undefined;
  #abort: (reason: unknown) => void;
  #timeout: number;
  #maxBodyBytes: number;
  #startTimer: (ms: number, onFire: () => void) => () => void;
  #onSettle: () => void;
  #received = 0;
  #settled = false;
  #stalled = false;
  /** What the body failed with, once it did. */
  #error: unknown;
  /** Ends a read of the whole body with a failure. */
  #stopWhole: ((error: unknown) => void) | undefined;
  #stopIdle: () => void = noop;
  #output: ReadableStreamDefaultController<Uint8Array> | undefined;
  #onAbort = (): void => this.#fail(this.#abortReason());
  #onIdle = (): void => {
    this.#stalled = true;
    this.#abort(new DOMException(`No body data within ${this.#timeout} ms`, "TimeoutError"));
  };

  constructor(
    response: Response,
    source: ReadableStream<Uint8Array>,
    options: GuardedResponseOptions,
  ) {
    this.#response = response;
    this.#source = source;
    this.#url = options.url ?? response.url;
    this.#label = `${options.method ?? "GET"} ${this.#url}`;
    this.#status = response.status;
    this.#attempts = options.attempts ?? 1;
    this.#signal = options.signal;
    this.#callerSignal = options.callerSignal;
    this.#abort = options.abort ?? ((reason) => this.#fail(this.#stallError(reason)));
    this.#timeout = options.timeout ?? Infinity;
    this.#maxBodyBytes = options.maxBodyBytes ?? Infinity;
    this.#startTimer = options.startTimer ?? defaultTimer;
    this.#onSettle = options.onSettle ?? noop;
    // Without a Content-Encoding the declared length is the length of the bytes read.
    const length = parseContentLength(response.headers.get("content-length"));
    this.wholeAllowed = length !== undefined && length <= WHOLE_BODY_MAX &&
      !response.headers.has("content-encoding");
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#output = controller;
    const signal = this.#signal;
    if (signal === undefined) return;
    if (signal.aborted) this.#onAbort();
    else signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    this.touched = true;
    if (this.#settled) return;
    this.#stopIdle = this.#startTimer(this.#timeout, this.#onIdle);
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await (this.#reader ??= this.#source.getReader()).read();
    } catch (error) {
      return this.#fail(this.#signal?.aborted ? this.#abortReason() : this.#readFailure(error));
    } finally {
      this.#stopIdle();
      this.#stopIdle = noop;
    }
    if (this.#settled) return;
    if (result.done) {
      this.#settle();
      controller.close();
      return;
    }
    this.#received += result.value.byteLength;
    if (this.#received > this.#maxBodyBytes) return this.#fail(this.#tooLarge());
    controller.enqueue(result.value);
  }

  cancel(reason: unknown): Promise<void> | undefined {
    this.touched = true;
    if (!this.#settle()) return;
    return (this.#reader ?? this.#source).cancel(reason);
  }

  /** Reads the whole body straight from the original response, under the same rules. */
  async readAll(): Promise<ArrayBuffer | undefined> {
    if (this.touched || this.#settled) return undefined;
    this.touched = true;
    this.#stopIdle = this.#startTimer(this.#timeout, this.#onIdle);
    let bytes: ArrayBuffer;
    try {
      // A failure (an abort, a stall) ends the read even if `abort` cannot stop the original.
      // (Not Promise.withResolvers: Node 20 lacks it.)
      const failed = new Promise<never>((_, reject) => this.#stopWhole = reject);
      bytes = await Promise.race([this.#response.arrayBuffer(), failed]);
    } catch (error) {
      if (this.#error !== undefined) throw this.#error;
      const failure = this.#signal?.aborted ? this.#abortReason() : this.#readFailure(error);
      this.#fail(failure);
      throw failure;
    } finally {
      // `failed` never settles, and its reaction holds the race's promise, whose value is the
      // body. Left reachable from here, each body read whole lives as long as this response
      // object, not as long as its caller keeps it (about 20 MB more peak RSS in
      // `bench/fetch_list.ts`).
      this.#stopWhole = undefined;
    }
    // An abort or a stall won the race: the body failed although its bytes arrived.
    if (this.#error !== undefined) throw this.#error;
    if (bytes.byteLength > this.#maxBodyBytes) {
      const failure = this.#tooLarge();
      this.#fail(failure);
      throw failure;
    }
    this.#settle();
    this.readWhole = true;
    // The stream stands for the body just read: reading it again is an error, as with any
    // used body.
    this.#output?.error(new TypeError(`The response body of ${this.#label} was already read`));
    return bytes;
  }

  /** Marks the body done with, once; `false` when it already was. */
  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#stopIdle();
    this.#stopIdle = noop;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#onSettle();
    return true;
  }

  #fail(error: unknown): void {
    if (!this.#settle()) return;
    this.#error = error;
    this.#stopWhole?.(error);
    this.#output?.error(error);
    (this.#reader ?? this.#source).cancel(error).catch(noop);
  }

  /** Why `signal` aborted: the caller's reason, a stall, or another abort. */
  #abortReason(): unknown {
    const caller = this.#callerSignal;
    if (caller?.aborted) return caller.reason;
    const reason = this.#signal?.reason;
    if (this.#stalled) return this.#stallError(reason);
    return new HttpError(`The response body of ${this.#label} was aborted`, this.#url, {
      status: this.#status,
      attempts: this.#attempts,
      cause: reason,
    });
  }

  #stallError(cause: unknown): HttpError {
    return new HttpError(
      `The response body of ${this.#label} stalled: no data for ${this.#timeout} ms`,
      this.#url,
      { status: this.#status, attempts: this.#attempts, cause },
    );
  }

  #readFailure(error: unknown): HttpError {
    return new HttpError(`Reading the response body of ${this.#label} failed`, this.#url, {
      status: this.#status,
      attempts: this.#attempts,
      cause: error,
    });
  }

  #tooLarge(): HttpError {
    return new HttpError(
      `The response body of ${this.#label} is more than 'maxBodyBytes' (${this.#maxBodyBytes} bytes)`,
      this.#url,
      { status: this.#status, attempts: this.#attempts },
    );
  }
}
