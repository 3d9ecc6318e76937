/**
 * A Worker for `cloudflare_queue_test.ts`: the `cloudflare` queue engine inside workerd, over
 * Miniflare's real Queues (two bands and a dead-letter queue) and D1, driven over HTTP by the
 * Deno test. Each `POST /open` opens an engine on new tables; the other operations name the
 * table. `POST /consume` registers a handler that posts each delivered item to the test's
 * callback URL and returns the {@linkcode Outcome} it answers, until `POST /stop` (the contract's handlers run in
 * the Deno process, through the worker core); the engine claiming, settling, acking and
 * retrying runs here. `POST /crash` fails the batches in flight, as if the isolate died, and
 * puts a new engine on the same tables; `POST /crash-all` makes every batch fail from then on.
 *
 * @module
 */

import {
  CloudflareQueue,
  type D1DatabaseLike,
  type MessageBatchLike,
  type QueueLike,
} from "../../queues/cloudflare.ts";
import type { DeliveryHandler, Outcome } from "../../src/worker/queue.ts";

/** The bindings the test configures in Miniflare. */
interface Env {
  DB: D1DatabaseLike;
  HIGH: QueueLike;
  NORMAL: QueueLike;
  /** The dead-letter queue's name. */
  DEAD_QUEUE: string;
  /** The engines' lease, in ms. */
  LEASE_MS: string;
}

/** A registered handler: `stop` and `crashed` are plain flags, set by other requests. */
interface Registration {
  stop: boolean;
  crashed: boolean;
}

const engines = new Map<string, CloudflareQueue>();
/** The engine the queues' batches go to: the last one opened. */
let current: CloudflareQueue | undefined;
let opened = 0;
const registrations = new Map<string, Registration>();
let crash = Promise.withResolvers<never>();
crash.promise.catch(() => {});
let crashAll = false;

function open(env: Env, table: string): CloudflareQueue {
  const bindings = { db: env.DB, high: env.HIGH, normal: env.NORMAL };
  const engine = new CloudflareQueue(bindings, { table, leaseMs: Number(env.LEASE_MS) });
  engines.set(table, engine);
  current = engine;
  return engine;
}

function callback(url: string): DeliveryHandler {
  return async (item) => {
    const response = await fetch(url, { method: "POST", body: JSON.stringify(item) });
    if (!response.ok) throw new Error(`The callback answered ${response.status}`);
    return await response.json() as Outcome;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// deno-lint-ignore no-explicit-any
async function operate(env: Env, op: string, args: any): Promise<unknown> {
  if (op === "/open") {
    const table = `q${++opened}`;
    open(env, table);
    return { table };
  }
  if (op === "/crash-all") return crashAll = args.on;
  const engine = engines.get(args.table);
  if (!engine) throw new Error(`No engine on table ${args.table}`);
  switch (op) {
    case "/enqueue":
      return await engine.enqueue(args.items);
    case "/bury":
      return await engine.bury(args.item, args.error) ?? null;
    case "/status":
      return await engine.status(args.id) ?? null;
    case "/stats":
      return await engine.stats();
    case "/dead":
      return await engine.dead(args.limit);
    case "/retry-dead":
      return await engine.retryDead(args.id);
    case "/close":
      return await engine.close() ?? null;
    case "/consume": {
      // workerd refuses to abort a signal from another request's context, so this request
      // stays open, aborts its own signal when a /stop sets the flag, and answers once the
      // deliveries in hand (which settle in queue() invocations) are settled.
      const mine: Registration = { stop: false, crashed: false };
      registrations.set(args.id, mine);
      const stop = new AbortController();
      let settled = false;
      engine.consume(callback(args.callback), {
        concurrency: args.concurrency,
        signal: stop.signal,
      }).finally(() => settled = true);
      while (!mine.stop && !mine.crashed) await sleep(5);
      stop.abort();
      while (!settled && !mine.crashed) await sleep(5);
      registrations.delete(args.id);
      return null;
    }
    case "/stop": {
      const mine = registrations.get(args.id);
      if (mine) mine.stop = true;
      return null;
    }
    case "/crash": {
      crash.reject(new Error("The isolate crashed (on purpose)"));
      crash = Promise.withResolvers<never>();
      crash.promise.catch(() => {});
      for (const each of registrations.values()) each.crashed = true;
      open(env, args.table);
      return null;
    }
  }
  throw new Error(`No operation ${op}`);
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    try {
      const args = request.method === "POST" ? await request.json() : {};
      return Response.json(await operate(env, new URL(request.url).pathname, args) ?? null);
    } catch (error) {
      return new Response(error instanceof Error ? error.stack : String(error), { status: 500 });
    }
  },

  async queue(batch: MessageBatchLike, env: Env): Promise<void> {
    const engine = current!;
    if (batch.queue === env.DEAD_QUEUE) return await engine.handleDeadLetters(batch);
    if (crashAll) throw new Error("Every batch fails (on purpose)");
    await Promise.race([engine.handleBatch(batch), crash.promise]);
  },
};
