import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import {
  followChanges,
  type FollowChangesOptions,
  type FollowEvent,
  FollowStartError,
} from "../../src/jobs/follow_changes.ts";
import { readFollowerState } from "../../src/storage/follower_checkpoint.ts";
import { readPatchIndex } from "../../src/storage/partition_patches.ts";
import {
  originKey as deriveOriginKey,
  packumentKey,
  PARTITION_PREFIX,
  partitionKey,
} from "../../src/storage/keys.ts";
import { encodePartitionLines } from "../../src/couchdb/partition_lines.ts";
import { listCachedPartitions } from "../../src/jobs/partition_status.ts";
import type { RegistryTarget } from "../../src/jobs/fetch_packuments.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { type ListOptions, StorageError, type StorageValue } from "../../src/storage/driver.ts";
import {
  type AllDocsFixture,
  type AllDocsFixtureOptions,
  applyRandomChanges,
  type Fault,
  startAllDocsFixture,
} from "../_support/all_docs_fixture.ts";
import { type RegistryFixture, startRegistryFixture } from "../_support/registry_fixture.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const T0 = 1_700_000_000_000;
const ORIGIN_KEY = "fixture";

function clientFor(clock: FakeClock, retries = 8): HttpClient {
  return new HttpClient({
    fetch: (input, init) => fetch(input, init),
    clock,
    retries,
    random: () => 0.5,
  });
}

interface World {
  fixture: AllDocsFixture;
  clock: FakeClock;
  cache: Cache;
  client: HttpClient;
  /** Refreshes the partition set of `pivots` (positions in the fixture's ids at start). */
  refresh(pivots?: string[]): Promise<void>;
  follow(options?: Partial<FollowChangesOptions>): ReturnType<typeof followChanges>;
  index(): Promise<{ id: string; rev: string }[]>;
}

/** A memory driver that fails: once, a put of a key `failPut` matches; `failLists` times, a
 * list of a prefix `failList` matches. It counts the listings of partitions. */
class FlakyDriver extends MemoryDriver {
  failPut: RegExp | undefined;
  failList: RegExp | undefined;
  failLists = 1;

  override async put(key: string, value: StorageValue): Promise<void> {
    if (this.failPut?.test(key)) {
      this.failPut = undefined;
      throw new StorageError("Cannot write: injected", { driver: "flaky", key, code: "ENOSPC" });
    }
    return await super.put(key, value);
  }

  /** Lists of partition keys asked for. */
  partitionLists = 0;

  override async *list(options: ListOptions = {}): AsyncIterable<string> {
    if (options.prefix?.startsWith(PARTITION_PREFIX)) this.partitionLists++;
    if (this.failList?.test(options.prefix ?? "")) {
      if (--this.failLists === 0) this.failList = undefined;
      throw new StorageError("Cannot list: injected", { driver: "flaky", code: "EIO" });
    }
    yield* super.list(options);
  }
}

async function withWorld(
  options: AllDocsFixtureOptions,
  fn: (world: World) => Promise<void>,
  driver: MemoryDriver = new MemoryDriver(),
): Promise<void> {
  const fixture = await startAllDocsFixture(options);
  try {
    const clock = new FakeClock({ now: T0 });
    const cache = await Cache.open(driver, { clock });
    const client = clientFor(clock);
    const defaultPivots = [0.25, 0.5, 0.75].map((f) =>
      fixture.ids[Math.floor(f * fixture.ids.length)]!
    );
    await fn({
      fixture,
      clock,
      cache,
      client,
      async refresh(pivots = defaultPivots) {
        const summary = await refreshPartitions(client, cache, {
          origin: fixture.origin,
          originKey: ORIGIN_KEY,
          pivots,
          clock,
          recordUpdateSeq: true,
        });
        assert.deepEqual(summary.failed, []);
        clock.advance(1000);
      },
      follow(extra = {}) {
        return followChanges(client, cache, {
          origin: fixture.origin,
          originKey: ORIGIN_KEY,
          once: true,
          clock,
          ...extra,
        });
      },
      async index() {
        const rows = [];
        for await (const row of indexRows(cache, ORIGIN_KEY)) rows.push(row);
        return rows;
      },
    });
  } finally {
    await fixture.close();
  }
}

Deno.test("followChanges() applies creations, updates and deletions: the index equals _all_docs", () =>
  withWorld({ count: 4000 }, async (world) => {
    const { fixture } = world;
    await world.refresh();
    // Changes everywhere: before the first pivot, at a pivot, past the last one.
    fixture.update(fixture.ids[0]!);
    fixture.update(fixture.ids[1000]!);
    fixture.remove(fixture.ids[2000]!);
    fixture.add("000-first");
    fixture.add("\u{10ffff}-last");
    applyRandomChanges(fixture, 600, { creates: 0.2, deletes: 0.2 });
    const partitionsBefore = await listCachedPartitions(world.cache);
    const events: FollowEvent[] = [];
    const summary = await world.follow({ onEvent: (event) => events.push(event) });
    assert.deepEqual(await world.index(), fixture.rows);
    assert.equal(summary.start.from, "partitions");
    assert.equal(summary.start.since, 4000);
    assert.equal(summary.seq, fixture.changes.head);
    assert.equal(summary.rounds, 2);
    assert.equal(summary.late, 0);
    assert.ok(summary.applied > 500 && summary.deleted > 100, JSON.stringify(summary));
    assert.equal(summary.uncovered, 0);
    // The changes are pending edits of the four partitions, which are not rewritten.
    assert.equal(summary.patched, 4);
    assert.equal(summary.rewritten, 0);
    assert.deepEqual(
      Object.keys(await readPatchIndex(world.cache.driver, ORIGIN_KEY)).sort(),
      partitionsBefore.map((p) => p.key).sort(),
    );
    assert.deepEqual(await listCachedPartitions(world.cache), partitionsBefore);
    // The checkpoint says where it stands.
    const state = await readFollowerState(world.cache.driver, ORIGIN_KEY);
    assert.equal(state?.seq, fixture.changes.head);
    // A second run finds nothing to apply and rewrites no partition.
    const again = await world.follow();
    assert.equal(again.start.from, "checkpoint");
    assert.equal(again.seen, 0);
    assert.equal(again.applied, 0);
    assert.deepEqual(await world.index(), fixture.rows);
    assert.ok(events.some((e) => e.type === "applied"));
    // Compacted, the partitions hold the changes: same fetch times, row counts that follow.
    const compacted = await world.follow({ compact: true });
    assert.equal(compacted.rewritten, 4);
    assert.equal(compacted.rows.added - compacted.rows.removed, fixture.ids.length - 4000);
    assert.deepEqual(await readPatchIndex(world.cache.driver, ORIGIN_KEY), {});
    const partitionsAfter = await listCachedPartitions(world.cache);
    assert.deepEqual(
      partitionsAfter.map((p) => [p.key, p.fetchedAt]),
      partitionsBefore.map((p) => [p.key, p.fetchedAt]),
    );
    assert.equal(partitionsAfter.reduce((n, p) => n + p.rows, 0), fixture.ids.length);
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges() without a checkpoint or a refreshed set fails before any request", () =>
  withWorld({ count: 10 }, async (world) => {
    await assert.rejects(world.follow(), FollowStartError);
    assert.equal(world.fixture.requests.length, 0);
    // A set refreshed without recording update_seq cannot vouch for a start either.
    await refreshPartitions(world.client, world.cache, {
      origin: world.fixture.origin,
      originKey: ORIGIN_KEY,
      pivots: [world.fixture.ids[5]!],
      clock: world.clock,
    });
    world.fixture.requests.length = 0;
    await assert.rejects(world.follow(), /run 'partition refresh' first, or give --since/);
    assert.equal(world.fixture.requests.length, 0);
    // An explicit since needs neither.
    const summary = await world.follow({ since: 0 });
    assert.equal(summary.start.from, "since");
    assert.deepEqual(await world.index(), world.fixture.rows);
  }));

Deno.test("followChanges() starts from the lowest update_seq of the complete sets, and replays a newer pass", () => {
  /** A `startkey` that answers 500 while set. */
  let failing: string | undefined;
  return withWorld({
    count: 3000,
    faults: ({ url }) =>
      failing !== undefined && url.searchParams.get("startkey") === JSON.stringify(failing)
        ? { kind: "status", status: 500 }
        : undefined,
  }, async (world) => {
    const { fixture } = world;
    await world.refresh([fixture.ids[1000]!]);
    applyRandomChanges(fixture, 50, { seed: 2 });
    const second = [fixture.ids[500]!, fixture.ids[2500]!];
    await world.refresh(second);
    applyRandomChanges(fixture, 50, { seed: 3 });
    const first = await world.follow();
    assert.equal(first.start.since, 3000, "the older set's start");
    assert.deepEqual(await world.index(), fixture.rows);

    // A new pass of the second set starts, and completes only after the follower has gone
    // past its start: its partitions replace ones the follower had edited. The next run
    // replays from where that pass started, and the index is exact again.
    applyRandomChanges(fixture, 40, { seed: 4 });
    const passStart = fixture.changes.head;
    failing = second[1];
    const partial = await refreshPartitions(world.client, world.cache, {
      origin: fixture.origin,
      originKey: ORIGIN_KEY,
      pivots: second,
      clock: world.clock,
      recordUpdateSeq: true,
      maxAttempts: 1,
    });
    assert.equal(partial.failed.length, 1);
    applyRandomChanges(fixture, 40, { seed: 5 });
    const between = await world.follow();
    assert.equal(between.start.since, 3100, "an incomplete pass is not accounted for");
    failing = undefined;
    world.clock.advance(1000);
    applyRandomChanges(fixture, 40, { seed: 6 });
    await world.refresh(second);
    const next = await world.follow();
    assert.equal(next.start.from, "checkpoint");
    assert.equal(next.start.since, passStart);
    assert.equal(next.start.replayUntil, between.seq);
    assert.ok(next.replayed > 0 && next.late === 0, `${next.replayed} replayed`);
    assert.deepEqual(await world.index(), fixture.rows);
    // Accounted for now: the run after starts from its checkpoint.
    assert.equal((await world.follow()).start.since, fixture.changes.head);

    // An explicit since below the checkpoint applies everything again, counted as replayed.
    // (First every pending edit is written into its partition.)
    await world.follow({ compact: true });
    const replay = await world.follow({ since: 3000, compact: true });
    assert.ok(replay.replayed > 100, `${replay.replayed} replayed`);
    assert.equal(replay.late, 0);
    const { added, replaced, removed } = replay.rows;
    assert.equal(added + replaced + removed, 0, "every row had those revisions already");
    assert.deepEqual(await world.index(), fixture.rows);
  });
});

Deno.test("followChanges() catches late entries in the trailing window", () =>
  withWorld({ count: 5000, changes: { lateRate: 0.02, lateWithin: 1024 } }, async (world) => {
    const { fixture } = world;
    await world.refresh();
    applyRandomChanges(fixture, 3000, { seed: 9 });
    const summary = await world.follow({ limit: 500 });
    const withheld = fixture.changes.withheld.length;
    assert.ok(withheld > 5, `${withheld} held back`);
    assert.equal(summary.late, withheld, "every entry held back was caught, once");
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges() with npm's rate of late entries, the cap and opaque sequences", () =>
  withWorld({
    count: 20_000,
    changes: { seqs: "opaque", lateRate: 4 / 1024, lateWithin: 2048 },
  }, async (world) => {
    const { fixture } = world;
    await world.refresh();
    applyRandomChanges(fixture, 25_000, { seed: 11 });
    const summary = await world.follow();
    assert.equal(typeof summary.seq, "string");
    assert.equal(summary.seq, fixture.changes.headSeq);
    assert.equal(summary.late, fixture.changes.withheld.length);
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges() loses nothing through 20% faults on the feed", () => {
  const faults: Fault[] = [
    { kind: "status", status: 429, retryAfter: "1" },
    { kind: "status", status: 503 },
    { kind: "reset" },
    { kind: "truncate" },
    { kind: "bad-json" },
  ];
  let n = 0;
  return withWorld({
    count: 6000,
    changes: { lateRate: 4 / 1024 },
    faults: (request) =>
      request.path === "/_all_docs" ? undefined : n++ % 5 === 4 ? faults[n % 5] : undefined,
  }, async (world) => {
    const { fixture } = world;
    await world.refresh();
    applyRandomChanges(fixture, 8000, { seed: 13, creates: 0.05, deletes: 0.05 });
    const summary = await world.follow({ limit: 100 });
    assert.ok(fixture.requests.filter((r) => r.fault).length >= 10, "faults were injected");
    assert.equal(summary.late, fixture.changes.withheld.length);
    assert.deepEqual(await world.index(), fixture.rows);
  });
});

Deno.test("followChanges() checkpoints each batch; a run stopped midway resumes to the exact index", () =>
  withWorld({ count: 4000, changes: { lateRate: 0.01 } }, async (world) => {
    const { fixture } = world;
    await world.refresh();
    applyRandomChanges(fixture, 6000, { seed: 17, creates: 0.05, deletes: 0.05 });
    // The feed fails for good after 6 pages: what was applied is checkpointed.
    let pages = 0;
    const broken = new HttpClient({
      fetch: (input, init) => {
        if (String(input).includes("/_changes") && ++pages > 6) {
          return Promise.reject(new TypeError("connection refused"));
        }
        return fetch(input, init);
      },
      clock: world.clock,
      retries: 0,
    });
    const applied: FollowEvent[] = [];
    const pageSeqs: unknown[] = [];
    await assert.rejects(
      followChanges(broken, world.cache, {
        origin: fixture.origin,
        originKey: ORIGIN_KEY,
        once: true,
        limit: 500,
        batchChanges: 1000,
        clock: world.clock,
        onEvent: (event) => {
          if (event.type === "applied") applied.push(event);
          if (event.type === "page") pageSeqs.push(event.lastSeq);
        },
      }),
      /connection refused/,
    );
    assert.equal(applied.length, 3, "a batch of 1000 changes every two pages of 500");
    const state = await readFollowerState(world.cache.driver, ORIGIN_KEY);
    assert.equal(pageSeqs.length, 6);
    assert.equal(state?.seq, pageSeqs[5], "where the sixth page ended");
    // A run that stops on its signal applies what it read first.
    const stop = new AbortController();
    let stopAt: unknown;
    const stopped = await followChanges(world.client, world.cache, {
      origin: fixture.origin,
      originKey: ORIGIN_KEY,
      limit: 500,
      batchChanges: 100_000,
      clock: world.clock,
      signal: stop.signal,
      onEvent: (event) => {
        if (event.type === "page" && event.round === 1 && event.fresh > 0 && !stop.signal.aborted) {
          stopAt = event.lastSeq;
          stop.abort();
        }
      },
    });
    assert.ok(stopped.stopped);
    assert.equal(stopped.seq, stopAt);
    assert.equal((await readFollowerState(world.cache.driver, ORIGIN_KEY))?.seq, stopAt);
    const resumed = await world.follow();
    assert.equal(resumed.start.since, stopAt);
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges() polls every interval until its signal stops it", () =>
  withWorld({ count: 1000 }, async (world) => {
    const { fixture } = world;
    await world.refresh();
    const stop = new AbortController();
    let rounds = 0;
    const summary = await world.follow({
      once: false,
      intervalMs: 30_000,
      signal: stop.signal,
      onEvent: (event) => {
        if (event.type !== "caught-up") return;
        rounds++;
        // New changes arrive between rounds; the fourth round is the last.
        if (rounds === 4) stop.abort();
        else applyRandomChanges(fixture, 20, { seed: rounds });
      },
    });
    assert.ok(summary.stopped);
    assert.equal(summary.rounds, 4);
    // Three pauses between the rounds, and the fourth cut short by the signal.
    assert.deepEqual(world.clock.sleeps.filter((ms) => ms === 30_000).length, 4);
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges() writes each change to the partition that decides it, with overlapping sets", () =>
  withWorld({ count: 3000 }, async (world) => {
    const { fixture } = world;
    await world.refresh([fixture.ids[1000]!, fixture.ids[2000]!]);
    // A newer set over part of the key space decides there.
    await world.refresh([fixture.ids[500]!, fixture.ids[1500]!]);
    applyRandomChanges(fixture, 400, { seed: 21, creates: 0.2, deletes: 0.2 });
    await world.follow();
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges() reports a head that moved far backwards and re-reads behind it", async () => {
  let head = 100;
  const clock = new FakeClock({ now: T0 });
  const client = new HttpClient({
    clock,
    fetch: (input) => {
      const url = new URL(input);
      if (url.pathname === "/") return Promise.resolve(Response.json({ update_seq: head }));
      const since = Number(url.searchParams.get("since"));
      const results = since < head
        ? [{ seq: head, id: `doc-${head}`, changes: [{ rev: "1-a" }] }]
        : [];
      return Promise.resolve(Response.json({ results, last_seq: Math.max(since, head) }));
    },
  });
  const cache = await Cache.open(new MemoryDriver(), { clock });
  const options = { origin: "http://couch.test/", originKey: "couch", once: true, window: 10 };
  await cache.put("v1:partition:couch::", new Uint8Array(), { status: 200, count: 0 });
  const first = await followChanges(client, cache, { ...options, since: 99 });
  assert.equal(first.seq, 100);
  head = 20;
  const events: FollowEvent[] = [];
  const second = await followChanges(client, cache, {
    ...options,
    onEvent: (event) => events.push(event),
  });
  assert.equal(second.headBackwards, 1);
  assert.deepEqual(events.find((e) => e.type === "head-backwards"), {
    type: "head-backwards",
    seq: 100,
    head: 20,
  });
  assert.equal(second.seq, 20);
  const ids = [];
  for await (const row of indexRows(cache, "couch")) ids.push(row.id);
  assert.deepEqual(ids, ["doc-100", "doc-20"]);
});

Deno.test("followChanges() rejects bad options before any request", () =>
  withWorld({ count: 10 }, async (world) => {
    for (
      const bad of [{ window: -1 }, { limit: 10_001 }, { limit: 0 }, { batchChanges: 0 }, {
        intervalMs: 1.5,
      }]
    ) {
      await assert.rejects(world.follow({ since: 0, ...bad }), RangeError);
    }
    assert.equal(world.fixture.requests.length, 0);
  }));

// ---------------------------------------------------------------------------------------------
// Packuments

function packument(name: string, rev: string): string {
  return JSON.stringify({ _id: name, _rev: rev, name, "dist-tags": {}, versions: {} });
}

async function withRegistry(fn: (registry: RegistryFixture) => Promise<void>): Promise<void> {
  const registry = await startRegistryFixture();
  try {
    await fn(registry);
  } finally {
    await registry.close();
  }
}

Deno.test("followChanges() with packuments fetches changed ones, retries a lagging one, drops deleted ones", () =>
  withRegistry((registry) =>
    withWorld({ count: 200 }, async (world) => {
      const { fixture, cache } = world;
      const target: RegistryTarget = {
        url: registry.url,
        originKey: deriveOriginKey(registry.url),
      };
      const packuments = { registryFor: () => target };
      await world.refresh();
      for (const id of fixture.ids) registry.set(id, packument(id, fixture.revOf(id)!));
      const gone = fixture.ids[10]!;
      await cache.put(packumentKey(target.originKey, gone), new TextEncoder().encode("{}"), {
        status: 200,
      });
      const updated = [fixture.ids[3]!, fixture.ids[150]!];
      const lagging = fixture.ids[77]!;
      for (const id of updated) {
        const rev = fixture.update(id);
        registry.set(id, packument(id, rev));
      }
      // The registry still serves the old document of `lagging`.
      const announced = fixture.update(lagging);
      fixture.remove(gone);
      const events: FollowEvent[] = [];
      const first = await world.follow({ packuments, onEvent: (e) => events.push(e) });
      assert.equal(first.packumentsFetched, 2);
      assert.equal(first.packumentsPending, 1);
      assert.equal(first.packumentsDropped, 1);
      assert.equal(await cache.info(packumentKey(target.originKey, gone)), undefined);
      for (const id of updated) {
        const info = await cache.info(packumentKey(target.originKey, id));
        assert.equal(info?.rev, fixture.revOf(id));
      }
      const lag = events.filter((e) => e.type === "packument" && e.name === lagging);
      assert.equal(lag.length, 2, "asked once per round");
      assert.ok(lag.every((e) => e.type === "packument" && !e.done && e.rev === announced));
      const state = await readFollowerState(cache.driver, ORIGIN_KEY);
      assert.deepEqual(Object.keys(state!.pending), [lagging]);

      // The registry catches up: the next run fetches it without a new change.
      registry.set(lagging, packument(lagging, announced));
      const second = await world.follow({ packuments });
      assert.equal(second.seen, 0);
      assert.equal(second.packumentsFetched, 1);
      assert.equal(second.packumentsPending, 0);
      const info = await cache.info(packumentKey(target.originKey, lagging));
      assert.equal(info?.rev, announced);
    })
  ));

/** A world of 2,000 ids on a {@linkcode FlakyDriver}, refreshed, then 300 changes (`seed`). */
function withChangedWorld(
  seed: number,
  fn: (world: World, driver: FlakyDriver) => Promise<void>,
): Promise<void> {
  const driver = new FlakyDriver();
  return withWorld({ count: 2000 }, async (world) => {
    await world.refresh();
    applyRandomChanges(world.fixture, 300, { seed, creates: 0.2, deletes: 0.2 });
    await fn(world, driver);
  }, driver);
}

Deno.test("followChanges(): changes whose patches fail to write are applied again, never skipped", () =>
  withChangedWorld(31, async (world, driver) => {
    const { fixture } = world;
    driver.failPut = /:changes:patch:/;
    // The round fails (with --once, its error is the follow's), after its changes went again.
    await assert.rejects(world.follow(), StorageError);
    assert.equal(driver.failPut, undefined, "the write failed once");
    await world.follow();
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges(): a listing of the partitions that fails loses no change; the next round lists again", () =>
  withChangedWorld(32, async (world, driver) => {
    const { fixture } = world;
    // The listing the first round makes once its head is in fails, and so do the ones its first
    // page and the next round ask for.
    driver.failList = /^v1:partition:/;
    driver.failLists = 3;
    const stop = new AbortController();
    const events: FollowEvent[] = [];
    const summary = await world.follow({
      once: false,
      intervalMs: 1000,
      signal: stop.signal,
      onEvent: (event) => {
        events.push(event);
        if (event.type === "caught-up") stop.abort();
      },
    });
    assert.equal(driver.failList, undefined, "the listing failed three times");
    assert.ok(events.some((e) => e.type === "round-failed"), "the first round failed");
    assert.ok(summary.stopped);
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges() lists the partitions from a refresh, and not at all when resumed with nothing new", () =>
  withChangedWorld(33, async (world, driver) => {
    const { fixture } = world;
    await world.follow();
    assert.ok(driver.partitionLists > 0, "the follow from the refresh listed the partitions");
    assert.deepEqual(await world.index(), fixture.rows);
    // Resumed from its checkpoint with nothing new (a follower run on a schedule): no listing,
    // which on remote storage reads every partition's header.
    driver.partitionLists = 0;
    const idle = await world.follow();
    assert.equal(idle.seen, 0);
    assert.equal(driver.partitionLists, 0);
  }));

Deno.test("followChanges(): a round after a failed one lists the partitions again", () =>
  withChangedWorld(34, async (world, driver) => {
    const { fixture, clock, cache } = world;
    // The first round's head and first page fail for good (400: not retried).
    let failing = 2;
    const client = new HttpClient({
      fetch: (input, init) =>
        failing-- > 0 ? Promise.resolve(new Response("no", { status: 400 })) : fetch(input, init),
      clock,
      random: () => 0.5,
    });
    const stop = new AbortController();
    /** Partition listings made by the time each round started. */
    const listsAtRound: number[] = [];
    const events: FollowEvent[] = [];
    await followChanges(client, cache, {
      origin: fixture.origin,
      originKey: ORIGIN_KEY,
      once: false,
      intervalMs: 1000,
      clock,
      signal: stop.signal,
      onEvent: (event) => {
        events.push(event);
        if (event.type === "round") listsAtRound.push(driver.partitionLists);
        if (event.type === "caught-up") stop.abort();
      },
    });
    assert.ok(events.some((e) => e.type === "round-failed"), "the first round failed");
    assert.equal(listsAtRound.length, 2);
    // The first round (its head unknown) listed them while its first page was on its way; the
    // second, after a pause in which a refresh may have replaced them, listed them again.
    assert.equal(listsAtRound[0], 0, "no listing before the first head is in");
    assert.ok(listsAtRound[1]! >= 1, "the first round listed them");
    assert.ok(driver.partitionLists > listsAtRound[1]!, "the second round listed them again");
    assert.deepEqual(await world.index(), fixture.rows);
  }));

Deno.test("followChanges(): a sequence repeated within a page, or out of order, is taken once", async () => {
  const pages: Record<string, unknown> = {
    "2": {
      results: [
        { seq: 4, id: "b", changes: [{ rev: "2-b" }] },
        { seq: 3, id: "a", changes: [{ rev: "2-a" }] },
        { seq: 4, id: "b", changes: [{ rev: "2-b" }] },
        { seq: 5, id: "c", changes: [{ rev: "1-c" }] },
        { seq: 3, id: "a", changes: [{ rev: "2-a" }] },
      ],
      last_seq: 5,
    },
  };
  const client = new HttpClient({
    fetch: (input) => {
      const url = new URL(String(input));
      if (url.pathname.endsWith("/_changes")) {
        const since = url.searchParams.get("since")!;
        return Promise.resolve(Response.json(pages[since] ?? { results: [], last_seq: 5 }));
      }
      return Promise.resolve(Response.json({ update_seq: 5 }));
    },
  });
  const cache = await Cache.open(new MemoryDriver());
  await cache.put(
    partitionKey("couch", "", ""),
    encodePartitionLines([{ id: "a", rev: "1-a" }, { id: "b", rev: "1-b" }]),
    { status: 200 },
  );
  const events: FollowEvent[] = [];
  const summary = await followChanges(client, cache, {
    origin: "http://couch.test/",
    originKey: "couch",
    since: 2,
    once: true,
    window: 0,
    onEvent: (event) => events.push(event),
  });
  assert.equal(summary.seen, 3);
  const page = events.find((e) => e.type === "page" && e.round === 1);
  assert.ok(page && page.type === "page" && page.repeated === 2 && page.fresh === 3);
  const rows = [];
  for await (const row of indexRows(cache, "couch")) rows.push(`${row.id},${row.rev}`);
  assert.deepEqual(rows, ["a,2-a", "b,2-b", "c,1-c"]);
});
