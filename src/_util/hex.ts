/**
 * Lowercase hex: the one encoder of bytes as hex digits that every module uses.
 *
 * @module
 */

const DIGITS: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/**
 * Lowercase hex of bytes, two digits per byte.
 *
 * @param bytes Any bytes (an `ArrayBuffer` is read whole).
 * @returns The hex digits.
 *
 * @example
 * ```ts
 * import { bytesToHex } from "./hex.ts";
 * console.assert(bytesToHex(new Uint8Array([0, 171, 255])) === "00abff");
 * ```
 */
export function bytesToHex(bytes: Uint8Array | ArrayBuffer): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (let i = 0; i < view.length; i++) out += DIGITS[view[i]!];
  return out;
}

/**
 * Random lowercase hex from the platform's cryptographic random source.
 *
 * @param byteCount How many random bytes (the result has twice as many digits).
 * @returns The hex digits.
 *
 * @example
 * ```ts
 * import { randomHex } from "./hex.ts";
 * console.assert(/^[0-9a-f]{16}$/.test(randomHex(8)));
 * ```
 */
export function randomHex(byteCount: number): string {
  return bytesToHex(crypto.getRandomValues(new Uint8Array(byteCount)));
}
