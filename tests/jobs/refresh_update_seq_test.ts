import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { type RefreshEvent, refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { Checkpoint } from "../../src/storage/checkpoint.ts";
import { partitionSetId } from "../../src/couchdb/pivots.ts";
import { partitionSetStatus } from "../../src/jobs/partition_status.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { startPouchdbServer } from "../_support/pouchdb_server.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const T0 = 1_700_000_000_000;

function clientFor(clock: FakeClock, retries = 2): HttpClient {
  return new HttpClient({ fetch: (i, init) => fetch(i, init), clock, retries, random: () => 0.5 });
}

Deno.test("refreshPartitions() records the origin's update_seq per pass, read before any range", async () => {
  const fixture = await startAllDocsFixture({ count: 3000 });
  try {
    const clock = new FakeClock({ now: T0 });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const pivots = [fixture.ids[1000]!, fixture.ids[2000]!];
    const events: RefreshEvent[] = [];
    const options = {
      origin: fixture.origin,
      originKey: "fixture",
      pivots,
      clock,
      recordUpdateSeq: true,
      onEvent: (event: RefreshEvent) => events.push(event),
    };
    const first = await refreshPartitions(clientFor(clock), cache, options);
    assert.equal(first.updateSeq, 3000);
    // GET / came first, before any _all_docs page.
    assert.equal(new URL(fixture.requests[0]!.url).pathname, "/");
    assert.ok(fixture.requests.slice(1).every((r) => r.url.includes("/_all_docs?")));
    assert.deepEqual(events.find((e) => e.type === "update-seq"), {
      type: "update-seq",
      pass: 1,
      seq: 3000,
    });
    const checkpoint = new Checkpoint(cache.driver, "fixture", partitionSetId("fixture", pivots));
    assert.deepEqual(await checkpoint.passRecord(1), { pass: 1, updateSeq: 3000, at: T0 });

    // A new pass records the head it starts from; the first pass keeps its own.
    fixture.setRev(fixture.ids[5]!, `9-${"a".repeat(32)}`);
    fixture.add("zzz-new");
    const second = await refreshPartitions(clientFor(clock), cache, options);
    assert.equal(second.pass, 2);
    assert.equal(second.updateSeq, 3002);
    assert.equal((await checkpoint.passRecord(2))?.updateSeq, 3002);
    assert.equal((await checkpoint.passRecord(1))?.updateSeq, 3000);
    // The records are no partition states: the status still counts three partitions.
    const [status] = await partitionSetStatus(cache.driver, { originKey: "fixture" });
    assert.equal(status!.partitions, 3);
    assert.equal(status!.done, 3);
    assert.equal(status!.pass, 2);
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() keeps the first update_seq of a resumed pass and asks no more", async () => {
  let broken = true;
  const fixture = await startAllDocsFixture({
    count: 2000,
    // The last range fails for good on the first run.
    faults: ({ url }) =>
      broken && url.searchParams.get("startkey") === JSON.stringify(fixture.ids[1000])
        ? { kind: "status", status: 500 }
        : undefined,
  });
  try {
    const clock = new FakeClock({ now: T0 });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const options = {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: [fixture.ids[1000]!],
      clock,
      maxAttempts: 1,
      recordUpdateSeq: true,
    };
    const first = await refreshPartitions(clientFor(clock, 0), cache, options);
    assert.equal(first.failed.length, 1);
    assert.equal(first.updateSeq, 2000);
    fixture.add("zzz-new");
    broken = false;
    fixture.requests.length = 0;
    const resumed = await refreshPartitions(clientFor(clock), cache, options);
    assert.equal(resumed.pass, 1);
    assert.equal(resumed.updateSeq, 2000, "the pass started at 2000: its first ranges say so");
    assert.ok(fixture.requests.every((r) => new URL(r.url).pathname === "/_all_docs"));
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() refreshes all the same when GET / fails, recording nothing", async () => {
  const fixture = await startAllDocsFixture({
    count: 500,
    faults: ({ path }) => path === "/" ? { kind: "status", status: 503 } : undefined,
  });
  try {
    const clock = new FakeClock({ now: T0 });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const events: RefreshEvent[] = [];
    const summary = await refreshPartitions(clientFor(clock, 1), cache, {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: [fixture.ids[250]!],
      clock,
      recordUpdateSeq: true,
      onEvent: (event) => events.push(event),
    });
    assert.equal(summary.fetched, 2);
    assert.equal(summary.updateSeq, undefined);
    const failed = events.find((e) => e.type === "update-seq-failed");
    assert.ok(failed && failed.type === "update-seq-failed" && /503/.test(failed.error));
    const checkpoint = new Checkpoint(
      cache.driver,
      "fixture",
      partitionSetId("fixture", [fixture.ids[250]!]),
    );
    assert.equal(await checkpoint.passRecord(1), undefined);
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() without recordUpdateSeq sends no GET /", async () => {
  const fixture = await startAllDocsFixture({ count: 100 });
  try {
    const clock = new FakeClock({ now: T0 });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const summary = await refreshPartitions(clientFor(clock), cache, {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: [fixture.ids[50]!],
      clock,
    });
    assert.equal(summary.updateSeq, undefined);
    assert.ok(fixture.requests.every((r) => new URL(r.url).pathname === "/_all_docs"));
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() records pouchdb-server's update_seq", async () => {
  const server = await startPouchdbServer({ ids: ["a", "b", "c", "d"] });
  try {
    const clock = new FakeClock({ now: T0 });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const summary = await refreshPartitions(clientFor(clock), cache, {
      origin: server.origin,
      originKey: "pouch",
      pivots: ["c"],
      clock,
      recordUpdateSeq: true,
    });
    assert.equal(summary.updateSeq, 4);
  } finally {
    await server.close();
  }
});
