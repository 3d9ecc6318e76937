import assert from "node:assert/strict";
import { allDocsUrl } from "../../src/couchdb/all_docs.ts";
import { Cache } from "../../src/storage/cache.ts";
import type { Clock } from "../../src/clock.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import { HttpClient } from "../../src/http/client.ts";
import { CHECKPOINT_PREFIX } from "../../src/storage/keys.ts";
import { refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { Checkpoint, type PartitionState } from "../../src/storage/checkpoint.ts";
import { partitionSetId, rangesFromPivots } from "../../src/couchdb/pivots.ts";
import type { StorageValue } from "../../src/storage/driver.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import {
  type AllDocsFixture,
  type Fault,
  generateNames,
  onlyPath,
  startAllDocsFixture,
} from "../_support/all_docs_fixture.ts";
import { startPouchdbServer } from "../_support/pouchdb_server.ts";
import { FakeClock } from "../_support/fake_clock.ts";

/** Where the fake clock starts. */
const T0 = 1_700_000_000_000;

/** A client on `clock` whose backoff is always half its cap (250 ms, so 125 ms, for the first
 * retry), so a fake clock's times are exact. */
function clientFor(clock: Clock, retries = 5): HttpClient {
  return new HttpClient({
    fetch: (i, init) => fetch(i, init),
    clock,
    retries,
    concurrency: 8,
    random: () => 0.5,
  });
}

/** A memory driver that keeps every checkpoint record written, in order. */
class RecordingDriver extends MemoryDriver {
  readonly checkpointWrites: { key: string; state: PartitionState }[] = [];
  override put(key: string, value: StorageValue): Promise<void> {
    if (key.startsWith(CHECKPOINT_PREFIX) && value instanceof Uint8Array) {
      this.checkpointWrites.push({ key, state: JSON.parse(new TextDecoder().decode(value)) });
    }
    return super.put(key, value);
  }
}

/** Every stored key and its bytes, checkpoint records left out. */
async function storedEntries(driver: MemoryDriver): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const key of driver.list()) {
    if (!key.startsWith(CHECKPOINT_PREFIX)) out.set(key, (await driver.get(key))!);
  }
  return out;
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
    const clock = new FakeClock({ now: T0 });
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
    // Every request was one npm accepts: limit at most 10000, dots written as %2E, and the
    // replication opt-in header on every page, the follow-on pages of the 21,000-row range too.
    assert.ok(fixture.requests.length >= 6, `${fixture.requests.length} requests`);
    for (const r of fixture.requests) {
      assert.equal(r.status, 200, r.url);
      assert.doesNotMatch(r.url, /\.\./);
      assert.equal(r.headers["npm-replication-opt-in"], "true", r.url);
    }
    assert.ok(
      fixture.requests.some((r) =>
        r.url === allDocsUrl(fixture.origin, {
          startKey: fixture.ids[14_999]!,
          endKey: pivots[1]!,
        }, 10_000)
      ),
      "a follow-on page of the long range was asked for",
    );
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
    const clock = new FakeClock({ now: T0 });
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
    // Retried and follow-on pages carry the replication opt-in header like first pages.
    for (const r of fixture.requests) {
      assert.equal(r.headers["npm-replication-opt-in"], "true", `request ${r.n}: ${r.url}`);
    }
    assert.ok(clock.sleeps.includes(2000), "Retry-After: 2 was honoured");
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() marks a partition failed after its attempts and resumes it later", async () => {
  let broken = true;
  /** `startkey` values (`""` for none) whose next request gets one unusable page. */
  const hiccups = new Set<string>();
  const fixture = await startAllDocsFixture({
    count: 2000,
    faults: ({ url }) => {
      const startkey = url.searchParams.get("startkey") ?? "";
      if (hiccups.delete(startkey)) return { kind: "bad-json" };
      return broken && startkey === "" ? { kind: "status", status: 503 } : undefined;
    },
  });
  try {
    const clock = new FakeClock({ now: T0 });
    const driver = new RecordingDriver();
    const cache = await Cache.open(driver, { clock });
    const pivots = pivotsAt(fixture, [500, 1500]);
    // One partition at a time, so the fake clock's readings are exact.
    const options = {
      origin: fixture.origin,
      originKey: "fixture",
      pivots,
      clock,
      maxAttempts: 2,
      parallel: 1,
      workerId: "worker-1",
    };
    // Partition 1's first page is unusable once: its page retry waits 250 ms.
    hiccups.add(JSON.stringify(pivots[0]));
    const first = await refreshPartitions(clientFor(clock, 1), cache, options);
    assert.equal(first.failed.length, 1);
    assert.equal(first.failed[0]!.index, 0);
    const url = allDocsUrl(fixture.origin, { startKey: "", endKey: pivots[0]! }, 10_000);
    const error = first.failed[0]!.error;
    assert.equal(error, `GET ${url} failed after 2 attempts: HTTP 503`);
    assert.equal(await cache.has(first.failed[0]!.key), false, "a failed range is never cached");
    const checkpoint = new Checkpoint(driver, "fixture", first.setId);
    assert.equal((await checkpoint.set())?.createdAt, T0);
    // Partition 0: each attempt's 503 is retried once by the client (125 ms), and the partition
    // waits 1 s before its second attempt.
    const failed: PartitionState = {
      status: "failed",
      attempts: 2,
      rows: 0,
      lastError: error,
      startedAt: T0 + 1125,
      updatedAt: T0 + 1250,
      pass: 1,
    };
    assert.deepEqual(await checkpoint.get(0), failed);
    assert.deepEqual(
      driver.checkpointWrites.filter((w) => w.key.endsWith(":000000")).map((w) => w.state),
      [
        {
          status: "in-progress",
          attempts: 1,
          rows: 0,
          startedAt: T0,
          updatedAt: T0,
          owner: "worker-1",
          pass: 1,
        },
        {
          status: "pending",
          attempts: 1,
          rows: 0,
          lastError: error,
          startedAt: T0,
          updatedAt: T0 + 125,
          pass: 1,
        },
        {
          status: "in-progress",
          attempts: 2,
          rows: 0,
          startedAt: T0 + 1125,
          updatedAt: T0 + 1125,
          owner: "worker-1",
          pass: 1,
        },
        failed,
      ],
    );
    const done1: PartitionState = {
      status: "done",
      attempts: 1,
      rows: 1000,
      startedAt: T0 + 1250,
      updatedAt: T0 + 1500,
      finishedAt: T0 + 1500,
      pass: 1,
    };
    const done2: PartitionState = {
      status: "done",
      attempts: 1,
      rows: 500,
      startedAt: T0 + 1500,
      updatedAt: T0 + 1500,
      finishedAt: T0 + 1500,
      pass: 1,
    };
    assert.deepEqual(await checkpoint.get(1), done1);
    assert.deepEqual(await checkpoint.get(2), done2);

    broken = false;
    hiccups.add("");
    fixture.requests.length = 0;
    const second = await refreshPartitions(clientFor(clock, 1), cache, options);
    assert.equal(second.fetched, 1);
    assert.equal(second.skipped, 2);
    assert.ok(fixture.requests.every((r) => !new URL(r.url).searchParams.has("startkey")));
    assert.deepEqual(await index(cache), fixture.rows);
    // The failed partition starts a new set of attempts; done ones keep their records.
    assert.deepEqual(await checkpoint.get(0), {
      status: "done",
      attempts: 1,
      rows: 500,
      startedAt: T0 + 1500,
      updatedAt: T0 + 1750,
      finishedAt: T0 + 1750,
      pass: 1,
    });
    assert.deepEqual(await checkpoint.get(1), done1);
    assert.deepEqual(await checkpoint.get(2), done2);
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() never caches a range whose follow-on page fails for good", async () => {
  /** Faults by `startkey`, for every request that asks for it. */
  const failing = new Map<string, Fault>();
  const fixture = await startAllDocsFixture({
    count: 6000,
    faults: ({ url }) => failing.get(url.searchParams.get("startkey") ?? ""),
  });
  try {
    const clock = new FakeClock({ now: T0 });
    const driver = new MemoryDriver();
    const cache = await Cache.open(driver, { clock });
    // Three ranges of 2,000 rows; with 1,000 rows a page, each takes a full first page, a full
    // second page (starting at the first page's last id) and a short third one.
    const pivots = pivotsAt(fixture, [2000, 4000]);
    const ranges = rangesFromPivots(pivots, "fixture");
    const options = {
      origin: fixture.origin,
      originKey: "fixture",
      pivots,
      clock,
      limit: 1000,
      maxAttempts: 1,
    };
    const startOf = (position: number) => JSON.stringify(fixture.ids[position]);
    // Range 1's second page always answers 503; range 2's third page is always cut short.
    const arm = () => {
      failing.set(startOf(2999), { kind: "status", status: 503 });
      failing.set(startOf(5998), { kind: "truncate" });
    };
    const requestsFor = (startkey: string) =>
      fixture.requests.filter((r) => new URL(r.url).searchParams.get("startkey") === startkey);
    /** Keys stored for range `i`: its entry and any separately stored body. */
    const storedFor = (stored: Map<string, Uint8Array>, i: number) =>
      [...stored.keys()].filter((key) => key.includes(ranges[i]!.key.slice("v1:".length)));
    const failedOf = (summary: { failed: { index: number; key: string; error: string }[] }) =>
      summary.failed.slice().sort((a, b) => a.index - b.index);

    arm();
    const first = await refreshPartitions(clientFor(clock, 1), cache, options);
    const failed = failedOf(first);
    assert.deepEqual(failed.map((f) => [f.index, f.key]), [[1, ranges[1]!.key], [
      2,
      ranges[2]!.key,
    ]]);
    assert.match(failed[0]!.error, /HTTP 503/);
    assert.equal(failed[1]!.error, "Bad _all_docs page: the body was cut short");
    assert.equal(first.fetched, 1);
    // The pages before the failing one were served whole.
    assert.deepEqual(requestsFor(startOf(2000)).map((r) => r.status), [200]);
    assert.deepEqual(requestsFor(startOf(4000)).map((r) => r.status), [200]);
    assert.deepEqual(requestsFor(startOf(4999)).map((r) => r.status), [200]);
    assert.ok(requestsFor(startOf(2999)).every((r) => r.fault?.kind === "status"));
    assert.ok(requestsFor(startOf(5998)).length > 0);
    assert.ok(requestsFor(startOf(5998)).every((r) => r.fault?.kind === "truncate"));
    // Nothing of either range is stored: no entry, no body.
    for (const f of failed) assert.equal(await cache.has(f.key), false, f.key);
    const afterFirst = await storedEntries(driver);
    assert.deepEqual(storedFor(afterFirst, 1), []);
    assert.deepEqual(storedFor(afterFirst, 2), []);
    assert.deepEqual(await Array.fromAsync(cache.keys("v1:partition:")), [ranges[0]!.key]);
    const checkpoint = new Checkpoint(driver, "fixture", first.setId);
    for (const f of failed) {
      const state = await checkpoint.get(f.index);
      assert.equal(state?.status, "failed");
      assert.equal(state?.lastError, f.error);
      assert.equal(state?.rows, 0);
    }

    // Once the origin heals, the failed ranges are fetched completely.
    failing.clear();
    const second = await refreshPartitions(clientFor(clock, 1), cache, options);
    assert.deepEqual(second.failed, []);
    assert.equal(second.fetched, 2);
    assert.deepEqual(await index(cache), fixture.rows);
    const complete = await storedEntries(driver);
    assert.ok(storedFor(complete, 1).length > 0 && storedFor(complete, 2).length > 0);

    // New revisions in every range; the follow-on pages of ranges 1 and 2 fail again.
    const before = fixture.rows.slice();
    for (const position of [10, 2500, 4500]) {
      fixture.setRev(fixture.ids[position]!, `99-${"f".repeat(32)}`);
    }
    arm();
    fixture.requests.length = 0;
    const third = await refreshPartitions(clientFor(clock, 1), cache, options);
    assert.equal(third.pass, 2);
    assert.deepEqual(failedOf(third).map((f) => f.index), [1, 2]);
    // The new revision of range 1 reached the client on a good first page, and was dropped.
    assert.deepEqual(requestsFor(startOf(2000)).map((r) => r.status), [200]);
    // The earlier complete versions are left byte for byte: entries, bodies, nothing added.
    const afterThird = await storedEntries(driver);
    for (const i of [1, 2]) {
      assert.deepEqual(storedFor(afterThird, i), storedFor(complete, i), `range ${i} keys`);
      for (const key of storedFor(complete, i)) {
        assert.deepEqual(afterThird.get(key), complete.get(key), key);
      }
    }
    const rows = await index(cache);
    assert.equal(rows[10]!.rev, `99-${"f".repeat(32)}`);
    assert.deepEqual(rows.slice(0, 2000), fixture.rows.slice(0, 2000), "range 0 was refreshed");
    assert.deepEqual(rows.slice(2000), before.slice(2000), "ranges 1 and 2 were kept");
    assert.notDeepEqual(rows.slice(2000), fixture.rows.slice(2000));
  } finally {
    await fixture.close();
  }
});

Deno.test("refreshPartitions() on a completed set refreshes it, conditionally where it can", async () => {
  const fixture = await startAllDocsFixture({ count: 3000, etags: true });
  try {
    const clock = new FakeClock({ now: T0 });
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
    const clock = new FakeClock({ now: T0 });
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
    const clock = new FakeClock({ now: T0 });
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
