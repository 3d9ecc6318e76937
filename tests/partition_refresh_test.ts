import assert from "node:assert/strict";
import { Cache } from "../src/cache.ts";
import type { Clock } from "../src/clock.ts";
import { indexRows } from "../src/create_index.ts";
import { HttpClient } from "../src/http_client.ts";
import { refreshPartitions } from "../src/partition_refresh.ts";
import { Checkpoint } from "../src/checkpoint.ts";
import { partitionSetId } from "../src/pivots.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import {
  type AllDocsFixture,
  type Fault,
  generateNames,
  onlyPath,
  startAllDocsFixture,
} from "./_support/all_docs_fixture.ts";
import { startPouchdbServer } from "./_support/pouchdb_server.ts";

/** Sleeps cost nothing; time moves forward by what was asked. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 1_700_000_000_000;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep(ms: number) {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
  };
}

function clientFor(clock: Clock, retries = 5): HttpClient {
  return new HttpClient({ fetch: (i, init) => fetch(i, init), clock, retries, concurrency: 8 });
}

async function index(cache: Cache, originKey?: string) {
  const rows = [];
  for await (const row of indexRows(cache, originKey)) rows.push(row);
  return rows;
}

/** Pivots at chosen positions of the sorted ids, plus keys that are no id at all. */
function pivotsAt(fixture: AllDocsFixture, positions: number[], extra: string[] = []): string[] {
  const keys = new Set([...positions.map((p) => fixture.ids[p]!), ...extra]);
  return [...keys].sort((a, b) => (a < b ? -1 : 1));
}

Deno.test("refreshPartitions() reads every range completely, past the 10,000-row cap", async () => {
  const fixture = await startAllDocsFixture({ count: 30_000 });
  try {
    const clock = fakeClock();
    const cache = await Cache.open(new MemoryDriver(), { clock });
    // One range of 21,000 rows, one of 1 row, and open ends on both sides.
    const pivots = pivotsAt(fixture, [5000, 26000, 26001]);
    const summary = await refreshPartitions(clientFor(clock), cache, {
      origin: fixture.origin,
      originKey: "fixture",
      pivots,
      clock,
    });
    assert.equal(summary.partitions, 4);
    assert.equal(summary.fetched, 4);
    assert.equal(summary.rows, 30_000);
    assert.deepEqual(summary.failed, []);
    const rows = await index(cache);
    assert.deepEqual(rows, fixture.rows);
    assert.equal(rows[0]!.id, fixture.ids[0]);
    assert.equal(rows.at(-1)!.id, fixture.ids.at(-1));
    // Every request was one npm accepts: limit at most 10000, dots written as %2E.
    for (const r of fixture.requests) {
      assert.equal(r.status, 200, r.url);
      assert.doesNotMatch(r.url, /\.\./);
    }
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() loses nothing to 429, 503, resets, truncation and bad pages", async () => {
  const faults: Fault[] = [
    { kind: "status", status: 429, retryAfter: "2" },
    { kind: "status", status: 503 },
    { kind: "reset" },
    { kind: "truncate" },
    { kind: "bad-json" },
    { kind: "content-type" },
    { kind: "out-of-order" },
  ];
  const fixture = await startAllDocsFixture({
    count: 25_000,
    faults: onlyPath(
      "/_all_docs",
      ({ n }) => n % 2 === 0 ? faults[(n / 2) % faults.length] : undefined,
    ),
  });
  try {
    const clock = fakeClock();
    const client = clientFor(clock);
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const summary = await refreshPartitions(client, cache, {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: pivotsAt(fixture, [3000, 15000]),
      clock,
      limit: 4000,
    });
    assert.deepEqual(summary.failed, []);
    assert.deepEqual(await index(cache), fixture.rows);
    const kinds = new Set(fixture.requests.map((r) => r.fault?.kind).filter(Boolean));
    for (const f of faults) assert.ok(kinds.has(f.kind), `fault ${f.kind} was injected`);
    assert.ok(clock.slept.includes(2000), "Retry-After: 2 was honoured");
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() marks a partition failed after its attempts and resumes it later", async () => {
  let broken = true;
  const fixture = await startAllDocsFixture({
    count: 2000,
    faults: ({ url }) =>
      broken && url.searchParams.get("startkey") === null
        ? { kind: "status", status: 503 }
        : undefined,
  });
  try {
    const clock = fakeClock();
    const driver = new MemoryDriver();
    const cache = await Cache.open(driver, { clock });
    const options = {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: pivotsAt(fixture, [500, 1500]),
      clock,
      maxAttempts: 2,
    };
    const first = await refreshPartitions(clientFor(clock, 1), cache, options);
    assert.equal(first.failed.length, 1);
    assert.equal(first.failed[0]!.index, 0);
    assert.match(first.failed[0]!.error, /503/);
    assert.equal(await cache.has(first.failed[0]!.key), false, "a failed range is never cached");
    const checkpoint = new Checkpoint(driver, "fixture", first.setId);
    assert.equal((await checkpoint.get(0))?.status, "failed");
    assert.equal((await checkpoint.get(0))?.attempts, 2);
    assert.equal((await checkpoint.get(1))?.status, "done");

    broken = false;
    fixture.requests.length = 0;
    const second = await refreshPartitions(clientFor(clock, 1), cache, options);
    assert.equal(second.fetched, 1);
    assert.equal(second.skipped, 2);
    assert.ok(fixture.requests.every((r) => !new URL(r.url).searchParams.has("startkey")));
    assert.deepEqual(await index(cache), fixture.rows);
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() on a completed set refreshes it, conditionally where it can", async () => {
  const fixture = await startAllDocsFixture({ count: 3000, etags: true });
  try {
    const clock = fakeClock();
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const options = {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: pivotsAt(fixture, [1000, 2000]),
      clock,
      limit: 1500,
    };
    const first = await refreshPartitions(clientFor(clock), cache, options);
    assert.equal(first.pass, 1);
    const changed = fixture.ids[1500]!;
    fixture.setRev(changed, "99-changed");
    const second = await refreshPartitions(clientFor(clock), cache, options);
    assert.equal(second.pass, 2);
    assert.equal(second.fetched, 3);
    assert.equal(second.unchanged, 2, "the two untouched single-page ranges answered 304");
    assert.deepEqual(fixture.requests.slice(3).map((r) => r.status).sort(), [200, 304, 304]);
    assert.deepEqual(await index(cache), fixture.rows);
    // A new document changes every page's total_rows, so every range is fetched again.
    fixture.add("zzzz-new-package");
    const third = await refreshPartitions(clientFor(clock), cache, options);
    assert.equal(third.pass, 3);
    assert.equal(third.unchanged, 0);
    assert.deepEqual(await index(cache), fixture.rows);
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions(): two workers on one checkpoint finish the set without losing writes", async () => {
  const fixture = await startAllDocsFixture({
    count: 12_000,
    faults: () => ({ kind: "delay", ms: 5 }),
  });
  try {
    const clock = fakeClock();
    const driver = new MemoryDriver();
    const pivots = pivotsAt(fixture, Array.from({ length: 15 }, (_, i) => (i + 1) * 750));
    const run = async (workerId: string) =>
      refreshPartitions(clientFor(clock), await Cache.open(driver, { clock }), {
        origin: fixture.origin,
        originKey: "fixture",
        pivots,
        clock,
        parallel: 2,
        workerId,
      });
    const [a, b] = await Promise.all([run("a"), run("b")]);
    assert.deepEqual([...a.failed, ...b.failed], []);
    assert.ok(a.fetched > 0 && b.fetched > 0, `a fetched ${a.fetched}, b fetched ${b.fetched}`);
    const checkpoint = new Checkpoint(driver, "fixture", partitionSetId("fixture", pivots));
    const states = await checkpoint.all();
    assert.equal(states.size, 16);
    for (const [index, state] of states) assert.equal(state.status, "done", `partition ${index}`);
    assert.equal([...states.values()].reduce((n, s) => n + s.rows, 0), 12_000);
    assert.deepEqual(await index(await Cache.open(driver)), fixture.rows);
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() against pouchdb-server returns exactly the server's listing", async () => {
  // pouchdb collates with ICU, npm by code point: lower-case ids with digits, dots and dashes,
  // and scopes, sort the same way under both.
  const ids = generateNames(20_000).filter((id) =>
    /^[a-z@][a-z0-9.\-/@]*$/.test(id) && !id.includes("..")
  );
  assert.ok(ids.length > 12_000, `${ids.length} ids`);
  const server = await startPouchdbServer({ ids });
  try {
    const clock = fakeClock();
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const sorted = server.rows.map((r) => r.id);
    const summary = await refreshPartitions(clientFor(clock), cache, {
      origin: server.origin,
      originKey: "pouchdb",
      pivots: [sorted[100]!, sorted[11_500]!],
      clock,
    });
    assert.deepEqual(summary.failed, []);
    assert.deepEqual(await index(cache), server.rows);
  } finally {
    await server.close();
  }
});
