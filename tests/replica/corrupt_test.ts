import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { BODY_PREFIX, packumentKey } from "../../src/storage/keys.ts";
import { createReplicaApp } from "../../src/replica/app.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

const encoder = new TextEncoder();

async function flipLast(driver: MemoryDriver, key: string): Promise<void> {
  const raw = (await driver.get(key))!;
  raw[raw.length - 2] = raw[raw.length - 2]! ^ 1;
  await driver.put(key, raw);
}

/** A replica over one cached document, `ms`, made corrupt; stored apart when `big`. */
async function corruptReplica(big: boolean) {
  const driver = new MemoryDriver();
  const seen: string[] = [];
  const cache = await Cache.open(driver, {
    bloom: false,
    inlineMax: big ? 64 : 65536,
    onCorrupt: (key) => seen.push(key),
  });
  const doc = {
    name: "ms",
    "dist-tags": { latest: "1.0.0" },
    versions: { "1.0.0": { name: "ms", version: "1.0.0", description: "x".repeat(200) } },
  };
  const key = packumentKey("npm", "ms");
  await cache.put(key, encoder.encode(JSON.stringify(doc)), { status: 200 });
  const [bodyKey] = await Array.fromAsync(driver.list({ prefix: BODY_PREFIX }));
  await flipLast(driver, big ? bodyKey! : key);
  return { app: createReplicaApp({ cache, packumentOrigin: () => "npm" }), seen, key };
}

const FULL = { accept: "application/json" };
const CORGI = { accept: "application/vnd.npm.install-v1+json" };

Deno.test("replica app: a corrupt inline document answers 500 for GET and HEAD", async () => {
  const { app, seen, key } = await corruptReplica(false);
  for (const headers of [FULL, CORGI]) {
    for (const method of ["GET", "HEAD"]) {
      const response = await app.request("/ms", { method, headers });
      assert.equal(response.status, 500, `${method} ${headers.accept}`);
      if (method === "GET") {
        const body = await response.json();
        assert.match(body.reason, /is corrupt: inline body does not match/);
      } else await response.body?.cancel();
    }
  }
  assert.ok(seen.length >= 4 && seen.every((k) => k === key), "each read reports it");
});

Deno.test("replica app: a corrupt document stored apart never reads as a whole 200", async () => {
  const { app, seen } = await corruptReplica(true);
  // GET streams it and fails the transfer at the end.
  const full = await app.request("/ms", { headers: FULL });
  await assert.rejects(full.arrayBuffer());
  // The abbreviated form is derived from it: the failure comes before any header.
  const corgi = await app.request("/ms", { headers: CORGI });
  assert.equal(corgi.status, 500);
  await corgi.body?.cancel();
  // HEAD sends no body to fail: it checks first.
  for (const headers of [FULL, CORGI]) {
    const head = await app.request("/ms", { method: "HEAD", headers });
    assert.equal(head.status, 500, headers.accept);
    await head.body?.cancel();
  }
  assert.ok(seen.length >= 4);
});
