/**
 * The `cloudflare` queue engine, three ways: the queue contract in-process over `node:sqlite`
 * (standing in for D1) and stand-in queues that behave as Miniflare's do (fast, every branch);
 * unit tests of what the contract cannot reach (bands, a failing D1 or send, lost deliveries,
 * the dead-letter queue); and the queue contract inside workerd, on Miniflare's real Queues and
 * D1, through the test Worker `cf_queue_worker.ts` (the contract's handlers run here, called
 * back over HTTP; the engine runs in workerd).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import {
  CloudflareQueue,
  type CloudflareQueueOptions,
  type D1DatabaseLike,
  type D1PreparedStatementLike,
  type D1ResultLike,
  type MessageBatchLike,
  type MessageLike,
  type QueueLike,
  type QueueSendOptions,
} from "../../queues/cloudflare.ts";
import type {
  ConsumeOptions,
  DeliveryHandler,
  ItemStatus,
  QueueEngine,
  QueueStats,
} from "../../src/worker/queue.ts";
import type { WorkItem } from "../../src/worker/items.ts";
import { Worker } from "../../src/worker/worker.ts";
import { runQueueContract } from "../_support/queue_contract.ts";
import { type Child, start } from "../_support/spawn.ts";

const REGISTRY = "http://127.0.0.1:9/";

function item(name: string, priority = 0): WorkItem {
  return {
    type: "packument",
    id: `packument:${name}`,
    payload: { registry: REGISTRY, names: [name] },
    priority,
    attempts: 0,
  };
}

/**
 * D1 stood in for by Deno's `node:sqlite`: statements run one at a time, a batch in a
 * transaction. `fail` makes the statements it matches throw, as an unreachable D1 would.
 */
class SqliteD1 implements D1DatabaseLike {
  readonly sqlite = new DatabaseSync(":memory:");
  fail: (sql: string) => boolean = () => false;

  prepare(sql: string): D1PreparedStatementLike {
    return this.#statement(sql, []);
  }

  async batch(statements: D1PreparedStatementLike[]): Promise<D1ResultLike[]> {
    await Promise.resolve();
    const runs = statements.map((each) => (each as unknown as { execute(): D1ResultLike }));
    this.sqlite.exec("BEGIN");
    try {
      const results = runs.map((each) => each.execute());
      this.sqlite.exec("COMMIT");
      return results;
    } catch (error) {
      this.sqlite.exec("ROLLBACK");
      throw error;
    }
  }

  #statement(
    sql: string,
    values: unknown[],
  ): D1PreparedStatementLike & { execute(): D1ResultLike } {
    const execute = (): D1ResultLike => {
      if (this.fail(sql)) throw new Error("D1_ERROR: network connection lost");
      const statement = this.sqlite.prepare(sql);
      const params = values as (string | number | null)[];
      if (/^\s*SELECT|\bRETURNING\b/.test(sql)) {
        const results = statement.all(...params) as Record<string, unknown>[];
        return { results, meta: { changes: results.length } };
      }
      return { results: [], meta: { changes: Number(statement.run(...params).changes) } };
    };
    const run = async () => {
      await Promise.resolve();
      return execute();
    };
    return { bind: (...next) => this.#statement(sql, next), run, all: run, execute };
  }
}

/** A message in a {@linkcode FakeQueue}. */
interface Held {
  body: unknown;
  failed: number;
}

interface FakeQueueOptions {
  maxBatchSize?: number;
  maxRetries?: number;
  deadLetterQueue?: FakeQueue;
  /** How long a second of delay lasts here, in ms. */
  secondMs?: number;
}

/**
 * A Cloudflare queue stood in for in-process, as Miniflare's broker behaves (QUEUES.md): batches
 * of up to `maxBatchSize`, one batch in flight at a time, `delaySeconds` on send and retry, a
 * handler that throws retries the whole batch, a message neither acked nor retried is acked, and
 * after `maxRetries` retries a message goes to the dead-letter queue (or is dropped without one).
 * {@linkcode FakeQueue.crash} fails the batches in flight as if the isolate died.
 */
class FakeQueue implements QueueLike {
  consumer: (batch: MessageBatchLike) => Promise<void> = () => Promise.resolve();
  dropped = 0;
  #ready: Held[] = [];
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #flushing = false;
  #crash = Promise.withResolvers<void>();
  #closed = false;

  constructor(readonly name: string, readonly options: FakeQueueOptions = {}) {}

  send(body: unknown, options: QueueSendOptions = {}): Promise<void> {
    this.#add({ body: structuredClone(body), failed: 0 }, options.delaySeconds ?? 0);
    return Promise.resolve();
  }

  async sendBatch(messages: Iterable<{ body: unknown } & QueueSendOptions>): Promise<void> {
    for (const message of messages) await this.send(message.body, message);
  }

  crash(): void {
    this.#crash.resolve();
    this.#crash = Promise.withResolvers();
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #add(held: Held, delaySeconds: number): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#ready.push(held);
      this.#flush();
    }, delaySeconds * (this.options.secondMs ?? 1000));
    this.#timers.add(timer);
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#ready.length > 0 && !this.#closed) {
        const batch = this.#ready.splice(0, this.options.maxBatchSize ?? 10);
        const decided = new Map<Held, number | "ack">();
        const messages: MessageLike[] = batch.map((held) => ({
          body: structuredClone(held.body),
          attempts: held.failed + 1,
          ack: () => decided.set(held, "ack"),
          retry: (options = {}) => decided.set(held, options.delaySeconds ?? 0),
        }));
        let threw = false;
        const crashed = this.#crash.promise.then(() => {
          throw new Error("crashed");
        });
        try {
          await Promise.race([this.consumer({ queue: this.name, messages }), crashed]);
        } catch {
          threw = true;
        }
        for (const held of batch) {
          const decision = threw ? 0 : decided.get(held) ?? "ack";
          if (decision === "ack") continue;
          if (++held.failed <= (this.options.maxRetries ?? 3)) this.#add(held, decision);
          else if (this.options.deadLetterQueue) {
            await this.options.deadLetterQueue.send(held.body);
          } else this.dropped++;
        }
      }
    } finally {
      this.#flushing = false;
    }
  }
}

/** The queues of one engine: two bands and their dead-letter queue, all handed to `engine`. */
class FakeQueues {
  readonly dead: FakeQueue;
  readonly high: FakeQueue;
  readonly normal: FakeQueue;

  constructor(options: FakeQueueOptions = {}) {
    this.dead = new FakeQueue("work-dead", options);
    const band = { ...options, deadLetterQueue: this.dead };
    this.high = new FakeQueue("work-high", band);
    this.normal = new FakeQueue("work", band);
  }

  route(engine: CloudflareQueue): void {
    this.high.consumer = this.normal.consumer = (batch) => engine.handleBatch(batch);
    this.dead.consumer = (batch) => engine.handleDeadLetters(batch);
  }

  crash(): void {
    for (const queue of [this.high, this.normal, this.dead]) queue.crash();
  }

  close(): void {
    for (const queue of [this.high, this.normal, this.dead]) queue.close();
  }
}

/** An engine over its own sqlite and fake queues, closing the queues when it closes. */
class LocalQueue extends CloudflareQueue {
  constructor(
    readonly db: SqliteD1,
    readonly queues: FakeQueues,
    options: CloudflareQueueOptions = {},
  ) {
    super({ db, high: queues.high, normal: queues.normal }, options);
    queues.route(this);
  }

  override async close(): Promise<void> {
    await super.close();
    this.queues.close();
  }
}

Deno.test("CloudflareQueue meets the queue contract over sqlite and stand-in queues, crash included", async (t) => {
  // A second lasts 100 ms here: retries' messages come early and must wait until due.
  const options = { leaseMs: 500 };
  await runQueueContract(t, {
    open: () =>
      Promise.resolve(new LocalQueue(new SqliteD1(), new FakeQueues({ secondMs: 100 }), options)),
    crash(engine) {
      const { db, queues } = engine as LocalQueue;
      // As if the isolate died: its batches in flight fail, nothing is settled or released.
      queues.crash();
      return Promise.resolve(new LocalQueue(db, queues, options));
    },
  });
});

/** A producer that only records what is sent (nothing is delivered). */
class Outbox implements QueueLike {
  readonly sent: ({ body: unknown } & QueueSendOptions)[] = [];
  failing = false;

  send(body: unknown, options: QueueSendOptions = {}): Promise<void> {
    if (this.failing) return Promise.reject(new Error("Queue send failed: 503"));
    this.sent.push({ body, ...options });
    return Promise.resolve();
  }

  async sendBatch(messages: Iterable<{ body: unknown } & QueueSendOptions>): Promise<void> {
    if (this.failing) throw new Error("Queue sendBatch failed: 503");
    for (const { body, ...options } of messages) await this.send(body, options);
  }
}

/** A delivered message that records what the engine did with it. */
function delivered(body: unknown): MessageLike & { done?: "ack" | { delaySeconds?: number } } {
  const message: MessageLike & { done?: "ack" | { delaySeconds?: number } } = {
    body,
    attempts: 1,
    ack: () => message.done = "ack",
    retry: (options = {}) => message.done = options,
  };
  return message;
}

function batchOf(...messages: MessageLike[]): MessageBatchLike {
  return { queue: "work", messages };
}

function outboxEngine(options: CloudflareQueueOptions = {}) {
  const db = new SqliteD1();
  const high = new Outbox();
  const normal = new Outbox();
  return { db, high, normal, engine: new CloudflareQueue({ db, high, normal }, options) };
}

const ACK: DeliveryHandler = () => Promise.resolve({ kind: "ack" });

Deno.test("CloudflareQueue.enqueue() sends { id, priority } to the band of the priority, never the payload", async () => {
  const { high, normal, engine } = outboxEngine();
  const result = await engine.enqueue([
    item("up", 1),
    item("zero"),
    item("down", -5),
    item("up", 1),
  ]);
  assert.deepEqual(result, {
    accepted: ["packument:up", "packument:zero", "packument:down"],
    duplicates: ["packument:up"],
  });
  assert.deepEqual(high.sent, [
    { body: { id: "packument:up", priority: 1 }, contentType: "json" },
  ]);
  assert.deepEqual(normal.sent.map((m) => m.body), [
    { id: "packument:zero", priority: 0 },
    { id: "packument:down", priority: -5 },
  ]);
  // 250 items take three transactions; an id repeated across them is still a duplicate.
  const many = Array.from({ length: 250 }, (_, i) => item(`n${i}`));
  const again = await engine.enqueue([...many, item("n3")]);
  assert.equal(again.accepted.length, 250);
  assert.deepEqual(again.duplicates, ["packument:n3"]);
  assert.deepEqual(await engine.stats(), { queued: 253, running: 0, done: 0, dead: 0 });
});

Deno.test("CloudflareQueue.enqueue(): when a send fails, the unsent items are dead letters", async () => {
  const { normal, engine } = outboxEngine();
  normal.failing = true;
  await assert.rejects(engine.enqueue([item("a"), item("b")]), /sending 2 messages .*503/);
  const dead = await engine.dead();
  assert.deepEqual(dead.map((d) => d.id), ["packument:a", "packument:b"]);
  assert.match(dead[0]!.lastError!, /could not be sent to Cloudflare Queues: .*503/);
  normal.failing = false;
  assert.deepEqual((await engine.enqueue([item("a")])).accepted, ["packument:a"]);
  assert.equal(await engine.retryDead("packument:b"), true);
  assert.equal(normal.sent.length, 2);
});

Deno.test("CloudflareQueue.handleBatch() never rejects: a failing D1 retries the message", async () => {
  const { db, normal, engine } = outboxEngine();
  await engine.enqueue([item("a")]);
  db.fail = (sql) => sql.includes("RETURNING id, type");
  const first = delivered(normal.sent[0]!.body);
  await engine.handleBatch(batchOf(first), ACK);
  assert.deepEqual(first.done, {});
  assert.equal((await engine.status("packument:a"))?.state, "queued");
  // The claim holds, the settle fails: the lease runs out and a later message takes over.
  db.fail = (sql) => sql.includes("claim = ?3");
  const second = delivered(normal.sent[0]!.body);
  await engine.handleBatch(batchOf(second), ACK);
  assert.deepEqual(second.done, {});
  assert.equal((await engine.status("packument:a"))?.state, "running");
  db.fail = () => false;
  const third = delivered(normal.sent[0]!.body);
  await engine.handleBatch(batchOf(third), ACK);
  // The lease (15 minutes) has not run out: the message comes back when it does.
  assert.deepEqual(third.done, "ack");
  assert.equal(normal.sent.at(-1)!.delaySeconds, 960);
  // Not even the schema: every message is retried.
  const broken = outboxEngine();
  broken.db.fail = () => true;
  const lone = delivered({ id: "x", priority: 0 });
  await broken.engine.handleBatch(batchOf(lone), ACK);
  assert.deepEqual(lone.done, {});
});

Deno.test("CloudflareQueue: a delivery that rejects is lost; after maxLost the item is dead", async () => {
  let now = 1_000_000;
  const { normal, engine } = outboxEngine({ maxLost: 2, now: () => now });
  await engine.enqueue([item("poison")]);
  const body = normal.sent[0]!.body;
  const crash: DeliveryHandler = () => Promise.reject(new Error("out of memory"));
  for (let i = 0; i < 2; i++) {
    const message = delivered(body);
    await engine.handleBatch(batchOf(message), crash);
    assert.deepEqual(message.done, {});
    now += 10;
  }
  const last = delivered(body);
  await engine.handleBatch(batchOf(last), ACK);
  assert.equal(last.done, "ack");
  const status = await engine.status("packument:poison");
  assert.equal(status?.state, "dead");
  assert.equal(status?.attempts, 0);
  assert.match(status?.lastError ?? "", /lost 2 times/);
});

Deno.test("CloudflareQueue: a message that finds nothing due comes back when the next item is", async () => {
  let now = 5_000_000;
  const { normal, engine } = outboxEngine({ now: () => now });
  await engine.enqueue([item("later")]);
  const message = delivered(normal.sent[0]!.body);
  await engine.handleBatch(
    batchOf(message),
    () => Promise.resolve({ kind: "retry", delayMs: 2500, error: "GET failed: 503" }),
  );
  assert.equal(message.done, "ack");
  assert.deepEqual(normal.sent.at(-1), {
    body: { id: "packument:later", priority: 0 },
    contentType: "json",
    delaySeconds: 3,
  });
  now += 1000;
  const early = delivered(normal.sent.at(-1)!.body);
  await engine.handleBatch(batchOf(early), ACK);
  assert.equal(early.done, "ack");
  assert.equal(normal.sent.at(-1)!.delaySeconds, 2);
  assert.equal((await engine.status("packument:later"))?.state, "queued");
  now += 1500;
  await engine.handleBatch(batchOf(delivered(normal.sent.at(-1)!.body)), ACK);
  assert.equal((await engine.status("packument:later"))?.state, "done");
  const stray = delivered({ id: "packument:later", priority: 0 });
  const sent = normal.sent.length;
  await engine.handleBatch(batchOf(stray, delivered("not ours")), ACK);
  assert.equal(stray.done, "ack");
  assert.equal(normal.sent.length, sent);
});

Deno.test("CloudflareQueue.handleDeadLetters() records the dead letter unless done or held", async () => {
  const { normal, engine } = outboxEngine();
  await engine.enqueue([item("done"), item("held"), item("waiting")]);
  await engine.handleBatch(batchOf(delivered(normal.sent[0]!.body)), ACK);
  let release = () => {};
  const holding = engine.handleBatch(
    batchOf(delivered(normal.sent[1]!.body)),
    () => new Promise((resolve) => release = () => resolve({ kind: "ack" })),
  );
  while ((await engine.stats()).running === 0) await new Promise((r) => setTimeout(r, 1));
  const letters = ["done", "held", "waiting"].map((name) =>
    delivered({ id: `packument:${name}`, priority: 0 })
  );
  await engine.handleDeadLetters({ queue: "work-dead", messages: letters });
  assert.deepEqual(letters.map((m) => m.done), ["ack", { delaySeconds: 960 }, "ack"]);
  assert.equal((await engine.status("packument:done"))?.state, "done");
  const dead = await engine.status("packument:waiting");
  assert.equal(dead?.state, "dead");
  assert.match(dead?.lastError ?? "", /moved its message to the dead-letter queue/);
  release();
  await holding;
  assert.equal((await engine.status("packument:held"))?.state, "done");
});

Deno.test("CloudflareQueue.handleBatch() holds at most `concurrency` deliveries across batches", async () => {
  const { normal, engine } = outboxEngine({ concurrency: 2 });
  await engine.enqueue(Array.from({ length: 6 }, (_, i) => item(`c${i}`)));
  let inHand = 0;
  let most = 0;
  const slow: DeliveryHandler = async () => {
    most = Math.max(most, ++inHand);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inHand--;
    return { kind: "ack" };
  };
  const bodies = normal.sent.map((m) => m.body);
  await Promise.all([
    engine.handleBatch(batchOf(...bodies.slice(0, 3).map(delivered)), slow),
    engine.handleBatch(batchOf(...bodies.slice(3).map(delivered)), slow),
  ]);
  assert.equal(most, 2);
  assert.equal((await engine.stats()).done, 6);
});

Deno.test("CloudflareQueue checks its options", async () => {
  const bindings = { db: new SqliteD1(), high: new Outbox(), normal: new Outbox() };
  for (const table of ["", "1queue", "queue; DROP TABLE x", "a".repeat(49)]) {
    assert.throws(() => new CloudflareQueue(bindings, { table }), TypeError);
  }
  assert.throws(() => new CloudflareQueue(bindings, { leaseMs: 0 }), /'leaseMs'/);
  assert.throws(() => new CloudflareQueue(bindings, { concurrency: 1.5 }), /'concurrency'/);
  assert.throws(() => new CloudflareQueue(bindings, { maxLost: 0 }), /'maxLost'/);
  const engine = new CloudflareQueue(bindings);
  const signal = new AbortController().signal;
  await assert.rejects(engine.consume(ACK, { concurrency: 0, signal }), RangeError);
  await assert.rejects(engine.dead(-1), RangeError);
});

/** The Node script that runs the test Worker in workerd, until its stdin closes. */
const RUNNER = `
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
const [peers, scriptPath, leaseMs] = process.argv.slice(2);
const require = createRequire(peers);
const { Miniflare } = await import(pathToFileURL(require.resolve("miniflare")).href);
const band = { maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: 3, deadLetterQueue: "work-dead" };
const mf = new Miniflare({
  modules: true,
  scriptPath,
  compatibilityDate: "2026-04-01",
  d1Databases: ["DB"],
  queueProducers: { HIGH: { queueName: "work-high" }, NORMAL: { queueName: "work" } },
  queueConsumers: {
    "work-high": band,
    work: band,
    "work-dead": { maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: 3 },
  },
  bindings: { DEAD_QUEUE: "work-dead", LEASE_MS: leaseMs },
  host: "127.0.0.1",
  port: 0,
});
const url = await mf.ready;
process.stdout.write(url.href + "\\n");
process.stdin.resume();
process.stdin.on("end", () => mf.dispose().then(() => process.exit(0)));
`;

const PEERS = new URL("../peers/", import.meta.url).pathname;

/**
 * The test Worker (`cf_queue_worker.ts`, bundled) in workerd through Miniflare, and a server on
 * 127.0.0.1 that runs the handlers of the deliveries it posts back.
 */
class Workerd {
  readonly handlers = new Map<string, DeliveryHandler>();
  /** The Worker's URL. */
  base = "";
  #closing = new AbortController();
  #server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => this.#deliver(request),
  );
  #child: Child | undefined;
  #dir: string | undefined;

  static async start(leaseMs: number): Promise<Workerd> {
    const peer = new Workerd();
    try {
      const dir = peer.#dir = await Deno.makeTempDir({ prefix: "cf-queue-" });
      await bundle(
        new URL("./cf_queue_worker.ts", import.meta.url).pathname,
        join(dir, "worker.js"),
      );
      await Deno.writeTextFile(join(dir, "run.mjs"), RUNNER);
      const args = ["run.mjs", PEERS, "worker.js", String(leaseMs)];
      peer.#child = start("node", args, { cwd: dir, stdin: true });
      peer.base = (await peer.#child.line()).trim();
      assert.match(peer.base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      return peer;
    } catch (error) {
      await peer.close();
      throw error;
    }
  }

  /** Where the Worker posts a delivery of the handler registered as `id`. */
  callback(id: string): string {
    return `http://127.0.0.1:${(this.#server.addr as Deno.NetAddr).port}/deliver/${id}`;
  }

  async #deliver(request: Request): Promise<Response> {
    const handler = this.handlers.get(new URL(request.url).pathname.split("/").at(-1)!);
    if (!handler) return new Response("no such handler", { status: 404 });
    const item = await request.json() as WorkItem;
    const stopped = new Promise<undefined>((resolve) => {
      this.#closing.signal.addEventListener("abort", () => resolve(undefined));
    });
    const outcome = await Promise.race([handler(item), stopped]);
    return outcome ? Response.json(outcome) : new Response("stopped", { status: 503 });
  }

  // deno-lint-ignore no-explicit-any
  async call(op: string, args: Record<string, unknown> = {}): Promise<any> {
    const response = await fetch(new URL(op, this.base), {
      method: "POST",
      body: JSON.stringify(args),
    });
    if (!response.ok) throw new Error(`${op}: ${response.status} ${await response.text()}`);
    return await response.json();
  }

  async close(): Promise<void> {
    // The runner disposes of workerd and exits when its stdin closes.
    if (this.#child) {
      await this.#child.closeStdin();
      await this.#child.wait();
    }
    this.#closing.abort();
    await this.#server.shutdown();
    if (this.#dir) await Deno.remove(this.#dir, { recursive: true });
  }
}

/** Bundles a Worker module into one ES module, as `scripts/bundle_edge.ts` does. */
async function bundle(entry: string, out: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "--format", "esm", "--output", out, entry],
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

/**
 * A {@linkcode QueueEngine} whose every operation runs in workerd: the engine on one table of
 * the test Worker. `consume` registers a handler there that calls back into this process.
 */
class RemoteQueue implements QueueEngine {
  readonly name = "cloudflare";
  constructor(readonly peer: Workerd, readonly table: string) {}

  #call(op: string, args: Record<string, unknown> = {}) {
    return this.peer.call(op, { table: this.table, ...args });
  }

  enqueue(items: readonly WorkItem[]) {
    return this.#call("/enqueue", { items });
  }

  async bury(item: WorkItem, error: string): Promise<void> {
    await this.#call("/bury", { item, error });
  }

  async consume(handler: DeliveryHandler, options: ConsumeOptions): Promise<void> {
    const id = crypto.randomUUID();
    this.peer.handlers.set(id, handler);
    try {
      const callback = this.peer.callback(id);
      // Answered once the consumer stopped and its deliveries are settled (or it crashed).
      const running = this.#call("/consume", { id, callback, concurrency: options.concurrency });
      await Promise.race([
        running,
        new Promise<void>((resolve) => {
          if (options.signal.aborted) resolve();
          options.signal.addEventListener("abort", () => resolve(), { once: true });
        }),
      ]);
      await this.#call("/stop", { id });
      await running;
    } finally {
      this.peer.handlers.delete(id);
    }
  }

  async status(id: string): Promise<ItemStatus | undefined> {
    return await this.#call("/status", { id }) ?? undefined;
  }

  stats(): Promise<QueueStats> {
    return this.#call("/stats");
  }

  dead(limit?: number): Promise<ItemStatus[]> {
    return this.#call("/dead", { limit });
  }

  retryDead(id: string): Promise<boolean> {
    return this.#call("/retry-dead", { id });
  }

  async close(): Promise<void> {
    await this.#call("/close");
  }
}

Deno.test("CloudflareQueue inside workerd, on Miniflare's Queues and D1", async (t) => {
  const peer = await Workerd.start(2000);
  try {
    await t.step("the queue contract, crash included", (t) =>
      runQueueContract(t, {
        async open() {
          return new RemoteQueue(peer, (await peer.call("/open")).table);
        },
        async crash(engine) {
          const { table } = engine as RemoteQueue;
          await peer.call("/crash", { table });
          return new RemoteQueue(peer, table);
        },
      }));

    await t.step("a message Cloudflare gives up on makes its item a dead letter", async () => {
      const queue = new RemoteQueue(peer, (await peer.call("/open")).table);
      // Every batch fails: Miniflare delivers the message 4 times (maxRetries 3), then moves it
      // to the dead-letter queue, whose consumer records the dead letter.
      await peer.call("/crash-all", { on: true });
      try {
        await queue.enqueue([item("doomed", 3)]);
        const until = Date.now() + 20_000;
        while ((await queue.status("packument:doomed"))?.state !== "dead") {
          assert.ok(Date.now() < until, "timed out waiting for the dead letter");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        await peer.call("/crash-all", { on: false });
      }
      const [dead] = await queue.dead();
      assert.equal(dead?.id, "packument:doomed");
      assert.equal(dead?.attempts, 0);
      assert.match(dead?.lastError ?? "", /dead-letter queue/);
      assert.equal(await queue.retryDead("packument:doomed"), true);
      const worker = new Worker(queue, { handlers: { packument: () => Promise.resolve() } });
      assert.deepEqual(await worker.runUntilIdle(), { done: 1, dead: 0 });
      await queue.close();
    });
  } finally {
    await peer.close();
  }
});
