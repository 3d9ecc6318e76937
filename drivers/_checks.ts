/**
 * Argument checks shared by the storage drivers.
 *
 * @module
 */

import { compareKeys } from "../src/storage/driver.ts";
import type { ListOptions } from "../src/storage/driver.ts";

const encoder = new TextEncoder();

/** Throws when `key` is not a well-formed string of at most `maxBytes` UTF-8 bytes. */
export function checkKey(op: string, key: string, maxBytes = Infinity): void {
  if (typeof key !== "string") {
    throw new TypeError(`Cannot ${op} key: key must be a string, received ${typeof key}`);
  }
  if (!key.isWellFormed()) {
    throw new TypeError(
      `Cannot ${op} key: key contains a lone surrogate, received ${JSON.stringify(key)}`,
    );
  }
  // Cheap bound first: a UTF-16 code unit is at most 3 UTF-8 bytes.
  if (key.length * 3 <= maxBytes) return;
  const bytes = encoder.encode(key).byteLength;
  if (bytes > maxBytes) {
    throw new RangeError(
      `Cannot ${op} key: key exceeds ${maxBytes} UTF-8 bytes, received ${bytes}`,
    );
  }
}

/** Validates list options and fills in defaults. */
export function checkListOptions(
  options: ListOptions,
): { prefix: string; start?: string; end?: string; limit: number } {
  const prefix = options.prefix ?? "";
  for (
    const [name, value] of [["prefix", prefix], ["start", options.start], [
      "end",
      options.end,
    ]] as const
  ) {
    if (value === undefined) continue;
    if (typeof value !== "string" || !value.isWellFormed()) {
      throw new TypeError(
        `Cannot list keys: ${name} must be a well-formed string, received ${JSON.stringify(value)}`,
      );
    }
  }
  const limit = options.limit ?? Infinity;
  if (typeof limit !== "number" || !(Number.isInteger(limit) || limit === Infinity) || limit < 0) {
    throw new RangeError(
      `Cannot list keys: limit must be a non-negative integer or Infinity, received ${limit}`,
    );
  }
  const result: { prefix: string; start?: string; end?: string; limit: number } = {
    prefix,
    limit,
  };
  if (options.start !== undefined) result.start = options.start;
  if (options.end !== undefined) result.end = options.end;
  return result;
}

/**
 * Checks a driver's key prefix and gives the key bytes left after it.
 *
 * @param prefix The prefix put before every key.
 * @param maxKeyBytes The store's own key limit, in UTF-8 bytes.
 * @returns How many UTF-8 bytes a key may have.
 * @throws {TypeError} When the prefix is not a well-formed string.
 * @throws {RangeError} When the prefix leaves no room for a key.
 */
export function keyBytesAfterPrefix(prefix: string, maxKeyBytes: number): number {
  checkKey("use", prefix);
  const prefixBytes = new TextEncoder().encode(prefix).byteLength;
  if (prefixBytes >= maxKeyBytes) {
    throw new RangeError(
      `Cannot use key prefix: it must be shorter than ${maxKeyBytes} UTF-8 bytes, ` +
        `received ${prefixBytes}`,
    );
  }
  return maxKeyBytes - prefixBytes;
}

/**
 * Where a name a paged store listed falls in a `list()` call: the driver's key to yield,
 * `undefined` to skip it, or `null` once the listing is past `end`.
 *
 * @param name The stored name, the driver's own prefix included.
 * @param storePrefix The driver's own prefix.
 * @param options The checked list options.
 * @returns The key, `undefined` or `null`.
 */
export function listedKey(
  name: string,
  storePrefix: string,
  options: { prefix: string; start?: string; end?: string },
): string | undefined | null {
  if (!name.startsWith(storePrefix)) return undefined;
  const key = name.slice(storePrefix.length);
  if (!key.startsWith(options.prefix)) return undefined;
  if (options.start !== undefined && compareKeys(key, options.start) < 0) return undefined;
  if (options.end !== undefined && compareKeys(key, options.end) >= 0) return null;
  return key;
}
