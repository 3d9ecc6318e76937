/**
 * Body encodings: how a cached body is stored (`identity`, the bytes as they are, or `gzip`).
 *
 * gzip is the one compressed encoding every runtime this module targets decodes and encodes
 * natively through the web-standard `DecompressionStream` / `CompressionStream` (Deno, Node 18+,
 * Cloudflare Workers, Fastly Compute, browsers), and the one npm's registry sends and npm's
 * clients accept. Brotli and zstd compress JSON better but have no web-standard stream on these
 * runtimes (`"brotli"` is not a `CompressionFormat` in Deno 2.9 nor Node 20; zstd nowhere), so
 * they would need a WebAssembly codec on the hot path.
 *
 * @module
 */

/** How a body is stored: `identity` (as is) or `gzip` (RFC 1952). */
export type BodyEncoding = "identity" | "gzip";

/** The encodings, for validating options. */
export const BODY_ENCODINGS: readonly BodyEncoding[] = ["identity", "gzip"];

/**
 * Whether `value` names a body encoding.
 *
 * @param value Anything.
 * @returns `true` for `identity` and `gzip`.
 *
 * @example
 * ```ts
 * import { isBodyEncoding } from "./encoding.ts";
 * console.assert(isBodyEncoding("gzip") && !isBodyEncoding("br"));
 * ```
 */
export function isBodyEncoding(value: unknown): value is BodyEncoding {
  return value === "identity" || value === "gzip";
}

/**
 * A stream that gzips what goes through it (`CompressionStream`).
 *
 * @returns The transform.
 *
 * @example
 * ```ts
 * import { gunzipStream, gzipStream } from "./encoding.ts";
 * const text = await new Response(
 *   new Response("hello").body!.pipeThrough(gzipStream()).pipeThrough(gunzipStream()),
 * ).text();
 * console.assert(text === "hello");
 * ```
 */
export function gzipStream(): TransformStream<Uint8Array, Uint8Array> {
  return new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/**
 * A stream that decodes gzip (`DecompressionStream`). It errors with a `TypeError` on bytes that
 * are not a whole gzip member.
 *
 * @returns The transform.
 */
export function gunzipStream(): TransformStream<Uint8Array, Uint8Array> {
  return new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/**
 * A pass-through stream that counts the bytes going through it.
 *
 * @returns The stream, and `count()` for the bytes seen so far.
 */
export function counting(): {
  stream: TransformStream<Uint8Array, Uint8Array>;
  count: () => number;
} {
  let size = 0;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      size += chunk.length;
      controller.enqueue(chunk);
    },
  });
  return { stream, count: () => size };
}
