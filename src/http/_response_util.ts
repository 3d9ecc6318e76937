/**
 * Small helpers of the HTTP client.
 *
 * @module
 */

import { randomHex } from "../_util/hex.ts";

/** Cancels a body the caller will never see. */
export function discard(response: Response): void {
  if (response.body !== null && !response.bodyUsed) response.body.cancel().catch(noop);
}

/** Does nothing. */
export function noop(): void {}

/** Random hex for a W3C trace or span id, never all zero (trace context forbids it). */
export function randomId(byteCount: number): string {
  for (;;) {
    const id = randomHex(byteCount);
    if (!/^0+$/.test(id)) return id;
  }
}
