/**
 * Integrity of cache bodies: `sha256-<base64>` (the Subresource Integrity form), computed with an
 * incremental SHA-256 as bytes stream past, and checked again on the way out.
 *
 * Web standards have no incremental digest, so the default hasher is a SHA-256 in plain
 * TypeScript (`../_util/sha256.ts`); an entry point may inject its runtime's native one
 * (`createHash("sha256")` from `node:crypto` on Deno and Node is several times faster).
 *
 * @module
 */

import { Sha256 } from "../_util/sha256.ts";

/** An incremental SHA-256: what `CacheOptions.createHash` returns. */
export interface Sha256Hasher {
  /** Adds bytes. */
  update(data: Uint8Array): unknown;
  /** The 32-byte digest of everything added. */
  digest(): Uint8Array;
}

/**
 * The default {@linkcode Sha256Hasher}: a SHA-256 in plain TypeScript.
 *
 * @returns A new hasher.
 *
 * @example
 * ```ts
 * import { createSha256, sha256Integrity } from "./integrity.ts";
 * const hash = createSha256();
 * hash.update(new TextEncoder().encode("a"));
 * hash.update(new TextEncoder().encode("bc"));
 * console.assert(
 *   sha256Integrity(hash.digest()) === "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
 * );
 * ```
 */
export function createSha256(): Sha256Hasher {
  return new Sha256();
}

/**
 * Formats a SHA-256 digest as a Subresource Integrity string.
 *
 * @param digest The 32-byte digest.
 * @returns `sha256-` followed by the base64 digest.
 * @throws {RangeError} When `digest` is not 32 bytes long.
 *
 * @example
 * ```ts
 * import { sha256Integrity } from "./integrity.ts";
 * const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(0)));
 * console.assert(
 *   sha256Integrity(digest) === "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
 * );
 * ```
 */
export function sha256Integrity(digest: Uint8Array): string {
  if (digest.length !== 32) {
    throw new RangeError(
      `Cannot format SHA-256 integrity: 'digest' must be 32 bytes, received ${digest.length}`,
    );
  }
  let binary = "";
  for (let i = 0; i < digest.length; i++) binary += String.fromCharCode(digest[i]!);
  return `sha256-${btoa(binary)}`;
}

/**
 * The integrity of a whole body. In memory already, so hashed in one call: with `createHash`
 * when one is given (a native incremental hash is cheaper than a round trip through
 * `crypto.subtle` for the small bodies stored inline), else with WebCrypto.
 *
 * @param bytes The body.
 * @param createHash The injected hasher, if any.
 * @returns `sha256-<base64>` of the bytes.
 */
export async function integrityOf(
  bytes: Uint8Array,
  createHash: (() => Sha256Hasher) | undefined,
): Promise<string> {
  if (createHash) {
    const hash = createHash();
    hash.update(bytes);
    return sha256Integrity(hash.digest());
  }
  const view = bytes.buffer instanceof ArrayBuffer
    ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    : bytes.slice();
  return sha256Integrity(
    new Uint8Array(await crypto.subtle.digest("SHA-256", view as Uint8Array<ArrayBuffer>)),
  );
}

/** What {@linkcode measuring} saw. */
export interface Measured {
  /** `sha256-<base64>` of the bytes. */
  integrity: string;
  /** How many bytes. */
  size: number;
}

/**
 * A pass-through stream that hashes and counts the bytes going through it.
 *
 * @param createHash Makes the hasher.
 * @returns The stream, and `result()` to call once it has ended.
 */
export function measuring(createHash: () => Sha256Hasher): {
  stream: TransformStream<Uint8Array, Uint8Array>;
  result: () => Measured;
} {
  const hash = createHash();
  let size = 0;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      size += chunk.length;
      controller.enqueue(chunk);
    },
  });
  return { stream, result: () => ({ integrity: sha256Integrity(hash.digest()), size }) };
}

/** Raised by a body stream whose bytes do not match the entry's integrity. */
export class CacheIntegrityError extends Error {
  /** The error name. */
  override name = "CacheIntegrityError";
  /** The key of the entry. */
  key: string;
  /**
   * Creates the error.
   *
   * @param key The key of the entry.
   * @param message What was wrong.
   */
  constructor(key: string, message: string) {
    super(message);
    this.key = key;
  }
}

/**
 * A pass-through stream that checks the bytes against an expected integrity and size. It
 * withholds the last chunk until the end, and errors with a {@linkcode CacheIntegrityError}
 * instead of passing it on when the bytes are wrong, so a reader never sees a whole wrong body.
 *
 * @param key The entry key, for the error.
 * @param expected The integrity and size the bytes must have.
 * @param createHash Makes the hasher.
 * @returns The stream.
 */
export function verifying(
  key: string,
  expected: Measured,
  createHash: () => Sha256Hasher,
): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash();
  let size = 0;
  let held: Uint8Array | undefined;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      size += chunk.length;
      if (held) controller.enqueue(held);
      held = chunk;
    },
    flush(controller) {
      const integrity = sha256Integrity(hash.digest());
      if (size !== expected.size || integrity !== expected.integrity) {
        controller.error(
          new CacheIntegrityError(key, `Cache entry '${key}' is corrupt: the body changed`),
        );
        return;
      }
      if (held) controller.enqueue(held);
    },
  });
}
