/**
 * Stream helpers of the cache: a stream's first bytes read ahead, a stream of bytes in hand.
 *
 * @module
 */

import { concatBytes } from "../_util/bytes.ts";

/** Reads at most `limit + 1` bytes, returning them and a reader for the rest. */
export async function readPrefix(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<{ head: Uint8Array; done: boolean; reader: ReadableStreamDefaultReader<Uint8Array> }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  while (length <= limit) {
    const { value, done } = await reader.read();
    if (done) {
      return { head: concatBytes(chunks), done: true, reader };
    }
    chunks.push(value);
    length += value.length;
  }
  return { head: concatBytes(chunks), done: false, reader };
}

/** A stream of `head`, then what `reader` reads. */
export function prepended(
  head: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  let first = true;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        first = false;
        controller.enqueue(head);
        return;
      }
      const { value, done } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Whether two byte arrays hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A stream of `bytes` in one chunk. */
export function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.length > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}
