/**
 * Abort signals.
 *
 * @module
 */

/**
 * A signal that aborts with either the caller's signal or a controller of one's own.
 *
 * @param signal The caller's signal, if any.
 * @param stop A controller of one's own.
 * @returns The signal.
 *
 * @example
 * ```ts
 * import { withStop } from "./signals.ts";
 * const caller = new AbortController();
 * const signal = withStop(caller.signal, new AbortController());
 * caller.abort();
 * console.assert(signal.aborted);
 * ```
 */
export function withStop(signal: AbortSignal | undefined, stop: AbortController): AbortSignal {
  return signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
}
