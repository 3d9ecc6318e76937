import assert from "node:assert/strict";
import { Cache, CacheIntegrityError } from "../../src/storage/cache.ts";
import { BODY_PREFIX } from "../../src/storage/keys.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

const KEY = "v1:packument:npm:6d73";

/** A cache over a fresh driver holding one entry at KEY, stored apart when `big`. */
async function withEntry(
  big: boolean,
  options: { dropCorrupt?: boolean } = {},
): Promise<{ driver: MemoryDriver; cache: Cache; seen: string[]; bodyKey: string | undefined }> {
  const driver = new MemoryDriver();
  const seen: string[] = [];
  const cache = await Cache.open(driver, {
    inlineMax: 16,
    ...options,
    onCorrupt: (key, reason) => seen.push(`${key}: ${reason}`),
  });
  const body = new TextEncoder().encode(big ? "x".repeat(1000) : "small");
  await cache.put(KEY, body, { status: 200 });
  const bodyKey = await Array.fromAsync(driver.list({ prefix: BODY_PREFIX }));
  return { driver, cache, seen, bodyKey: bodyKey[0] };
}

async function flipLast(driver: MemoryDriver, key: string): Promise<void> {
  const raw = (await driver.get(key))!;
  raw[raw.length - 1] = raw[raw.length - 1]! ^ 1;
  await driver.put(key, raw);
}

Deno.test("Cache.get() reports a body found corrupt while it streams", async () => {
  const { driver, cache, seen, bodyKey } = await withEntry(true);
  await flipLast(driver, bodyKey!);
  const entry = await cache.get(KEY, { verify: "while" });
  assert.ok(entry, "the header is fine: the entry streams");
  await assert.rejects(entry.text(), CacheIntegrityError);
  assert.deepEqual(seen, [`${KEY}: body does not match its integrity`]);
  assert.equal(cache.stats.corrupt, 1);
  assert.ok(await driver.get(KEY), "kept without dropCorrupt");
});

Deno.test("Cache with dropCorrupt removes a corrupt entry a read finds", async (t) => {
  await t.step("inline", async () => {
    const { driver, cache, seen } = await withEntry(false, { dropCorrupt: true });
    await flipLast(driver, KEY);
    assert.equal(await cache.get(KEY), undefined);
    assert.equal(seen.length, 1);
    assert.equal(await driver.get(KEY), undefined);
  });
  await t.step("stored apart, checked before", async () => {
    const { driver, cache, seen, bodyKey } = await withEntry(true, { dropCorrupt: true });
    await flipLast(driver, bodyKey!);
    assert.equal(await cache.get(KEY), undefined);
    assert.equal(seen.length, 1);
    assert.equal(await driver.get(KEY), undefined);
    assert.equal(await driver.get(bodyKey!), undefined, "its body goes too");
  });
  await t.step("stored apart, found while streaming", async () => {
    const { driver, cache, bodyKey } = await withEntry(true, { dropCorrupt: true });
    await flipLast(driver, bodyKey!);
    const entry = await cache.get(KEY, { verify: "while" });
    await assert.rejects(entry!.bytes(), CacheIntegrityError);
    assert.equal(await driver.get(KEY), undefined);
  });
  await t.step("a corrupt header", async () => {
    const { driver, cache } = await withEntry(false, { dropCorrupt: true });
    await driver.put(KEY, new TextEncoder().encode("not a record"));
    assert.equal(await cache.info(KEY), undefined);
    assert.equal(await driver.get(KEY), undefined);
  });
  await t.step("not an entry another writer put meanwhile", async () => {
    const { driver, cache, bodyKey } = await withEntry(true, { dropCorrupt: true });
    await flipLast(driver, bodyKey!);
    const entry = await cache.get(KEY, { verify: "while" });
    const other = await Cache.open(driver, { inlineMax: 16 });
    await other.put(KEY, new TextEncoder().encode("y".repeat(1000)), { status: 200 });
    // The old body is gone with the new put: the stream fails, the new entry stays.
    await assert.rejects(entry!.bytes());
    assert.equal(await (await cache.get(KEY))!.text(), "y".repeat(1000));
  });
});

Deno.test("Cache reports a corrupt record once, where it is read as an entry", async () => {
  const { driver, cache, seen, bodyKey } = await withEntry(true);
  await driver.put(KEY, new TextEncoder().encode("garbage"));
  assert.equal(await cache.get(KEY), undefined);
  assert.deepEqual(await Array.fromAsync(cache.orphanBodies()), [bodyKey]);
  assert.equal(seen.length, 1, "orphanBodies() does not report it again");
  assert.equal(cache.stats.corrupt, 1);
});

Deno.test("Cache.get() with corrupt: 'throw' tells a corrupt entry from an absent one", async () => {
  const { driver, cache, seen } = await withEntry(false);
  assert.equal(await cache.get("v1:packument:npm:6e6f", { corrupt: "throw" }), undefined);
  await flipLast(driver, KEY);
  await assert.rejects(
    cache.get(KEY, { corrupt: "throw" }),
    (error) => error instanceof CacheIntegrityError && error.key === KEY,
  );
  await driver.put(KEY, new TextEncoder().encode("garbage"));
  await assert.rejects(cache.get(KEY, { corrupt: "throw" }), CacheIntegrityError);
  assert.equal(seen.length, 2);
});
