/**
 * What the drivers over edge key-value stores share (Workers KV, Fastly's KV Store): values read
 * and written whole, with a size limit, lists narrowed to the longest prefix a range allows, and
 * a failing binding reported as a {@linkcode StorageError}.
 *
 * @module
 */

import { StorageError } from "../src/storage/driver.ts";
import { concatBytes } from "../src/_util/bytes.ts";

/** `bytes` as a stream of one chunk (none when empty). */
export function oneChunkStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller): void {
      if (bytes.byteLength > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}

/**
 * Reads a stream whole, failing (and cancelling it) as soon as it passes `maxBytes`.
 *
 * @param stream The value.
 * @param maxBytes The most the store takes.
 * @param tooLarge The error to throw once it is passed.
 * @returns The bytes.
 */
export async function readBounded(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.byteLength;
      if (length > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return concatBytes(chunks);
}

/**
 * The prefix to list by for a list call: `prefix`, or the longer prefix that every key from
 * `start` (inclusive) to `end` (exclusive) shares when there is one.
 */
export function narrowListPrefix(
  prefix: string,
  start: string | undefined,
  end: string | undefined,
): string {
  if (start === undefined || end === undefined) return prefix;
  const common = commonPrefix(start, end);
  return common.length > prefix.length && common.startsWith(prefix) ? common : prefix;
}

/** The longest common prefix of two strings, never splitting a surrogate pair. */
function commonPrefix(a: string, b: string): string {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  // Do not end between the halves of a pair.
  if (i > 0 && i < a.length) {
    const last = a.charCodeAt(i - 1);
    if (last >= 0xd800 && last <= 0xdbff) i--;
  }
  return a.slice(0, i);
}

/**
 * A binding call that threw, as a {@linkcode StorageError}.
 *
 * @param driver The driver's name.
 * @param store The store, as the message names it ("Workers KV").
 * @param op What was done.
 * @param key The key, or `undefined` for a list.
 * @param error What the binding threw.
 * @returns The error to throw.
 */
export function bindingFailure(
  driver: string,
  store: string,
  op: string,
  key: string | undefined,
  error: unknown,
): StorageError {
  const what = key === undefined ? "keys" : `key ${JSON.stringify(key)}`;
  const reason = error instanceof Error ? error.message : String(error);
  return new StorageError(`Cannot ${op} ${what}: ${store} failed: ${reason}`, {
    driver,
    ...(key === undefined ? {} : { key }),
    cause: error,
  });
}
