import assert from "node:assert/strict";
import { CorruptEntry, decodeRecord, encodeRecord, infoOf } from "../../src/storage/record.ts";
import { Cache } from "../../src/storage/cache.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const encoder = new TextEncoder();

/** `"AD1\n"`, the big-endian u32 length of `json`, `json`, then `body`. */
function record(json: string, body = ""): Uint8Array {
  const header = encoder.encode(json);
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, header.length);
  return new Uint8Array([
    ...encoder.encode("AD1\n"),
    ...length,
    ...header,
    ...encoder.encode(body),
  ]);
}

/** A record written by an earlier version of the cache (inline body, every metadata field). */
const GOLDEN_INLINE = record(
  '{"status":200,"etag":"\\"1\\"","cacheControl":"max-age=300","contentType":"application/json",' +
    '"representation":"full","rev":"1-a","count":3,"key":"v1:packument:npm:6d73",' +
    '"integrity":"sha256-CQjhLr+076Bh61opyAHHQx0sMAb5bPS878HuYagKQ0I=","size":8,' +
    '"fetchedAt":1700000000000,"body":null}',
  '{"name":',
);

/** The time the golden records were written at (their `fetchedAt`). */
const WRITTEN_AT = 1_700_000_000_000;

Deno.test("Cache writes records byte for byte as earlier versions did", async () => {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, {
    clock: new FakeClock({ now: WRITTEN_AT }),
    inlineMax: 8,
  });
  await cache.put("v1:packument:npm:6d73", encoder.encode('{"name":'), {
    status: 200,
    etag: '"1"',
    cacheControl: "max-age=300",
    contentType: "application/json",
    representation: "full",
    rev: "1-a",
    count: 3,
  });
  assert.deepEqual(await driver.get("v1:packument:npm:6d73"), GOLDEN_INLINE);

  // A body over inlineMax goes to its own key, which the header names.
  await cache.put("v1:partition:npm:40:", encoder.encode("0123456789"), { status: 200 });
  const keys = await Array.fromAsync(driver.list({ prefix: "v1:body:" }));
  assert.equal(keys.length, 1);
  assert.match(keys[0]!, /^v1:body:partition:npm:40::[0-9a-f]{16}$/);
  assert.deepEqual(await driver.get(keys[0]!), encoder.encode("0123456789"));
  assert.deepEqual(
    await driver.get("v1:partition:npm:40:"),
    record(
      '{"status":200,"key":"v1:partition:npm:40:",' +
        '"integrity":"sha256-hNiYd/DUBB77a/kaFvAkjy/Vc+avBcGflr7bn4gveII=","size":10,' +
        `"fetchedAt":1700000000000,"body":"${keys[0]}"}`,
    ),
  );
});

Deno.test("Cache reads records written by earlier versions", async () => {
  const driver = new MemoryDriver();
  await driver.put("v1:packument:npm:6d73", GOLDEN_INLINE);
  const cache = await Cache.open(driver, { clock: new FakeClock({ now: WRITTEN_AT }) });
  const entry = await cache.get("v1:packument:npm:6d73");
  assert.ok(entry);
  assert.equal(await entry.text(), '{"name":');
  assert.deepEqual(entry.info, {
    status: 200,
    etag: '"1"',
    cacheControl: "max-age=300",
    contentType: "application/json",
    representation: "full",
    rev: "1-a",
    count: 3,
    key: "v1:packument:npm:6d73",
    integrity: "sha256-CQjhLr+076Bh61opyAHHQx0sMAb5bPS878HuYagKQ0I=",
    size: 8,
    fetchedAt: 1_700_000_000_000,
  });
});

Deno.test("encodeRecord() and decodeRecord() round-trip, at any byte offset", () => {
  const header = {
    key: "k",
    status: 404,
    integrity: "sha256-x",
    size: 3,
    fetchedAt: 5,
    body: null,
  };
  const raw = encodeRecord(header, new Uint8Array([7, 8, 9]));
  const shifted = new Uint8Array(raw.length + 5);
  shifted.set(raw, 5);
  for (const bytes of [raw, shifted.subarray(5)]) {
    const decoded = decodeRecord("k", bytes);
    assert.deepEqual(decoded.header, header);
    assert.deepEqual(decoded.inline, new Uint8Array([7, 8, 9]));
    assert.deepEqual(infoOf(decoded.header), {
      key: "k",
      status: 404,
      integrity: "sha256-x",
      size: 3,
      fetchedAt: 5,
    });
  }
});

Deno.test("decodeRecord() throws CorruptEntry for anything but a complete record of the key", () => {
  const good = encodeRecord(
    { key: "k", status: 200, integrity: "sha256-x", size: 2, fetchedAt: 0, body: null },
    new Uint8Array([1, 2]),
  );
  const cases: [string, Uint8Array, string][] = [
    ["too short", good.subarray(0, 7), "record does not start with the entry magic"],
    ["wrong magic", new Uint8Array([0x41, 0x44, 0x32, ...good.subarray(3)]), "magic"],
    ["truncated header", good.subarray(0, 20), "record header is truncated"],
    ["not JSON", record("{nope"), "record header is not JSON"],
    [
      "another key",
      record('{"key":"j","status":200,"integrity":"i","size":0,"fetchedAt":0,"body":null}'),
      "incomplete",
    ],
    [
      "no integrity",
      record('{"key":"k","status":200,"size":0,"fetchedAt":0,"body":null}'),
      "incomplete",
    ],
    ["short inline body", good.subarray(0, good.length - 1), "inline body is 1 bytes, expected 2"],
  ];
  for (const [what, raw, message] of cases) {
    assert.throws(() => decodeRecord("k", raw), (error: unknown) => {
      assert.ok(error instanceof CorruptEntry, what);
      assert.ok(error.message.includes(message), `${what}: ${error.message}`);
      return true;
    });
  }
});
