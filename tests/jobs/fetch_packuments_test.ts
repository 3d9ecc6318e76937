import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { originKey, packumentKey } from "../../src/storage/keys.ts";
import {
  fetchPackument,
  type FetchPackumentOptions,
  fetchPackuments,
} from "../../src/jobs/fetch_packuments.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FsDriver, nodeFsOps } from "../../drivers/fs.ts";
import { StorageError } from "../../src/storage/driver.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { FakeClock } from "../_support/fake_clock.ts";
import {
  type Fault,
  onlyName,
  type RegistryFixture,
  startRegistryFixture,
} from "../_support/registry_fixture.ts";

async function setup(options: Parameters<typeof startRegistryFixture>[0] = {}) {
  const packuments = await loadFixturePackuments();
  const fixture = await startRegistryFixture({ packuments, ...options });
  const clock = new FakeClock();
  const client = new HttpClient({ fetch: (i, init) => fetch(i, init), clock, retries: 4 });
  const cache = await Cache.open(new MemoryDriver(), { clock });
  const target = { url: fixture.url, originKey: originKey(fixture.url) };
  const opts: FetchPackumentOptions = { registryFor: () => target };
  return { fixture, clock, client, cache, opts, names: [...packuments.keys()], target };
}

async function body(cache: Cache, key: string): Promise<Uint8Array> {
  const entry = await cache.get(key);
  assert.ok(entry, `${key} is cached`);
  return await entry.bytes();
}

function requestsFor(fixture: RegistryFixture, name: string) {
  return fixture.requests.filter((r) => r.name === name);
}

Deno.test("fetchPackuments() fetches each name once and stores bodies byte for byte", async () => {
  const { fixture, client, cache, opts, names, target } = await setup();
  try {
    const summary = await fetchPackuments(client, cache, [...names, ...names], {
      ...opts,
      parallel: 8,
    });
    assert.equal(summary.outcomes.fetched, names.length);
    assert.equal(summary.duplicates, names.length);
    for (const name of names) {
      assert.equal(requestsFor(fixture, name).length, 1, name);
      assert.deepEqual(
        await body(cache, packumentKey(target.originKey, name)),
        fixture.expectedBody(name, "full"),
      );
    }
    // Concurrent loads of one name share one request.
    await Promise.all(
      Array.from(
        { length: 5 },
        () => fetchPackument(client, cache, names[0]!, { ...opts, representation: "abbreviated" }),
      ),
    );
    assert.equal(requestsFor(fixture, names[0]!).length, 2);
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackument() keeps the full and abbreviated documents apart", async () => {
  const { fixture, client, cache, opts, target } = await setup();
  try {
    const abbreviated = await fetchPackument(client, cache, "ms", {
      ...opts,
      representation: "abbreviated",
    });
    assert.equal(abbreviated.outcome, "fetched");
    assert.equal(fixture.requests[0]!.representation, "corgi");
    // A full request is never answered from the corgi entry.
    assert.equal((await fetchPackument(client, cache, "ms", opts)).outcome, "fetched");
    assert.equal(fixture.requests[1]!.representation, "full");
    const full = await body(cache, packumentKey(target.originKey, "ms"));
    const corgi = await body(cache, packumentKey(target.originKey, "ms", "abbreviated"));
    assert.deepEqual(full, fixture.expectedBody("ms", "full"));
    assert.deepEqual(corgi, fixture.expectedBody("ms", "corgi"));
    assert.notDeepEqual(full, corgi);
    const info = await cache.info(packumentKey(target.originKey, "ms", "abbreviated"));
    assert.equal(info?.representation, "abbreviated");
    assert.equal(info?.contentType, "application/vnd.npm.install-v1+json");
    assert.equal(info?.etag, fixture.etag("ms", "corgi"));
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackument() uses fresh entries, revalidates stale ones, and refetches changes", async () => {
  const { fixture, clock, client, cache, opts, target } = await setup();
  try {
    const key = packumentKey(target.originKey, "left-pad");
    assert.equal((await fetchPackument(client, cache, "left-pad", opts)).outcome, "fetched");
    const first = await cache.info(key);
    clock.advance(299_000);
    assert.equal((await fetchPackument(client, cache, "left-pad", opts)).outcome, "cached");
    assert.equal(fixture.requests.length, 1, "no request within max-age");
    clock.advance(2_000);
    assert.equal((await fetchPackument(client, cache, "left-pad", opts)).outcome, "revalidated");
    const last = fixture.requests.at(-1)!;
    assert.equal(last.status, 304);
    assert.equal(last.ifNoneMatch, first!.etag);
    const second = await cache.info(key);
    assert.equal(second!.fetchedAt, clock.now());
    assert.equal(second!.integrity, first!.integrity);
    // --refresh revalidates at once, and downloads only what changed.
    assert.equal(
      (await fetchPackument(client, cache, "left-pad", { ...opts, refresh: true })).outcome,
      "revalidated",
    );
    const changed = JSON.parse(new TextDecoder().decode(fixture.expectedBody("left-pad", "full")));
    changed["dist-tags"].next = "9.9.9";
    fixture.set("left-pad", JSON.stringify(changed));
    const result = await fetchPackument(client, cache, "left-pad", { ...opts, refresh: true });
    assert.equal(result.outcome, "fetched");
    assert.deepEqual(await body(cache, key), fixture.expectedBody("left-pad", "full"));
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackument() revalidates with If-Modified-Since where there is no ETag", async () => {
  const { fixture, clock, client, cache, opts, target } = await setup({ etags: false });
  try {
    const key = packumentKey(target.originKey, "left-pad");
    assert.equal((await fetchPackument(client, cache, "left-pad", opts)).outcome, "fetched");
    const first = await cache.info(key);
    assert.equal(first!.etag, undefined, "the registry sent no ETag");
    assert.equal(first!.lastModified, fixture.lastModified("left-pad"));
    assert.ok(first!.lastModified);
    const puts: string[] = [];
    const put = cache.put.bind(cache);
    cache.put = (...args: Parameters<Cache["put"]>) => {
      puts.push(args[0]);
      return put(...args);
    };
    clock.advance(301_000);
    assert.equal(cache.freshness(first!).fresh, false);
    assert.equal((await fetchPackument(client, cache, "left-pad", opts)).outcome, "revalidated");
    const last = fixture.requests.at(-1)!;
    assert.equal(last.status, 304);
    assert.equal(last.ifModifiedSince, first!.lastModified);
    assert.equal(last.ifNoneMatch, undefined);
    assert.deepEqual(puts, [], "a 304 does not rewrite the body");
    const second = await cache.info(key);
    assert.equal(second!.fetchedAt, clock.now(), "the 304 renewed its freshness");
    assert.equal(second!.integrity, first!.integrity);
    assert.equal(second!.lastModified, first!.lastModified);
    assert.deepEqual(await body(cache, key), fixture.expectedBody("left-pad", "full"));
    clock.advance(299_000);
    assert.equal((await fetchPackument(client, cache, "left-pad", opts)).outcome, "cached");
    assert.equal(fixture.requests.length, 2, "fresh again: no request");
    // A document modified since is sent whole and stored.
    const changed = JSON.parse(new TextDecoder().decode(fixture.expectedBody("left-pad", "full")));
    changed["dist-tags"].next = "9.9.9";
    changed.time.modified = new Date(Date.parse(first!.lastModified!) + 86_400_000).toISOString();
    fixture.set("left-pad", JSON.stringify(changed));
    clock.advance(2_000);
    assert.equal((await fetchPackument(client, cache, "left-pad", opts)).outcome, "fetched");
    assert.equal(fixture.requests.at(-1)!.ifModifiedSince, first!.lastModified);
    assert.deepEqual(puts, [key]);
    assert.deepEqual(await body(cache, key), fixture.expectedBody("left-pad", "full"));
    assert.equal((await cache.info(key))!.lastModified, fixture.lastModified("left-pad"));
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackument() records a 404 as a result, fresh for a short while", async () => {
  const { fixture, clock, client, cache, opts, target } = await setup();
  try {
    const result = await fetchPackument(client, cache, "no-such-package", opts);
    assert.equal(result.outcome, "not-found");
    assert.equal(
      (await cache.info(packumentKey(target.originKey, "no-such-package")))?.status,
      404,
    );
    assert.equal(
      (await fetchPackument(client, cache, "no-such-package", opts)).outcome,
      "not-found",
    );
    assert.equal(fixture.requests.length, 1);
    clock.advance(301_000);
    await fetchPackument(client, cache, "no-such-package", opts);
    assert.equal(fixture.requests.length, 2);
    assert.equal(fixture.requests[1]!.ifNoneMatch, undefined, "a 404 is not revalidated");
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackument() offline uses the cache only", async () => {
  const { fixture, client, cache, opts } = await setup();
  try {
    await fetchPackument(client, cache, "ms", opts);
    const summary = await fetchPackuments(client, cache, ["ms", "chalk"], {
      ...opts,
      offline: true,
    });
    assert.equal(summary.outcomes.cached, 1);
    assert.equal(summary.outcomes.missing, 1);
    assert.equal(fixture.requests.length, 1);
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackuments() loses nothing to 429, 5xx, resets and truncated bodies", async () => {
  const faults: Fault[] = [
    { kind: "status", status: 429, retryAfter: "3" },
    { kind: "status", status: 503 },
    { kind: "reset" },
    { kind: "truncate" },
  ];
  const plans = new Map<string, Fault>([
    ["ms", faults[0]!],
    ["chalk", faults[1]!],
    ["debug", faults[2]!],
    ["left-pad", faults[3]!],
  ]);
  const perName = [...plans].map(([name, fault]) =>
    onlyName(name, ({ n }) => (n === 0 ? fault : undefined))
  );
  const { fixture, client, cache, opts, names, target } = await setup({
    faults: (request) => perName.map((plan) => plan(request)).find(Boolean),
  });
  try {
    const summary = await fetchPackuments(client, cache, names, opts);
    assert.deepEqual(summary.failed, []);
    for (const name of names) {
      assert.deepEqual(
        await body(cache, packumentKey(target.originKey, name)),
        fixture.expectedBody(name, "full"),
        name,
      );
    }
    const kinds = new Set(fixture.requests.map((r) => r.fault?.kind).filter(Boolean));
    assert.deepEqual([...kinds].sort(), ["reset", "status", "truncate"]);
    assert.ok(client.stats.retries >= 3);
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackument() reports a name that keeps failing and keeps the old entry", async () => {
  const { fixture, clock, client, cache, opts, target } = await setup();
  try {
    await fetchPackument(client, cache, "ms", opts);
    await fixture.close();
    const broken = await startRegistryFixture({
      packuments: new Map([["ms", fixture.expectedBody("ms", "full")]]),
      faults: () => ({ kind: "status", status: 503 }),
    });
    try {
      clock.advance(400_000);
      const result = await fetchPackument(client, cache, "ms", {
        registryFor: () => ({ ...target, url: broken.url }),
      });
      assert.equal(result.outcome, "failed");
      assert.match(result.error!, /503/);
      assert.deepEqual(
        await body(cache, packumentKey(target.originKey, "ms")),
        fixture.expectedBody("ms", "full"),
      );
    } finally {
      await broken.close();
    }
  } finally {
    await fixture.close().catch(() => {});
  }
});

Deno.test("fetchPackument() sends a token only to the registry it belongs to", async () => {
  const packuments = await loadFixturePackuments();
  const open = await startRegistryFixture({ packuments });
  const private_ = await startRegistryFixture({
    packuments: new Map([["@corp/tool", packuments.get("ms")!]]),
    token: "s3cret-token",
  });
  try {
    const clock = new FakeClock();
    const client = new HttpClient({ fetch: (i, init) => fetch(i, init), clock });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    const registryFor = (name: string) =>
      name.startsWith("@corp/")
        ? { url: private_.url, originKey: originKey(private_.url), token: "s3cret-token" }
        : { url: open.url, originKey: originKey(open.url) };
    const summary = await fetchPackuments(client, cache, ["@corp/tool", "ms"], { registryFor });
    assert.deepEqual(summary.failed, []);
    assert.equal(private_.requests[0]!.authorization, true);
    assert.equal(private_.requests[0]!.path, "/@corp%2ftool");
    assert.equal(open.requests[0]!.authorization, false);
    const denied = await fetchPackument(client, cache, "@corp/tool", {
      registryFor: () => ({ url: private_.url, originKey: "other" }),
    });
    assert.equal(denied.outcome, "failed");
    assert.match(denied.error!, /401/);
    assert.doesNotMatch(JSON.stringify([summary, denied]), /s3cret/);
  } finally {
    await open.close();
    await private_.close();
  }
});

Deno.test("fetchPackuments() fails a 200 that is not a JSON object, once, and caches nothing", async () => {
  const html = onlyName("ms", () => ({ kind: "content-type" }));
  const cut = onlyName("chalk", () => ({ kind: "bad-json" }));
  const { fixture, client, cache, opts, names, target } = await setup({
    faults: (request) => html(request) ?? cut(request),
  });
  try {
    const summary = await fetchPackuments(client, cache, names, opts);
    assert.deepEqual(summary.failed.map((f) => f.name).sort(), ["chalk", "ms"]);
    assert.match(summary.failed.find((f) => f.name === "ms")!.error!, /text\/html.*not JSON/);
    assert.match(summary.failed.find((f) => f.name === "chalk")!.error!, /does not end with '}'/);
    assert.equal(summary.outcomes.fetched, names.length - 2);
    for (const name of ["ms", "chalk"]) {
      assert.equal(requestsFor(fixture, name).length, 1, `${name} is not asked again`);
      assert.equal(await cache.info(packumentKey(target.originKey, name)), undefined, name);
    }
  } finally {
    await fixture.close();
  }
});

Deno.test("fetchPackument() checks a streamed body's first and last bytes, and records a 404 as JSON", async () => {
  const bodies: Record<string, [number, string, string[]]> = {
    "/page": [200, "application/json", ["  \n<!DOCTYPE html>", "<html></html>"]],
    "/padded": [200, "application/json", ['{"name":"padded","versions":{', "    \n"]],
    "/empty": [200, "application/json", ["  "]],
    "/good": [200, "application/json", [' {"name":"good",', '"versions":{}}\n']],
    "/gone": [404, "text/html", ["<html>Not here</html>"]],
  };
  const client = new HttpClient({
    fetch: (url) => {
      const [status, type, chunks] = bodies[new URL(url).pathname]!;
      const encoder = new TextEncoder();
      // A stream without a Content-Length: the fetcher streams it to storage.
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
          controller.close();
        },
      });
      return Promise.resolve(new Response(body, { status, headers: { "content-type": type } }));
    },
    retries: 0,
  });
  const cache = await Cache.open(new MemoryDriver());
  const target = { url: "http://registry.test/", originKey: "test" };
  const opts: FetchPackumentOptions = { registryFor: () => target };
  for (const name of ["page", "padded", "empty"]) {
    const result = await fetchPackument(client, cache, name, opts);
    assert.equal(result.outcome, "failed", name);
    assert.match(result.error!, /not a (whole )?JSON object/, name);
    assert.equal(await cache.info(packumentKey("test", name)), undefined, name);
  }
  assert.equal((await fetchPackument(client, cache, "good", opts)).outcome, "fetched");
  assert.equal((await fetchPackument(client, cache, "gone", opts)).outcome, "not-found");
  const gone = await cache.get(packumentKey("test", "gone"));
  assert.equal(new TextDecoder().decode(await gone!.bytes()), '{"error":"Not found"}');
  assert.equal(gone!.info.contentType, "application/json");
});

Deno.test("fetchPackuments() stops at the first storage failure and never downloads again", async () => {
  const packuments = await loadFixturePackuments();
  const fixture = await startRegistryFixture({ packuments });
  const dir = await Deno.makeTempDir();
  // A full disk: every file write fails with ENOSPC.
  const full = new FsDriver(dir, {
    ops: {
      ...nodeFsOps,
      writeFileExclusive: () =>
        Promise.reject(Object.assign(new Error("ENOSPC: no space left on device"), {
          code: "ENOSPC",
        })),
    },
  });
  try {
    const client = new HttpClient({ fetch: (i, init) => fetch(i, init), clock: new FakeClock() });
    const cache = await Cache.open(full);
    const target = { url: fixture.url, originKey: originKey(fixture.url) };
    const names = [...packuments.keys()];
    assert.ok(names.length > 4);
    const error = await fetchPackuments(client, cache, names, {
      registryFor: () => target,
      parallel: 2,
    }).then(() => undefined, (error) => error);
    assert.ok(error instanceof StorageError, String(error));
    assert.equal(error.code, "ENOSPC");
    // At most the two names in flight were asked for, each once.
    assert.ok(fixture.requests.length <= 2, `${fixture.requests.length} requests`);
    assert.equal(new Set(fixture.requests.map((r) => r.name)).size, fixture.requests.length);
  } finally {
    await full.close();
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetchPackument() asks again for a body cut short after the client's backoff, up to its retries", async () => {
  const cutFirst = (count: number) =>
    onlyName("ms", ({ n }) => (n < count ? { kind: "truncate" } : undefined));
  for (
    const [retries, cuts, outcome, sleeps] of [
      [4, 4, "fetched", [125, 250, 500, 1000]],
      [1, 10, "failed", [125]],
      [0, 10, "failed", []],
    ] as const
  ) {
    const packuments = await loadFixturePackuments();
    const fixture = await startRegistryFixture({ packuments, faults: cutFirst(cuts) });
    try {
      const slept: number[] = [];
      const clock = { now: () => 0, sleep: (ms: number) => (slept.push(ms), Promise.resolve()) };
      const client = new HttpClient({
        fetch: (i, init) => fetch(i, init),
        clock,
        retries,
        random: () => 0.5,
      });
      const cache = await Cache.open(new MemoryDriver(), { clock });
      const target = { url: fixture.url, originKey: originKey(fixture.url) };
      const result = await fetchPackument(client, cache, "ms", { registryFor: () => target });
      assert.equal(result.outcome, outcome, `retries ${retries}`);
      assert.deepEqual(slept, sleeps, `retries ${retries}`);
      assert.equal(requestsFor(fixture, "ms").length, sleeps.length + 1);
      assert.equal(client.stats.retries, sleeps.length);
    } finally {
      await fixture.close();
    }
  }
});

Deno.test("fetchPackument() honours Retry-After for a body cut short", async () => {
  let calls = 0;
  const client = new HttpClient({
    fetch: () => {
      calls++;
      const body = calls === 1
        ? new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('{"name":"ms",'));
            controller.error(new TypeError("connection reset"));
          },
        })
        : '{"name":"ms"}';
      return Promise.resolve(
        new Response(body, {
          headers: { "retry-after": "7", "content-type": "application/json" },
        }),
      );
    },
    clock: { now: () => 0, sleep: (ms) => (slept.push(ms), Promise.resolve()) },
  });
  const slept: number[] = [];
  const cache = await Cache.open(new MemoryDriver());
  const target = { url: "http://registry.test/", originKey: "test" };
  const result = await fetchPackument(client, cache, "ms", { registryFor: () => target });
  assert.equal(result.outcome, "fetched", result.error);
  assert.deepEqual(slept, [7000]);
});

Deno.test("fetchPackuments() tells transient failures from permanent ones, with status and Retry-After", async () => {
  const plans = [
    onlyName("ms", () => ({ kind: "status", status: 503, retryAfter: "9" })),
    onlyName("chalk", () => ({ kind: "status", status: 403 })),
    onlyName("debug", () => ({ kind: "content-type" })),
    onlyName("is-number", () => ({ kind: "truncate" })),
    onlyName("left-pad", () => ({ kind: "status", status: 429 })),
  ];
  const { fixture, client, cache, opts } = await setup({
    faults: (request) =>
      plans.reduce<Fault | undefined>((f, plan) => f ?? plan(request), undefined),
  });
  try {
    const names = ["ms", "chalk", "debug", "is-number", "left-pad", "no-such-name"];
    const summary = await fetchPackuments(client, cache, names, opts);
    const failed = Object.fromEntries(summary.failed.map((f) => [f.name, f]));
    assert.deepEqual(Object.keys(failed).sort(), ["chalk", "debug", "is-number", "left-pad", "ms"]);
    assert.equal(summary.outcomes["not-found"], 1, "a 404 is a result, not a failure");
    assert.deepEqual(
      [failed.ms!.transient, failed.ms!.status, failed.ms!.retryAfter],
      [true, 503, 9000],
    );
    assert.deepEqual([failed["left-pad"]!.transient, failed["left-pad"]!.status], [true, 429]);
    assert.deepEqual([failed.chalk!.transient, failed.chalk!.status], [false, 403]);
    assert.deepEqual([failed.debug!.transient, failed.debug!.status], [false, 200]);
    assert.equal(failed["is-number"]!.transient, true, "a body cut short may pass next time");
    assert.equal(failed["is-number"]!.status, 200);
    assert.equal(requestsFor(fixture, "chalk").length, 1, "a 403 is not asked again");
  } finally {
    await fixture.close();
  }
});
