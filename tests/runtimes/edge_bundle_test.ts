import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Cache } from "../../src/storage/cache.ts";
import { packumentKey, partitionKey } from "../../src/storage/keys.ts";
import { createReplicaApp } from "../../src/replica/app.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import {
  CloudflareKvDriver,
  KV_MAX_VALUE_BYTES,
  type KvListResult,
  type KvNamespaceLike,
} from "../../drivers/cloudflare_kv.ts";
import { bundleEdge } from "../../scripts/bundle_edge.ts";
import { byteOrder, runDriverContract } from "../_support/driver_contract.ts";
import { abbreviate, generatePackument, loadFixturePackuments } from "../_support/packuments.ts";
import { run, start } from "../_support/spawn.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CORGI = "application/vnd.npm.install-v1+json";
const PEERS = fileURLToPath(new URL("../peers/", import.meta.url));

/**
 * An in-memory stand-in for a Workers KV namespace with KV's rules: keys sorted by UTF-8 bytes,
 * at most 512 bytes and never `""`, `.` or `..`, values at most 25 MiB, and `list` paged by an
 * opaque cursor with pages of at most `maxPage` keys (fewer than asked for, as KV may return);
 * like Miniflare's, it lists nothing for a prefix holding U+0000.
 */
class FakeKv implements KvNamespaceLike {
  #keys: string[] = [];
  #values = new Map<string, Uint8Array>();
  lists = 0;
  constructor(readonly maxPage: number) {}

  #check(key: string): void {
    if (key === "" || key === "." || key === "..") throw new TypeError(`Illegal key ${key}`);
    if (encoder.encode(key).byteLength > 512) throw new RangeError("Key too long");
  }

  get(key: string, type: "arrayBuffer"): Promise<ArrayBuffer | null> {
    this.#check(key);
    assert.equal(type, "arrayBuffer");
    const value = this.#values.get(key);
    return Promise.resolve(value === undefined ? null : value.slice().buffer);
  }

  put(key: string, value: Uint8Array | ArrayBuffer): Promise<void> {
    this.#check(key);
    const bytes = new Uint8Array(value).slice();
    if (bytes.byteLength > KV_MAX_VALUE_BYTES) throw new RangeError("Value too large");
    if (!this.#values.has(key)) {
      this.#keys.push(key);
      this.#keys.sort(byteOrder);
    }
    this.#values.set(key, bytes);
    return Promise.resolve();
  }

  delete(key: string): Promise<void> {
    this.#check(key);
    if (this.#values.delete(key)) this.#keys = this.#keys.filter((k) => k !== key);
    return Promise.resolve();
  }

  list(options: { prefix?: string; cursor?: string; limit?: number }): Promise<KvListResult> {
    this.lists++;
    const prefix = options.prefix ?? "";
    const limit = Math.min(options.limit ?? 1000, 1000, this.maxPage);
    assert.ok(limit >= 1, `list limit ${options.limit}`);
    // As Miniflare's KV does (the driver must list such prefixes another way).
    if (prefix.includes("\u0000")) return Promise.resolve({ keys: [], list_complete: true });
    const after = options.cursor === undefined ? undefined : decodeURIComponent(options.cursor);
    const matching = this.#keys.filter((key) =>
      key.startsWith(prefix) && (after === undefined || byteOrder(key, after) > 0)
    );
    const page = matching.slice(0, limit);
    const complete = page.length === matching.length;
    const result: KvListResult = {
      keys: page.map((name) => ({ name })),
      list_complete: complete,
    };
    if (!complete) result.cursor = encodeURIComponent(page.at(-1)!);
    return Promise.resolve(result);
  }
}

Deno.test("cloudflare_kv driver: the storage contract over a paging fake KV", async (t) => {
  await runDriverContract(
    t,
    () => Promise.resolve(new CloudflareKvDriver(new FakeKv(7), { keyPrefix: "t:" })),
  );
});

Deno.test("cloudflare_kv driver: KV's own limits and narrowed listing", async () => {
  const kv = new FakeKv(3);
  const driver = new CloudflareKvDriver(kv);
  assert.equal(driver.limits.maxKeyBytes, 512);
  assert.equal(new CloudflareKvDriver(kv, { keyPrefix: "ab:" }).limits.maxKeyBytes, 509);
  for (const key of ["", ".", ".."]) {
    await assert.rejects(driver.put(key, new Uint8Array(1)), TypeError);
  }
  await driver.put("old", new Uint8Array([1]));
  const tooBig = new Uint8Array(KV_MAX_VALUE_BYTES + 1);
  await assert.rejects(driver.put("old", tooBig), /25 MiB/);
  const chunk = new Uint8Array(4 * 1024 * 1024);
  const endless = new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(chunk) });
  await assert.rejects(driver.put("old", endless), RangeError);
  assert.deepEqual(await driver.get("old"), new Uint8Array([1]));
  assert.equal((await driver.get("old"))?.byteLength, 1);

  for (let i = 0; i < 30; i++) {
    await driver.put(`a:${String(i).padStart(2, "0")}`, chunk.subarray(0, 1));
  }
  for (let i = 0; i < 30; i++) await driver.put(`b:${i}`, new Uint8Array(0));
  kv.lists = 0;
  const keys = await Array.fromAsync(driver.list({ start: "a:10", end: "a:13" }));
  assert.deepEqual(keys, ["a:10", "a:11", "a:12"]);
  // Listed under the common prefix "a:1" (not "" with its 61 keys), stopping at "a:13": two
  // pages of 3.
  assert.equal(kv.lists, 2);
  kv.lists = 0;
  assert.deepEqual(await Array.fromAsync(driver.list({ prefix: "b:", limit: 2 })), ["b:0", "b:1"]);
  assert.equal(kv.lists, 1);
});

/** A Worker that exposes its KV binding over HTTP, so Deno can drive Miniflare's real KV. */
const KV_WORKER = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = url.searchParams.get("key");
    try {
      switch (url.pathname) {
        case "/get": {
          const value = await env.KV.get(key, "arrayBuffer");
          return value === null ? new Response(null, { status: 404 }) : new Response(value);
        }
        case "/put":
          await env.KV.put(key, await request.arrayBuffer());
          return new Response(null, { status: 204 });
        case "/delete":
          await env.KV.delete(key);
          return new Response(null, { status: 204 });
        case "/list":
          return Response.json(await env.KV.list(JSON.parse(url.searchParams.get("options"))));
      }
      return new Response("no such operation", { status: 400 });
    } catch (error) {
      return new Response(String(error), { status: 500 });
    }
  },
};
`;

/** The Node script that serves {@linkcode KV_WORKER} on 127.0.0.1 until its stdin closes. */
const KV_RUNNER = `
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
const [peers, script] = process.argv.slice(2);
const require = createRequire(peers);
const { Miniflare } = await import(pathToFileURL(require.resolve("miniflare")).href);
const mf = new Miniflare({
  modules: true,
  script,
  compatibilityDate: "2026-04-01",
  kvNamespaces: ["KV"],
  host: "127.0.0.1",
  port: 0,
});
const url = await mf.ready;
process.stdout.write(url.href + "\\n");
process.stdin.resume();
process.stdin.on("end", () => mf.dispose().then(() => process.exit(0)));
`;

/** A {@linkcode KvNamespaceLike} that forwards to {@linkcode KV_WORKER}. */
function httpKv(base: string): KvNamespaceLike {
  const call = async (op: string, params: Record<string, string>, body?: Uint8Array) => {
    const url = new URL(op, base);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    const response = await fetch(url, {
      method: body === undefined ? "GET" : "PUT",
      ...(body === undefined ? {} : { body: body as Uint8Array<ArrayBuffer> }),
    });
    if (response.status >= 500) throw new Error(`KV ${op}: ${await response.text()}`);
    return response;
  };
  return {
    async get(key) {
      const response = await call("/get", { key });
      if (response.status === 404) {
        await response.body?.cancel();
        return null;
      }
      return await response.arrayBuffer();
    },
    async put(key, value) {
      await (await call("/put", { key }, new Uint8Array(value))).body?.cancel();
    },
    async delete(key) {
      await (await call("/delete", { key })).body?.cancel();
    },
    async list(options) {
      return await (await call("/list", { options: JSON.stringify(options) })).json();
    },
  };
}

Deno.test("cloudflare_kv driver: the storage contract over Miniflare's KV", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "edge-kv-" });
  const runner = join(dir, "kv.mjs");
  await Deno.writeTextFile(runner, KV_RUNNER);
  // workerd logs the puts the contract aborts on purpose: its stderr is kept, not shown.
  const child = start("node", [runner, PEERS, KV_WORKER], { cwd: dir, stdin: true });
  try {
    const base = (await child.line()).trim();
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const kv = httpKv(base);
    let n = 0;
    // Every step gets its own key prefix: the namespace is shared.
    await runDriverContract(
      t,
      () => Promise.resolve(new CloudflareKvDriver(kv, { keyPrefix: `c${n++}:`, pageSize: 50 })),
    );
  } finally {
    // The runner disposes of workerd and exits when its stdin closes.
    await child.closeStdin();
    await child.wait();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The seeded cache: its records, and what the Worker must answer. */
interface Seed {
  records: [string, string][];
  ms: Uint8Array;
  big: Uint8Array;
  expected: Map<string, { status: number; body: Uint8Array; etag: string | null }>;
  ids: string[];
}

async function etagOf(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return `"sha256-${btoa(String.fromCharCode(...digest))}"`;
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** Asserts two byte arrays are equal without printing them (a diff of big arrays is slow). */
function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length`);
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.equal(at, -1, `${what}: bytes differ from offset ${at}`);
}

function unbase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Fills a memory cache the way the CLI would, and asks the in-process app for the answers. */
async function seed(requests: Request[]): Promise<Seed> {
  const memory = new MemoryDriver();
  const cache = await Cache.open(memory, { bloom: false });
  const fixtures = await loadFixturePackuments();
  const ms = fixtures.get("ms")!;
  const big = encoder.encode(
    generatePackument("big", { versions: 30, seed: 7, targetBytes: 300_000 }),
  );
  for (const [name, bytes] of [...fixtures, ["big", big] as const]) {
    await cache.put(packumentKey("npm", name, "full"), bytes, {
      status: 200,
      contentType: "application/json",
      representation: "full",
    });
  }
  const ids = Array.from({ length: 20 }, (_, i) => `pkg-${String.fromCharCode(97 + i)}`);
  await cache.put(
    partitionKey("npm", "", ""),
    encoder.encode(ids.map((id) => `${JSON.stringify([id, `1-${id.length}`])}\n`).join("")),
    { status: 200, contentType: "application/x-ndjson", representation: "partition", count: 20 },
  );
  const records: [string, string][] = [];
  for await (const key of memory.list()) records.push([key, base64((await memory.get(key))!)]);
  assert.ok(records.some(([key]) => key.startsWith("v1:body:")), "a body stored apart");

  const app = createReplicaApp({ cache, packumentOrigin: () => "npm", partitionsOrigin: "npm" });
  const expected = new Map<string, { status: number; body: Uint8Array; etag: string | null }>();
  for (const request of requests) {
    const response = await app.fetch(request.clone());
    expected.set(requestId(request), {
      status: response.status,
      body: new Uint8Array(await response.arrayBuffer()),
      etag: response.headers.get("etag"),
    });
  }
  return { records, ms, big, expected, ids };
}

function requestId(request: Request): string {
  return `${request.method} ${new URL(request.url).pathname}${new URL(request.url).search} ${
    JSON.stringify([...request.headers])
  }`;
}

/** The Node script that runs the bundle in workerd through Miniflare. */
const RUNNER = `
import { createRequire } from "node:module";
import { readFile, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
const [configPath, outPath] = process.argv.slice(2);
const config = JSON.parse(await readFile(configPath, "utf8"));
const require = createRequire(config.peers);
const { Miniflare } = await import(pathToFileURL(require.resolve("miniflare")).href);
const mf = new Miniflare({
  modules: true,
  scriptPath: config.scriptPath,
  modulesRoot: process.cwd(),
  compatibilityDate: "2026-04-01",
  kvNamespaces: ["CACHE"],
  bindings: { REGISTRY_ORIGIN_KEY: "npm", PARTITIONS_ORIGIN_KEY: "npm" },
  host: "127.0.0.1",
});
try {
  const kv = await mf.getKVNamespace("CACHE");
  for (const [key, value] of config.records) {
    const bytes = Buffer.from(value, "base64");
    await kv.put(key, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  const results = [];
  for (const r of config.requests) {
    const response = await mf.dispatchFetch("http://localhost" + r.path, {
      method: r.method,
      headers: r.headers,
    });
    const body = Buffer.from(await response.arrayBuffer());
    results.push({
      status: response.status,
      headers: Object.fromEntries(response.headers),
      body: body.toString("base64"),
    });
  }
  await writeFile(outPath, JSON.stringify(results));
} finally {
  await mf.dispose();
}
`;

interface WorkerResult {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Runs `requests` against the bundle in workerd, over KV seeded with `records`. */
async function runInWorkerd(
  scriptPath: string,
  records: [string, string][],
  requests: Request[],
): Promise<WorkerResult[]> {
  const dir = await Deno.makeTempDir({ prefix: "edge-bundle-" });
  try {
    const runner = join(dir, "run.mjs");
    const configPath = join(dir, "config.json");
    const outPath = join(dir, "out.json");
    await Deno.writeTextFile(runner, RUNNER);
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({
        peers: PEERS,
        scriptPath: basename(scriptPath),
        records,
        requests: requests.map((request) => ({
          path: new URL(request.url).pathname + new URL(request.url).search,
          method: request.method,
          headers: Object.fromEntries(request.headers),
        })),
      }),
    );
    // workerd resolves the script inside its starting directory.
    const { code, stdout, stderr } = await run("node", [runner, configPath, outPath], {
      cwd: dirname(scriptPath),
    });
    assert.equal(code, 0, `miniflare runner failed:\n${stdout}\n${stderr}`);
    const results = JSON.parse(await Deno.readTextFile(outPath)) as {
      status: number;
      headers: Record<string, string>;
      body: string;
    }[];
    return results.map((r) => ({ status: r.status, headers: r.headers, body: unbase64(r.body) }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("edge bundle: small enough, and serves the replica inside workerd", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "edge-out-" });
  try {
    const bundle = await bundleEdge(join(dir, "cloudflare.js"));

    await t.step("the bundle is one module under 60 KB gzipped", () => {
      assert.ok(bundle.bytes > 10_000, `bundle is ${bundle.bytes} bytes`);
      // The full worker (API, replica, handlers, follower, R2, D1 and Queues): 58.4 KB when
      // measured.
      assert.ok(bundle.gzipBytes < 60_000, `bundle is ${bundle.gzipBytes} bytes gzipped`);
    });

    await t.step("the bundle exports fetch, queue and scheduled", async () => {
      const { default: entry } = await import(pathToFileURL(bundle.path).href);
      for (const handler of ["fetch", "queue", "scheduled"]) {
        assert.equal(typeof entry[handler], "function", handler);
      }
    });

    const requests: Request[] = [];
    const add = (path: string, headers: Record<string, string> = {}, method = "GET"): number =>
      requests.push(new Request(`http://localhost${path}`, { method, headers })) - 1;
    // Clients without an Accept header get the full document; undici (under Miniflare) would
    // send "*/*", which npm's registry answers with the abbreviated one, so say it.
    const full = { accept: "application/json" };
    const msFull = add("/ms", full);
    const msCorgi = add("/ms", { accept: CORGI });
    const bigFull = add("/big", full);
    const unknown = add("/no-such-package-here");
    const ping = add("/-/ping");
    const allDocs = add("/_all_docs?limit=5");
    const info = add("/");
    const head = add("/ms", full, "HEAD");
    const { records, ms, big, expected, ids } = await seed(requests);
    const msEtag = await etagOf(ms);
    const msCorgiEtag = expected.get(requestId(requests[msCorgi]!))!.etag!;
    const notModified = add("/ms", { ...full, "if-none-match": msEtag });
    const corgiNotModified = add("/ms", { accept: CORGI, "if-none-match": msCorgiEtag });
    const changed = add("/ms", { ...full, "if-none-match": '"sha256-other"' });

    const results = await runInWorkerd(bundle.path, records, requests);
    const result = (i: number): WorkerResult => results[i]!;
    const same = (i: number): void => {
      const want = expected.get(requestId(requests[i]!))!;
      assert.equal(result(i).status, want.status);
      assertBytes(result(i).body, want.body, "body");
      assert.equal(result(i).headers["etag"] ?? null, want.etag);
    };

    await t.step("a full packument, byte-exact, with its sha256 ETag", async () => {
      assert.equal(result(msFull).status, 200);
      assertBytes(result(msFull).body, ms, "ms");
      assert.equal(result(msFull).headers["etag"], msEtag);
      assert.match(result(msFull).headers["content-type"]!, /^application\/json/);
      assert.equal(result(msFull).headers["vary"], "Accept, Accept-Encoding");
      assertBytes(result(bigFull).body, big, "a body stored under its own key");
      assert.equal(result(bigFull).headers["etag"], await etagOf(big));
      assert.equal(result(head).status, 200);
      assert.equal(result(head).body.byteLength, 0);
      assert.equal(result(head).headers["etag"], msEtag);
    });

    await t.step("the abbreviated document is derived as in-process", async () => {
      same(msCorgi);
      assert.match(
        result(msCorgi).headers["content-type"]!,
        /^application\/vnd\.npm\.install-v1\+json/,
      );
      const corgi = JSON.parse(decoder.decode(result(msCorgi).body));
      assert.deepEqual(corgi, abbreviate(JSON.parse(decoder.decode(ms))));
      assert.equal(result(msCorgi).headers["etag"], await etagOf(result(msCorgi).body));
    });

    await t.step("If-None-Match answers 304 without a body", () => {
      for (const i of [notModified, corgiNotModified]) {
        assert.equal(result(i).status, 304);
        assert.equal(result(i).body.byteLength, 0);
      }
      assert.equal(result(changed).status, 200);
      assertBytes(result(changed).body, ms, "ms");
    });

    await t.step("an unknown name is a 404 JSON error", () => {
      same(unknown);
      assert.equal(result(unknown).status, 404);
      assert.match(result(unknown).headers["content-type"]!, /^application\/json/);
      assert.deepEqual(JSON.parse(decoder.decode(result(unknown).body)), { error: "Not found" });
    });

    await t.step("/-/ping and the database info", () => {
      assert.equal(result(ping).status, 200);
      assert.deepEqual(JSON.parse(decoder.decode(result(ping).body)), {});
      same(info);
      assert.equal(JSON.parse(decoder.decode(result(info).body)).doc_count, ids.length);
    });

    await t.step("/_all_docs?limit=5 from the seeded partition", () => {
      same(allDocs);
      const body = JSON.parse(decoder.decode(result(allDocs).body));
      assert.equal(body.total_rows, 20);
      assert.equal(body.offset, 0);
      assert.deepEqual(
        body.rows,
        ids.slice(0, 5).map((id) => ({ id, key: id, value: { rev: `1-${id.length}` } })),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
