import assert from "node:assert/strict";
import { allDocsUrl, readRange } from "../../src/couchdb/all_docs.ts";
import { Cache } from "../../src/storage/cache.ts";
import type { Clock } from "../../src/clock.ts";
import { HttpClient } from "../../src/http/client.ts";
import { packumentKey } from "../../src/storage/keys.ts";
import { refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { parsePartitionLines } from "../../src/couchdb/partition_lines.ts";
import { createReplicaApp } from "../../src/replica/app.ts";
import { abbreviatePackument } from "../../src/npm/corgi.ts";
import type { StorageDriver } from "../../src/storage/driver.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { type AllDocsFixture, startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { abbreviate, generatePackument, loadFixturePackuments } from "../_support/packuments.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ORIGIN = "reg";
const CORGI = "application/vnd.npm.install-v1+json";
const NPM_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

/** Wraps a driver and records the keys whose values were read. */
function countingDriver(inner: StorageDriver): StorageDriver & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    get: (key) => {
      reads.push(key);
      return inner.get(key);
    },
    getStream: (key) => {
      reads.push(key);
      return inner.getStream(key);
    },
    put: (key, value) => inner.put(key, value),
    delete: (key) => inner.delete(key),
    has: (key) => inner.has(key),
    list: (options) => inner.list(options),
    close: () => inner.close(),
  } as StorageDriver & { reads: string[] };
}

async function put(
  cache: Cache,
  name: string,
  representation: "full" | "abbreviated",
  body: string | Uint8Array,
  status = 200,
): Promise<void> {
  await cache.put(
    packumentKey(ORIGIN, name, representation),
    typeof body === "string" ? encoder.encode(body) : body,
    {
      status,
      contentType: representation === "full" ? "application/json" : CORGI,
      etag: '"origin-etag"',
      representation,
    },
  );
}

async function bodyOf(response: Response): Promise<string> {
  return decoder.decode(new Uint8Array(await response.arrayBuffer()));
}

async function errorOf(response: Response): Promise<Record<string, unknown>> {
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  return JSON.parse(await bodyOf(response));
}

/** Sends one request over a new TCP connection, byte for byte as given. */
async function rawRequest(
  port: number,
  target: string,
  method = "GET",
): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    encoder.encode(`${method} ${target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`),
  );
  const text = await new Response(conn.readable).text();
  const split = text.indexOf("\r\n\r\n");
  const [statusLine, ...lines] = text.slice(0, split).split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = text.slice(split + 4);
  if (headers.get("transfer-encoding") === "chunked") {
    let out = "";
    let rest = body;
    while (true) {
      const eol = rest.indexOf("\r\n");
      const size = parseInt(rest.slice(0, eol), 16);
      if (!size) break;
      out += rest.slice(eol + 2, eol + 2 + size);
      rest = rest.slice(eol + 2 + size + 2);
    }
    body = out;
  }
  return { status: Number(statusLine!.split(" ")[1]), headers, body };
}

async function withServer(
  app: { fetch: (request: Request) => Response | Promise<Response> },
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  try {
    await fn(server.addr.port);
  } finally {
    await server.shutdown();
  }
}

/** A cache with the fixture packuments and a few special cases. */
async function packumentCache(clock: Clock = new FakeClock()) {
  const cache = await Cache.open(new MemoryDriver(), { bloom: false, clock });
  const fixtures = await loadFixturePackuments();
  for (const [name, bytes] of fixtures) await put(cache, name, "full", bytes);
  const scoped = generatePackument("@scope/pkg", { versions: 3, seed: 1 });
  await put(cache, "@scope/pkg", "full", scoped);
  const big = generatePackument("big", { versions: 40, seed: 2, targetBytes: 3 * 1024 * 1024 });
  await put(cache, "big", "full", big);
  await put(cache, "corgi-only", "abbreviated", '{"name":"corgi-only","versions":{}}');
  await put(cache, "gone", "full", '{"error":"Not found"}', 404);
  return { cache, fixtures, scoped, big };
}

Deno.test("replica app: package documents", async (t) => {
  const clock = new FakeClock();
  const { cache, fixtures, scoped, big } = await packumentCache(clock);
  const lines: string[] = [];
  const app = createReplicaApp({
    cache,
    packumentOrigin: () => ORIGIN,
    log: (line) => lines.push(line),
  });
  const ms = fixtures.get("ms")!;
  const msInfo = (await cache.info(packumentKey(ORIGIN, "ms")))!;

  await t.step("full document without Accept or with application/json, byte for byte", async () => {
    for (const accept of [undefined, "application/json"]) {
      const response = await app.request("/ms", accept ? { headers: { accept } } : {});
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.equal(response.headers.get("etag"), `"${msInfo.integrity}"`);
      assert.equal(response.headers.get("cache-control"), "public, max-age=300");
      assert.equal(response.headers.get("vary"), "Accept, Accept-Encoding");
      assert.equal(response.headers.get("content-length"), String(ms.length));
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), ms);
    }
  });

  await t.step("abbreviated documents derived from the full ones equal abbreviate()", async () => {
    for (const accept of [CORGI, NPM_ACCEPT, "*/*", "text/html, */*;q=0.1"]) {
      const response = await app.request("/ms", { headers: { accept } });
      assert.equal(response.status, 200, accept);
      assert.equal(response.headers.get("content-type"), CORGI);
      const body = await bodyOf(response);
      assert.equal(response.headers.get("content-length"), String(encoder.encode(body).length));
      assert.match(response.headers.get("etag")!, /^"sha256-[A-Za-z0-9+/]+=*"$/);
      assert.notEqual(response.headers.get("etag"), `"${msInfo.integrity}"`);
      assert.deepEqual(JSON.parse(body), abbreviate(JSON.parse(decoder.decode(ms))));
    }
    for (const [name, bytes] of [...fixtures, ["@scope/pkg", encoder.encode(scoped)] as const]) {
      const response = await app.request(`/${name.replace("/", "%2f")}`, {
        headers: { accept: CORGI },
      });
      const derived = JSON.parse(await bodyOf(response));
      const full = JSON.parse(decoder.decode(bytes));
      assert.deepEqual(derived, abbreviate(full), name);
      assert.deepEqual(derived, abbreviatePackument(full), name);
      assert.equal(derived.modified, full.time?.modified ?? derived.modified);
      for (const manifest of Object.values(derived.versions as Record<string, object>)) {
        for (const field of ["readme", "scripts", "description", "maintainers", "_id"]) {
          assert.ok(!(field in manifest), `${name}: ${field} was kept`);
        }
      }
    }
  });

  await t.step("If-None-Match answers 304 without a body", async () => {
    const etag = `"${msInfo.integrity}"`;
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const response = await app.request("/ms", { headers: { "if-none-match": header } });
      assert.equal(response.status, 304, header);
      assert.equal(response.headers.get("etag"), etag);
      assert.equal(await bodyOf(response), "");
    }
    const changed = await app.request("/ms", { headers: { "if-none-match": '"other"' } });
    assert.equal(changed.status, 200);
    await changed.body?.cancel();
    const corgi = await app.request("/ms", { headers: { accept: CORGI } });
    const corgiEtag = corgi.headers.get("etag")!;
    await corgi.body?.cancel();
    const again = await app.request("/ms", {
      headers: { accept: CORGI, "if-none-match": corgiEtag },
    });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get("etag"), corgiEtag);
    const crossed = await app.request("/ms", {
      headers: { accept: "application/json", "if-none-match": corgiEtag },
    });
    assert.equal(crossed.status, 200, "the full document has another ETag");
    await crossed.body?.cancel();
  });

  await t.step("a 304 keeps the caching headers and never opens a stored body", async () => {
    const driver = countingDriver(new MemoryDriver());
    const cache = await Cache.open(driver, { bloom: false });
    const lastModified = "Tue, 02 Jan 2024 03:04:05 GMT";
    await cache.put(packumentKey(ORIGIN, "big", "full"), encoder.encode(big), {
      status: 200,
      contentType: "application/json",
      lastModified,
    });
    const conditional = createReplicaApp({ cache, packumentOrigin: () => ORIGIN });
    const first = await conditional.request("/big");
    const etag = first.headers.get("etag")!;
    await first.body?.cancel();
    const from = driver.reads.length;
    for (const method of ["GET", "HEAD"]) {
      const response = await conditional.request("/big", {
        method,
        headers: { "if-none-match": etag },
      });
      assert.equal(response.status, 304, method);
      assert.deepEqual(Object.fromEntries(response.headers), {
        "cache-control": "public, max-age=300",
        "content-type": "application/json",
        etag,
        "last-modified": lastModified,
        vary: "Accept, Accept-Encoding",
      });
      assert.equal(await bodyOf(response), "");
    }
    const bodies = driver.reads.slice(from).filter((key) => key.startsWith("v1:body:"));
    assert.deepEqual(bodies, [], "the body stored apart was not read");
  });

  await t.step("HEAD answers the headers of GET without a body", async () => {
    for (const accept of ["application/json", CORGI]) {
      const get = await app.request("/ms", { headers: { accept } });
      const length = (await get.arrayBuffer()).byteLength;
      const head = await app.request("/ms", { method: "HEAD", headers: { accept } });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("etag"), get.headers.get("etag"));
      assert.equal(head.headers.get("content-type"), get.headers.get("content-type"));
      assert.equal(head.headers.get("content-length"), String(length));
      assert.equal(await bodyOf(head), "");
    }
    const missing = await app.request("/nope", { method: "HEAD" });
    assert.equal(missing.status, 404);
    assert.equal(await bodyOf(missing), "");
  });

  await t.step("scoped names however the slash is written", async () => {
    for (const path of ["/@scope%2fpkg", "/@scope%2Fpkg", "/@scope/pkg", "/%40scope%2fpkg"]) {
      const response = await app.request(path, { headers: { accept: "application/json" } });
      assert.equal(response.status, 200, path);
      assert.equal(await bodyOf(response), scoped);
    }
  });

  await t.step("a big body streams whole (stored apart from its entry)", async () => {
    await withServer(app, async (port) => {
      const response = await fetch(`http://127.0.0.1:${port}/big`, {
        headers: { accept: "application/json" },
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-length"), String(encoder.encode(big).length));
      assert.equal(await response.text(), big);
    });
  });

  await t.step("corgi entries, 404 records and names not cached", async () => {
    const corgi = await app.request("/corgi-only", { headers: { accept: NPM_ACCEPT } });
    assert.equal(corgi.status, 200);
    assert.equal(corgi.headers.get("content-type"), CORGI);
    assert.equal(await bodyOf(corgi), '{"name":"corgi-only","versions":{}}');
    for (
      const [path, accept] of [
        ["/corgi-only", "application/json"],
        ["/gone", "application/json"],
        ["/gone", CORGI],
        ["/never-cached", CORGI],
        ["/never-cached", "application/json"],
        ["/-/whoami", "application/json"],
      ] as const
    ) {
      const response = await app.request(path, { headers: { accept } });
      assert.equal(response.status, 404, `${path} ${accept}`);
      assert.deepEqual(await errorOf(response), { error: "Not found" });
    }
  });

  await t.step(
    "the more recently fetched of corgi and full answers abbreviated requests",
    async () => {
      const stored = '{"name":"both","dist-tags":{},"versions":{},"stored":true}';
      const full = JSON.stringify({
        name: "both",
        "dist-tags": { latest: "2.0.0" },
        versions: { "2.0.0": { name: "both", version: "2.0.0", readme: "x" } },
      });
      clock.advance(60_000);
      await put(cache, "both", "abbreviated", stored);
      await put(cache, "both", "full", full);
      const older = await app.request("/both", { headers: { accept: CORGI } });
      assert.equal(await bodyOf(older), stored, "a tie goes to the stored corgi");
      clock.advance(1_000);
      await put(cache, "both", "full", full);
      const newer = await app.request("/both", { headers: { accept: CORGI } });
      assert.deepEqual(JSON.parse(await bodyOf(newer)), abbreviate(JSON.parse(full)));
      clock.advance(1_000);
      await put(cache, "both", "full", '{"error":"Not found"}', 404);
      const deleted = await app.request("/both", { headers: { accept: CORGI } });
      assert.equal(deleted.status, 404);
      await deleted.body?.cancel();
    },
  );

  await t.step("bad names answer 400 with a JSON reason", async () => {
    for (
      const path of [
        "/_private",
        "/.hidden",
        "/a%20b",
        "/%E0%A4%A",
        "/@scope",
        "/@a/b/c",
        "/a%2fb",
        "/naïve",
        "/x%00y",
        "/ms?x=..",
      ]
    ) {
      const response = await app.request(path);
      assert.equal(response.status, 400, path);
      const error = await errorOf(response);
      assert.equal(error.error, "bad_request", path);
      assert.equal(typeof error.reason, "string");
    }
  });

  await t.step("one JSON log line per request", async () => {
    lines.length = 0;
    const response = await app.request("/ms");
    await response.arrayBuffer();
    await (await app.request("/nope")).arrayBuffer();
    assert.equal(lines.length, 2);
    const [first, second] = lines.map((l) => JSON.parse(l));
    assert.deepEqual(
      { ...first, ms: 0 },
      { method: "GET", path: "/ms", status: 200, bytes: ms.length, ms: 0 },
    );
    assert.equal(typeof first.ms, "number");
    assert.equal(second.status, 404);
  });
});

Deno.test("replica app: database info, ping, methods and path tricks", async (t) => {
  const { cache } = await packumentCache();
  const app = createReplicaApp({ cache, packumentOrigin: () => ORIGIN });

  await t.step("GET / and /-/ping", async () => {
    const info = await app.request("/");
    assert.equal(info.status, 200);
    assert.deepEqual(await info.json(), {
      db_name: "registry",
      engine: "_all_docs replica",
      doc_count: 0,
      update_seq: 0,
    });
    const ping = await app.request("/-/ping?write=true");
    assert.equal(ping.status, 200);
    assert.deepEqual(await ping.json(), {});
  });

  await t.step("routes match the path as sent, not as percent-decoded", async () => {
    // `%5F` is `_`: a name with a leading underscore, not the `_all_docs` endpoint.
    const encoded = await app.request("/%5Fall_docs");
    assert.equal(encoded.status, 400);
    assert.match(String((await errorOf(encoded)).reason), /Invalid package name/);
    // `/-` is a package name; `/-/...` is npm's own namespace.
    assert.equal((await errorOf(await app.request("/-"))).error, "Not found");
    for (const path of ["/-/", "/-/whoami", "/-/v1/search", "/-/ping/"]) {
      const response = await app.request(path);
      assert.equal(response.status, 404, path);
      assert.deepEqual(await errorOf(response), { error: "Not found" }, path);
    }
    assert.equal((await app.request("/_all_docs/")).status, 400);
  });

  await t.step("every method but GET and HEAD answers 405", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      for (const path of ["/ms", "/_all_docs", "/"]) {
        const response = await app.request(path, { method });
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.get("allow"), "GET, HEAD");
        assert.equal((await errorOf(response)).error, "method_not_allowed");
      }
    }
  });

  await t.step("path tricks over a real socket answer 400 or 404 with JSON", async () => {
    await withServer(app, async (port) => {
      const targets = [
        "/..%2f..%2fetc%2fpasswd",
        "/%2e%2e/",
        "/%2e%2e",
        "/..",
        "/../",
        "/a/../b",
        "/a/../ms",
        "/ms/../ms",
        "/@scope/name/extra",
        "/@scope%2f..%2f..%2fetc",
        "//etc/passwd",
        "//ms",
        "/%2fetc%2fpasswd",
        "/\\..\\",
        "/ms\\..\\x",
        "/%5c..%5cms",
        "/%00",
        "/ms%00",
        "/%252e%252e%252f",
        "/_all_docs/..",
        "/_all_docs/../ms",
        "/_all_docs?startkey=%22a..b%22",
        "/_all_docs?x=../..",
        "/-/../ms",
      ];
      for (const target of targets) {
        const response = await rawRequest(port, target);
        assert.ok(
          response.status === 400 || response.status === 404,
          `${target}: ${response.status}`,
        );
        assert.match(response.headers.get("content-type") ?? "", /^application\/json/, target);
        const body = JSON.parse(response.body);
        assert.equal(typeof body.error, "string", target);
      }
      const plain = await rawRequest(port, "/ms");
      assert.equal(plain.status, 200, "the socket client itself works");
      const head = await rawRequest(port, "/ms", "HEAD");
      assert.equal(head.status, 200);
      assert.equal(head.body, "");
    });
  });
});

/** Pivots at the given positions of the fixture's sorted ids. */
function pivotsAt(fixture: AllDocsFixture, positions: number[]): string[] {
  return positions.map((p) => fixture.ids[p]!);
}

function clientFor(): HttpClient {
  return new HttpClient({ fetch: (i, init) => fetch(i, init), retries: 2, concurrency: 8 });
}

function keyParam(key: string): string {
  return encodeURIComponent(JSON.stringify(key)).replace(/\./g, "%2E");
}

interface Page {
  total_rows: number;
  offset: number;
  rows: { id: string; key: string; value: { rev: string } }[];
}

async function page(app: ReturnType<typeof createReplicaApp>, query: string): Promise<Page> {
  const response = await app.request(`/_all_docs?${query}`);
  assert.equal(response.status, 200, `${query}: ${response.status}`);
  assert.equal(response.headers.get("content-type"), "application/json");
  return await response.json();
}

Deno.test("replica app: _all_docs over 25,000 cached ids in several partitions", async (t) => {
  const fixture = await startAllDocsFixture({ count: 25_000 });
  const memory = new MemoryDriver();
  try {
    const filling = await Cache.open(memory, { bloom: false });
    const summary = await refreshPartitions(clientFor(), filling, {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: pivotsAt(fixture, [3000, 9000, 15000, 21000]),
    });
    assert.equal(summary.rows, 25_000);
    assert.deepEqual(summary.failed, []);
    const driver = countingDriver(memory);
    const cache = await Cache.open(driver, { bloom: false });
    const app = createReplicaApp({
      cache,
      packumentOrigin: () => ORIGIN,
      partitionsOrigin: "fixture",
    });
    const rows = fixture.rows;
    const ids = fixture.ids;
    const n = ids.length;
    assert.ok(ids.some((id) => id.includes(".")), "some ids have dots");
    assert.ok(ids.some((id) => id.includes("..")), "some ids have '..'");

    await t.step("database info counts every row", async () => {
      const info = await (await app.request("/")).json();
      assert.equal(info.doc_count, n);
    });

    await t.step("a CouchDB-style paged walk returns exactly the cached rows", async () => {
      const seen: { id: string; rev: string }[] = [];
      let last: string | undefined;
      while (true) {
        const query = last === undefined ? "limit=1000" : `startkey=${keyParam(last)}&limit=1000`;
        const body = await page(app, query);
        assert.equal(body.total_rows, n);
        const fresh = last === undefined ? body.rows : body.rows.slice(1);
        if (last !== undefined) assert.equal(body.rows[0]?.id, last, "the repeated row");
        assert.equal(body.offset, last === undefined ? 0 : seen.length - 1);
        for (const row of fresh) {
          assert.equal(row.key, row.id);
          seen.push({ id: row.id, rev: row.value.rev });
        }
        if (body.rows.length < 1000) break;
        last = body.rows.at(-1)!.id;
      }
      assert.deepEqual(seen, rows);
      assert.equal(seen[0]!.id, ids[0]);
      assert.equal(seen.at(-1)!.id, ids.at(-1));
    });

    await t.step(
      "the package's own client reads ranges back with inclusive_end=false",
      async () => {
        await withServer(app, async (port) => {
          const origin = `http://127.0.0.1:${port}/`;
          const ranges = [
            { startKey: "", endKey: "" },
            { startKey: "", endKey: ids[20_000]! },
            { startKey: ids[5_000]!, endKey: ids[17_000]! },
            { startKey: ids[2_999]!, endKey: ids[3_001]! },
            { startKey: ids[24_000]!, endKey: "" },
          ];
          const client = clientFor();
          for (const range of ranges) {
            const read = await readRange(client, origin, range, { limit: 1000 });
            const got = [];
            for await (const page of read.pages) {
              got.push(...parsePartitionLines(new TextDecoder().decode(page.lines)));
            }
            const from = range.startKey === "" ? 0 : ids.indexOf(range.startKey);
            const to = range.endKey === "" ? n : ids.indexOf(range.endKey);
            assert.deepEqual(got, rows.slice(from, to), JSON.stringify(range));
          }
          const url = allDocsUrl(origin, { startKey: ids[100]!, endKey: ids[103]! }, 10);
          const body = await (await fetch(url)).json();
          assert.deepEqual(body.rows.map((r: { id: string }) => r.id), ids.slice(100, 103));
          assert.equal(body.offset, 100);
        });
      },
    );

    await t.step("total_rows and offset", async () => {
      for (const i of [0, 1, 2_999, 3_000, 3_001, 12_345, 24_999]) {
        const body = await page(app, `startkey=${keyParam(ids[i]!)}&limit=3`);
        assert.equal(body.total_rows, n);
        assert.equal(body.offset, i);
        assert.deepEqual(body.rows.map((r) => r.id), ids.slice(i, i + 3));
      }
      const past = await page(app, `startkey=${keyParam("\u{10FFFF}\u{10FFFF}")}`);
      assert.equal(past.offset, n);
      assert.deepEqual(past.rows, []);
      const none = await page(app, `startkey=${keyParam(ids[9_000]!)}&limit=0`);
      assert.equal(none.offset, 9_000);
      assert.deepEqual(none.rows, []);
      const defaults = await page(app, "");
      assert.equal(defaults.rows.length, 1000);
      const max = await page(app, `startkey=${keyParam(ids[100]!)}&limit=10000`);
      assert.deepEqual(max.rows.map((r) => r.id), ids.slice(100, 10_100));
      const inclusive = await page(
        app,
        `startkey=${keyParam(ids[5]!)}&endkey=${keyParam(ids[8]!)}`,
      );
      assert.deepEqual(inclusive.rows.map((r) => r.id), ids.slice(5, 9));
      const exclusive = await page(
        app,
        `startkey=${keyParam(ids[5]!)}&endkey=${keyParam(ids[8]!)}&inclusive_end=false`,
      );
      assert.deepEqual(exclusive.rows.map((r) => r.id), ids.slice(5, 8));
      const one = await page(app, `key=${keyParam(ids[15_000]!)}`);
      assert.deepEqual(one.rows, [{
        id: ids[15_000],
        key: ids[15_000],
        value: { rev: rows[15_000]!.rev },
      }]);
      const keys = await page(
        app,
        `keys=${encodeURIComponent(JSON.stringify([ids[7], "zz-missing", ids[20_001]]))}`,
      );
      assert.deepEqual(keys.rows, [
        { id: ids[7], key: ids[7], value: { rev: rows[7]!.rev } },
        { key: "zz-missing", error: "not_found" },
        { id: ids[20_001], key: ids[20_001], value: { rev: rows[20_001]!.rev } },
      ]);
    });

    await t.step("descending pages, offsets from the top, and a descending walk", async () => {
      const top = await page(app, "descending=true&limit=10");
      assert.equal(top.offset, 0);
      assert.deepEqual(top.rows.map((r) => r.id), ids.slice(-10).reverse());
      const mid = await page(app, `descending=true&startkey=${keyParam(ids[12_345]!)}&limit=5`);
      assert.equal(mid.offset, n - 1 - 12_345);
      assert.deepEqual(mid.rows.map((r) => r.id), ids.slice(12_341, 12_346).reverse());
      const across = await page(app, `descending=true&startkey=${keyParam(ids[9_002]!)}&limit=6`);
      assert.deepEqual(across.rows.map((r) => r.id), ids.slice(8_997, 9_003).reverse());
      const bounded = await page(
        app,
        `descending=true&startkey=${keyParam(ids[3_002]!)}&endkey=${
          keyParam(ids[2_998]!)
        }&inclusive_end=false`,
      );
      assert.deepEqual(bounded.rows.map((r) => r.id), ids.slice(2_999, 3_003).reverse());
      const zero = await page(app, `descending=true&startkey=${keyParam(ids[100]!)}&limit=0`);
      assert.equal(zero.offset, n - 1 - 100);
      const seen: string[] = [];
      let last: string | undefined;
      while (true) {
        const query = `descending=true&limit=10000` +
          (last === undefined ? "" : `&startkey=${keyParam(last)}`);
        const body = await page(app, query);
        seen.push(...(last === undefined ? body.rows : body.rows.slice(1)).map((r) => r.id));
        if (body.rows.length < 10_000) break;
        last = body.rows.at(-1)!.id;
      }
      assert.deepEqual(seen, ids.slice().reverse());
    });

    await t.step("a seek reads only the partitions around it", async () => {
      const bodies = (from: number) =>
        new Set(driver.reads.slice(from).filter((k) => k.startsWith("v1:body:partition:")));
      assert.ok(bodies(0).size >= 5, "partition bodies are stored apart from their entries");
      let from = driver.reads.length;
      const end = await page(app, `startkey=${keyParam(ids[24_990]!)}&limit=5`);
      assert.equal(end.offset, 24_990);
      assert.equal(bodies(from).size, 1, [...bodies(from)].join());
      from = driver.reads.length;
      await page(app, `startkey=${keyParam(ids[10_000]!)}&limit=2000`);
      assert.equal(bodies(from).size, 1);
      from = driver.reads.length;
      await page(app, `descending=true&startkey=${keyParam(ids[100]!)}&limit=5`);
      assert.equal(bodies(from).size, 1);
      from = driver.reads.length;
      await page(app, `startkey=${keyParam(ids[14_999]!)}&limit=3`);
      assert.equal(bodies(from).size, 2, "a page across a boundary reads two");
    });

    await t.step("the origin's strictness: 400 bad_request", async () => {
      const bad = [
        "limit=10001",
        "limit=-1",
        "limit=ten",
        "include_docs=true",
        "skip=10",
        "startkey=express",
        "startkey=1",
        'endkey=["a"]',
        "key=null",
        "start_key=%22a%22",
        "stale=ok",
        "limit=1&limit=2",
        "descending=yes",
        `startkey=${keyParam("b")}&endkey=${keyParam("a")}`,
        `descending=true&startkey=${keyParam("a")}&endkey=${keyParam("b")}`,
        `keys=${encodeURIComponent('["a",1]')}`,
        `keys=${encodeURIComponent('["a"]')}&startkey=%22a%22`,
      ];
      for (const query of bad) {
        const response = await app.request(`/_all_docs?${query}`);
        assert.equal(response.status, 400, query);
        const body = await errorOf(response);
        assert.equal(body.error, "bad_request", query);
        assert.equal(typeof body.reason, "string", query);
      }
      const allowed = await page(app, "include_docs=false&limit=1");
      assert.equal(allowed.rows.length, 1);
    });
  } finally {
    await fixture.close();
  }
});

Deno.test("replica app: overlapping partition sets merge, the newest row winning", async () => {
  const fixture = await startAllDocsFixture({ count: 3_000 });
  try {
    const clock = new FakeClock();
    const cache = await Cache.open(new MemoryDriver(), { bloom: false, clock });
    const client = clientFor();
    await refreshPartitions(client, cache, {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: pivotsAt(fixture, [500, 1500]),
      clock,
    });
    const changed = fixture.ids[1_200]!;
    fixture.setRev(changed, "9-00000000000000000000000000000000");
    clock.advance(60_000);
    await refreshPartitions(client, cache, {
      origin: fixture.origin,
      originKey: "fixture",
      pivots: pivotsAt(fixture, [1000, 2000]),
      clock,
    });
    // Another origin's partitions are left out when partitionsOrigin is given.
    await refreshPartitions(client, cache, {
      origin: fixture.origin,
      originKey: "other",
      pivots: [],
      clock,
    });
    const app = createReplicaApp({
      cache,
      packumentOrigin: () => ORIGIN,
      partitionsOrigin: "fixture",
    });
    const all = await page(app, "limit=10000");
    assert.equal(all.total_rows, 3_000);
    assert.deepEqual(all.rows.map((r) => ({ id: r.id, rev: r.value.rev })), fixture.rows);
    const mid = await page(app, `startkey=${keyParam(fixture.ids[1_600]!)}&limit=2`);
    assert.equal(mid.offset, 1_600);
    const down = await page(
      app,
      `descending=true&startkey=${keyParam(fixture.ids[1_201]!)}&limit=2`,
    );
    assert.equal(down.offset, 3_000 - 1 - 1_201);
    assert.deepEqual(down.rows.map((r) => r.value.rev), [
      fixture.rows[1_201]!.rev,
      "9-00000000000000000000000000000000",
    ]);
    const everything = createReplicaApp({ cache, packumentOrigin: () => ORIGIN });
    const merged = await page(everything, "limit=0");
    assert.equal(merged.total_rows, 3_000, "the same ids under two origins count once");
    assert.throws(
      () => createReplicaApp({ cache, packumentOrigin: () => ORIGIN, partitionsOrigin: "a:b" }),
      TypeError,
    );
  } finally {
    await fixture.close();
  }
});
