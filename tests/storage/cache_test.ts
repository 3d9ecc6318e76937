import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Cache, CacheIntegrityError, freshness, maxAgeSeconds } from "../../src/storage/cache.ts";
import { BODY_PREFIX } from "../../src/storage/keys.ts";
import type { StorageDriver, StorageValue } from "../../src/storage/driver.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { cacheMap } from "../../src/storage/cache_map.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { DenoKvDriver } from "../../drivers/deno_kv.deno.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const enc = new TextEncoder();

function pattern(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function chunked(bytes: Uint8Array, size = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function sha256Sri(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice()));
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}

async function allKeys(driver: StorageDriver, prefix = ""): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of driver.list({ prefix })) keys.push(key);
  return keys;
}

Deno.test("Cache.put() and get() keep the body and every metadata field", async () => {
  const clock = new FakeClock();
  const cache = await Cache.open(new MemoryDriver(), { clock });
  const body = enc.encode('{"name":"ms","_rev":"3-abc"}');
  const info = await cache.put("v1:packument:npm:6d73", body, {
    status: 200,
    etag: '"e1"',
    lastModified: "Tue, 01 Jan 2030 00:00:00 GMT",
    cacheControl: "public, max-age=300",
    contentType: "application/json",
    representation: "full",
    rev: "3-abc",
  });
  assert.equal(info.integrity, await sha256Sri(body));
  assert.equal(info.size, body.length);
  assert.equal(info.fetchedAt, clock.now());
  const entry = await cache.get("v1:packument:npm:6d73");
  assert.ok(entry);
  assert.deepEqual(entry.info, info);
  assert.deepEqual(await entry.bytes(), body);
  assert.deepEqual(await readAll(entry.stream()), body);
  assert.deepEqual(await entry.json(), { name: "ms", _rev: "3-abc" });
  assert.deepEqual(await cache.info("v1:packument:npm:6d73"), info);
  assert.equal(await cache.get("v1:packument:npm:00"), undefined);
  assert.equal(await cache.has("v1:packument:npm:6d73"), true);
  assert.equal(await cache.delete("v1:packument:npm:6d73"), true);
  assert.equal(await cache.has("v1:packument:npm:6d73"), false);
  assert.equal(await cache.delete("v1:packument:npm:6d73"), false);
  assert.deepEqual(cache.stats.hits, 1);
});

Deno.test("Cache.put() streams a large body apart and writes its header last", async () => {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { inlineMax: 1024 });
  const body = pattern(3 * 1024 * 1024 + 7);
  const info = await cache.put("v1:packument:npm:6269", chunked(body), { status: 200 });
  assert.equal(info.size, body.length);
  assert.equal(info.integrity, await sha256Sri(body));
  const bodies = await allKeys(driver, BODY_PREFIX);
  assert.equal(bodies.length, 1);
  assert.match(bodies[0]!, /^v1:body:packument:npm:6269:[0-9a-f]{16}$/);
  const entry = await cache.get("v1:packument:npm:6269");
  assert.deepEqual(await readAll(entry!.stream()), body);
  // Overwriting removes the old body; nothing is left orphaned.
  const second = pattern(2048, 9);
  await cache.put("v1:packument:npm:6269", second, { status: 200 });
  assert.equal((await allKeys(driver, BODY_PREFIX)).length, 1);
  assert.deepEqual(await (await cache.get("v1:packument:npm:6269"))!.bytes(), second);
  assert.deepEqual(await Array.fromAsync(cache.orphanBodies()), []);
  await cache.delete("v1:packument:npm:6269");
  assert.deepEqual(await allKeys(driver), []);
});

class FailingHeaderDriver extends MemoryDriver {
  failHeaders = false;
  override put(key: string, value: StorageValue): Promise<void> {
    if (this.failHeaders && !key.startsWith(BODY_PREFIX)) {
      return Promise.reject(new Error("crash before the header"));
    }
    return super.put(key, value);
  }
}

Deno.test("Cache: a writer stopped before the header leaves no entry, only an orphan body", async () => {
  const driver = new FailingHeaderDriver();
  const cache = await Cache.open(driver, { inlineMax: 16 });
  await cache.put("v1:packument:npm:61", enc.encode("old value, long enough"), { status: 200 });
  driver.failHeaders = true;
  await assert.rejects(
    cache.put("v1:packument:npm:61", enc.encode("new value, also long"), { status: 200 }),
    /crash before the header/,
  );
  const entry = await cache.get("v1:packument:npm:61");
  assert.equal(await entry?.text(), "old value, long enough");
  const orphans = await Array.fromAsync(cache.orphanBodies());
  assert.equal(orphans.length, 1);
});

Deno.test("Cache.put() of a stream that fails keeps the old entry and leaves no body", async () => {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { inlineMax: 16 });
  await cache.put("v1:packument:npm:61", enc.encode("old"), { status: 200 });
  let sent = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 3) controller.enqueue(new Uint8Array(100));
      else controller.error(new Error("connection reset"));
    },
  });
  await assert.rejects(cache.put("v1:packument:npm:61", failing, { status: 200 }), /reset/);
  assert.equal(await (await cache.get("v1:packument:npm:61"))?.text(), "old");
  assert.deepEqual(await allKeys(driver, BODY_PREFIX), []);
});

Deno.test("Cache.put() removes a body the driver kept although its put failed", async () => {
  // As a remote store may: the value landed, then the answer was lost.
  class LosingDriver extends MemoryDriver {
    override async put(key: string, value: StorageValue): Promise<void> {
      await super.put(key, value);
      if (key.startsWith(BODY_PREFIX)) throw new Error("answer lost");
    }
  }
  const driver = new LosingDriver();
  const cache = await Cache.open(driver, { inlineMax: 16 });
  await assert.rejects(
    cache.put("v1:packument:npm:61", enc.encode("a body longer than sixteen bytes"), {
      status: 200,
    }),
    /answer lost/,
  );
  assert.deepEqual(await allKeys(driver, BODY_PREFIX), []);
  assert.equal(await cache.get("v1:packument:npm:61"), undefined);
});

Deno.test("Cache.get() reports a corrupt inline entry as a miss", async () => {
  const driver = new MemoryDriver();
  const seen: string[] = [];
  const cache = await Cache.open(driver, {
    onCorrupt: (key, reason) => seen.push(`${key} ${reason}`),
  });
  await cache.put("v1:packument:npm:61", enc.encode('{"a":1}'), { status: 200 });
  const raw = (await driver.get("v1:packument:npm:61"))!;
  raw[raw.length - 2]! ^= 1;
  await driver.put("v1:packument:npm:61", raw);
  assert.equal(await cache.get("v1:packument:npm:61"), undefined);
  await driver.put("v1:packument:npm:62", enc.encode("not a record"));
  assert.equal(await cache.get("v1:packument:npm:62"), undefined);
  assert.equal(await cache.info("v1:packument:npm:62"), undefined);
  // A record moved to another key does not pass for that key.
  await driver.put("v1:packument:npm:63", (await driver.get("v1:packument:npm:61"))!);
  assert.equal(await cache.get("v1:packument:npm:63"), undefined);
  assert.equal(cache.stats.corrupt, 4);
  assert.match(seen[0]!, /^v1:packument:npm:61 inline body does not match/);
});

Deno.test("Cache.get() never returns a corrupt separate body", async (t) => {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { inlineMax: 10 });
  const body = pattern(300_000);
  await cache.put("v1:packument:npm:61", body, { status: 200 });
  const [bodyKey] = await allKeys(driver, BODY_PREFIX);
  const bad = body.slice();
  bad[150_000]! ^= 0xff;
  await driver.put(bodyKey!, bad);

  await t.step("verify before: a miss", async () => {
    assert.equal(await cache.get("v1:packument:npm:61"), undefined);
  });
  await t.step("verify while streaming: the stream errors and withholds its end", async () => {
    const entry = await cache.get("v1:packument:npm:61", { verify: "while" });
    assert.ok(entry);
    const reader = entry.stream().getReader();
    let received = 0;
    await assert.rejects(
      (async () => {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          received += value.length;
        }
      })(),
      CacheIntegrityError,
    );
    assert.ok(received < body.length);
  });
  await t.step("a missing body is corrupt too", async () => {
    await driver.delete(bodyKey!);
    assert.equal(await cache.get("v1:packument:npm:61"), undefined);
    assert.equal(await cache.get("v1:packument:npm:61", { verify: "while" }), undefined);
  });
});

Deno.test("freshness() follows max-age and the clock; expired entries with validators revalidate", () => {
  assert.equal(maxAgeSeconds("public, max-age=300"), 300);
  assert.equal(maxAgeSeconds("max-age=60, no-cache"), 0);
  assert.equal(maxAgeSeconds("no-store"), 0);
  assert.equal(maxAgeSeconds("public"), undefined);
  assert.equal(maxAgeSeconds(undefined), undefined);
  const info = { cacheControl: "public, max-age=300", fetchedAt: 1000, etag: '"x"' };
  assert.deepEqual(freshness(info, 1000 + 299_999), {
    fresh: true,
    ageMs: 299_999,
    maxAgeMs: 300_000,
    canRevalidate: true,
  });
  assert.equal(freshness(info, 1000 + 300_000).fresh, false);
  assert.equal(freshness({ fetchedAt: 0 }, 1).fresh, false);
  assert.equal(freshness({ fetchedAt: 0 }, 1, 10).fresh, true);
  assert.equal(freshness({ fetchedAt: 0 }, 1).canRevalidate, false);
  assert.equal(freshness({ fetchedAt: 0, lastModified: "x" }, 1).canRevalidate, true);
});

Deno.test("Cache.refresh() renews freshness without rewriting a separate body", async () => {
  const clock = new FakeClock();
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { clock, inlineMax: 10 });
  await cache.put("v1:packument:npm:61", pattern(1000), {
    status: 200,
    etag: '"1"',
    cacheControl: "max-age=300",
  });
  const [bodyKey] = await allKeys(driver, BODY_PREFIX);
  clock.advance(301_000);
  let info = (await cache.info("v1:packument:npm:61"))!;
  assert.equal(cache.freshness(info).fresh, false);
  assert.equal(cache.freshness(info).canRevalidate, true);
  info = (await cache.refresh("v1:packument:npm:61", { cacheControl: "max-age=600" }))!;
  assert.equal(info.fetchedAt, clock.now());
  assert.equal(cache.freshness(info).fresh, true);
  assert.deepEqual(await allKeys(driver, BODY_PREFIX), [bodyKey]);
  assert.deepEqual(await (await cache.get("v1:packument:npm:61"))!.bytes(), pattern(1000));
  // Inline bodies survive a refresh too.
  await cache.put("v1:packument:npm:62", enc.encode("small"), { status: 200, etag: '"2"' });
  await cache.refresh("v1:packument:npm:62", { etag: '"3"' });
  const small = await cache.get("v1:packument:npm:62");
  assert.equal(small!.info.etag, '"3"');
  assert.equal(await small!.text(), "small");
  assert.equal(await cache.refresh("v1:packument:npm:00"), undefined);
});

Deno.test("Cache.keys() and entries() list entries in key order without bodies", async () => {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { inlineMax: 4 });
  const keys = [
    "v1:packument:npm:62",
    "v1:corgi:npm:61",
    "v1:packument:npm:61",
    "v1:partition:npm::",
  ];
  for (const key of keys) await cache.put(key, enc.encode(`body of ${key}`), { status: 200 });
  assert.deepEqual(await Array.fromAsync(cache.keys()), [...keys].sort());
  assert.deepEqual(await Array.fromAsync(cache.keys("v1:packument:")), [
    "v1:packument:npm:61",
    "v1:packument:npm:62",
  ]);
  const entries = await Array.fromAsync(cache.entries("v1:packument:"));
  assert.deepEqual(
    await Promise.all(entries.map(async ([k, e]) => [k, await e.text()])),
    [["v1:packument:npm:61", "body of v1:packument:npm:61"], [
      "v1:packument:npm:62",
      "body of v1:packument:npm:62",
    ]],
  );
});

Deno.test("Cache.load() coalesces concurrent loads of one key", async () => {
  const cache = await Cache.open(new MemoryDriver());
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const loader = async () => {
    calls++;
    await gate;
    return calls;
  };
  const loads = Array.from({ length: 10 }, () => cache.load("k", loader));
  const other = cache.load("other", () => Promise.resolve(-1));
  release();
  assert.deepEqual(await Promise.all(loads), Array(10).fill(1));
  assert.equal(await other, -1);
  assert.equal(calls, 1);
  assert.equal(await cache.load("k", loader), 2);
  const failing = [
    cache.load("f", () => Promise.reject(new Error("boom"))),
    cache.load("f", loader),
  ];
  for (const p of failing) await assert.rejects(p, /boom/);
  assert.equal(await cache.load("f", () => Promise.resolve("again")), "again");
});

Deno.test("Cache.has() trusts a bloom filter seeded from keys written by earlier runs", async () => {
  const driver = new MemoryDriver();
  const first = await Cache.open(driver, { bloom: false });
  const keys = Array.from(
    { length: 2000 },
    (_, i) => `v1:packument:npm:${i.toString(16).padStart(4, "0")}`,
  );
  for (const key of keys) await first.put(key, enc.encode("{}"), { status: 200 });
  const second = await Cache.open(driver, {
    bloom: { expectedItems: 4000, falsePositiveRate: 0.01 },
  });
  for (const key of keys) assert.equal(await second.has(key), true, key);
  let absent = 0;
  for (let i = 0; i < 2000; i++) {
    if (!(await second.has(`v1:packument:npm:ff${i}`))) absent++;
  }
  assert.equal(absent, 2000);
  assert.ok(second.stats.bloomNegatives >= 1900, `bloom answered ${second.stats.bloomNegatives}`);
  await second.put("v1:packument:npm:new", enc.encode("{}"), { status: 200 });
  assert.equal(await second.has("v1:packument:npm:new"), true);
});

Deno.test("Cache.info(key, { absentIfUnseen }) trusts a seeded bloom filter, only when asked", async () => {
  const driver = new MemoryDriver();
  const first = await Cache.open(driver, { bloom: false });
  await first.put("v1:packument:npm:old", enc.encode("{}"), { status: 200 });
  const cache = await Cache.open(driver, { bloom: { seedLimit: 10 } });
  await cache.ready();
  assert.equal((await cache.info("v1:packument:npm:old", { absentIfUnseen: true }))?.status, 200);
  // Written behind the cache's back (as by another process): seen only by a plain read.
  await first.put("v1:packument:npm:behind", enc.encode("{}"), { status: 200 });
  assert.equal(await cache.info("v1:packument:npm:behind", { absentIfUnseen: true }), undefined);
  assert.equal(cache.stats.bloomNegatives, 1);
  assert.equal((await cache.info("v1:packument:npm:behind"))?.status, 200);
  // Its own writes are seen.
  await cache.put("v1:packument:npm:mine", enc.encode("{}"), { status: 200 });
  assert.equal((await cache.info("v1:packument:npm:mine", { absentIfUnseen: true }))?.status, 200);
});

Deno.test("Cache goes without a bloom filter when seeding passes 'seedLimit' keys", async () => {
  const driver = new MemoryDriver();
  const first = await Cache.open(driver, { bloom: false });
  for (let i = 0; i < 5; i++) {
    await first.put(`v1:packument:npm:k${i}`, enc.encode("{}"), { status: 200 });
  }
  const cache = await Cache.open(driver, { bloom: { seedLimit: 4 } });
  // Asked while the seeding runs: answered from storage once it gives the filter up.
  assert.equal(await cache.has("v1:packument:npm:k0"), true);
  await cache.ready();
  await first.put("v1:packument:npm:behind", enc.encode("{}"), { status: 200 });
  // No filter: every lookup reads storage, so nothing written elsewhere is missed.
  assert.equal(
    (await cache.info("v1:packument:npm:behind", { absentIfUnseen: true }))?.status,
    200,
  );
  assert.equal(await cache.has("v1:packument:npm:behind"), true);
  assert.equal(await cache.has("v1:packument:npm:none"), false);
  assert.equal(cache.stats.bloomNegatives, 0);
  for (const seedLimit of [-1, 1.5, NaN]) {
    await assert.rejects(Cache.open(driver, { bloom: { seedLimit } }), /'bloom.seedLimit'/);
  }
});

Deno.test("cacheMap() is a Map-like view of a cache's bodies", async () => {
  const map = cacheMap(await Cache.open(new MemoryDriver()));
  assert.equal(await map.set("v1:a", enc.encode("A")), map);
  await map.set("v1:b", enc.encode("B"));
  assert.deepEqual(await map.get("v1:a"), enc.encode("A"));
  assert.equal(await map.get("v1:z"), undefined);
  assert.equal(await map.has("v1:b"), true);
  assert.deepEqual(await Array.fromAsync(map.keys()), ["v1:a", "v1:b"]);
  assert.deepEqual(await Array.fromAsync(map), [["v1:a", enc.encode("A")], [
    "v1:b",
    enc.encode("B"),
  ]]);
  assert.equal(await map.delete("v1:a"), true);
  assert.deepEqual(await Array.fromAsync(map.entries()), [["v1:b", enc.encode("B")]]);
});

Deno.test("Cache round-trips a 20 MB streamed body on the fs and Deno KV drivers", async (t) => {
  const body = pattern(20 * 1024 * 1024, 3);
  const expected = await sha256Sri(body);
  const dir = await Deno.makeTempDir();
  try {
    const drivers: [string, () => Promise<StorageDriver>][] = [
      ["fs", () => Promise.resolve(new FsDriver(`${dir}/fs`))],
      ["deno_kv", () => DenoKvDriver.open(`${dir}/kv.db`)],
    ];
    for (const [name, make] of drivers) {
      await t.step(name, async () => {
        const driver = await make();
        try {
          const cache = await Cache.open(driver);
          const info = await cache.put("v1:packument:npm:74", chunked(body), { status: 200 });
          assert.equal(info.integrity, expected);
          const again = await Cache.open(driver);
          const entry = await again.get("v1:packument:npm:74");
          assert.equal(await sha256Sri(await readAll(entry!.stream())), expected);
        } finally {
          await driver.close();
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Cache.open() validates its options", async () => {
  await assert.rejects(
    Cache.open(new MemoryDriver(), { inlineMax: -1 }),
    /Cannot open cache: 'inlineMax' must be a non-negative integer, received -1/,
  );
  await assert.rejects(Cache.open(new MemoryDriver(), { defaultMaxAgeMs: NaN }), RangeError);
});

Deno.test("Cache accepts a native incremental hash and agrees with the built-in one", async () => {
  const driver = new MemoryDriver();
  let made = 0;
  const native = await Cache.open(driver, {
    inlineMax: 16,
    createHash: () => {
      made++;
      return createHash("sha256");
    },
  });
  const body = pattern(500_000, 5);
  const info = await native.put("v1:packument:npm:6e", chunked(body, 4096), { status: 200 });
  assert.equal(info.integrity, await sha256Sri(body));
  assert.equal(made, 1, "the streamed body was hashed by the given hash");
  const builtIn = await Cache.open(driver, { inlineMax: 16 });
  assert.deepEqual(await readAll((await builtIn.get("v1:packument:npm:6e"))!.stream()), body);
});
