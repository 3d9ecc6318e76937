import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { partitionKey } from "../../src/storage/keys.ts";
import { Checkpoint } from "../../src/storage/checkpoint.ts";
import { partitionSetId, rangesFromPivots } from "../../src/couchdb/pivots.ts";
import { refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { listCachedPartitions, partitionSetStatus } from "../../src/jobs/partition_status.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { FakeClock } from "../_support/fake_clock.ts";

Deno.test("partitionSetStatus() reports each recorded set's current pass from its checkpoint", async () => {
  const fixture = await startAllDocsFixture({ count: 300 });
  try {
    const clock = new FakeClock();
    const driver = new MemoryDriver();
    const cache = await Cache.open(driver, { clock });
    const client = new HttpClient({ fetch: (i, init) => fetch(i, init), clock });
    const pivots = [fixture.ids[100]!, fixture.ids[200]!];
    await refreshPartitions(client, cache, { origin: fixture.origin, originKey: "a", pivots });
    // A second origin, whose set is half done: one partition failed, one is still running.
    const setId = partitionSetId("b", ["m"]);
    const checkpoint = new Checkpoint(driver, "b", setId);
    await checkpoint.writeSet({
      id: setId,
      originKey: "b",
      origin: "http://127.0.0.1:9/",
      pivots: ["m"],
      createdAt: 0,
    });
    await checkpoint.put(0, {
      status: "failed",
      attempts: 3,
      rows: 0,
      lastError: "boom",
      updatedAt: 0,
      pass: 2,
    });
    await checkpoint.put(1, { status: "done", attempts: 1, rows: 7, updatedAt: 0, pass: 1 });

    const all = await partitionSetStatus(driver);
    assert.deepEqual(all.map((s) => s.originKey), ["a", "b"]);
    assert.deepEqual(all[0], {
      setId: partitionSetId("a", pivots),
      origin: fixture.origin,
      originKey: "a",
      partitions: 3,
      pass: 1,
      pending: 0,
      inProgress: 0,
      done: 3,
      failed: [],
      missing: [],
      rows: 300,
    });
    // Pass 2 has begun: the partition done in pass 1 counts as pending again.
    assert.deepEqual(all[1], {
      setId,
      origin: "http://127.0.0.1:9/",
      originKey: "b",
      partitions: 2,
      pass: 2,
      pending: 1,
      inProgress: 0,
      done: 0,
      failed: [{ index: 0, error: "boom" }],
      missing: [],
      rows: 0,
    });
    assert.deepEqual(await partitionSetStatus(driver, { originKey: "b" }), [all[1]]);
    assert.deepEqual(await partitionSetStatus(driver, { originKey: "a", pivots }), [all[0]]);
    assert.deepEqual(await partitionSetStatus(driver, { originKey: "a", pivots: ["x"] }), []);
    await assert.rejects(partitionSetStatus(driver, { pivots }), TypeError);

    // With the cache: a completed partition whose entry is gone or corrupt needs a refresh.
    const ranges = rangesFromPivots(pivots, "a");
    await cache.delete(ranges[0]!.key);
    const raw = (await driver.get(ranges[2]!.key))!;
    raw[raw.length - 3] = raw[raw.length - 3]! ^ 1;
    await driver.put(ranges[2]!.key, raw);
    const seen: string[] = [];
    const checked = await Cache.open(driver, { onCorrupt: (key) => seen.push(key) });
    const [a] = await partitionSetStatus(driver, { originKey: "a", cache: checked });
    assert.deepEqual(a!.missing, [0, 2]);
    assert.equal(a!.done, 1);
    assert.equal(a!.pending, 2);
    assert.equal(a!.rows, 100);
    assert.deepEqual(seen, [ranges[2]!.key], "the corrupt entry is reported");
    // A refresh fetches them again.
    const again = await refreshPartitions(client, cache, {
      origin: fixture.origin,
      originKey: "a",
      pivots,
    });
    assert.equal(again.fetched, 2);
    const [fixed] = await partitionSetStatus(driver, { originKey: "a", cache: checked });
    assert.deepEqual(fixed!.missing, []);
    assert.equal(fixed!.done, 3);
  } finally {
    await fixture.close();
  }
});

Deno.test("listCachedPartitions() lists ranges in key order with rows, bytes and fetch times", async () => {
  const clock = new FakeClock();
  const cache = await Cache.open(new MemoryDriver(), { clock });
  const body = (n: number) =>
    new TextEncoder().encode(Array.from({ length: n }, (_, i) => `["p${i}","1-a"]\n`).join(""));
  // Storage order puts "0" before an open start; range order does not.
  await cache.put(partitionKey("a", "0", ""), body(2), { status: 200, count: 2 });
  clock.advance(5000);
  await cache.put(partitionKey("a", "", "0"), body(1), { status: 200, count: 1 });
  await cache.put(partitionKey("b", "", ""), body(3), { status: 200, count: 3 });
  const all = await listCachedPartitions(cache);
  assert.deepEqual(
    all.map((p) => [p.origin, p.startKey, p.endKey, p.rows]),
    [["a", "", "0", 1], ["a", "0", "", 2], ["b", "", "", 3]],
  );
  assert.equal(all[0]!.key, partitionKey("a", "", "0"));
  assert.equal(all[0]!.bytes, body(1).length);
  assert.equal(all[1]!.fetchedAt + 5000, all[0]!.fetchedAt);
  assert.deepEqual(await listCachedPartitions(cache, { originKey: "b" }), [all[2]]);
});
