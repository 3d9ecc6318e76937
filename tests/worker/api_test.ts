import assert from "node:assert/strict";
import { createWorkerApp, MAX_ENQUEUE_BYTES, MAX_ENQUEUE_ITEMS } from "../../src/worker/api.ts";
import { type Handler, Worker } from "../../src/worker/worker.ts";
import { PermanentError } from "../../src/worker/retry.ts";
import { Cache } from "../../src/storage/cache.ts";
import { packumentKey } from "../../src/storage/keys.ts";
import { MemoryQueue } from "../../queues/memory.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { generatePackument } from "../_support/packuments.ts";

const TOKEN = "tok-0123456789abcdefXYZ";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const JSON_TYPE = { "content-type": "application/json" };
const REGISTRY = "http://127.0.0.1:4873/";
const ORIGIN = "reg";

type App = ReturnType<typeof createWorkerApp>;

function packumentItem(names: unknown[], extra: Record<string, unknown> = {}) {
  return { type: "packument", payload: { registry: REGISTRY, names }, ...extra };
}

function setup(
  options: { handler?: Handler; token?: string | undefined; log?: string[] } = {},
): { app: App; worker: Worker; queue: MemoryQueue } {
  const queue = new MemoryQueue();
  const handler = options.handler ?? (() => Promise.resolve());
  const worker = new Worker(queue, { handlers: { packument: handler } });
  const lines = options.log;
  const app = createWorkerApp({
    worker,
    token: "token" in options ? options.token : TOKEN,
    ...(lines ? { log: (line: string) => lines.push(line) } : {}),
    clock: { now: () => 0 },
  });
  return { app, worker, queue };
}

function post(app: App, body: BodyInit | null, headers: Record<string, string> = {}) {
  return app.request("/-/worker/items", {
    method: "POST",
    headers: { ...AUTH, ...JSON_TYPE, ...headers },
    body,
  });
}

function postItems(app: App, items: unknown[]) {
  return post(app, JSON.stringify({ items }));
}

async function errorOf(response: Response): Promise<Record<string, unknown>> {
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assert.equal(typeof body.error, "string");
  return body;
}

const id = (value: string) => encodeURIComponent(value);

Deno.test("createWorkerApp() validates its options without echoing the token", () => {
  const worker = new Worker(new MemoryQueue(), { handlers: {} });
  for (const token of ["", "has space", "tab\there", "é-not-ascii", "x".repeat(4097)]) {
    assert.throws(
      () => createWorkerApp({ worker, token }),
      (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^Cannot create worker app: 'token' must be/);
        if (token.length > 1) assert.ok(!error.message.includes(token), token);
        return true;
      },
    );
  }
  assert.throws(
    () => createWorkerApp({ worker: undefined as unknown as Worker, token: TOKEN }),
    /'worker' must be a Worker/,
  );
});

Deno.test("worker app: health answers without auth", async () => {
  const { app } = setup();
  for (const headers of [{}, { authorization: "Bearer wrong" }, AUTH]) {
    const response = await app.request("/-/worker/health", { headers });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.deepEqual(await response.json(), { status: "ok", engine: "memory" });
  }
  const head = await app.request("/-/worker/health", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.body, null);
  const wrong = await app.request("/-/worker/health", { method: "POST" });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET, HEAD");
});

Deno.test("worker app: every other route needs the bearer token", async (t) => {
  const { app, queue } = setup();
  const routes: [string, string][] = [
    ["GET", "/-/worker/stats"],
    ["GET", "/-/worker/items/packument%3Aabc"],
    ["GET", "/-/worker/dead"],
    ["GET", "/-/worker/dead?limit=5"],
    ["POST", "/-/worker/dead/packument%3Aabc/retry"],
    ["POST", "/-/worker/items"],
    ["GET", "/-/worker/nope"],
    ["GET", "/-/worker"],
    ["DELETE", "/-/worker/stats"],
  ];
  const wrongTokens: Record<string, Record<string, string>> = {
    "no header": {},
    "a wrong token": { authorization: "Bearer nope" },
    "the last character differs": { authorization: `Bearer ${TOKEN.slice(0, -1)}Q` },
    "one character more": { authorization: `Bearer ${TOKEN}x` },
    "a prefix of it": { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    "the Basic scheme": { authorization: `Basic ${btoa(`user:${TOKEN}`)}` },
    "the token without a scheme": { authorization: TOKEN },
    "an empty bearer": { authorization: "Bearer " },
    "two tokens": { authorization: `Bearer ${TOKEN} ${TOKEN}` },
  };
  for (const [name, headers] of Object.entries(wrongTokens)) {
    await t.step(`401 with ${name}`, async () => {
      for (const [method, path] of routes) {
        const response = await app.request(path, {
          method,
          headers: { ...headers, ...JSON_TYPE },
          ...(method === "POST" ? { body: JSON.stringify({ items: [packumentItem(["a"])] }) } : {}),
        });
        assert.equal(response.status, 401, `${method} ${path}`);
        assert.equal(response.headers.get("www-authenticate"), "Bearer");
        const body = await errorOf(response);
        assert.equal(body.error, "unauthorized");
        assert.ok(!JSON.stringify(body).includes(TOKEN));
      }
      assert.deepEqual(await queue.stats(), { queued: 0, running: 0, done: 0, dead: 0 });
    });
  }

  await t.step("the scheme is case-insensitive", async () => {
    const response = await app.request("/-/worker/stats", {
      headers: { authorization: `bearer ${TOKEN}` },
    });
    assert.equal(response.status, 200);
  });

  await t.step("without a token there is no auth", async () => {
    const { app } = setup({ token: undefined });
    assert.equal((await app.request("/-/worker/stats")).status, 200);
    assert.equal((await app.request("/-/worker/dead")).status, 200);
    assert.equal((await postItems(app, [packumentItem(["a"])])).status, 202);
  });
});

Deno.test("worker app: POST /-/worker/items", async (t) => {
  const { app, queue } = setup();

  await t.step("202 with accepted ids, then duplicates", async () => {
    const items = [
      packumentItem(["a", "b"]),
      packumentItem(["c"], { id: "mine:1/x", priority: 5 }),
    ];
    const first = await postItems(app, items);
    assert.equal(first.status, 202);
    const accepted = await first.json();
    assert.equal(accepted.accepted.length, 2);
    assert.match(accepted.accepted[0], /^packument:[0-9a-f]{32}$/);
    assert.equal(accepted.accepted[1], "mine:1/x");
    assert.deepEqual(accepted.duplicates, []);
    const again = await postItems(app, [...items, packumentItem(["d"])]);
    assert.equal(again.status, 202);
    const second = await again.json();
    assert.deepEqual(second.duplicates, accepted.accepted);
    assert.equal(second.accepted.length, 1);
    assert.equal((await queue.stats()).queued, 3);
  });

  await t.step("400 naming the bad item's index, and nothing is queued", async () => {
    const before = await queue.stats();
    const items = [
      packumentItem(["fresh-1"]),
      packumentItem(["fresh-2"]),
      packumentItem(["fresh-3"]),
      packumentItem(["Not A Name"]),
      packumentItem(["fresh-4"]),
    ];
    const response = await postItems(app, items);
    assert.equal(response.status, 400);
    const body = await errorOf(response);
    assert.equal(body.error, "bad_request");
    assert.match(String(body.reason), /^items\[3\]: 'names\[0\]' is not a package name: /);
    assert.deepEqual(await queue.stats(), before);
    const bad = await postItems(app, [packumentItem(["ok"]), { type: "nope", payload: {} }]);
    assert.match(String((await errorOf(bad)).reason), /^items\[1\]: 'type' must be one of/);
    const badId = await postItems(app, [packumentItem(["ok"], { id: "has space" })]);
    assert.match(String((await errorOf(badId)).reason), /^items\[0\]: 'id' must be/);
    assert.deepEqual(await queue.stats(), before);
  });

  await t.step("400 for a body that is not a list of items", async () => {
    const bodies: [string | Uint8Array<ArrayBuffer>, RegExp][] = [
      ["", /must be JSON/],
      ["{", /must be JSON/],
      ["not json", /must be JSON/],
      [new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), /must be JSON in UTF-8/],
      ["[]", /must be an object/],
      ["null", /must be an object/],
      ['"items"', /must be an object/],
      ["{}", /'items' must be an array of 1 to 10000 items/],
      ['{"items":[]}', /'items' must be an array/],
      ['{"items":{}}', /'items' must be an array/],
      ['{"items":"x"}', /'items' must be an array/],
      ['{"items":[1],"extra":true}', /Unknown body field "extra"/],
    ];
    for (const [body, reason] of bodies) {
      const response = await post(app, body);
      assert.equal(response.status, 400, String(body));
      const error = await errorOf(response);
      assert.equal(error.error, "bad_request");
      assert.match(String(error.reason), reason, String(body));
    }
    const many = Array.from({ length: MAX_ENQUEUE_ITEMS + 1 }, (_, i) => packumentItem([`n${i}`]));
    const tooMany = await postItems(app, many);
    assert.equal(tooMany.status, 400);
    assert.match(String((await errorOf(tooMany)).reason), /1 to 10000 items/);
    const oneItem = await postItems(app, [1]);
    assert.match(String((await errorOf(oneItem)).reason), /^items\[0\]: an item must be an object/);
  });

  await t.step("10,000 items in one request are accepted", async () => {
    const { app, queue } = setup();
    const many = Array.from({ length: MAX_ENQUEUE_ITEMS }, (_, i) => packumentItem([`n${i}`]));
    const response = await postItems(app, many);
    assert.equal(response.status, 202);
    assert.equal((await response.json()).accepted.length, MAX_ENQUEUE_ITEMS);
    assert.equal((await queue.stats()).queued, MAX_ENQUEUE_ITEMS);
  });

  await t.step("415 unless the body is sent as JSON", async () => {
    const body = JSON.stringify({ items: [packumentItem(["x"])] });
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "json", ""]) {
      const response = await post(app, body, { "content-type": type });
      assert.equal(response.status, 415, type);
      assert.equal((await errorOf(response)).error, "unsupported_media_type");
    }
    for (
      const type of ["application/json; charset=utf-8", "Application/JSON", "application/x+json"]
    ) {
      const response = await post(app, body, { "content-type": type });
      assert.equal(response.status, 202, type);
      await response.body?.cancel();
    }
  });

  await t.step("413 for a body over the cap, by Content-Length, before reading", async () => {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1024));
      },
    });
    const request = new Request("http://127.0.0.1/-/worker/items", {
      method: "POST",
      headers: { ...AUTH, ...JSON_TYPE, "content-length": String(MAX_ENQUEUE_BYTES + 1) },
      body,
      duplex: "half",
    } as RequestInit);
    const before = pulled;
    const response = await app.request(request);
    assert.equal(response.status, 413);
    assert.equal((await errorOf(response)).error, "payload_too_large");
    assert.ok(pulled - before <= 1, `pulled ${pulled - before} chunks`);
    await body.cancel().catch(() => {});
    const bad = await post(app, "{}", { "content-length": "12x" });
    assert.equal(bad.status, 400);
  });

  await t.step("413 for a streamed body as soon as it passes the cap", async () => {
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    let sent = 0;
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += chunk.length;
        controller.enqueue(chunk);
      },
      cancel() {
        cancelled = true;
      },
    });
    const before = await queue.stats();
    const response = await app.request("/-/worker/items", {
      method: "POST",
      headers: { ...AUTH, ...JSON_TYPE },
      body,
      duplex: "half",
    } as RequestInit);
    assert.equal(response.status, 413);
    assert.equal((await errorOf(response)).error, "payload_too_large");
    assert.ok(cancelled, "the body stream was cancelled");
    // The cap plus what the stream had queued ahead (its high-water mark is one chunk).
    assert.ok(sent <= MAX_ENQUEUE_BYTES + 3 * chunk.length, `read ${sent} bytes`);
    assert.deepEqual(await queue.stats(), before);
    // Just under the cap is read (and then judged on its content).
    const padded = JSON.stringify({ items: [packumentItem(["pad"])] }).padEnd(
      MAX_ENQUEUE_BYTES,
      " ",
    );
    const fits = await post(app, padded);
    assert.equal(fits.status, 202);
    await fits.body?.cancel();
  });

  await t.step("405 for other methods", async () => {
    for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
      const response = await app.request("/-/worker/items", { method, headers: AUTH });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "POST");
      assert.equal((await errorOf(response)).error, "method_not_allowed");
    }
  });
});

Deno.test("worker app: GET /-/worker/items/{id} and /-/worker/stats", async (t) => {
  const { app, worker } = setup();
  const posted = await postItems(app, [
    packumentItem(["a"]),
    packumentItem(["b"], { id: "user/given:id?#%" }),
  ]);
  const [generated, userGiven] = (await posted.json()).accepted as string[];

  await t.step("the status record of a percent-encoded id", async () => {
    const response = await app.request(`/-/worker/items/${id(generated!)}`, { headers: AUTH });
    assert.equal(response.status, 200);
    const status = await response.json();
    assert.equal(status.id, generated);
    assert.equal(status.state, "queued");
    assert.equal(status.type, "packument");
    assert.deepEqual(status.payload, { registry: REGISTRY, names: ["a"] });
    const mine = await app.request(`/-/worker/items/${id(userGiven!)}`, { headers: AUTH });
    assert.equal((await mine.json()).id, "user/given:id?#%");
    // `:` need not be encoded; the id is decoded once, so `%253A` is the id `%3A`.
    const plain = await app.request(`/-/worker/items/${generated}`, { headers: AUTH });
    assert.equal(plain.status, 200);
    await plain.body?.cancel();
    const twice = await app.request(`/-/worker/items/${id(id(generated!))}`, { headers: AUTH });
    assert.equal(twice.status, 404);
    await twice.body?.cancel();
    const head = await app.request(`/-/worker/items/${id(generated!)}`, {
      method: "HEAD",
      headers: AUTH,
    });
    assert.equal(head.status, 200);
  });

  await t.step("404 for an unknown id, 400 for bad percent-encoding", async () => {
    for (const path of ["packument%3Anope", "x".repeat(201), "%20", "caf%C3%A9"]) {
      const response = await app.request(`/-/worker/items/${path}`, { headers: AUTH });
      assert.equal(response.status, 404, path);
      assert.equal((await errorOf(response)).error, "not_found");
    }
    for (const path of ["/-/worker/items/user/given:id", "/-/worker/items/", "/-/worker/stats/"]) {
      const response = await app.request(path, { headers: AUTH });
      assert.equal(response.status, 404, path);
      assert.equal((await errorOf(response)).error, "not_found");
    }
    const bad = await app.request("/-/worker/items/%E0%A4%A", { headers: AUTH });
    assert.equal(bad.status, 400);
    assert.equal((await errorOf(bad)).error, "bad_request");
  });

  await t.step("stats count by state and name the engine", async () => {
    const before = await app.request("/-/worker/stats", { headers: AUTH });
    assert.equal(before.status, 200);
    assert.deepEqual(await before.json(), {
      queued: 2,
      running: 0,
      done: 0,
      dead: 0,
      engine: "memory",
    });
    await worker.runUntilIdle(5);
    const after = await app.request("/-/worker/stats", { headers: AUTH });
    assert.deepEqual(await after.json(), {
      queued: 0,
      running: 0,
      done: 2,
      dead: 0,
      engine: "memory",
    });
    const done = await app.request(`/-/worker/items/${id(generated!)}`, { headers: AUTH });
    assert.equal((await done.json()).state, "done");
  });

  await t.step("405 with Allow for other methods", async () => {
    for (const path of [`/-/worker/items/${id(generated!)}`, "/-/worker/stats", "/-/worker/dead"]) {
      for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
        const response = await app.request(path, { method, headers: AUTH });
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.get("allow"), "GET, HEAD");
        assert.equal((await errorOf(response)).error, "method_not_allowed");
      }
    }
    const retry = await app.request("/-/worker/dead/x/retry", { headers: AUTH });
    assert.equal(retry.status, 405);
    assert.equal(retry.headers.get("allow"), "POST");
    await retry.body?.cancel();
  });

  await t.step("unknown worker paths answer 404 JSON", async () => {
    for (const path of ["/-/worker", "/-/worker/", "/-/worker/nope", "/-/worker/dead/x/y"]) {
      const response = await app.request(path, { headers: AUTH });
      assert.equal(response.status, 404, path);
      assert.equal((await errorOf(response)).error, "not_found");
    }
  });

  await t.step("without a replica, other paths answer 404 JSON", async () => {
    for (const path of ["/", "/-/ping", "/_all_docs", "/ms", "/@scope%2fworker"]) {
      const response = await app.request(path);
      assert.equal(response.status, 404, path);
      assert.equal((await errorOf(response)).error, "not_found");
    }
  });
});

Deno.test("worker app: dead letters are listed and retried", async (t) => {
  let fail = true;
  const { app, worker } = setup({
    handler: (item) => {
      if (fail && (item.payload as { names: string[] }).names[0]!.startsWith("bad")) {
        return Promise.reject(new PermanentError(`cannot fetch ${item.id}`));
      }
      return Promise.resolve();
    },
  });
  const posted = await postItems(app, [
    packumentItem(["bad-1"], { id: "dead:1" }),
    packumentItem(["good"]),
    packumentItem(["bad-2"], { id: "dead/2" }),
  ]);
  assert.equal(posted.status, 202);
  await posted.body?.cancel();
  assert.deepEqual(await worker.runUntilIdle(5), { done: 1, dead: 2 });

  await t.step("GET /-/worker/dead lists them with their errors", async () => {
    const response = await app.request("/-/worker/dead", { headers: AUTH });
    assert.equal(response.status, 200);
    const { items } = await response.json();
    assert.equal(items.length, 2);
    for (const item of items) {
      assert.equal(item.state, "dead");
      assert.equal(item.lastError, `cannot fetch ${item.id}`);
      assert.equal(item.attempts, 1);
    }
    assert.deepEqual(items.map((i: { id: string }) => i.id).sort(), ["dead/2", "dead:1"]);
    const one = await app.request("/-/worker/dead?limit=1", { headers: AUTH });
    assert.equal((await one.json()).items.length, 1);
    const max = await app.request("/-/worker/dead?limit=1000", { headers: AUTH });
    assert.equal((await max.json()).items.length, 2);
  });

  await t.step("400 for a bad limit", async () => {
    for (
      const query of [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=1.5",
        "limit=",
        "limit=abc",
        "limit=01",
        "limit=1&limit=2",
        "lmit=5",
      ]
    ) {
      const response = await app.request(`/-/worker/dead?${query}`, { headers: AUTH });
      assert.equal(response.status, 400, query);
      assert.equal((await errorOf(response)).error, "bad_request");
    }
  });

  await t.step("POST /-/worker/dead/{id}/retry queues it again", async () => {
    fail = false;
    const response = await app.request(`/-/worker/dead/${id("dead/2")}/retry`, {
      method: "POST",
      headers: AUTH,
    });
    assert.equal(response.status, 202);
    assert.deepEqual(await response.json(), { id: "dead/2" });
    const status = await app.request(`/-/worker/items/${id("dead/2")}`, { headers: AUTH });
    assert.equal((await status.json()).state, "queued");
    const again = await app.request(`/-/worker/dead/${id("dead/2")}/retry`, {
      method: "POST",
      headers: AUTH,
    });
    assert.equal(again.status, 404, "no longer dead");
    assert.equal((await errorOf(again)).error, "not_found");
    for (const unknown of ["nope", id("packument:0")]) {
      const missing = await app.request(`/-/worker/dead/${unknown}/retry`, {
        method: "POST",
        headers: AUTH,
      });
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    }
    const bad = await app.request("/-/worker/dead/%ZZ/retry", { method: "POST", headers: AUTH });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    await worker.runUntilIdle(5);
    const stats = await app.request("/-/worker/stats", { headers: AUTH });
    assert.deepEqual(await stats.json(), {
      queued: 0,
      running: 0,
      done: 2,
      dead: 1,
      engine: "memory",
    });
    const dead = await app.request("/-/worker/dead", { headers: AUTH });
    assert.deepEqual((await dead.json()).items.map((i: { id: string }) => i.id), ["dead:1"]);
  });
});

Deno.test("worker app: the request log never holds the token", async () => {
  const lines: string[] = [];
  const { app } = setup({ log: lines });
  const requests: [string, string, Record<string, string>][] = [
    ["GET", "/-/worker/health", {}],
    ["GET", "/-/worker/stats", AUTH],
    ["GET", "/-/worker/stats", { authorization: `Bearer ${TOKEN.slice(0, -1)}Q` }],
    ["GET", "/-/worker/stats", { authorization: `Basic ${btoa(`u:${TOKEN}`)}` }],
    ["POST", "/-/worker/items", AUTH],
    ["GET", "/-/worker/nope", AUTH],
    ["GET", "/ms", AUTH],
  ];
  for (const [method, path, headers] of requests) {
    const response = await app.request(path, {
      method,
      headers: { ...headers, ...JSON_TYPE },
      ...(method === "POST" ? { body: JSON.stringify({ items: [packumentItem(["x"])] }) } : {}),
    });
    const body = await response.text();
    assert.ok(!body.includes(TOKEN), `${method} ${path}: ${body}`);
    assert.ok(!body.includes(TOKEN.slice(0, -1)), `${method} ${path}: ${body}`);
  }
  assert.equal(lines.length, requests.length);
  assert.deepEqual(JSON.parse(lines[1]!), {
    method: "GET",
    path: "/-/worker/stats",
    status: 200,
    bytes: JSON.stringify({ queued: 0, running: 0, done: 0, dead: 0, engine: "memory" }).length +
      1,
    ms: 0,
  });
  assert.deepEqual(lines.map((line) => JSON.parse(line).status), [
    200,
    200,
    401,
    401,
    202,
    404,
    404,
  ]);
  for (const line of lines) {
    assert.ok(!line.includes(TOKEN.slice(0, 8)), line);
    assert.ok(!line.toLowerCase().includes("authorization"), line);
    assert.ok(!line.includes("Bearer"), line);
  }
});

Deno.test("worker app: with a replica, the same app serves the cache", async (t) => {
  const cache = await Cache.open(new MemoryDriver(), { bloom: false });
  const encoder = new TextEncoder();
  const names = ["@scope/worker", "-", "worker"];
  for (const name of names) {
    await cache.put(
      packumentKey(ORIGIN, name, "full"),
      encoder.encode(generatePackument(name, { versions: 2, seed: 3 })),
      { status: 200, contentType: "application/json", representation: "full" },
    );
  }
  const lines: string[] = [];
  const replicaLines: string[] = [];
  const queue = new MemoryQueue();
  const worker = new Worker(queue, { handlers: {} });
  const app = createWorkerApp({
    worker,
    token: TOKEN,
    replica: {
      cache,
      packumentOrigin: () => ORIGIN,
      log: (line) => replicaLines.push(line),
    },
    log: (line) => lines.push(line),
    clock: { now: () => 0 },
  });
  const full = { accept: "application/json" };
  let requests = 0;
  const request = (path: string, init?: RequestInit) => {
    requests++;
    return app.request(path, init);
  };

  await t.step("/, /-/ping and /_all_docs, without auth", async () => {
    const info = await request("/");
    assert.equal(info.status, 200);
    assert.deepEqual(await info.json(), {
      db_name: "registry",
      engine: "_all_docs replica",
      doc_count: 0,
      update_seq: 0,
    });
    const ping = await request("/-/ping");
    assert.deepEqual(await ping.json(), {});
    const allDocs = await request("/_all_docs");
    assert.equal(allDocs.status, 200);
    assert.deepEqual((await allDocs.json()).rows, []);
    const strict = await request("/_all_docs?include_docs=true");
    assert.equal(strict.status, 400);
    await strict.body?.cancel();
  });

  await t.step(
    "package documents, names like '-', 'worker' and '@scope/worker' included",
    async () => {
      for (
        const path of ["/@scope%2fworker", "/@scope%2Fworker", "/@scope/worker", "/-", "/worker"]
      ) {
        const response = await request(path, { headers: full });
        assert.equal(response.status, 200, path);
        assert.equal(response.headers.get("content-type"), "application/json");
        const name = decodeURIComponent(path.slice(1));
        assert.equal((await response.json()).name, name, path);
      }
      const corgi = await request("/@scope%2fworker", { headers: { accept: "*/*" } });
      assert.equal(corgi.headers.get("content-type"), "application/vnd.npm.install-v1+json");
      await corgi.body?.cancel();
      const head = await request("/-", { method: "HEAD", headers: full });
      assert.equal(head.status, 200);
      assert.equal(head.body, null);
      assert.ok(Number(head.headers.get("content-length")) > 0);
    },
  );

  await t.step("the replica's raw-path and namespace rules hold", async () => {
    // `%5F` is `_`: a package name, not the `_all_docs` endpoint.
    const encoded = await request("/%5Fall_docs");
    assert.equal(encoded.status, 400);
    assert.match(String((await errorOf(encoded)).reason), /Invalid package name/);
    for (const path of ["/-/whoami", "/-/%77orker/stats", "/nope", "/ms/-/ms-1.0.0.tgz"]) {
      const response = await request(path);
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
    const post = await request("/worker", { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.body?.cancel();
  });

  await t.step("worker routes still take precedence under /-/worker/", async () => {
    const denied = await request("/-/worker/stats");
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const stats = await request("/-/worker/stats", { headers: AUTH });
    assert.equal((await stats.json()).engine, "memory");
    const health = await request("/-/worker/health");
    assert.equal((await health.json()).status, "ok");
  });

  await t.step("one log line per request, from the app, none from the replica", () => {
    assert.equal(lines.length, requests);
    assert.deepEqual(replicaLines, []);
    assert.ok(lines.some((line) => JSON.parse(line).path === "/@scope%2fworker"));
  });
});

Deno.test("worker app over a real socket: encoded ids and replica names", async () => {
  const cache = await Cache.open(new MemoryDriver(), { bloom: false });
  await cache.put(
    packumentKey(ORIGIN, "@scope/worker", "full"),
    new TextEncoder().encode(generatePackument("@scope/worker", { versions: 1, seed: 4 })),
    { status: 200, contentType: "application/json", representation: "full" },
  );
  const worker = new Worker(new MemoryQueue(), { handlers: {} });
  const app = createWorkerApp({
    worker,
    token: TOKEN,
    replica: { cache, packumentOrigin: () => ORIGIN },
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const posted = await fetch(`${base}/-/worker/items`, {
      method: "POST",
      headers: { ...AUTH, ...JSON_TYPE },
      body: JSON.stringify({ items: [packumentItem(["a"], { id: "a/b:c" })] }),
    });
    assert.equal(posted.status, 202);
    assert.deepEqual(await posted.json(), { accepted: ["a/b:c"], duplicates: [] });
    const status = await fetch(`${base}/-/worker/items/a%2Fb%3Ac`, { headers: AUTH });
    assert.equal(status.status, 200);
    assert.equal((await status.json()).id, "a/b:c");
    const denied = await fetch(`${base}/-/worker/items/a%2Fb%3Ac`);
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const doc = await fetch(`${base}/@scope%2fworker`, { headers: { accept: "application/json" } });
    assert.equal(doc.status, 200);
    assert.equal((await doc.json()).name, "@scope/worker");
    const big = await fetch(`${base}/-/worker/items`, {
      method: "POST",
      headers: { ...AUTH, ...JSON_TYPE },
      body: new Uint8Array(MAX_ENQUEUE_BYTES + 1),
    });
    assert.equal(big.status, 413);
    await big.body?.cancel();
  } finally {
    await server.shutdown();
  }
});
