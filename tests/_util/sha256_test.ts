import assert from "node:assert/strict";
import { Sha256, sha256Integrity } from "../../src/_util/sha256.ts";
import { prng } from "../_support/packuments.ts";

function randomBytes(length: number, random: () => number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (random() * 256) | 0;
  return bytes;
}

async function webCrypto(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function oneShot(data: Uint8Array): Uint8Array {
  return new Sha256().update(data).digest();
}

Deno.test("Sha256 hashes the empty input", async () => {
  const empty = new Uint8Array(0);
  assert.deepEqual(new Sha256().digest(), await webCrypto(empty));
  assert.equal(
    hex(oneShot(empty)),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("Sha256 hashes 'abc'", async () => {
  const abc = new TextEncoder().encode("abc");
  assert.deepEqual(oneShot(abc), await webCrypto(abc));
  assert.equal(
    hex(oneShot(abc)),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("Sha256 matches the two-block FIPS 180-4 example", () => {
  const input = new TextEncoder().encode(
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
  );
  assert.equal(
    hex(oneShot(input)),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("Sha256 handles lengths around the padding and block boundaries", async () => {
  const random = prng(1);
  const lengths = [1, 55, 56, 57, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129, 191, 192, 1000];
  for (const length of lengths) {
    const data = randomBytes(length, random);
    const expected = await webCrypto(data);
    assert.deepEqual(oneShot(data), expected, `length ${length}, one update`);
    // Byte by byte, which goes through the partial-block buffer every time.
    const hash = new Sha256();
    for (let i = 0; i < length; i++) hash.update(data.subarray(i, i + 1));
    assert.deepEqual(hash.digest(), expected, `length ${length}, byte by byte`);
    // Every split point into two updates.
    for (let split = 0; split <= length && length <= 130; split++) {
      const h = new Sha256().update(data.subarray(0, split)).update(data.subarray(split));
      assert.deepEqual(h.digest(), expected, `length ${length}, split at ${split}`);
    }
  }
});

Deno.test("Sha256 hashes random inputs fed in random-size pieces", async () => {
  for (let seed = 1; seed <= 12; seed++) {
    const random = prng(seed);
    // Mostly modest sizes, plus a few large ones up to 3 MiB.
    const length = seed <= 3 ? 3 * 1024 * 1024 - seed * 7 : (random() * 200_000) | 0;
    const data = randomBytes(length, random);
    const expected = await webCrypto(data);
    const hash = new Sha256();
    let offset = 0;
    let updates = 0;
    while (offset < length) {
      const r = random();
      let piece: number;
      if (r < 0.1) piece = 0;
      else if (r < 0.3) piece = 1;
      else if (r < 0.6) piece = (random() * 130) | 0;
      else if (r < 0.9) piece = (random() * 5000) | 0;
      else piece = (random() * 300_000) | 0;
      piece = Math.min(piece, length - offset);
      hash.update(data.subarray(offset, offset + piece));
      offset += piece;
      updates++;
    }
    hash.update(new Uint8Array(0));
    assert.deepEqual(hash.digest(), expected, `seed ${seed}, length ${length}, ${updates} updates`);
  }
});

Deno.test("Sha256 reads views at a byte offset into a larger buffer", async () => {
  const random = prng(99);
  const backing = randomBytes(10_000, random);
  const view = backing.subarray(3, 9_003);
  const copy = view.slice();
  assert.deepEqual(oneShot(view), await webCrypto(copy));
});

Deno.test("Sha256 update returns the hash for chaining", () => {
  const hash = new Sha256();
  assert.equal(hash.update(new Uint8Array(1)), hash);
});

Deno.test("Sha256 throws on update or digest after digest", () => {
  const hash = new Sha256().update(new Uint8Array(10));
  hash.digest();
  assert.throws(() => hash.update(new Uint8Array(1)), {
    name: "TypeError",
    message: "Cannot update SHA-256 hash: 'digest()' has already been called",
  });
  assert.throws(() => hash.update(new Uint8Array(0)), TypeError);
  assert.throws(() => hash.digest(), {
    name: "TypeError",
    message: "Cannot digest SHA-256 hash: 'digest()' has already been called",
  });
});

Deno.test("sha256Integrity formats digests in SRI form", async () => {
  const random = prng(7);
  for (const length of [0, 3, 64, 4096]) {
    const data = randomBytes(length, random);
    const expected = await webCrypto(data);
    const base64 = btoa(String.fromCharCode(...expected));
    assert.equal(sha256Integrity(oneShot(data)), `sha256-${base64}`);
  }
  assert.equal(
    sha256Integrity(oneShot(new TextEncoder().encode("abc"))),
    "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
  );
});

Deno.test("sha256Integrity rejects digests that are not 32 bytes", () => {
  assert.throws(() => sha256Integrity(new Uint8Array(31)), {
    name: "RangeError",
    message: "Cannot format SHA-256 integrity: 'digest' must be 32 bytes, received 31",
  });
});
