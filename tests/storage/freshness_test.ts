import assert from "node:assert/strict";
import { ageSeconds, Cache, freshness } from "../../src/storage/cache.ts";
import { decodeRecord, encodeRecord } from "../../src/storage/record.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const KEY = "v1:packument:npm:aged";
const BODY = new TextEncoder().encode('{"name":"aged"}');

Deno.test("ageSeconds() reads an Age header as RFC 9111 says", () => {
  assert.equal(ageSeconds("200"), 200);
  assert.equal(ageSeconds(" 0 "), 0);
  assert.equal(ageSeconds("30, 40"), 30, "a list gives its first member");
  assert.equal(ageSeconds("99999999999"), 2 ** 31, "capped at 2^31");
  for (const bad of [null, undefined, "", "-1", "1.5", "abc", "1e3", ", 5"]) {
    assert.equal(ageSeconds(bad), undefined, String(bad));
  }
});

Deno.test("freshness() counts the Age an entry arrived with", () => {
  const info = { cacheControl: "max-age=300", fetchedAt: 1_000_000, age: 200 };
  assert.equal(freshness(info, 1_000_000).ageMs, 200_000);
  assert.equal(freshness(info, 1_099_999).fresh, true);
  assert.equal(freshness(info, 1_100_000).fresh, false);
  // Older than its lifetime on arrival: stale at once.
  assert.equal(freshness({ ...info, age: 400 }, 1_000_000).fresh, false);
  // Without an age (records written before it was kept), the age counts from fetchedAt.
  const { age: _age, ...old } = info;
  assert.equal(freshness(old, 1_299_999).fresh, true);
  assert.equal(freshness(old, 1_300_000).fresh, false);
});

Deno.test("Cache: an entry stored with Age: 200 and max-age=300 is fresh for 100 s", async () => {
  const clock = new FakeClock();
  const cache = await Cache.open(new MemoryDriver(), { clock });
  await cache.put(KEY, BODY, { status: 200, cacheControl: "max-age=300", age: 200 });
  const info = (await cache.info(KEY))!;
  assert.equal(info.age, 200);
  clock.advance(99_000);
  assert.equal(cache.freshness(info).fresh, true);
  clock.advance(1_000);
  assert.equal(cache.freshness(info).fresh, false);
  assert.equal(cache.freshness(info).ageMs, 300_000);
});

Deno.test("Cache.refresh() takes the Age of the 304, or none", async () => {
  const clock = new FakeClock();
  const cache = await Cache.open(new MemoryDriver(), { clock, inlineMax: 4 });
  await cache.put(KEY, BODY, { status: 200, cacheControl: "max-age=300", age: 250 });
  clock.advance(60_000);
  // A 304 without an Age: the renewed entry's age starts at 0.
  let info = (await cache.refresh(KEY))!;
  assert.equal(info.age, undefined);
  assert.equal((await cache.info(KEY))!.age, undefined);
  clock.advance(299_000);
  assert.equal(cache.freshness(info).fresh, true);
  // A 304 that says Age: 100.
  info = (await cache.refresh(KEY, { age: 100 }))!;
  assert.equal((await cache.info(KEY))!.age, 100);
  clock.advance(199_000);
  assert.equal(cache.freshness(info).fresh, true);
  clock.advance(1_000);
  assert.equal(cache.freshness(info).fresh, false);
  assert.deepEqual(await (await cache.get(KEY))!.bytes(), BODY);
});

Deno.test("Cache: a record without an age reads as before, with the same bytes", async () => {
  const clock = new FakeClock();
  const driver = new MemoryDriver();
  const header = {
    key: KEY,
    status: 200,
    cacheControl: "max-age=300",
    integrity: "sha256-" + btoa(String.fromCharCode(
      ...new Uint8Array(await crypto.subtle.digest("SHA-256", BODY)),
    )),
    size: BODY.length,
    fetchedAt: clock.now(),
    body: null,
  };
  await driver.put(KEY, encodeRecord(header, BODY));
  const cache = await Cache.open(driver, { clock });
  const entry = (await cache.get(KEY))!;
  assert.equal(entry.info.age, undefined);
  clock.advance(299_000);
  assert.equal(cache.freshness(entry.info).fresh, true);
  // A put without an age writes no age field.
  await cache.put(KEY, BODY, { status: 200, cacheControl: "max-age=300" });
  assert.equal("age" in decodeRecord(KEY, (await driver.get(KEY))!).header, false);
});
