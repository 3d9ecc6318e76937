/**
 * The clock capability: the current time and a cancellable sleep. Core code takes a clock
 * instead of calling `Date.now()` or `setTimeout` so tests can drive time.
 *
 * @module
 */

/** A source of time. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `onFire` after `ms` milliseconds unless the returned function is called first.
   * Optional: a cheaper way to the same end as a `sleep` aborted before it ends, for code
   * that arms and cancels many timers. */
  timer?(ms: number, onFire: () => void): () => void;
}

/**
 * The real clock, backed by `Date.now()` and `setTimeout`.
 *
 * @example Sleep for a moment
 * ```ts
 * import { systemClock } from "./clock.ts";
 * const before = systemClock.now();
 * await systemClock.sleep(1);
 * console.assert(systemClock.now() >= before);
 * ```
 */
export const systemClock: Clock = {
  now(): number {
    return Date.now();
  },
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
  timer(ms: number, onFire: () => void): () => void {
    const timer = setTimeout(onFire, Math.max(0, ms));
    return () => clearTimeout(timer);
  },
};
