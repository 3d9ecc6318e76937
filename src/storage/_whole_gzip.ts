/**
 * Gzip bodies small enough to handle whole: read, checked and decoded in one call each rather
 * than as a stream of chunks (several times cheaper through the runtime's zlib), and so never
 * read twice. What counts as small is {@linkcode WHOLE_GZIP_MAX}, on both sides of the encoding.
 *
 * @module
 */

import type { StorageDriver } from "./driver.ts";
import type { RecordHeader } from "./record.ts";
import { integrityOf, type Sha256Hasher } from "./integrity.ts";

/**
 * The longest body `CacheOptions.gzipSync` compresses in one call, and the longest (stored and
 * decoded) that `CacheOptions.gunzipSync` decodes in one call when read: a partition of 10,000s
 * of rows is one call, a 100 MB packument streams.
 */
export const WHOLE_GZIP_MAX = 8 * 1024 * 1024;

/** Why a stored gzip body cannot be served. */
export const NOT_GZIP = "body is not valid gzip";

/**
 * Whether a gzip body stored apart is read whole: both its stored and its decoded size are at
 * most {@linkcode WHOLE_GZIP_MAX} (for the caller that has a whole decoder).
 */
export function readsWhole(header: RecordHeader, decodedSize: number | undefined): boolean {
  return header.encoding === "gzip" &&
    header.size <= WHOLE_GZIP_MAX && decodedSize !== undefined && decodedSize <= WHOLE_GZIP_MAX;
}

/**
 * Reads a gzip body stored apart whole, checks it against its record and decodes it (unless
 * `gunzipSync` is `undefined`: the stored bytes are then checked against their integrity only,
 * for a caller that sends them on as they are).
 *
 * @returns The stored and decoded bytes, or why the entry is corrupt.
 */
export async function readWholeGzip(
  driver: StorageDriver,
  bodyKey: string,
  header: RecordHeader,
  createHash: (() => Sha256Hasher) | undefined,
  gunzipSync: ((bytes: Uint8Array) => Uint8Array) | undefined,
): Promise<{ stored: Uint8Array; decoded?: Uint8Array } | { corrupt: string }> {
  const stored = await driver.get(bodyKey);
  if (!stored) return { corrupt: "body is missing" };
  if (
    stored.length !== header.size || (await integrityOf(stored, createHash)) !== header.integrity
  ) {
    return { corrupt: "body does not match its integrity" };
  }
  if (!gunzipSync) return { stored };
  try {
    return { stored, decoded: gunzipSync(stored) };
  } catch {
    // The decoder's own error: the bytes hash right, so they were stored as they are.
    return { corrupt: NOT_GZIP };
  }
}

/**
 * The decoded (or stored) body of {@linkcode readWholeGzip}, read when the stream is first
 * pulled: a caller that never reads the body never reads it (`read` decodes only when `decode`). A corrupt one is reported through
 * `found`, then errors the stream.
 *
 * @param read Reads the body whole.
 * @param decode Whether the stream gives the decoded bytes.
 * @param found Reports the entry corrupt.
 * @param error The error the stream fails with.
 * @returns The stream.
 */
export function wholeGzipStream(
  read: () => ReturnType<typeof readWholeGzip>,
  decode: boolean,
  found: (reason: string) => Promise<void>,
  error: (reason: string) => Error,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const got = await read();
      if ("corrupt" in got) {
        await found(got.corrupt);
        controller.error(error(got.corrupt));
        return;
      }
      const bytes = decode ? got.decoded! : got.stored;
      if (bytes.length > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}
