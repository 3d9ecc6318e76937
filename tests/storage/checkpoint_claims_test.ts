import assert from "node:assert/strict";
import { join } from "node:path";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { refreshPartitions, type RefreshSummary } from "../../src/jobs/refresh_partitions.ts";
import { Checkpoint, type ClaimRecord } from "../../src/storage/checkpoint.ts";
import { partitionSetId } from "../../src/couchdb/pivots.ts";
import type { StorageDriver } from "../../src/storage/driver.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { DenoKvDriver } from "../../drivers/deno_kv.deno.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { S3Driver } from "../../drivers/s3.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_support/s3rver.ts";
import { type AllDocsFixture, startAllDocsFixture } from "../_support/all_docs_fixture.ts";

const WORKERS = 4;
const PIVOTS = 200;

/** `count` pivots at evenly spaced ids of the fixture. */
function pivotsOf(fixture: AllDocsFixture, count: number): string[] {
  const step = Math.floor(fixture.ids.length / (count + 1));
  return Array.from({ length: count }, (_, i) => fixture.ids[(i + 1) * step]!);
}

/** Runs `WORKERS` refreshes of one set at once, each on the driver `open()` gives it. */
async function race(
  fixture: AllDocsFixture,
  pivots: string[],
  open: () => Promise<StorageDriver>,
): Promise<RefreshSummary[]> {
  const drivers = await Promise.all(Array.from({ length: WORKERS }, open));
  try {
    return await Promise.all(drivers.map(async (driver, i) =>
      refreshPartitions(
        new HttpClient({ fetch: (input, init) => fetch(input, init), concurrency: 8 }),
        await Cache.open(driver),
        { origin: fixture.origin, originKey: "fixture", pivots, workerId: `w${i}` },
      )
    ));
  } finally {
    await Promise.all(drivers.map((driver) => driver.close()));
  }
}

/** The `startkey` of each request the fixture saw, with how often it was asked. */
function fetchesByRange(fixture: AllDocsFixture): Map<string, number> {
  const out = new Map<string, number>();
  for (const request of fixture.requests) {
    const start = new URL(request.url).searchParams.get("startkey") ?? "";
    out.set(start, (out.get(start) ?? 0) + 1);
  }
  return out;
}

async function assertEachFetchedOnce(name: string, open: () => Promise<StorageDriver>) {
  const fixture = await startAllDocsFixture({
    count: 4_000,
    faults: () => ({ kind: "delay", ms: 3 }),
  });
  try {
    const pivots = pivotsOf(fixture, PIVOTS);
    const summaries = await race(fixture, pivots, open);
    assert.deepEqual(summaries.flatMap((s) => s.failed), []);
    const fetches = fetchesByRange(fixture);
    const redone = [...fetches.values()].filter((n) => n > 1).length;
    assert.equal(redone, 0, `${name}: ${redone} of ${PIVOTS + 1} partitions fetched again`);
    assert.equal(fixture.requests.length, PIVOTS + 1);
    assert.equal(summaries.reduce((n, s) => n + s.fetched, 0), PIVOTS + 1);
    assert.equal(summaries.reduce((n, s) => n + s.duplicated, 0), 0);
    assert.ok(summaries.filter((s) => s.fetched > 0).length > 1, "the workers shared the set");
    const driver = await open();
    try {
      const states = await new Checkpoint(driver, "fixture", partitionSetId("fixture", pivots))
        .all();
      assert.equal(states.size, PIVOTS + 1);
      for (const state of states.values()) assert.equal(state.status, "done");
      const keys = await Array.fromAsync(driver.list({ prefix: "v1:checkpoint:" }));
      assert.equal(keys.length, PIVOTS + 2, "no claim is left behind");
    } finally {
      await driver.close();
    }
  } finally {
    await fixture.close();
  }
}

Deno.test("refreshPartitions(): 4 workers on one fs directory fetch each partition once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertEachFetchedOnce("fs", () => Promise.resolve(new FsDriver(dir)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("refreshPartitions(): 4 workers on one Deno KV database fetch each partition once", async () => {
  const dir = await Deno.makeTempDir();
  // One handle: SQLite answers "database is locked" to a second writer in one process.
  const kv = await DenoKvDriver.open(join(dir, "kv.sqlite"));
  try {
    await assertEachFetchedOnce("deno_kv", () => Promise.resolve(view(kv, true)));
  } finally {
    await kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("refreshPartitions(): 4 workers on one memory driver fetch each partition once", async () => {
  const shared = new MemoryDriver();
  await assertEachFetchedOnce("memory", () => Promise.resolve(view(shared, true)));
});

Deno.test("refreshPartitions(): 4 workers on one S3 bucket fetch each partition once", async () => {
  const server = await startS3rver("claims-test");
  try {
    // A driver (and so an HTTP client) per worker, as separate processes would have.
    await assertEachFetchedOnce("s3", () =>
      Promise.resolve(
        new S3Driver({
          endpoint: server.endpoint,
          bucket: server.bucket,
          prefix: "all-docs:",
          credentials: S3RVER_CREDENTIALS,
        }),
      ));
  } finally {
    await server.close();
  }
});

/**
 * A view of `driver` whose `close` leaves it open, with its `putIfAbsent` when `claims` (without
 * it, claims fall back to read-then-write).
 */
function view(driver: StorageDriver, claims: boolean): StorageDriver {
  const putIfAbsent = driver.putIfAbsent;
  return {
    ...(claims && putIfAbsent
      ? { putIfAbsent: (key: string, value: Uint8Array) => putIfAbsent.call(driver, key, value) }
      : {}),
    name: driver.name,
    limits: driver.limits,
    get: (key) => driver.get(key),
    getStream: (key) => driver.getStream(key),
    put: (key, value) => driver.put(key, value),
    delete: (key) => driver.delete(key),
    has: (key) => driver.has(key),
    list: (options) => driver.list(options),
    close: () => Promise.resolve(),
  };
}

Deno.test("refreshPartitions() reports partitions another worker completed first as duplicated", async () => {
  const fixture = await startAllDocsFixture({
    count: 4_000,
    faults: () => ({ kind: "delay", ms: 3 }),
  });
  const dir = await Deno.makeTempDir();
  try {
    const pivots = pivotsOf(fixture, PIVOTS);
    const summaries = await race(
      fixture,
      pivots,
      () => Promise.resolve(view(new FsDriver(dir), false)),
    );
    assert.deepEqual(summaries.flatMap((s) => s.failed), []);
    const fetched = summaries.reduce((n, s) => n + s.fetched, 0);
    const duplicated = summaries.reduce((n, s) => n + s.duplicated, 0);
    assert.equal(fetched, fixture.requests.length);
    // Two workers finishing one partition at the same moment may both miss the other's work.
    assert.ok(duplicated <= fetched - (PIVOTS + 1), `${duplicated} duplicated of ${fetched}`);
    if (fetched > PIVOTS + 1) assert.ok(duplicated > 0, `${fetched} fetches, none reported`);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Checkpoint.claim(): one of two racing claims wins; a claim left by a dead worker is taken over", async () => {
  const driver = new MemoryDriver();
  const checkpoint = new Checkpoint(driver, "o", "set");
  const state = (owner: string, at: number) => ({
    status: "in-progress" as const,
    attempts: 1,
    rows: 0,
    startedAt: at,
    updatedAt: at,
    owner,
    pass: 1,
  });
  const never = () => false;
  const won = await Promise.all([
    checkpoint.claim(0, undefined, state("a", 1), never),
    checkpoint.claim(0, undefined, state("b", 1), never),
  ]);
  assert.deepEqual(won.sort(), [false, true]);
  const { raw } = await checkpoint.read(0);
  // Worker c dies after creating its claim key: its reads fail and nothing is cleaned up.
  const dying: StorageDriver = {
    ...view(driver, true),
    get: (key) => key.includes(":claim:") ? driver.get(key) : Promise.reject(new Error("killed")),
    delete: () => Promise.resolve(),
  };
  await assert.rejects(new Checkpoint(dying, "o", "set").claim(0, raw, state("c", 2), never));
  const claims = await Array.fromAsync(driver.list({ prefix: "v1:checkpoint:o:set:000000:" }));
  assert.equal(claims.length, 1, "the dead worker's claim is left");
  const seen: ClaimRecord[] = [];
  const live = (claim: ClaimRecord) => (seen.push(claim), false);
  assert.equal(await checkpoint.claim(0, raw, state("d", 3), live), false, "a live claim holds");
  assert.deepEqual(seen, [{ owner: "c", at: 2 }]);
  assert.equal(await checkpoint.claim(0, raw, state("d", 4), () => true), true);
  assert.equal((await checkpoint.get(0))?.owner, "d");
  assert.deepEqual(
    await Array.fromAsync(driver.list({ prefix: "v1:checkpoint:o:set:000000:" })),
    [],
    "no claim key is left",
  );
  // A claim from a state that changed meanwhile loses.
  assert.equal(await checkpoint.claim(0, raw, state("e", 5), never), false);
  assert.equal((await checkpoint.get(0))?.owner, "d");
});
