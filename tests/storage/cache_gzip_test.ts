import assert from "node:assert/strict";
import { Cache, CacheIntegrityError } from "../../src/storage/cache.ts";
import { gunzipStream, gzipStream } from "../../src/storage/encoding.ts";
import { decodeRecord, encodeRecord } from "../../src/storage/record.ts";
import { BODY_PREFIX } from "../../src/storage/keys.ts";
import { readAll } from "../../src/_util/bytes.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { gunzipSync, gzipSync } from "node:zlib";
import { createHash } from "node:crypto";

const KEY = "v1:packument:npm:6d73";
const encoder = new TextEncoder();
const DOC = encoder.encode(JSON.stringify({ name: "ms", pad: "abc".repeat(2000) }));

function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return readAll(ReadableStream.from([bytes]).pipeThrough(gzipStream()));
}

async function open(options: { inlineMax?: number } = {}) {
  const driver = new MemoryDriver();
  const seen: string[] = [];
  const cache = await Cache.open(driver, {
    bloom: false,
    inlineMax: options.inlineMax ?? 64,
    onCorrupt: (key, reason) => seen.push(`${key}: ${reason}`),
  });
  return { driver, cache, seen };
}

/** Rewrites the record at KEY with `edit` applied to its header. */
async function editHeader(
  driver: MemoryDriver,
  edit: (header: Record<string, unknown>) => void,
): Promise<void> {
  const { header, inline } = decodeRecord(KEY, (await driver.get(KEY))!);
  edit(header as unknown as Record<string, unknown>);
  await driver.put(
    KEY,
    encodeRecord(header, header.body === null ? inline : undefined),
  );
}

Deno.test("Cache.put() with encoding gzip stores the gzip bytes and their integrity", async () => {
  for (const inlineMax of [64, 1 << 20]) {
    const { cache } = await open({ inlineMax });
    const info = await cache.put(KEY, DOC, { status: 200 }, { encoding: "gzip" });
    assert.equal(info.encoding, "gzip");
    assert.equal(info.decodedSize, DOC.length);
    assert.ok(info.size < DOC.length / 10, `${info.size} bytes stored of ${DOC.length}`);
    const stored = (await cache.get(KEY, { decode: false }))!;
    const raw = await stored.bytes();
    assert.equal(raw.length, info.size);
    assert.deepEqual(await readAll(ReadableStream.from([raw]).pipeThrough(gunzipStream())), DOC);
    assert.deepEqual(await (await cache.get(KEY))!.bytes(), DOC, "decoded by default");
  }
});

Deno.test("Cache.open() storeEncoding is gzip unless told; a put stores what it says", async () => {
  assert.equal((await Cache.open(new MemoryDriver(), { bloom: false })).storeEncoding, "gzip");
  const cache = await Cache.open(new MemoryDriver(), { bloom: false, storeEncoding: "identity" });
  assert.equal(cache.storeEncoding, "identity");
  const plain = await cache.put(KEY, DOC, { status: 200 });
  assert.equal(plain.encoding, undefined, "identity records are written as before");
  assert.equal(plain.size, DOC.length);
  assert.equal((await cache.put(KEY, DOC, { status: 200 }, { encoding: "gzip" })).encoding, "gzip");
  await assert.rejects(
    Cache.open(new MemoryDriver(), { storeEncoding: "br" as "gzip" }),
    /'storeEncoding' must be "identity" or "gzip", received "br"/,
  );
  await assert.rejects(
    cache.put(KEY, DOC, { status: 200 }, { bodyEncoding: "zstd" as "gzip" }),
    /'bodyEncoding' must be "identity" or "gzip", received "zstd"/,
  );
});

Deno.test("Cache.put() decodes a gzip body given for identity storage", async () => {
  const { cache } = await open();
  const info = await cache.put(KEY, await gzip(DOC), { status: 200 }, {
    bodyEncoding: "gzip",
    encoding: "identity",
  });
  assert.equal(info.size, DOC.length);
  assert.deepEqual(await (await cache.get(KEY, { decode: false }))!.bytes(), DOC);
});

Deno.test("Cache reads a record without an encoding (an old one) as identity", async () => {
  const { driver, cache } = await open({ inlineMax: 1 << 20 });
  await cache.put(KEY, DOC, { status: 200 });
  const { header } = decodeRecord(KEY, (await driver.get(KEY))!);
  assert.equal("encoding" in header, false);
  const entry = (await cache.get(KEY, { decode: false }))!;
  assert.equal(entry.info.encoding, undefined);
  assert.deepEqual(await entry.bytes(), DOC);
});

Deno.test("Cache never serves a gzip body that does not decode", async (t) => {
  for (const inlineMax of [1 << 20, 64]) {
    const where = inlineMax > 64 ? "inline" : "stored apart";
    await t.step(`${where}: checked before`, async () => {
      const { driver, cache, seen } = await open({ inlineMax });
      // Bytes that hash right but are not gzip: the record says gzip, the body is plain.
      await cache.put(KEY, DOC, { status: 200 });
      await editHeader(driver, (h) => h.encoding = "gzip");
      assert.equal(await cache.get(KEY), undefined);
      assert.deepEqual(seen, [`${KEY}: body is not valid gzip`]);
      await assert.rejects(cache.get(KEY, { corrupt: "throw" }), CacheIntegrityError);
    });
  }
  await t.step("stored apart: found while it streams", async () => {
    const { driver, cache, seen } = await open();
    await cache.put(KEY, DOC, { status: 200 });
    await editHeader(driver, (h) => h.encoding = "gzip");
    const entry = await cache.get(KEY, { verify: "while" });
    assert.ok(entry);
    await assert.rejects(entry.bytes(), CacheIntegrityError);
    assert.deepEqual(seen, [`${KEY}: body is not valid gzip`]);
  });
  await t.step("stored apart: a changed gzip byte fails its integrity", async () => {
    const { driver, cache, seen } = await open();
    await cache.put(KEY, DOC, { status: 200 }, { encoding: "gzip" });
    const [bodyKey] = await Array.fromAsync(driver.list({ prefix: BODY_PREFIX }));
    const raw = (await driver.get(bodyKey!))!;
    raw[20] = raw[20]! ^ 1;
    await driver.put(bodyKey!, raw);
    assert.equal(await cache.get(KEY), undefined);
    const entry = await cache.get(KEY, { verify: "while" });
    await assert.rejects(entry!.bytes(), CacheIntegrityError);
    assert.equal(seen.length, 2);
    assert.match(seen[0]!, /does not match its integrity|not valid gzip/);
  });
  await t.step("an unknown encoding is a corrupt record", async () => {
    const { driver, cache, seen } = await open();
    await cache.put(KEY, DOC, { status: 200 });
    await editHeader(driver, (h) => h.encoding = "br");
    assert.equal(await cache.get(KEY), undefined);
    assert.deepEqual(seen, [`${KEY}: record body encoding "br" is unknown`]);
  });
});

Deno.test("Cache.refresh() keeps a gzip entry's encoding", async () => {
  const { cache } = await open();
  await cache.put(KEY, DOC, { status: 200, etag: '"1"' }, { encoding: "gzip" });
  const info = await cache.refresh(KEY, { etag: '"2"' });
  assert.equal(info?.encoding, "gzip");
  assert.deepEqual(await (await cache.get(KEY))!.bytes(), DOC);
});

Deno.test("Cache.open() gzipSync compresses bodies up to 8 MiB in one call, streams longer ones", async () => {
  const calls: number[] = [];
  const cache = await Cache.open(new MemoryDriver(), {
    bloom: false,
    gzipSync: (bytes) => {
      calls.push(bytes.length);
      return gzipSync(bytes, { level: 4 });
    },
  });
  const big = encoder.encode(JSON.stringify({ pad: "abcdefgh".repeat(1_100_000) }));
  for (const [key, body] of [["v1:packument:npm:61", DOC], ["v1:packument:npm:62", big]] as const) {
    // Given as a stream of small chunks, as a response body is.
    const chunks = Array.from(
      { length: Math.ceil(body.length / 10_000) },
      (_, i) => body.subarray(i * 10_000, (i + 1) * 10_000),
    );
    const info = await cache.put(key, ReadableStream.from(chunks), { status: 200 }, {
      encoding: "gzip",
    });
    assert.equal(info.encoding, "gzip");
    assert.equal(info.decodedSize, body.length);
    assert.deepEqual(await (await cache.get(key))!.bytes(), body);
  }
  assert.deepEqual(calls, [DOC.length], "the 8.8 MB body streamed through CompressionStream");
});

Deno.test("Cache.open() gunzipSync reads a small gzip body stored apart whole, checked, once", async (t) => {
  const open = async () => {
    const driver = new MemoryDriver();
    const seen: string[] = [];
    const calls: number[] = [];
    const cache = await Cache.open(driver, {
      bloom: false,
      inlineMax: 64,
      onCorrupt: (key, reason) => seen.push(`${key}: ${reason}`),
      gunzipSync: (bytes) => {
        calls.push(bytes.length);
        return new Uint8Array(gunzipSync(bytes));
      },
    });
    await cache.put(KEY, DOC, { status: 200 }, { encoding: "gzip" });
    const [bodyKey] = await Array.fromAsync(driver.list({ prefix: BODY_PREFIX }));
    return { driver, cache, seen, calls, bodyKey: bodyKey! };
  };
  await t.step("decoded, or as stored with decode: false", async () => {
    const { driver, cache, calls, bodyKey } = await open();
    for (const verify of ["before", "while"] as const) {
      const entry = await cache.get(KEY, { verify });
      assert.deepEqual(await entry!.bytes(), DOC);
      assert.deepEqual(await readAll(entry!.stream()), DOC);
    }
    const stored = await cache.get(KEY, { decode: false });
    assert.deepEqual(await stored!.bytes(), await driver.get(bodyKey));
    // Checked before: decoded once, at the get. Checked while read: once per read, and never
    // for a caller that does not read.
    assert.equal(calls.length, 4);
    await cache.get(KEY, { verify: "while" });
    assert.equal(calls.length, 4);
    // Sent on as stored (the replica to a gzip client): checked against its integrity, never
    // decoded.
    const asStored = await cache.get(KEY, { verify: "while", decode: false });
    assert.deepEqual(await asStored!.bytes(), await driver.get(bodyKey));
    assert.equal(calls.length, 4);
  });
  await t.step(
    "a changed byte, a body that is not gzip, a missing body: never served",
    async () => {
      const spoils = [
        [(raw: Uint8Array) => (raw[20] = raw[20]! ^ 1, raw), "body does not match its integrity"],
        [() => DOC, "body is not valid gzip"],
        [undefined, "body is missing"],
      ] as const;
      for (const verify of ["before", "while"] as const) {
        for (const [spoil, reason] of spoils) {
          const { driver, cache, seen, bodyKey } = await open();
          if (spoil === undefined) await driver.delete(bodyKey);
          else {
            const bytes = spoil((await driver.get(bodyKey))!);
            await driver.put(bodyKey, bytes);
            if (bytes === DOC) {
              // Hashes right, so only decoding finds it.
              const digest = createHash("sha256").update(DOC).digest("base64");
              await editHeader(driver, (h) => {
                h.size = DOC.length;
                h.integrity = `sha256-${digest}`;
              });
            }
          }
          const entry = await cache.get(KEY, { verify });
          if (verify === "while" && spoil !== undefined) {
            // Found as it is read: the read fails, and never gives a byte.
            await assert.rejects(entry!.bytes(), CacheIntegrityError, `${verify}: ${reason}`);
          } else assert.equal(entry, undefined, `${verify}: ${reason}`);
          assert.deepEqual(seen, [`${KEY}: ${reason}`], `${verify}: ${reason}`);
        }
      }
    },
  );
});
