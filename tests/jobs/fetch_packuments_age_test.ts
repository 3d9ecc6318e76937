import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { originKey, packumentKey } from "../../src/storage/keys.ts";
import { fetchPackument, type FetchPackumentOptions } from "../../src/jobs/fetch_packuments.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FakeClock } from "../_support/fake_clock.ts";

// Answers come from a stub fetch: no server is needed to see which headers are kept.
const URL_BASE = "http://127.0.0.1:9/";

Deno.test("fetchPackument(): a response's Age header shortens its freshness (RFC 9111 §4.2.3)", async () => {
  const clock = new FakeClock();
  const answers: { status: number; age?: string }[] = [
    { status: 200, age: "200" },
    { status: 304, age: "50" },
    { status: 304 },
  ];
  const seen: (string | null)[] = [];
  const client = new HttpClient({
    clock,
    fetch: (_url, init) => {
      seen.push(new Headers(init?.headers).get("if-none-match"));
      const answer = answers.shift()!;
      const headers = new Headers({
        etag: '"1"',
        "cache-control": "public, max-age=300",
        "content-type": "application/json",
      });
      if (answer.age) headers.set("age", answer.age);
      const body = answer.status === 200 ? '{"name":"aged"}' : null;
      return Promise.resolve(new Response(body, { status: answer.status, headers }));
    },
  });
  const cache = await Cache.open(new MemoryDriver(), { clock });
  const target = { url: URL_BASE, originKey: originKey(URL_BASE) };
  const opts: FetchPackumentOptions = { registryFor: () => target };
  const key = packumentKey(target.originKey, "aged");

  assert.equal((await fetchPackument(client, cache, "aged", opts)).outcome, "fetched");
  assert.equal((await cache.info(key))!.age, 200);
  // Fresh for 300 - 200 = 100 s, not 300.
  clock.advance(99_000);
  assert.equal((await fetchPackument(client, cache, "aged", opts)).outcome, "cached");
  clock.advance(1_000);
  assert.equal((await fetchPackument(client, cache, "aged", opts)).outcome, "revalidated");
  assert.deepEqual(seen, [null, '"1"']);
  // The 304 came with Age: 50, so the renewed entry is fresh for 250 s.
  assert.equal((await cache.info(key))!.age, 50);
  clock.advance(249_000);
  assert.equal((await fetchPackument(client, cache, "aged", opts)).outcome, "cached");
  clock.advance(1_000);
  assert.equal((await fetchPackument(client, cache, "aged", opts)).outcome, "revalidated");
  // A 304 without an Age: fresh for the whole 300 s.
  assert.equal((await cache.info(key))!.age, undefined);
  clock.advance(299_000);
  assert.equal((await fetchPackument(client, cache, "aged", opts)).outcome, "cached");
  assert.equal(seen.length, 3);
});
