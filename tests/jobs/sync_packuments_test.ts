import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { originKey, packumentKey, type Representation } from "../../src/storage/keys.ts";
import { refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { syncPackuments, type SyncPackumentsOptions } from "../../src/jobs/sync_packuments.ts";
import type { PackumentResult } from "../../src/jobs/fetch_packuments.ts";
import { PivotError } from "../../src/couchdb/pivots.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { generatePackument } from "../_support/packuments.ts";
import { FakeClock } from "../_support/fake_clock.ts";
import { type AllDocsFixture, startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { type RegistryFixture, startRegistryFixture } from "../_support/registry_fixture.ts";

/** The origin key the partitions are cached under. */
const COUCH = "couch";
/** The pivot list every test refreshes. */
const PIVOTS = ["pkg-5"];

interface World {
  docs: Map<string, string>;
  couch: AllDocsFixture;
  registry: RegistryFixture;
  client: HttpClient;
  cache: Cache;
  options: SyncPackumentsOptions;
  /** Refreshes the partition set from the `_all_docs` fixture. */
  refresh(): Promise<void>;
  /** The `_rev` the cache holds for `name`. */
  storedRev(name: string, representation?: Representation): Promise<string | undefined>;
  /** Names the registry was asked for since the last call, with their statuses. */
  asked(): [string | null, number][];
}

/**
 * What a library user needs to sync packuments from partitions: a memory cache, an HTTP client,
 * a CouchDB-style `_all_docs` origin and a registry, both fixtures on 127.0.0.1.
 */
async function withWorld(count: number, fn: (world: World) => Promise<void>): Promise<void> {
  const docs = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const name = i % 4 === 0 ? `@gen/pkg-${i}` : `pkg-${i}`;
    docs.set(name, generatePackument(name, { versions: 1 + (i % 5), seed: i }));
  }
  const revOf = (id: string) => JSON.parse(docs.get(id)!)._rev as string;
  const couch = await startAllDocsFixture({ ids: [...docs.keys()], revFor: revOf });
  const registry = await startRegistryFixture({ packuments: docs });
  try {
    const clock = new FakeClock();
    const client = new HttpClient({ fetch: (i, init) => fetch(i, init), clock, retries: 2 });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const target = { url: registry.url, originKey: originKey(registry.url) };
    await fn({
      docs,
      couch,
      registry,
      client,
      cache,
      options: { originKey: COUCH, registryFor: () => target },
      async refresh() {
        const summary = await refreshPartitions(client, cache, {
          origin: couch.origin,
          originKey: COUCH,
          pivots: PIVOTS,
          clock,
        });
        assert.equal(summary.failed.length, 0);
      },
      async storedRev(name, representation = "full") {
        const info = await cache.info(packumentKey(target.originKey, name, representation));
        assert.ok(info, `${name} (${representation}) is cached`);
        return info.rev;
      },
      asked() {
        const asked = registry.requests.map((r): [string | null, number] => [r.name, r.status]);
        registry.requests.length = 0;
        return asked;
      },
    });
  } finally {
    await registry.close();
    await couch.close();
  }
}

Deno.test("syncPackuments() fetches every document of the cached partitions, then only the changed ones", () =>
  withWorld(12, async (world) => {
    const { docs, couch, registry, client, cache, options } = world;
    await world.refresh();
    const results: PackumentResult[] = [];
    const first = await syncPackuments(client, cache, {
      ...options,
      parallel: 4,
      onResult: (result) => results.push(result),
    });
    assert.equal(first.total, 12);
    assert.equal(first.outcomes.fetched, 12);
    assert.equal(first.sameRev, 0);
    assert.equal(results.length, 12);
    assert.equal(world.asked().length, 12);
    for (const name of docs.keys()) {
      const entry = await cache.get(packumentKey(originKey(registry.url), name));
      assert.ok(entry, name);
      assert.deepEqual(await entry.bytes(), registry.expectedBody(name, "full"), name);
      assert.equal(entry.info.rev, JSON.parse(docs.get(name)!)._rev, name);
    }

    // One document changes upstream. Its cached entry is still fresh: the partition's new _rev
    // is what sends the request.
    const changed = JSON.parse(docs.get("pkg-7")!);
    changed._rev = "9-0123456789abcdef0123456789abcdef";
    docs.set("pkg-7", JSON.stringify(changed));
    registry.set("pkg-7", docs.get("pkg-7")!);
    couch.setRev("pkg-7", changed._rev);
    await world.refresh();
    const second = await syncPackuments(client, cache, options);
    assert.deepEqual(world.asked(), [["pkg-7", 200]]);
    assert.equal(second.total, 1);
    assert.equal(second.outcomes.fetched, 1);
    assert.equal(second.sameRev, 11);
    assert.equal(await world.storedRev("pkg-7"), changed._rev);

    const settled = await syncPackuments(client, cache, { ...options, pivots: PIVOTS });
    assert.equal(settled.total, 0);
    assert.equal(settled.sameRev, 12);
    assert.deepEqual(world.asked(), []);
    // A set that was never refreshed has no cached partitions: nothing to sync.
    const other = await syncPackuments(client, cache, { ...options, pivots: ["pkg-2", "pkg-9"] });
    assert.equal(other.total + other.sameRev, 0);
    // Nor has another origin.
    const elsewhere = await syncPackuments(client, cache, { ...options, originKey: "elsewhere" });
    assert.equal(elsewhere.total + elsewhere.sameRev, 0);
  }));

Deno.test("syncPackuments() stores a full body with its own _rev, and only a body without one takes the partition's", () =>
  withWorld(6, async (world) => {
    const { couch, registry, client, cache, options, docs } = world;
    await world.refresh();
    await syncPackuments(client, cache, options);
    world.asked();
    const name = "pkg-3";
    const bodyRev = JSON.parse(docs.get(name)!)._rev as string;

    // The partition moves on while the registry still serves the old body: a 304.
    const newRev = "7-fedcba9876543210fedcba9876543210";
    couch.setRev(name, newRev);
    await world.refresh();
    const stale = await syncPackuments(client, cache, options);
    assert.deepEqual(world.asked(), [[name, 304]]);
    assert.equal(stale.outcomes.revalidated, 1);
    assert.equal(await world.storedRev(name), bodyRev, "a 304 records no new _rev");
    // An older body under a new ETag keeps its own _rev, so the next sync asks again.
    const lagging = JSON.parse(docs.get(name)!);
    lagging.description = "served by a copy that lags behind";
    registry.set(name, JSON.stringify(lagging));
    assert.equal((await syncPackuments(client, cache, options)).outcomes.fetched, 1);
    assert.equal(await world.storedRev(name), bodyRev, "the body's own _rev is kept");
    await syncPackuments(client, cache, options);
    assert.deepEqual(world.asked(), [[name, 200], [name, 304]]);

    // The abbreviated document has no _rev: each takes its partition row's.
    const corgi = await syncPackuments(client, cache, {
      ...options,
      representation: "abbreviated",
    });
    assert.equal(corgi.outcomes.fetched, 6);
    for (const each of docs.keys()) {
      const expected = each === name ? newRev : JSON.parse(docs.get(each)!)._rev;
      assert.equal(await world.storedRev(each, "abbreviated"), expected, each);
    }
    world.asked();
    const again = await syncPackuments(client, cache, {
      ...options,
      representation: "abbreviated",
    });
    assert.equal(again.sameRev, 6);
    assert.deepEqual(world.asked(), []);
  }));

Deno.test("syncPackuments() checks its options before reading or asking anything", () =>
  withWorld(2, async ({ client, cache, options, registry }) => {
    await assert.rejects(
      syncPackuments(client, cache, { ...options, originKey: "a:b" }),
      (error: Error) =>
        error instanceof TypeError && /'originKey' must be .*received 'a:b'/.test(error.message),
    );
    await assert.rejects(
      syncPackuments(client, cache, { ...options, parallel: 0 }),
      (error: Error) =>
        error instanceof RangeError &&
        error.message ===
          "Cannot sync packuments: 'parallel' must be a positive integer, received 0",
    );
    await assert.rejects(
      syncPackuments(client, cache, { ...options, pivots: ["b", "a"] }),
      PivotError,
    );
    assert.equal(registry.requests.length, 0);
  }));
