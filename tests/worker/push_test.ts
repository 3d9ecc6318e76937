import assert from "node:assert/strict";
import { createWorkerApp } from "../../src/worker/api.ts";
import { MAX_PUSH_BYTES } from "../../src/worker/push.ts";
import { type Handler, PartialFailure, Worker, type WorkerEvent } from "../../src/worker/worker.ts";
import { PermanentError } from "../../src/worker/retry.ts";
import { HttpError } from "../../src/http/errors.ts";
import { itemId, type PackumentPayload, type WorkItem } from "../../src/worker/items.ts";
import { MemoryQueue } from "../../queues/memory.ts";

const TOKEN = "push-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const REGISTRY = "http://127.0.0.1:4873/";

type App = ReturnType<typeof createWorkerApp>;

// ---------------------------------------------------------------------------------------------
// Recorded request shapes

/**
 * The headers Cloud Tasks sends with an HTTP target task (the task sets no Content-Type, so
 * the body goes as `application/octet-stream`). Retries add `X-CloudTasks-TaskPreviousResponse`
 * and `X-CloudTasks-TaskRetryReason`; the execution count does not grow on a 5xx.
 */
function cloudTasksHeaders(retryCount: number, executionCount = 0): Record<string, string> {
  return {
    "content-type": "application/octet-stream",
    "user-agent": "Google-Cloud-Tasks",
    "x-cloudtasks-queuename": "all-docs-packuments",
    "x-cloudtasks-taskname": "24179357165914612751",
    "x-cloudtasks-taskretrycount": String(retryCount),
    "x-cloudtasks-taskexecutioncount": String(executionCount),
    "x-cloudtasks-tasketa": "1767225600.481307",
    "x-cloud-trace-context": "105445aa7843bc8bf206b12000100000/1;o=1",
    "traceparent": "00-105445aa7843bc8bf206b12000100000-0000000000000001-01",
    ...(retryCount > 0
      ? {
        "x-cloudtasks-taskpreviousresponse": "503",
        "x-cloudtasks-taskretryreason": "HTTP status code 503",
      }
      : {}),
  };
}

const PUBSUB_HEADERS = {
  "content-type": "application/json",
  "user-agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
  "from": "noreply@google.com",
};

/** A wrapped Pub/Sub push envelope (both spellings of the message fields, as Pub/Sub sends). */
function pubSubEnvelope(item: unknown, deliveryAttempt?: number): Record<string, unknown> {
  const data = item === undefined ? undefined : btoa(JSON.stringify(item));
  return {
    message: {
      attributes: { source: "all-docs-scheduler" },
      ...(data === undefined ? {} : { data }),
      messageId: "13316693823524212",
      message_id: "13316693823524212",
      publishTime: "2026-01-01T00:00:00.123Z",
      publish_time: "2026-01-01T00:00:00.123Z",
    },
    subscription: "projects/all-docs/subscriptions/worker-push",
    ...(deliveryAttempt === undefined ? {} : { deliveryAttempt }),
  };
}

function packumentItem(names: string[]) {
  return { type: "packument", payload: { registry: REGISTRY, names } };
}

function idOf(names: string[]): string {
  return itemId("packument", { registry: REGISTRY, names });
}

// ---------------------------------------------------------------------------------------------
// The app

function setup(
  handler: Handler,
  options: { maxAttempts?: number; token?: string | undefined; log?: string[] } = {},
) {
  const queue = new MemoryQueue();
  const events: WorkerEvent[] = [];
  const worker = new Worker(queue, {
    handlers: { packument: handler },
    retry: { maxAttempts: options.maxAttempts ?? 3, baseDelayMs: 4000 },
    random: () => 0.5,
    onEvent: (event) => events.push(event),
  });
  const lines = options.log;
  const app = createWorkerApp({
    worker,
    token: "token" in options ? options.token : TOKEN,
    ...(lines ? { log: (line: string) => lines.push(line) } : {}),
    clock: { now: () => 0 },
  });
  return { app, worker, queue, events };
}

function cloudTask(
  app: App,
  body: BodyInit,
  retryCount = 0,
  extra: Record<string, string> = AUTH,
  init: RequestInit = {},
) {
  return app.request("/-/worker/push/cloud-tasks", {
    method: "POST",
    headers: { ...cloudTasksHeaders(retryCount), ...extra },
    body,
    ...init,
  });
}

function pubSub(app: App, envelope: unknown, extra: Record<string, string> = AUTH) {
  return app.request("/-/worker/push/pubsub", {
    method: "POST",
    headers: { ...PUBSUB_HEADERS, ...extra },
    body: typeof envelope === "string" ? envelope : JSON.stringify(envelope),
  });
}

async function deadLetters(app: App) {
  const response = await app.request("/-/worker/dead", { headers: AUTH });
  assert.equal(response.status, 200);
  return (await response.json()).items as {
    id: string;
    state: string;
    attempts: number;
    lastError: string;
    payload: PackumentPayload;
  }[];
}

/** A handler that records each delivery and fails while `failures` says so. */
function recording(failure?: (item: WorkItem) => unknown) {
  const seen: { names: string[]; attempts: number }[] = [];
  const handler: Handler = (item) => {
    seen.push({ names: (item.payload as PackumentPayload).names, attempts: item.attempts });
    const error = failure?.(item);
    return error === undefined ? Promise.resolve() : Promise.reject(error);
  };
  return { seen, handler };
}

// ---------------------------------------------------------------------------------------------
// Cloud Tasks

Deno.test("push cloud-tasks: a task that succeeds answers 200 after its handler ran", async () => {
  const { seen, handler } = recording();
  const { app, queue, events } = setup(handler);
  const response = await cloudTask(app, JSON.stringify(packumentItem(["ms", "@types/node"])));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.deepEqual(await response.json(), { outcome: "ack", id: idOf(["ms", "@types/node"]) });
  assert.deepEqual(seen, [{ names: ["ms", "@types/node"], attempts: 0 }]);
  // Run by the worker core (its events), not queued on the engine.
  assert.deepEqual(events.map((e) => e.type), ["start", "ack"]);
  assert.deepEqual(await queue.stats(), { queued: 0, running: 0, done: 0, dead: 0 });
});

Deno.test("push cloud-tasks: the item's own id and priority are kept", async () => {
  const { handler } = recording();
  const { app } = setup(handler);
  const item = { ...packumentItem(["ms"]), id: "batch:2026-01-01:7", priority: 5 };
  const response = await cloudTask(app, JSON.stringify(item));
  assert.deepEqual(await response.json(), { outcome: "ack", id: "batch:2026-01-01:7" });
});

Deno.test("push cloud-tasks: a transient failure answers 503 with Retry-After", async (t) => {
  await t.step("from the worker's backoff", async () => {
    const { seen, handler } = recording(() => new Error("socket hang up"));
    const { app } = setup(handler);
    const response = await cloudTask(app, JSON.stringify(packumentItem(["ms"])), 1);
    assert.equal(response.status, 503);
    // Attempt 2 of 3: 8000 ms, half fixed and half of the rest (random 0.5): 6000 ms.
    assert.equal(response.headers.get("retry-after"), "6");
    assert.deepEqual(await response.json(), {
      error: "retry",
      reason: "socket hang up",
      id: idOf(["ms"]),
      attempts: 2,
      delayMs: 6000,
    });
    assert.deepEqual(seen, [{ names: ["ms"], attempts: 1 }]);
    assert.deepEqual(await deadLetters(app), []);
  });
  await t.step("from the registry's Retry-After when longer", async () => {
    const { handler } = recording(() =>
      new HttpError("GET failed", `${REGISTRY}ms`, { status: 429, retryAfter: 20_500 })
    );
    const { app } = setup(handler);
    const response = await cloudTask(app, JSON.stringify(packumentItem(["ms"])));
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "21");
    await response.body?.cancel();
  });
  await t.step("at least one second", async () => {
    const queue = new MemoryQueue();
    const worker = new Worker(queue, {
      handlers: { packument: () => Promise.reject(new Error("flaky")) },
      retry: { baseDelayMs: 0 },
    });
    const app = createWorkerApp({ worker, token: TOKEN });
    const response = await cloudTask(app, JSON.stringify(packumentItem(["ms"])));
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    assert.equal((await response.json()).delayMs, 0);
  });
});

Deno.test("push cloud-tasks: the last attempt records a dead letter and answers 200", async () => {
  let failing = true;
  const { seen, handler } = recording(() => failing ? new Error("socket hang up") : undefined);
  const { app, worker, queue } = setup(handler, { maxAttempts: 3 });
  const body = JSON.stringify(packumentItem(["ms"]));
  // Cloud Tasks delivers with retry counts 0, 1, 2: the third is the worker's last attempt.
  for (const retryCount of [0, 1]) {
    const response = await cloudTask(app, body, retryCount);
    assert.equal(response.status, 503);
    await response.body?.cancel();
  }
  const last = await cloudTask(app, body, 2);
  assert.equal(last.status, 200);
  assert.deepEqual(await last.json(), {
    outcome: "dead",
    id: idOf(["ms"]),
    error: "socket hang up",
  });
  assert.deepEqual(seen.map((s) => s.attempts), [0, 1, 2]);
  const [letter, ...others] = await deadLetters(app);
  assert.equal(others.length, 0);
  assert.equal(letter!.id, idOf(["ms"]));
  assert.equal(letter!.state, "dead");
  assert.equal(letter!.attempts, 3);
  assert.equal(letter!.lastError, "socket hang up");
  assert.deepEqual(letter!.payload, { registry: REGISTRY, names: ["ms"] });
  // A retried push dead letter runs on the worker's own queue.
  failing = false;
  const retried = await app.request(`/-/worker/dead/${encodeURIComponent(letter!.id)}/retry`, {
    method: "POST",
    headers: AUTH,
  });
  assert.equal(retried.status, 202);
  await retried.body?.cancel();
  assert.deepEqual(await worker.runUntilIdle(5), { done: 1, dead: 0 });
  assert.equal((await queue.status(letter!.id))!.state, "done");
  assert.deepEqual(seen.at(-1), { names: ["ms"], attempts: 0 });
});

Deno.test("push cloud-tasks: a retry count past the worker's attempts goes dead at once", async () => {
  const { handler } = recording(() => new Error("socket hang up"));
  const { app } = setup(handler, { maxAttempts: 3 });
  const response = await cloudTask(app, JSON.stringify(packumentItem(["ms"])), 40);
  assert.equal(response.status, 200);
  assert.equal((await response.json()).outcome, "dead");
  assert.equal((await deadLetters(app))[0]!.attempts, 41);
});

Deno.test("push cloud-tasks: a permanent failure is dead at the first attempt, 200", async () => {
  const { seen, handler } = recording(() =>
    new HttpError("GET failed", `${REGISTRY}ms`, { status: 403 })
  );
  const { app } = setup(handler, { maxAttempts: 5 });
  const response = await cloudTask(app, JSON.stringify(packumentItem(["ms"])));
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.outcome, "dead");
  assert.match(body.error, /GET failed/);
  assert.equal(seen.length, 1);
  const letters = await deadLetters(app);
  assert.deepEqual(letters.map((l) => [l.id, l.attempts]), [[idOf(["ms"]), 1]]);

  const { app: other } = setup(() => Promise.reject(new PermanentError("no such thing")));
  const permanent = await cloudTask(other, JSON.stringify(packumentItem(["ms"])));
  assert.equal(permanent.status, 200);
  assert.equal((await permanent.json()).error, "no such thing");
});

Deno.test("push cloud-tasks: a PartialFailure's buried names become dead letters", async (t) => {
  const bury = (item: WorkItem, names: string[]) => {
    const payload = { registry: REGISTRY, names };
    return {
      item: { ...item, id: idOf(names), payload, attempts: item.attempts + 1 },
      error: `${names.join(", ")}: 404`,
    };
  };
  await t.step("the rest retried: 503, the whole task delivered again", async () => {
    const { app } = setup((item) =>
      Promise.reject(
        new PartialFailure("2 of 3 failed", {
          buried: [bury(item, ["gone"])],
          retryPayload: { registry: REGISTRY, names: ["slow"] },
        }),
      )
    );
    const response = await cloudTask(app, JSON.stringify(packumentItem(["ms", "gone", "slow"])));
    assert.equal(response.status, 503);
    const body = await response.json();
    assert.equal(body.error, "retry");
    assert.equal(body.id, idOf(["ms", "gone", "slow"]));
    const letters = await deadLetters(app);
    assert.deepEqual(letters.map((l) => [l.id, l.payload.names, l.attempts, l.lastError]), [
      [idOf(["gone"]), ["gone"], 1, "gone: 404"],
    ]);
  });
  await t.step("nothing left to retry: 200 ack", async () => {
    const { app } = setup((item) =>
      Promise.reject(
        new PartialFailure("1 of 2 failed", { buried: [bury(item, ["gone"])], transient: false }),
      )
    );
    const response = await cloudTask(app, JSON.stringify(packumentItem(["ms", "gone"])));
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { outcome: "ack", id: idOf(["ms", "gone"]) });
    assert.deepEqual((await deadLetters(app)).map((l) => l.payload.names), [["gone"]]);
  });
});

Deno.test("push cloud-tasks: a body that is not an item is acknowledged as rejected", async () => {
  const lines: string[] = [];
  const { seen, handler } = recording();
  const { app } = setup(handler, { log: lines });
  const cases: [BodyInit, RegExp][] = [
    ["not json", /not JSON/],
    [new Uint8Array([0x7b, 0xff, 0x7d]), /not UTF-8/],
    ["", /not JSON/],
    [JSON.stringify([packumentItem(["ms"])]), /must be an object/],
    [JSON.stringify({ items: [packumentItem(["ms"])] }), /unknown item field 'items'/],
    [JSON.stringify({ type: "nope", payload: {} }), /'type' must be one of/],
    [JSON.stringify(packumentItem(["Not A Name"])), /'names\[0\]' is not a package name/],
    [JSON.stringify({ ...packumentItem(["ms"]), priority: 1.5 }), /'priority'/],
  ];
  for (const [body, reason] of cases) {
    const response = await cloudTask(app, body, 3);
    assert.equal(response.status, 200, String(body));
    const answer = await response.json();
    assert.equal(answer.outcome, "rejected");
    assert.match(answer.reason, reason);
  }
  assert.equal(seen.length, 0);
  assert.deepEqual(await deadLetters(app), []);
  const rejected = lines.map((line) => JSON.parse(line)).filter((l) => l.type === "push-rejected");
  assert.equal(rejected.length, cases.length);
  assert.ok(lines.every((line) => !line.includes(TOKEN)));
  assert.deepEqual(
    { ...rejected[0], reason: undefined },
    {
      type: "push-rejected",
      route: "cloud-tasks",
      source: "task 24179357165914612751",
      reason: undefined,
    },
  );
});

Deno.test("push cloud-tasks: a body over the cap is rejected, not run", async () => {
  const { seen, handler } = recording();
  const { app } = setup(handler);
  const big = new Uint8Array(MAX_PUSH_BYTES + 1).fill(0x20);
  const response = await cloudTask(app, big);
  assert.equal(response.status, 200);
  const answer = await response.json();
  assert.equal(answer.outcome, "rejected");
  assert.match(answer.reason, /over 4194304 bytes/);
  assert.equal(seen.length, 0);
});

Deno.test("push cloud-tasks: a bad retry count header answers 400", async () => {
  const { app } = setup(recording().handler);
  for (const value of ["-1", "x", "1.5", "99999999"]) {
    const response = await cloudTask(app, JSON.stringify(packumentItem(["ms"])), 0, {
      ...AUTH,
      "x-cloudtasks-taskretrycount": value,
    });
    assert.equal(response.status, 400, value);
    assert.equal((await response.json()).error, "bad_request");
  }
});

Deno.test("push cloud-tasks: without Cloud Tasks headers the attempt is the first", async () => {
  const { seen, handler } = recording();
  const { app } = setup(handler);
  const response = await app.request("/-/worker/push/cloud-tasks", {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify(packumentItem(["ms"])),
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
  assert.deepEqual(seen, [{ names: ["ms"], attempts: 0 }]);
});

Deno.test("push cloud-tasks: a cancelled request releases the item with 503", async () => {
  const abort = new AbortController();
  const { app } = setup((_item, context) =>
    new Promise((_, reject) => {
      context.signal.addEventListener("abort", () => reject(new Error("aborted")));
      abort.abort();
    })
  );
  const response = await cloudTask(app, JSON.stringify(packumentItem(["ms"])), 0, AUTH, {
    signal: abort.signal,
  });
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.equal((await response.json()).error, "released");
  assert.deepEqual(await deadLetters(app), []);
});

Deno.test("push cloud-tasks: a follow-up item goes to the worker's own queue", async () => {
  const queue = new MemoryQueue();
  const seen: string[][] = [];
  const worker = new Worker(queue, {
    handlers: {
      packument: async (item, context) => {
        const names = (item.payload as PackumentPayload).names;
        seen.push(names);
        if (names.length > 1) {
          await context.enqueue(names.map((name) => packumentItem([name])));
        }
      },
    },
  });
  const app = createWorkerApp({ worker, token: TOKEN });
  const response = await cloudTask(app, JSON.stringify(packumentItem(["a", "b"])));
  assert.equal(response.status, 200);
  await response.body?.cancel();
  assert.equal((await queue.stats()).queued, 2);
  await worker.runUntilIdle(5);
  assert.deepEqual(seen, [["a", "b"], ["a"], ["b"]]);
});

// ---------------------------------------------------------------------------------------------
// Pub/Sub

Deno.test("push pubsub: a message that succeeds answers 200 after its handler ran", async () => {
  const { seen, handler } = recording();
  const { app } = setup(handler);
  const response = await pubSub(app, pubSubEnvelope(packumentItem(["ms"]), 1));
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { outcome: "ack", id: idOf(["ms"]) });
  assert.deepEqual(seen, [{ names: ["ms"], attempts: 0 }]);
});

Deno.test("push pubsub: deliveryAttempt counts the attempts; the last one is dead, 200", async () => {
  const { seen, handler } = recording(() => new Error("socket hang up"));
  const { app } = setup(handler, { maxAttempts: 3 });
  for (const attempt of [1, 2]) {
    const response = await pubSub(app, pubSubEnvelope(packumentItem(["ms"]), attempt));
    assert.equal(response.status, 503);
    assert.match(response.headers.get("retry-after")!, /^[1-9]\d*$/);
    assert.equal((await response.json()).error, "retry");
  }
  const last = await pubSub(app, pubSubEnvelope(packumentItem(["ms"]), 3));
  assert.equal(last.status, 200);
  assert.equal((await last.json()).outcome, "dead");
  assert.deepEqual(seen.map((s) => s.attempts), [0, 1, 2]);
  const letters = await deadLetters(app);
  assert.deepEqual(letters.map((l) => [l.id, l.attempts]), [[idOf(["ms"]), 3]]);
});

Deno.test("push pubsub: without deliveryAttempt every delivery is a first attempt", async () => {
  const { seen, handler } = recording(() => new Error("socket hang up"));
  const { app } = setup(handler, { maxAttempts: 2 });
  for (let i = 0; i < 3; i++) {
    const response = await pubSub(app, pubSubEnvelope(packumentItem(["ms"])));
    assert.equal(response.status, 503);
    await response.body?.cancel();
  }
  assert.deepEqual(seen.map((s) => s.attempts), [0, 0, 0]);
  assert.deepEqual(await deadLetters(app), []);
});

Deno.test("push pubsub: a permanent failure is dead at once, 200", async () => {
  const { app } = setup(() => Promise.reject(new PermanentError("no such thing")));
  const response = await pubSub(app, pubSubEnvelope(packumentItem(["ms"]), 1));
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), {
    outcome: "dead",
    id: idOf(["ms"]),
    error: "no such thing",
  });
  assert.equal((await deadLetters(app)).length, 1);
});

Deno.test("push pubsub: the snake_case message id alone is enough", async () => {
  const { seen, handler } = recording();
  const { app } = setup(handler);
  const envelope = pubSubEnvelope(packumentItem(["ms"]), 1);
  delete (envelope.message as Record<string, unknown>).messageId;
  const response = await pubSub(app, envelope);
  assert.equal(response.status, 200);
  await response.body?.cancel();
  assert.equal(seen.length, 1);
});

Deno.test("push pubsub: data that is not an item is acknowledged as rejected", async () => {
  const lines: string[] = [];
  const { seen, handler } = recording();
  const { app } = setup(handler, { log: lines });
  const withData = (data: unknown) => {
    const envelope = pubSubEnvelope(undefined, 2);
    (envelope.message as Record<string, unknown>).data = data;
    return envelope;
  };
  const cases: [unknown, RegExp][] = [
    [pubSubEnvelope(undefined, 1), /no data/],
    [withData("not base64!"), /not base64/],
    [withData("bm90IGpzb24="), /not JSON/], // "not json"
    [withData(btoa("\xff\xfe")), /not UTF-8/],
    [withData(btoa(JSON.stringify({ type: "packument", payload: {} }))), /'registry'/],
    [withData(42), /not base64/],
  ];
  for (const [envelope, reason] of cases) {
    const response = await pubSub(app, envelope);
    assert.equal(response.status, 200);
    const answer = await response.json();
    assert.equal(answer.outcome, "rejected");
    assert.match(answer.reason, reason);
  }
  assert.equal(seen.length, 0);
  assert.deepEqual(await deadLetters(app), []);
  const rejected = lines.map((line) => JSON.parse(line)).filter((l) => l.type === "push-rejected");
  assert.equal(rejected.length, cases.length);
  assert.equal(rejected[0].source, "message 13316693823524212");
  assert.equal(rejected[0].route, "pubsub");
});

Deno.test("push pubsub: a body that is not a push envelope answers 400", async () => {
  const { seen, handler } = recording();
  const { app } = setup(handler);
  const item = packumentItem(["ms"]);
  const cases: unknown[] = [
    "not json",
    "[]",
    JSON.stringify(item),
    { subscription: "projects/p/subscriptions/s" },
    { message: "x" },
    { message: { data: btoa(JSON.stringify(item)) } },
    { ...pubSubEnvelope(item), deliveryAttempt: 0 },
    { ...pubSubEnvelope(item), deliveryAttempt: "2" },
  ];
  for (const envelope of cases) {
    const response = await pubSub(app, envelope);
    assert.equal(response.status, 400, JSON.stringify(envelope));
    assert.equal((await response.json()).error, "bad_request");
  }
  assert.equal(seen.length, 0);
});

// ---------------------------------------------------------------------------------------------
// Auth and methods

Deno.test("push routes need the worker token", async (t) => {
  const { seen, handler } = recording();
  const { app } = setup(handler);
  const body = JSON.stringify(packumentItem(["ms"]));
  for (
    const [name, headers] of Object.entries({
      "no header": {},
      "a wrong token": { authorization: "Bearer nope" },
      "the token as Basic": { authorization: `Basic ${btoa(`x:${TOKEN}`)}` },
    })
  ) {
    await t.step(name, async () => {
      const tasks = await cloudTask(app, body, 0, headers);
      assert.equal(tasks.status, 401);
      assert.equal(tasks.headers.get("www-authenticate"), "Bearer");
      assert.equal((await tasks.json()).error, "unauthorized");
      const pubsub = await pubSub(app, pubSubEnvelope(packumentItem(["ms"]), 1), headers);
      assert.equal(pubsub.status, 401);
      await pubsub.body?.cancel();
    });
  }
  assert.equal(seen.length, 0);
  await t.step("without a token configured there is no auth", async () => {
    const { seen, handler } = recording();
    const { app } = setup(handler, { token: undefined });
    const response = await cloudTask(app, body, 0, {});
    assert.equal(response.status, 200);
    await response.body?.cancel();
    assert.equal(seen.length, 1);
  });
});

Deno.test("push routes answer 405 to other methods", async () => {
  const { app } = setup(recording().handler);
  for (const path of ["/-/worker/push/cloud-tasks", "/-/worker/push/pubsub"]) {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const response = await app.request(path, { method, headers: AUTH });
      assert.equal(response.status, 405, `${method} ${path}`);
      assert.equal(response.headers.get("allow"), "POST");
      await response.body?.cancel();
    }
  }
  const unknown = await app.request("/-/worker/push/sqs", { method: "POST", headers: AUTH });
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
});
