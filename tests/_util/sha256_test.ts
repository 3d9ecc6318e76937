import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lengthWords, Sha256, sha256 } from "../../src/_util/sha256.ts";
import { bytesToHex } from "../../src/_util/hex.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("sha256() gives FIPS 180-4's digests of its examples", () => {
  const vectors: [Uint8Array, string][] = [
    [text(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    [text("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    [
      text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ],
    [
      new Uint8Array(1_000_000).fill(0x61),
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    ],
  ];
  for (const [data, hex] of vectors) assert.equal(bytesToHex(sha256(data)), hex);
});

Deno.test("Sha256 gives node:crypto's digest however the bytes are split, at every padding edge", () => {
  // Lengths around the block (64) and the padding's limit (56), and larger.
  for (const length of [1, 55, 56, 57, 63, 64, 65, 119, 120, 121, 128, 1000, 70_001]) {
    const data = Uint8Array.from({ length }, (_, i) => (i * 131 + length) & 0xff);
    const expected = createHash("sha256").update(data).digest("hex");
    assert.equal(bytesToHex(sha256(data)), expected, `${length} bytes at once`);
    for (const step of [1, 3, 64, 65, 4096]) {
      const hash = new Sha256();
      for (let at = 0; at < length; at += step) hash.update(data.subarray(at, at + step));
      hash.update(new Uint8Array(0));
      assert.equal(bytesToHex(hash.digest()), expected, `${length} bytes, ${step} at a time`);
    }
  }
});

Deno.test("Sha256 takes nothing after its digest", () => {
  const hash = new Sha256().update(text("a"));
  hash.digest();
  assert.throws(() => hash.update(text("b")), /digest was taken/);
  assert.throws(() => hash.digest(), /twice/);
});

Deno.test("lengthWords() puts the bits of messages of 512 MiB and more in the high word", () => {
  assert.deepEqual(lengthWords(0), [0, 0]);
  assert.deepEqual(lengthWords(2 ** 29 - 1), [0, 2 ** 32 - 8]);
  assert.deepEqual(lengthWords(2 ** 29), [1, 0]);
  assert.deepEqual(lengthWords(600 * 2 ** 20 + 37), [1, 88 * 2 ** 23 + 296]);
  assert.deepEqual(lengthWords(2 ** 50), [2 ** 21, 0]);
});
