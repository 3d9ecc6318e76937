import assert from "node:assert/strict";
import { gunzipSync as nodeGunzip, gzipSync as nodeGzip } from "node:zlib";
import { gunzipSync, gzipSync } from "../../cli/zlib.ts";

const encoder = new TextEncoder();

Deno.test("cli/zlib: gzip and gunzip round-trip bodies of every size, as plain Uint8Arrays", () => {
  for (const size of [0, 1, 17, 16 * 1024, 300_000, 3 * 1024 * 1024]) {
    const body = encoder.encode("x".repeat(size / 2) + crypto.randomUUID().repeat(size / 72));
    const gz = gzipSync(body);
    assert.equal(gz.constructor, Uint8Array, `${size}`);
    assert.deepEqual(new Uint8Array(nodeGunzip(gz)), body, `${size}: zlib reads it`);
    const back = gunzipSync(gz);
    assert.equal(back.constructor, Uint8Array);
    assert.deepEqual(back, body, `${size}`);
  }
});

Deno.test("cli/zlib: gunzip takes the trailer's size as a hint only", () => {
  // Two gzip members: the trailer names the last member's size, far less than the whole.
  const a = encoder.encode("a".repeat(500_000));
  const b = encoder.encode("b");
  const both = new Uint8Array([...nodeGzip(a), ...nodeGzip(b)]);
  const out = gunzipSync(both);
  assert.equal(out.length, a.length + b.length);
  assert.equal(out[0], 0x61);
  assert.equal(out.at(-1), 0x62);
  assert.throws(() => gunzipSync(encoder.encode("not gzip at all, not even close")));
});
