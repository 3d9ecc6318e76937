import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  CacheIntegrityError,
  createSha256,
  integrityOf,
  measuring,
  sha256Integrity,
  verifying,
} from "../../src/storage/integrity.ts";
import { bytesToHex } from "../../src/_util/hex.ts";
import { concatBytes } from "../../src/_util/bytes.ts";
import { prng } from "../_support/packuments.ts";

function randomBytes(length: number, seed: number): Uint8Array<ArrayBuffer> {
  const random = prng(seed);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (random() * 256) | 0;
  return bytes;
}

/** The integrity WebCrypto gives, independently of the code under test. */
async function webCryptoIntegrity(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data.slice()));
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}

/** Sends `data` through `measuring()` in pieces of the given sizes (cycled). */
async function measure(
  data: Uint8Array,
  pieces: readonly number[],
): Promise<{ integrity: string; size: number; out: Uint8Array[] }> {
  const m = measuring(createSha256);
  const chunks: Uint8Array[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = Math.max(1, pieces[i % pieces.length]!);
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  const out = await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(m.stream));
  return { ...m.result(), out };
}

Deno.test("createSha256() gives the known digests of '', 'abc' and the two-block example", () => {
  const known: [string, string][] = [
    ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    [
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ],
  ];
  for (const [text, hex] of known) {
    const hash = createSha256();
    hash.update(new TextEncoder().encode(text));
    assert.equal(bytesToHex(hash.digest()), hex, JSON.stringify(text));
  }
});

Deno.test("sha256Integrity() formats digests in SRI form and refuses other lengths", () => {
  const hash = createSha256();
  hash.update(new TextEncoder().encode("abc"));
  assert.equal(
    sha256Integrity(hash.digest()),
    "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
  );
  assert.equal(
    sha256Integrity(createSha256().digest()),
    "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
  );
  assert.throws(() => sha256Integrity(new Uint8Array(31)), {
    name: "RangeError",
    message: "Cannot format SHA-256 integrity: 'digest' must be 32 bytes, received 31",
  });
});

Deno.test("measuring() hashes and counts a 1 MB stream, passing every chunk through", async () => {
  const data = randomBytes(1 << 20, 1);
  const seen = await measure(data, [65_536]);
  assert.equal(seen.size, 1 << 20);
  assert.equal(seen.integrity, await webCryptoIntegrity(data));
  assert.equal(seen.out.length, 16);
  assert.deepEqual(concatBytes(seen.out), data);
});

Deno.test("measuring() agrees with WebCrypto whatever the chunk boundaries", async () => {
  // Lengths around the 55/56-byte padding edge and the 64-byte block, fed whole, byte by byte,
  // and in pieces that straddle blocks.
  const lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 100_003];
  const chunkings: number[][] = [[1 << 30], [1], [3, 61], [63, 2], [64], [65, 7, 130], [4096, 1]];
  for (const [i, length] of lengths.entries()) {
    const data = randomBytes(length, 10 + i);
    const expected = await webCryptoIntegrity(data);
    for (const pieces of chunkings) {
      if (pieces[0] === 1 && length > 2000) continue; // byte by byte only for small inputs
      const seen = await measure(data, pieces);
      assert.equal(seen.integrity, expected, `length ${length}, pieces ${pieces}`);
      assert.equal(seen.size, length);
    }
  }
});

Deno.test("integrityOf() gives one answer with WebCrypto, the default and node:crypto", async () => {
  const backing = randomBytes(10_000, 3);
  for (const bytes of [new Uint8Array(0), backing.subarray(0, 3), backing.subarray(7, 9_007)]) {
    const expected = await webCryptoIntegrity(bytes);
    assert.equal(await integrityOf(bytes, undefined), expected);
    assert.equal(await integrityOf(bytes, createSha256), expected);
    assert.equal(await integrityOf(bytes, () => createHash("sha256")), expected);
  }
});

Deno.test("verifying() passes matching bytes and fails changed ones, withholding the end", async (t) => {
  const data = randomBytes(300_000, 4);
  const expected = { integrity: await webCryptoIntegrity(data), size: data.length };
  const chunks = [
    data.subarray(0, 100_000),
    data.subarray(100_000, 200_000),
    data.subarray(200_000),
  ];

  await t.step("the right bytes pass unchanged", async () => {
    const out = await Array.fromAsync(
      ReadableStream.from(chunks).pipeThrough(verifying("k", expected, createSha256)),
    );
    assert.deepEqual(concatBytes(out), data);
  });

  await t.step("one changed byte errors the stream before its last chunk", async () => {
    const changed = data.slice();
    changed[150_000]! ^= 1;
    const parts = [
      changed.subarray(0, 100_000),
      changed.subarray(100_000, 200_000),
      changed.subarray(200_000),
    ];
    const reader = ReadableStream.from(parts).pipeThrough(verifying("k", expected, createSha256))
      .getReader();
    let passed = 0;
    const error = await (async () => {
      try {
        while (true) {
          const { done, value } = await reader.read();
          if (done) return undefined;
          passed += value.length;
        }
      } catch (error) {
        return error;
      }
    })();
    assert.ok(error instanceof CacheIntegrityError, String(error));
    assert.equal(error.key, "k");
    assert.equal(passed, 200_000, "the last chunk is withheld");
  });

  await t.step("a short body fails even when its prefix is right", async () => {
    const stream = ReadableStream.from(chunks.slice(0, 2)).pipeThrough(
      verifying("k", expected, createSha256),
    );
    await assert.rejects(Array.fromAsync(stream), CacheIntegrityError);
  });
});
