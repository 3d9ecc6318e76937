import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { originKey, packumentKey } from "../../src/storage/keys.ts";
import { refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import { itemId, toWorkItem, validatePayload, WorkItemError } from "../../src/worker/items.ts";
import { workerHandlers } from "../../src/worker/handlers.ts";
import { Worker, type WorkerEvent } from "../../src/worker/worker.ts";
import { MemoryQueue } from "../../queues/memory.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { applyRandomChanges, startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { FakeClock } from "../_support/fake_clock.ts";

function packument(name: string, rev: string): string {
  return JSON.stringify({ _id: name, _rev: rev, name, "dist-tags": {}, versions: {} });
}

Deno.test("changes item: a payload is checked, and one follower per origin is queued", () => {
  const payload = validatePayload("changes", {
    origin: "http://127.0.0.1:5984/registry",
    packuments: "full",
    window: 100,
    limit: 500,
  });
  assert.deepEqual(payload, {
    origin: "http://127.0.0.1:5984/registry",
    packuments: "full",
    window: 100,
    limit: 500,
  });
  assert.equal(itemId("changes", payload), `changes:${originKey(payload.origin)}`);
  assert.equal(
    toWorkItem({ type: "changes", payload: { origin: payload.origin, originKey: "npm" } }).id,
    "changes:npm",
  );
  for (
    const bad of [{}, { origin: "ftp://x/" }, { origin: "http://x/", limit: 0 }, {
      origin: "http://x/",
      since: 3,
    }]
  ) {
    assert.throws(() => validatePayload("changes", bad), WorkItemError);
  }
});

Deno.test("changes item: the worker follows the feed and queues the changed packuments", async () => {
  const ids = Array.from({ length: 300 }, (_, i) => `pkg-${String(i).padStart(3, "0")}`);
  const couch = await startAllDocsFixture({ ids, changes: { lateRate: 0.02 } });
  const registry = await startRegistryFixture();
  try {
    const clock = new FakeClock();
    const client = new HttpClient({
      fetch: (input, init) => fetch(input, init),
      clock,
      random: () => 0.5,
    });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const couchKey = originKey(couch.origin);
    await refreshPartitions(client, cache, {
      origin: couch.origin,
      originKey: couchKey,
      pivots: [ids[100]!, ids[200]!],
      clock,
      recordUpdateSeq: true,
    });
    const registryKey = originKey(registry.url);
    const gone = ids[50]!;
    await cache.put(packumentKey(registryKey, gone), new TextEncoder().encode("{}"), {
      status: 200,
    });
    const before = new Set(ids.map((id) => `${id} ${couch.revOf(id)}`));
    applyRandomChanges(couch, 120, { seed: 4, creates: 0.1, deletes: 0 });
    couch.remove(gone);
    for (const row of couch.rows) registry.set(row.id, packument(row.id, row.rev));
    const events: WorkerEvent[] = [];
    const worker = new Worker(new MemoryQueue(), {
      handlers: workerHandlers({
        client,
        cache,
        registry: { url: registry.url, originKey: registryKey },
        clock,
        batchSize: 25,
      }),
      onEvent: (event) => events.push(event),
    });
    const item = { type: "changes", payload: { origin: couch.origin, packuments: "full" } };
    const id = `changes:${couchKey}`;
    assert.deepEqual(await worker.enqueue([item]), { accepted: [id], duplicates: [] });
    // A second enqueue of the same origin while it waits is a duplicate.
    assert.deepEqual(await worker.enqueue([item]), { accepted: [], duplicates: [id] });
    const { done, dead } = await worker.runUntilIdle(5);
    assert.equal(dead, 0);
    assert.ok(done > 1, `${done} items done (the follow and its packument batches)`);
    const rows = [];
    for await (const row of indexRows(cache, couchKey)) rows.push(row);
    assert.deepEqual(rows, couch.rows);
    // Every document whose _rev changed now has its packument at that _rev.
    const changed = couch.rows.filter((row) => !before.has(`${row.id} ${row.rev}`));
    assert.ok(changed.length > 50, `${changed.length} changed`);
    for (const row of changed) {
      assert.equal((await cache.info(packumentKey(registryKey, row.id)))?.rev, row.rev, row.id);
    }
    assert.equal(await cache.info(packumentKey(registryKey, gone)), undefined, "deleted: dropped");
  } finally {
    await couch.close();
    await registry.close();
  }
});

Deno.test("changes item: no start is permanent, the item goes dead at once", async () => {
  const couch = await startAllDocsFixture({ ids: ["a"] });
  try {
    const cache = await Cache.open(new MemoryDriver());
    const worker = new Worker(new MemoryQueue(), {
      handlers: workerHandlers({
        client: new HttpClient(),
        cache,
        registry: { url: "http://127.0.0.1:9/", originKey: "registry" },
      }),
    });
    await worker.enqueue([{ type: "changes", payload: { origin: couch.origin } }]);
    const { dead } = await worker.runUntilIdle(5);
    assert.equal(dead, 1);
    assert.equal(couch.requests.length, 0);
  } finally {
    await couch.close();
  }
});
