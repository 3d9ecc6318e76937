import assert from "node:assert/strict";
import { join } from "node:path";
import { Cache } from "../../src/storage/cache.ts";
import type { Clock } from "../../src/clock.ts";
import { systemClock } from "../../src/clock.ts";
import { HttpClient } from "../../src/http/client.ts";
import { originKey, packumentKey, partitionKey } from "../../src/storage/keys.ts";
import type { StorageDriver } from "../../src/storage/driver.ts";
import { Checkpoint } from "../../src/storage/checkpoint.ts";
import { partitionSetId, rangesFromPivots } from "../../src/couchdb/pivots.ts";
import { packageNameProblem } from "../../src/npm/package_name.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import { partitionSetStatus } from "../../src/jobs/partition_status.ts";
import { itemId, type PartitionPayload } from "../../src/worker/items.ts";
import { Worker, type WorkerEvent } from "../../src/worker/worker.ts";
import { type WorkerHandlerOptions, workerHandlers } from "../../src/worker/handlers.ts";
import { MemoryQueue } from "../../queues/memory.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { generatePackument } from "../_support/packuments.ts";
import { FakeClock } from "../_support/fake_clock.ts";
import {
  type AllDocsFixture,
  defaultRev,
  type Fault,
  type FaultPlan,
  generateNames,
  onlyPath,
  startAllDocsFixture,
} from "../_support/all_docs_fixture.ts";
import {
  onlyName,
  type RegistryFaultPlan,
  type RegistryFixture,
  startRegistryFixture,
} from "../_support/registry_fixture.ts";

/** The origin key the partitions are cached under. */
const COUCH = "couch";

interface WorldOptions {
  /** Where the cache lives. */
  storage?: "memory" | "fs";
  /** Documents in the origin's listing. */
  count?: number;
  /** Faults of the `_all_docs` origin (requests numbered among `_all_docs` requests). */
  couchFaults?: FaultPlan;
  /** Faults of the registry. */
  registryFaults?: RegistryFaultPlan;
  /** The HTTP client's retries. */
  retries?: number;
  /** The worker's `maxAttempts`. */
  maxAttempts?: number;
  /** Handler options besides the client, the cache and the registry. */
  handlers?: Partial<WorkerHandlerOptions>;
}

interface World {
  couch: AllDocsFixture;
  registry: RegistryFixture;
  /** The full documents by name (the valid package names of the listing). */
  docs: Map<string, string>;
  driver: StorageDriver;
  cache: Cache;
  queue: MemoryQueue;
  worker: Worker;
  events: WorkerEvent[];
  /** The registry's origin key. */
  registryKey: string;
  /** Runs the worker until nothing is queued or running. */
  run(): Promise<{ done: number; dead: number }>;
}

/**
 * A worker over a memory queue with the handlers, a cache (memory or fs), an `_all_docs` origin
 * and a registry, both strict fixtures on 127.0.0.1. The listing holds generated names, some of
 * them not package names (they have no packument).
 */
async function withWorld(options: WorldOptions, fn: (world: World) => Promise<void>) {
  const docs = new Map<string, string>();
  const ids = generateNames(options.count ?? 240);
  ids.forEach((id, i) => {
    if (packageNameProblem(id) === undefined) {
      docs.set(id, generatePackument(id, { versions: 1 + (i % 4), seed: i }));
    }
  });
  const revOf = (id: string) => docs.has(id) ? JSON.parse(docs.get(id)!)._rev : defaultRev(id);
  const couch = await startAllDocsFixture({
    ids,
    revFor: revOf,
    etags: true,
    ...(options.couchFaults ? { faults: onlyPath("/_all_docs", options.couchFaults) } : {}),
  });
  const registry = await startRegistryFixture({
    packuments: docs,
    ...(options.registryFaults ? { faults: options.registryFaults } : {}),
  });
  const dir = options.storage === "fs" ? await Deno.makeTempDir() : undefined;
  const driver = dir ? new FsDriver(join(dir, "fs")) : new MemoryDriver();
  try {
    const clock = new FakeClock();
    const client = new HttpClient({
      fetch: (input, init) => fetch(input, init),
      clock,
      retries: options.retries ?? 2,
      random: () => 0.5,
      concurrency: 8,
    });
    const cache = await Cache.open(driver);
    const registryKey = originKey(registry.url);
    const maxAttempts = options.maxAttempts ?? 5;
    const queue = new MemoryQueue();
    const events: WorkerEvent[] = [];
    const worker = new Worker(queue, {
      handlers: workerHandlers({
        client,
        cache,
        registry: { url: registry.url, originKey: registryKey },
        maxAttempts,
        clock,
        ...options.handlers,
      }),
      concurrency: 4,
      retry: { maxAttempts, baseDelayMs: 1, maxDelayMs: 20 },
      onEvent: (event) => events.push(event),
    });
    await fn({
      couch,
      registry,
      docs,
      driver,
      cache,
      queue,
      worker,
      events,
      registryKey,
      run: () => worker.runUntilIdle(5),
    });
    await queue.close();
  } finally {
    await driver.close();
    if (dir) await Deno.remove(dir, { recursive: true });
    await registry.close();
    await couch.close();
  }
}

/** Pivots at these positions of the listing. */
function pivotsAt(couch: AllDocsFixture, positions: number[]): string[] {
  return positions.map((p) => couch.ids[p]!);
}

async function listing(cache: Cache) {
  const rows = [];
  for await (const row of indexRows(cache, COUCH)) rows.push(row);
  return rows;
}

/** Every packument of the listing is cached byte for byte, with its `_rev`. */
async function assertPackumentsCached(world: World) {
  for (const [name, doc] of world.docs) {
    const entry = await world.cache.get(packumentKey(world.registryKey, name));
    assert.ok(entry, `${name} is cached`);
    assert.deepEqual(await entry.bytes(), world.registry.expectedBody(name, "full"), name);
    assert.equal(entry.info.rev, JSON.parse(doc)._rev, name);
  }
}

/** The set's status from its checkpoint, checked against the cache. */
async function setStatus(world: World, pivots: string[]) {
  const [status] = await partitionSetStatus(world.driver, {
    originKey: COUCH,
    pivots,
    cache: world.cache,
  });
  assert.ok(status, "the set is recorded");
  return status;
}

/** Names the registry was asked for (one entry per request), then forgets the requests. */
function askedNames(registry: RegistryFixture): string[] {
  const names = registry.requests.map((r) => r.name ?? "?");
  registry.requests.length = 0;
  return names;
}

for (const storage of ["memory", "fs"] as const) {
  Deno.test(`workerHandlers() on a ${storage} cache: a partition set with packuments ends as the origin lists it, and a new pass fetches nothing unchanged`, () =>
    withWorld({ storage }, async (world) => {
      const { couch, registry, worker, cache } = world;
      const pivots = pivotsAt(couch, [40, 100, 170]);
      const set = {
        type: "partition-set",
        payload: {
          origin: couch.origin,
          originKey: COUCH,
          pivots,
          packuments: "full",
          // The fs run names the registry, the memory run uses the worker's default.
          ...(storage === "fs" ? { registry: registry.url } : {}),
        },
        priority: 3,
      };
      await worker.enqueue([set]);
      const first = await world.run();
      assert.equal(first.dead, 0);
      assert.deepEqual(await listing(cache), couch.rows);
      await assertPackumentsCached(world);
      // Ids that are not package names get no request; every package exactly one.
      assert.deepEqual(askedNames(registry).sort(), [...world.docs.keys()].sort());
      const status = await setStatus(world, pivots);
      assert.deepEqual(
        [status.pass, status.done, status.partitions, status.rows, status.failed.length],
        [1, 4, 4, couch.ids.length, 0],
      );
      // Items ran at the set's priority, packument batches of at most 100 names.
      const setId = partitionSetId(COUCH, pivots);
      const partition = await world.queue.status(`partition:${setId}:1:0`);
      assert.equal(partition?.state, "done");
      assert.equal(partition?.priority, 3);
      const batches = world.events.filter((e) => e.type === "ack" && e.itemType === "packument");
      assert.equal(batches.length, 4, "one batch per range: each range has under 100 names");

      // Again: a new pass, its update_seq recorded (GET /, for a follower to start from),
      // every range revalidated (304), no packument asked for.
      couch.requests.length = 0;
      assert.deepEqual((await worker.enqueue([set])).accepted.length, 1);
      assert.equal((await world.run()).dead, 0);
      assert.deepEqual(
        couch.requests.map((r) => `${new URL(r.url).pathname === "/" ? "/" : "range"} ${r.status}`),
        ["/ 200", "range 304", "range 304", "range 304", "range 304"],
      );
      assert.deepEqual(askedNames(registry), []);
      assert.equal((await setStatus(world, pivots)).pass, 2);
      assert.equal((await setStatus(world, pivots)).done, 4);

      // One document changes: its range answers 200, the others 304; only it is fetched.
      const name = [...world.docs.keys()][120]!;
      const changed = { ...JSON.parse(world.docs.get(name)!), _rev: "9-0123456789abcdef" };
      world.docs.set(name, JSON.stringify(changed));
      registry.set(name, world.docs.get(name)!);
      couch.setRev(name, changed._rev);
      couch.requests.length = 0;
      await worker.enqueue([set]);
      assert.equal((await world.run()).dead, 0);
      assert.deepEqual(
        couch.requests.filter((r) => new URL(r.url).pathname !== "/").map((r) => r.status).sort(),
        [200, 304, 304, 304],
      );
      assert.deepEqual(askedNames(registry), [name]);
      assert.deepEqual(await listing(cache), couch.rows);
      await assertPackumentsCached(world);

      // An item of a pass the set has left is acked without a request.
      couch.requests.length = 0;
      const stale: PartitionPayload = {
        origin: couch.origin,
        originKey: COUCH,
        setId,
        pass: 1,
        index: 2,
        startKey: pivots[1]!,
        endKey: pivots[2]!,
      };
      await worker.enqueue([{ type: "partition", payload: stale }]);
      assert.equal((await world.run()).dead, 0);
      assert.equal(couch.requests.length, 0);
      assert.equal((await world.queue.status(itemId("partition", stale)))?.state, "done");
    }));
}

Deno.test("workerHandlers(): 20% injected faults on the origin and the registry end with the same cache", () => {
  const couchFaults: Fault[] = [
    { kind: "status", status: 503 },
    { kind: "reset" },
    { kind: "truncate" },
    { kind: "bad-json" },
    { kind: "status", status: 429, retryAfter: "1" },
    { kind: "out-of-order" },
  ];
  const registryFaults: Fault[] = [
    { kind: "status", status: 500 },
    { kind: "truncate" },
    { kind: "reset" },
    { kind: "status", status: 429, retryAfter: "1" },
    { kind: "status", status: 408 },
  ];
  // The client does not retry: every fault reaches the worker, which retries items.
  return withWorld({
    count: 600,
    retries: 0,
    maxAttempts: 8,
    couchFaults: ({ n }) => n % 5 === 2 ? couchFaults[(n / 5 | 0) % couchFaults.length] : undefined,
    registryFaults: ({ n }) =>
      n % 5 === 1 ? registryFaults[(n / 5 | 0) % registryFaults.length] : undefined,
    handlers: { limit: 25, batchSize: 30 },
  }, async (world) => {
    const { couch, registry, worker, cache } = world;
    // Ranges of at most three pages (one of a single row), so that every fault kind is met.
    const pivots = pivotsAt(couch, [60, 120, 121, 180, 240, 300, 360, 420, 480, 540]);
    await worker.enqueue([{
      type: "partition-set",
      payload: { origin: couch.origin, originKey: COUCH, pivots, packuments: "full" },
    }]);
    const { dead } = await world.run();
    assert.equal(dead, 0, JSON.stringify(await world.queue.dead()));
    assert.deepEqual(await listing(cache), couch.rows);
    await assertPackumentsCached(world);
    const status = await setStatus(world, pivots);
    assert.deepEqual([status.done, status.failed.length, status.rows], [11, 0, couch.ids.length]);
    // The faults reached the worker: items were retried, some with narrowed batches.
    const kinds = new Set(couch.requests.map((r) => r.fault?.kind).filter(Boolean));
    for (const f of couchFaults) assert.ok(kinds.has(f.kind), `origin fault ${f.kind}`);
    assert.ok(registry.requests.some((r) => r.fault), "registry faults were injected");
    assert.ok(world.events.some((e) => e.type === "retry" && e.itemType === "partition"));
    assert.ok(world.events.some((e) => e.type === "retry" && e.itemType === "packument"));
  });
});

Deno.test("workerHandlers(): a name that always answers 500 ends dead with its error, a 403 name is buried at once, the rest of the batch completes", () => {
  let mended = false;
  const failing = onlyName(
    "always-500",
    () => mended ? undefined : { kind: "status", status: 500 },
  );
  const forbidding = onlyName("forbidden", () => ({ kind: "status", status: 403 }));
  return withWorld({
    count: 40,
    maxAttempts: 3,
    registryFaults: (request) => failing(request) ?? forbidding(request),
  }, async (world) => {
    const { registry, worker, cache } = world;
    registry.set("always-500", generatePackument("always-500", { versions: 1 }));
    registry.set("forbidden", generatePackument("forbidden", { versions: 1 }));
    const good = [...world.docs.keys()].slice(0, 5);
    const payload = { registry: registry.url, names: [...good, "always-500", "forbidden"] };
    await worker.enqueue([{ type: "packument", payload }]);
    const { dead } = await world.run();
    assert.equal(dead, 2);
    for (const name of good) {
      const entry = await cache.get(packumentKey(world.registryKey, name));
      assert.ok(entry, name);
      assert.deepEqual(await entry.bytes(), registry.expectedBody(name, "full"), name);
    }
    const asked = askedNames(registry);
    for (const name of good) assert.equal(asked.filter((n) => n === name).length, 1, name);
    assert.equal(asked.filter((n) => n === "forbidden").length, 1, "a 403 is not asked again");
    // Three deliveries, each one request and the client's two retries.
    assert.equal(asked.filter((n) => n === "always-500").length, 9);

    const letters = await world.queue.dead();
    const byNames = new Map(letters.map((l) => [(l.payload as typeof payload).names.join(), l]));
    const dead500 = byNames.get("always-500");
    assert.ok(dead500, "the failing name is a dead letter");
    assert.equal(dead500.id, itemId("packument", payload), "the batch itself, narrowed");
    assert.equal(dead500.attempts, 3);
    assert.match(dead500.lastError!, /always-500: .*500/);
    const dead403 = byNames.get("forbidden");
    assert.ok(dead403, "the 403 name is a dead letter of its own");
    assert.equal(dead403.id, itemId("packument", { ...payload, names: ["forbidden"] }));
    assert.equal(dead403.attempts, 1);
    assert.match(dead403.lastError!, /forbidden: .*403/);
    assert.equal(await cache.info(packumentKey(world.registryKey, "forbidden")), undefined);

    // Retried from the dead letters: the 403 goes dead again at once; the mended name completes.
    mended = true;
    assert.ok(await world.queue.retryDead(dead403.id));
    assert.ok(await world.queue.retryDead(dead500.id));
    assert.equal((await world.run()).dead, 1);
    assert.deepEqual(askedNames(registry).sort(), ["always-500", "forbidden"]);
    assert.equal((await world.queue.status(dead500.id))?.state, "done");
    assert.equal((await world.queue.status(dead403.id))?.state, "dead");
    const entry = await cache.get(packumentKey(world.registryKey, "always-500"));
    assert.deepEqual(await entry?.bytes(), registry.expectedBody("always-500", "full"));
  });
});

Deno.test("workerHandlers(): a packument batch whose names fail for a while is split, the rest fetched once", () => {
  // pkg-a and pkg-b fail their first request only.
  const once = (name: string) =>
    onlyName(
      name,
      ({ n }) => n === 0 ? { kind: "status", status: 503, retryAfter: "1" } : undefined,
    );
  const a = once("pkg-a");
  const b = once("pkg-b");
  return withWorld({
    count: 40,
    retries: 0,
    registryFaults: (request) => a(request) ?? b(request),
  }, async (world) => {
    const { registry, worker, cache } = world;
    registry.set("pkg-a", generatePackument("pkg-a", { versions: 2 }));
    registry.set("pkg-b", generatePackument("pkg-b", { versions: 2 }));
    const good = [...world.docs.keys()].slice(0, 4);
    const payload = { registry: registry.url, names: ["pkg-a", ...good, "pkg-b"] };
    const id = itemId("packument", payload);
    await worker.enqueue([{ type: "packument", payload }]);
    assert.equal((await world.run()).dead, 0);
    for (const name of [...good, "pkg-a", "pkg-b"]) {
      const entry = await cache.get(packumentKey(world.registryKey, name));
      assert.ok(entry, name);
      assert.deepEqual(await entry.bytes(), registry.expectedBody(name, "full"), name);
    }
    const asked = askedNames(registry);
    for (const name of good) assert.equal(asked.filter((n) => n === name).length, 1, name);
    assert.equal(asked.filter((n) => n === "pkg-a").length, 2);
    const status = await world.queue.status(id);
    assert.equal(status?.state, "done");
    assert.equal(status?.attempts, 1);
    assert.deepEqual((status?.payload as typeof payload).names, ["pkg-a", "pkg-b"]);
    const retry = world.events.find((e) => e.type === "retry" && e.id === id);
    assert.ok(retry, "the batch was retried");
    assert.match(retry.error!, /2 of 6 names failed: pkg-a: .*503/);
    // Retry-After: 1 (capped at ten times the policy's 20 ms) outweighs the backoff.
    assert.equal(retry.delayMs, 200);
  });
});

Deno.test("workerHandlers(): a packument item in the abbreviated representation caches the corgi document", () =>
  withWorld({ count: 20 }, async (world) => {
    const { registry, worker, cache } = world;
    const names = [...world.docs.keys()].slice(0, 3);
    await worker.enqueue([{
      type: "packument",
      payload: { registry: registry.url, names, representation: "corgi" },
    }]);
    assert.equal((await world.run()).dead, 0);
    for (const name of names) {
      const entry = await cache.get(packumentKey(world.registryKey, name, "abbreviated"));
      assert.ok(entry, name);
      assert.deepEqual(await entry.bytes(), registry.expectedBody(name, "corgi"), name);
    }
    assert.ok(registry.requests.every((r) => r.representation === "corgi"));
  }));

Deno.test("workerHandlers(): a set with abbreviated packuments records the listed _rev, so a new pass asks for none", () =>
  withWorld({ count: 30 }, async (world) => {
    const { couch, registry, worker } = world;
    const pivots = pivotsAt(couch, [15]);
    const set = {
      type: "partition-set",
      payload: { origin: couch.origin, originKey: COUCH, pivots, packuments: "corgi" },
    };
    await worker.enqueue([set]);
    assert.equal((await world.run()).dead, 0);
    const names = [...world.docs.keys()].sort();
    assert.deepEqual(askedNames(registry).sort(), names);
    registry.requests.length = 0;
    await worker.enqueue([set]);
    assert.equal((await world.run()).dead, 0);
    assert.deepEqual(askedNames(registry), []);
  }));

Deno.test("workerHandlers(): a partition failing on its last attempt is recorded failed, and the next enqueue of the set continues its pass", () => {
  /** Requests for ranges starting at this key answer 500. */
  let broken: string | undefined;
  return withWorld({
    count: 120,
    maxAttempts: 2,
    retries: 0,
    couchFaults: (request) =>
      broken !== undefined && request.url.searchParams.get("startkey") === JSON.stringify(broken)
        ? { kind: "status", status: 500 }
        : undefined,
  }, async (world) => {
    const { couch, worker, cache, driver } = world;
    const pivots = pivotsAt(couch, [50]);
    broken = pivots[0];
    const checkpoint = new Checkpoint(driver, COUCH, partitionSetId(COUCH, pivots));
    const set = {
      type: "partition-set",
      payload: { origin: couch.origin, originKey: COUCH, pivots },
    };
    await worker.enqueue([set]);
    assert.equal((await world.run()).dead, 1);
    let status = await setStatus(world, pivots);
    assert.deepEqual([status.pass, status.done, status.failed.length], [1, 1, 1]);
    assert.equal(status.failed[0]!.index, 1);
    assert.match(status.failed[0]!.error!, /500/);
    const state = await checkpoint.get(1);
    assert.deepEqual([state?.status, state?.attempts], ["failed", 2]);
    const retried = world.events.find((e) => e.type === "retry" && e.itemType === "partition");
    assert.ok(retried, "the first failure was retried");

    // The set again, the origin mended: the pass continues with the failed range only.
    broken = undefined;
    couch.requests.length = 0;
    await worker.enqueue([set]);
    assert.equal((await world.run()).dead, 0, "the dead item ran again and completed");
    status = await setStatus(world, pivots);
    assert.deepEqual([status.pass, status.done, status.failed.length], [1, 2, 0]);
    assert.equal(couch.requests.length, 1);
    assert.deepEqual(await listing(cache), couch.rows);

    // A done partition whose cache entry is gone is fetched again in the same pass.
    const ranges = rangesFromPivots(pivots, COUCH);
    await cache.delete(ranges[0]!.key);
    assert.equal((await setStatus(world, pivots)).done, 1);
    couch.requests.length = 0;
    await worker.enqueue([set]);
    assert.equal((await world.run()).dead, 0);
    status = await setStatus(world, pivots);
    assert.deepEqual([status.pass, status.done], [1, 2]);
    assert.equal(couch.requests.length, 1);
    assert.ok(await cache.has(partitionKey(COUCH, "", pivots[0]!)));
  });
});

Deno.test("workerHandlers(): a partition another worker holds is retried once its lease runs out, then taken over", () =>
  withWorld(
    { count: 30, handlers: { leaseMs: 150, clock: systemClock as Clock } },
    async (world) => {
      const { couch, worker, cache, driver } = world;
      const pivots = pivotsAt(couch, [10]);
      const setId = partitionSetId(COUCH, pivots);
      const checkpoint = new Checkpoint(driver, COUCH, setId);
      await checkpoint.writeSet({
        id: setId,
        originKey: COUCH,
        origin: couch.origin,
        pivots,
        createdAt: 0,
      });
      // Another worker took partition 0 in pass 1 and stopped renewing its heartbeat.
      const now = Date.now();
      await checkpoint.put(0, {
        status: "in-progress",
        attempts: 1,
        rows: 0,
        startedAt: now,
        updatedAt: now,
        owner: "other",
        pass: 1,
      });
      const payload: PartitionPayload = {
        origin: couch.origin,
        originKey: COUCH,
        setId,
        pass: 1,
        index: 0,
        startKey: "",
        endKey: pivots[0]!,
      };
      await worker.enqueue([{ type: "partition", payload }]);
      assert.equal((await world.run()).dead, 0);
      const retry = world.events.find((e) => e.type === "retry");
      assert.ok(retry, "the held partition was retried");
      assert.match(retry.error!, /held by worker other/);
      assert.ok(retry.delayMs! >= 100, `waited ${retry.delayMs} ms for the lease`);
      const state = await checkpoint.get(0);
      assert.deepEqual([state?.status, state?.rows, state?.pass], ["done", 10, 1]);
      assert.ok(await cache.has(partitionKey(COUCH, "", pivots[0]!)));
    },
  ));

Deno.test("workerHandlers() checks its options up front", async () => {
  const cache = await Cache.open(new MemoryDriver());
  const client = new HttpClient();
  const registry = { url: "http://127.0.0.1:9/", originKey: "r" };
  assert.throws(
    () => workerHandlers({ client, cache, registry, batchSize: 0 }),
    { name: "RangeError", message: /'batchSize' must be an integer from 1 to 1000, received 0/ },
  );
  assert.throws(() => workerHandlers({ client, cache, registry, limit: 20_000 }), RangeError);
  assert.throws(() => workerHandlers({ client, cache, registry, leaseMs: 0 }), RangeError);
  assert.throws(
    () => workerHandlers({ client, cache, registry: undefined as never }),
    TypeError,
  );
  const handlers = workerHandlers({ client, cache, registry });
  assert.deepEqual(Object.keys(handlers).sort(), [
    "changes",
    "packument",
    "partition",
    "partition-set",
  ]);
});
