/**
 * The worker's retry policy, the same on every queue engine: which failures are worth another
 * attempt, and how long to wait before it.
 *
 * - Transient: network errors, timeouts, 404, 408, 429 and 5xx answers, bodies cut short and
 *   bad pages, storage failures, and anything unknown. Retried up to `maxAttempts` deliveries
 *   in all, after `min(maxDelayMs, baseDelayMs * 2^(attempt - 1))` with "equal jitter" (half of
 *   it fixed, half random), or after the server's `Retry-After` when that is longer.
 * - Permanent: an invalid payload ({@linkcode PermanentError}, `WorkItemError`) and any other
 *   4xx answer. Dead at once.
 *
 * @module
 */

import { HttpError } from "../http/errors.ts";
import { WorkItemError } from "./items.ts";

/** A failure that no retry can fix: the item goes to the dead letters at once. */
export class PermanentError extends Error {
  /** Always `PermanentError`. */
  override name: string = "PermanentError";
}

/** How failures are retried. */
export interface RetryPolicy {
  /** Deliveries in all before an item is dead.
   * @default {5} */
  maxAttempts: number;
  /** The first retry's delay before jitter, in ms.
   * @default {1000} */
  baseDelayMs: number;
  /** The longest delay, in ms (a `Retry-After` may ask for more, up to ten times this).
   * @default {300000} */
  maxDelayMs: number;
}

/** The default {@linkcode RetryPolicy}. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  maxAttempts: 5,
  baseDelayMs: 1000,
  maxDelayMs: 300_000,
};

/** What a failure means for its item. */
export interface Classified {
  /** Another attempt may succeed. */
  transient: boolean;
  /** The wait the server asked for, in ms. */
  retryAfterMs: number | undefined;
  /** A one-line message for the status record. */
  message: string;
}

/**
 * Classifies a failure: see the module documentation.
 *
 * @param error What the handler threw.
 * @returns Whether it is transient, the `Retry-After` and a message.
 *
 * @example
 * ```ts
 * import { classifyFailure } from "./retry.ts";
 * import { HttpError } from "../http/errors.ts";
 * console.assert(classifyFailure(new HttpError("GET failed", "http://x/", { status: 503 })).transient);
 * console.assert(!classifyFailure(new HttpError("GET failed", "http://x/", { status: 403 })).transient);
 * ```
 */
export function classifyFailure(error: unknown): Classified {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof PermanentError || error instanceof WorkItemError) {
    return { transient: false, retryAfterMs: undefined, message };
  }
  if (error instanceof HttpError) {
    const status = error.status;
    const transient = status === undefined || status === 404 || status === 408 ||
      status === 429 || status >= 500 || status < 400;
    return { transient, retryAfterMs: error.retryAfter, message };
  }
  return { transient: true, retryAfterMs: undefined, message };
}

/**
 * The delay before the next delivery of an item that failed `attempts` times.
 *
 * @param policy The policy.
 * @param attempts Failed deliveries so far (from 1).
 * @param retryAfterMs The server's `Retry-After`, if any.
 * @param random A source of numbers in [0, 1).
 * @returns The delay in ms.
 *
 * @example
 * ```ts
 * import { DEFAULT_RETRY_POLICY, retryDelay } from "./retry.ts";
 * const delay = retryDelay(DEFAULT_RETRY_POLICY, 2, undefined, () => 0.5);
 * console.assert(delay === 1500); // 2000 ms: 1000 fixed, 500 of the random 1000
 * console.assert(retryDelay(DEFAULT_RETRY_POLICY, 1, 9000, Math.random) === 9000);
 * ```
 */
export function retryDelay(
  policy: RetryPolicy,
  attempts: number,
  retryAfterMs: number | undefined,
  random: () => number,
): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempts - 1));
  const jittered = Math.round(exponential / 2 + random() * (exponential / 2));
  if (retryAfterMs === undefined) return jittered;
  return Math.max(jittered, Math.min(retryAfterMs, policy.maxDelayMs * 10));
}

/**
 * Checks a partial policy and fills in the defaults.
 *
 * @param policy What was given.
 * @returns The whole policy.
 * @throws {RangeError} When a value is not a positive integer (`baseDelayMs`: non-negative).
 */
export function retryPolicy(policy: Partial<RetryPolicy> = {}): RetryPolicy {
  const whole = { ...DEFAULT_RETRY_POLICY, ...policy };
  for (const [key, value] of Object.entries(whole)) {
    const least = key === "maxAttempts" ? 1 : 0;
    if (!Number.isSafeInteger(value) || value < least) {
      throw new RangeError(
        `Cannot use the retry policy: '${key}' must be an integer of at least ${least}, received ${value}`,
      );
    }
  }
  return whole;
}
