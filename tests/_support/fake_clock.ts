/**
 * The one fake {@linkcode Clock} for tests: time moves only when the test advances it or when
 * code sleeps, and every sleep asked for is recorded.
 *
 * @module
 */

import type { Clock } from "../../src/clock.ts";

/** Options for {@linkcode FakeClock}. */
export interface FakeClockOptions {
  /**
   * Where time starts, in milliseconds since the Unix epoch.
   *
   * @default {1_700_000_000_000}
   */
  now?: number;
  /**
   * When true, a sleep stays pending until {@linkcode FakeClock.advance} moves time to its end
   * (or its signal aborts it); when false, a sleep resolves at once and moves time forward by
   * its length.
   *
   * @default {false}
   */
  manual?: boolean;
}

/**
 * A clock whose time the test drives. By default sleeps cost nothing: a sleep resolves at once
 * and moves time forward by what was asked, so backoffs and rate limits run instantly and a test
 * checks them in {@linkcode FakeClock.sleeps}. With `manual: true`, sleeps wait for
 * {@linkcode FakeClock.advance}, for tests that look at what happens during a wait.
 *
 * It has no `timer()`, so code that can use one goes through `sleep()` and is recorded.
 *
 * @example Automatic and manual sleeps
 * ```ts
 * import assert from "node:assert/strict";
 * import { FakeClock } from "./fake_clock.ts";
 *
 * const auto = new FakeClock({ now: 0 });
 * await auto.sleep(250);
 * assert.equal(auto.now(), 250);
 * assert.deepEqual(auto.sleeps, [250]);
 *
 * const manual = new FakeClock({ now: 0, manual: true });
 * const woken = manual.sleep(100);
 * assert.equal(manual.pending, 1);
 * manual.advance(100);
 * await woken;
 * assert.equal(manual.pending, 0);
 * ```
 */
export class FakeClock implements Clock {
  /** The length of every sleep asked for, in order, including sleeps that were aborted. */
  readonly sleeps: number[] = [];
  #now: number;
  #manual: boolean;
  #pending: { until: number; resolve: () => void }[] = [];

  /** Starts the clock at `options.now`. */
  constructor(options: FakeClockOptions = {}) {
    this.#now = options.now ?? 1_700_000_000_000;
    this.#manual = options.manual ?? false;
  }

  /** How many sleeps are waiting for time to reach their end (manual mode only). */
  get pending(): number {
    return this.#pending.length;
  }

  /** The current fake time. */
  now(): number {
    return this.#now;
  }

  /** Records `ms`, then resolves at once (moving time forward) or, in manual mode, once time
   * reaches its end; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.#manual) {
      this.#now += Math.max(0, ms);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const entry = {
        until: this.#now + ms,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#pending = this.#pending.filter((other) => other !== entry);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.push(entry);
    });
  }

  /** Moves time forward by `ms` and resolves the pending sleeps whose end it reached. */
  advance(ms: number): void {
    this.#now += ms;
    const due = this.#pending.filter((entry) => entry.until <= this.#now);
    this.#pending = this.#pending.filter((entry) => entry.until > this.#now);
    for (const entry of due) entry.resolve();
  }
}
