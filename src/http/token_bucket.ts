/**
 * A clock-driven token bucket: at most `rate` tokens a second on average, with bursts of up to
 * `burst` tokens, plus a penalty window ({@linkcode TokenBucket.pauseUntil}) during which no
 * token is handed out at all.
 *
 * The bucket is implemented as a generic cell rate algorithm: instead of counting tokens it keeps
 * the theoretical arrival time of the next token, and every {@linkcode TokenBucket.take} reserves
 * a slot in time and sleeps (on the injected {@linkcode Clock}) until it arrives. Reservations are
 * first come, first served. A penalty window also empties the bucket, so when the window ends
 * requests resume at the steady rate instead of all firing at once.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { describe } from "../_util/describe.ts";

/** Options for {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** The most tokens that can be taken at once after a quiet period; a number of at least 1.
   * @default {Math.max(1, rate)} */
  burst?: number;
  /** The clock that measures time and sleeps.
   * @default {systemClock} */
  clock?: Clock;
}

/**
 * Hands out tokens at a steady rate, with bursts and pauses.
 *
 * @example Three tokens at two a second, burst of one
 * ```ts
 * import { TokenBucket } from "./token_bucket.ts";
 * let now = 0;
 * const slept: number[] = [];
 * const clock = {
 *   now: () => now,
 *   sleep: (ms: number) => {
 *     slept.push(ms);
 *     now += ms;
 *     return Promise.resolve();
 *   },
 * };
 * const bucket = new TokenBucket(2, { burst: 1, clock });
 * await bucket.take();
 * await bucket.take();
 * await bucket.take();
 * console.assert(slept.join() === "500,500");
 * ```
 */
export class TokenBucket {
  #clock: Clock;
  #rate: number;
  #burst: number;
  /** Milliseconds between tokens at the steady rate; 0 when unlimited. */
  #interval: number;
  /** How far ahead of the steady schedule a burst may run, in milliseconds. */
  #tolerance: number;
  /** The theoretical arrival time of the next token. */
  #tat = -Infinity;
  #pausedUntil = -Infinity;

  /**
   * Creates a bucket.
   *
   * @param rate Tokens per second; a positive number, `Infinity` for no limit (only
   *   {@linkcode TokenBucket.pauseUntil} then makes {@linkcode TokenBucket.take} wait).
   * @param options Burst size and clock.
   * @throws {TypeError} When `rate`, `burst` or `clock` has the wrong type.
   * @throws {RangeError} When `rate` is not positive or `burst` is less than 1 or not finite.
   */
  constructor(rate: number, options: TokenBucketOptions = {}) {
    if (typeof rate !== "number") {
      throw new TypeError(
        `Cannot create token bucket: 'rate' must be a number, received ${describe(rate)}`,
      );
    }
    if (!(rate > 0)) {
      throw new RangeError(
        `Cannot create token bucket: 'rate' must be a positive number, received ${describe(rate)}`,
      );
    }
    const burst = options.burst ?? Math.max(1, rate);
    if (typeof burst !== "number") {
      throw new TypeError(
        `Cannot create token bucket: 'burst' must be a number, received ${describe(burst)}`,
      );
    }
    if (!(burst >= 1) || (burst === Infinity && rate !== Infinity)) {
      throw new RangeError(
        `Cannot create token bucket: 'burst' must be a finite number of at least 1, received ${
          describe(burst)
        }`,
      );
    }
    const clock = options.clock ?? systemClock;
    if (
      typeof clock !== "object" || clock === null || typeof clock.now !== "function" ||
      typeof clock.sleep !== "function"
    ) {
      throw new TypeError(
        `Cannot create token bucket: 'clock' must have now() and sleep() methods, received ${
          describe(clock)
        }`,
      );
    }
    this.#clock = clock;
    this.#rate = rate;
    this.#burst = burst;
    this.#interval = rate === Infinity ? 0 : 1000 / rate;
    this.#tolerance = rate === Infinity ? 0 : (burst - 1) * this.#interval;
  }

  /** Tokens per second (`Infinity` when unlimited). */
  get rate(): number {
    return this.#rate;
  }

  /** The burst size. */
  get burst(): number {
    return this.#burst;
  }

  /** The end of the current penalty window (ms since the epoch), `-Infinity` when none was set. */
  get pausedUntil(): number {
    return this.#pausedUntil;
  }

  /**
   * Waits for a token and takes it. Waiters are served in the order they called.
   *
   * @param signal Aborts the wait; the token reserved for this call is then given back when no
   *   later call has reserved one since.
   * @returns Resolves once the token is taken.
   * @throws The signal's reason when it aborts.
   */
  async take(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    for (;;) {
      const now = this.#clock.now();
      let wait: number;
      let reserved: number | undefined;
      if (this.#interval === 0) {
        wait = this.#pausedUntil - now;
      } else {
        const tat = Math.max(this.#tat, now);
        wait = Math.max(tat - this.#tolerance, this.#pausedUntil) - now;
        this.#tat = tat + this.#interval;
        reserved = this.#tat;
      }
      if (!(wait > 0)) return;
      const pausedUntil = this.#pausedUntil;
      try {
        await this.#clock.sleep(wait, signal);
      } catch (error) {
        if (reserved !== undefined && this.#tat === reserved) this.#tat -= this.#interval;
        throw error;
      }
      // A penalty window set (or extended) while this call slept: wait for it with a new
      // reservation. (Only then: a clock whose now() lags its sleeps must not spin here.)
      if (this.#pausedUntil === pausedUntil || !(this.#pausedUntil > this.#clock.now())) return;
    }
  }

  /**
   * Hands out no token before `time` and empties the bucket, so that after the window tokens
   * come at the steady rate. A window never shrinks: an earlier `time` than the current end is
   * ignored.
   *
   * @param time The end of the penalty window, in the clock's milliseconds since the epoch.
   * @throws {TypeError} When `time` is not a number.
   * @throws {RangeError} When `time` is not finite.
   *
   * @example Hold every taker for a penalty window
   * ```ts
   * import { TokenBucket } from "./token_bucket.ts";
   * let now = 1_000;
   * const slept: number[] = [];
   * const clock = {
   *   now: () => now,
   *   sleep: (ms: number) => {
   *     slept.push(ms);
   *     now += ms;
   *     return Promise.resolve();
   *   },
   * };
   * const bucket = new TokenBucket(Infinity, { clock });
   * bucket.pauseUntil(now + 5_000);
   * await bucket.take();
   * console.assert(slept.join() === "5000");
   * ```
   */
  pauseUntil(time: number): void {
    if (typeof time !== "number") {
      throw new TypeError(
        `Cannot pause token bucket: 'time' must be a number, received ${describe(time)}`,
      );
    }
    if (!Number.isFinite(time)) {
      throw new RangeError(
        `Cannot pause token bucket: 'time' must be a finite number, received ${describe(time)}`,
      );
    }
    if (time <= this.#pausedUntil) return;
    this.#pausedUntil = time;
    if (this.#interval !== 0) this.#tat = Math.max(this.#tat, time + this.#tolerance);
  }
}
