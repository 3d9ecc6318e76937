/**
 * SHA-256 (FIPS 180-4) in plain TypeScript, one-shot and incremental: the default hash where an
 * entry point injects no native one (`createHash("sha256")` of `node:crypto`). It loads with the
 * module that uses it, with no package to resolve, which keeps every command's start-up short.
 *
 * @module
 */

/** The round constants: the first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes. */
const K = Uint32Array.from([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/** The initial hash value: the first 32 bits of the fractional parts of the square roots of
 * the first 8 primes. */
const IV = [
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
];

/** An incremental SHA-256: bytes in with {@linkcode Sha256.update}, the digest out once. */
export class Sha256 {
  readonly #state = Int32Array.from(IV);
  /** The message schedule, reused for every block. */
  readonly #w = new Int32Array(64);
  /** A block not yet full. */
  readonly #block = new Uint8Array(64);
  #held = 0;
  /** Bytes added so far. */
  #length = 0;
  #done = false;

  /**
   * Adds bytes.
   *
   * @param data The bytes.
   * @returns This hasher.
   * @throws {Error} Once the digest has been taken.
   */
  update(data: Uint8Array): this {
    if (this.#done) throw new Error("Cannot update a SHA-256 whose digest was taken");
    this.#length += data.length;
    let at = 0;
    if (this.#held > 0) {
      const take = Math.min(64 - this.#held, data.length);
      this.#block.set(data.subarray(0, take), this.#held);
      this.#held += take;
      at = take;
      if (this.#held < 64) return this;
      this.#compress(this.#block, 0);
      this.#held = 0;
    }
    for (; at + 64 <= data.length; at += 64) this.#compress(data, at);
    if (at < data.length) {
      this.#block.set(data.subarray(at), 0);
      this.#held = data.length - at;
    }
    return this;
  }

  /**
   * The digest of everything added; the hasher takes no more after.
   *
   * @returns The 32 bytes.
   * @throws {Error} When the digest was taken already.
   */
  digest(): Uint8Array {
    if (this.#done) throw new Error("Cannot take a SHA-256 digest twice");
    this.#done = true;
    const block = this.#block;
    // The padding: a 1 bit, zeros, and the length in bits as 64 bits, big-endian.
    block[this.#held++] = 0x80;
    if (this.#held > 56) {
      block.fill(0, this.#held);
      this.#compress(block, 0);
      this.#held = 0;
    }
    block.fill(0, this.#held);
    const view = new DataView(block.buffer, block.byteOffset, 64);
    const [high, low] = lengthWords(this.#length);
    view.setUint32(56, high);
    view.setUint32(60, low);
    this.#compress(block, 0);
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setInt32(i * 4, this.#state[i]!);
    return out;
  }

  /** Hashes the 64-byte block of `bytes` at `at` into the state. */
  #compress(bytes: Uint8Array, at: number): void {
    const w = this.#w;
    for (let i = 0; i < 16; i++, at += 4) {
      w[i] = (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
    }
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!;
      const b = w[i - 2]!;
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
    }
    const state = this.#state;
    let a = state[0]!, b = state[1]!, c = state[2]!, d = state[3]!;
    let e = state[4]!, f = state[5]!, g = state[6]!, h = state[7]!;
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    state[0] = (state[0]! + a) | 0;
    state[1] = (state[1]! + b) | 0;
    state[2] = (state[2]! + c) | 0;
    state[3] = (state[3]! + d) | 0;
    state[4] = (state[4]! + e) | 0;
    state[5] = (state[5]! + f) | 0;
    state[6] = (state[6]! + g) | 0;
    state[7] = (state[7]! + h) | 0;
  }
}

/**
 * A message length as SHA-256's padding ends with it: the length in bits, as two 32-bit words,
 * the high one first.
 *
 * @param bytes The length in bytes (up to 2^53 / 8).
 * @returns The high and low words.
 *
 * @example
 * ```ts
 * import { lengthWords } from "./sha256.ts";
 * console.assert(lengthWords(3).join() === "0,24");
 * console.assert(lengthWords(2 ** 29 + 1).join() === "1,8");
 * ```
 */
export function lengthWords(bytes: number): [high: number, low: number] {
  const bits = bytes * 8;
  return [Math.floor(bits / 2 ** 32), bits >>> 0];
}

/**
 * The SHA-256 digest of `data`.
 *
 * @param data The bytes.
 * @returns The 32-byte digest.
 *
 * @example
 * ```ts
 * import { sha256 } from "./sha256.ts";
 * import { bytesToHex } from "./hex.ts";
 * const hex = bytesToHex(sha256(new TextEncoder().encode("abc")));
 * console.assert(hex === "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
 * ```
 */
export function sha256(data: Uint8Array): Uint8Array {
  return new Sha256().update(data).digest();
}
