/**
 * The contract every {@linkcode QueueEngine} must meet, driven through the worker core (the
 * retry policy is the core's, the same on every engine): priority, dedup, retry with backoff
 * and `Retry-After`, dead letters and their retry, partial batches, status records, the
 * concurrency cap, graceful release on stop, and (for durable engines) redelivery after a
 * crash.
 *
 * Use it from a test: `Deno.test("memory", (t) => runQueueContract(t, { open }))`. Timing
 * checks are lower bounds only ("not before the delay"), never upper bounds.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { QueueEngine } from "../../src/worker/queue.ts";
import type { WorkItem, WorkItemType } from "../../src/worker/items.ts";
import {
  type Handler,
  PartialFailure,
  Worker,
  type WorkerOptions,
} from "../../src/worker/worker.ts";
import { HttpError } from "../../src/http/errors.ts";
import { PermanentError } from "../../src/worker/retry.ts";

/** How the suite gets engines. */
export interface QueueContractOptions {
  /** A fresh, empty engine (each step opens its own). */
  open(): Promise<QueueEngine>;
  /**
   * For durable engines: simulates a crash of `engine` (its process dies with items in hand,
   * nothing settled or released) and returns a new engine on the same store. Engines that
   * keep nothing across a crash (`memory`) leave it out, and the crash step is not run.
   */
  crash?(engine: QueueEngine): Promise<QueueEngine>;
}

const REGISTRY = "http://127.0.0.1:9/";

/** A `packument` item with one name per id (the id is the name, for readable failures). */
function item(name: string, priority = 0): WorkItem {
  return {
    type: "packument",
    id: `packument:${name}`,
    payload: { registry: REGISTRY, names: [name] },
    priority,
    attempts: 0,
  };
}

function nameOf(work: WorkItem): string {
  return (work.payload as { names: string[] }).names.join(",");
}

/** A fast retry policy for the suite. */
const RETRY = { maxAttempts: 3, baseDelayMs: 40, maxDelayMs: 1000 };

function worker(
  engine: QueueEngine,
  handler: Handler,
  options: Partial<WorkerOptions> = {},
): Worker {
  const handlers: Partial<Record<WorkItemType, Handler>> = { packument: handler };
  return new Worker(engine, { handlers, retry: RETRY, concurrency: 1, ...options });
}

async function withEngine(
  options: QueueContractOptions,
  fn: (engine: QueueEngine) => Promise<QueueEngine | void>,
): Promise<void> {
  let engine = await options.open();
  try {
    engine = (await fn(engine)) ?? engine;
  } finally {
    await engine.close();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Runs the queue contract as steps of `t`.
 *
 * @param t The test context.
 * @param options How to open (and crash) the engine.
 */
export async function runQueueContract(
  t: Deno.TestContext,
  options: QueueContractOptions,
): Promise<void> {
  await t.step(
    "priority: of waiting items, the higher priority runs first",
    () =>
      withEngine(options, async (engine) => {
        const order: string[] = [];
        await engine.enqueue([
          item("p0", 0),
          item("p5a", 5),
          item("m3", -3),
          item("p10", 10),
          item("p5b", 5),
        ]);
        await worker(engine, (work) => {
          order.push(nameOf(work));
          return Promise.resolve();
        }).runUntilIdle();
        assert.deepEqual(order, ["p10", "p5a", "p5b", "p0", "m3"]);
      }),
  );

  await t.step(
    "dedup: an id queued or running is a duplicate; done, it runs again",
    () =>
      withEngine(options, async (engine) => {
        const first = await engine.enqueue([item("a"), item("b"), item("a")]);
        assert.deepEqual(first, {
          accepted: ["packument:a", "packument:b"],
          duplicates: ["packument:a"],
        });
        const again = await engine.enqueue([item("b"), item("c")]);
        assert.deepEqual(again, { accepted: ["packument:c"], duplicates: ["packument:b"] });
        let release = () => {};
        const held = new Promise<void>((resolve) => release = resolve);
        const runs: string[] = [];
        const stop = new AbortController();
        const running = worker(engine, async (work) => {
          runs.push(nameOf(work));
          if (nameOf(work) === "a") await held;
        }).run(stop.signal);
        await waitFor(
          "a running",
          async () => (await engine.status("packument:a"))?.state === "running",
        );
        assert.deepEqual((await engine.enqueue([item("a")])).duplicates, ["packument:a"]);
        release();
        await waitFor("all done", async () => (await engine.stats()).done === 3);
        assert.deepEqual((await engine.enqueue([item("a")])).accepted, ["packument:a"]);
        await waitFor("a again", () => Promise.resolve(runs.filter((n) => n === "a").length === 2));
        stop.abort();
        await running;
        assert.equal(runs.length, 4);
      }),
  );

  await t.step(
    "retry: a transient failure is retried with backoff, then succeeds",
    () =>
      withEngine(options, async (engine) => {
        const times: number[] = [];
        await engine.enqueue([item("flaky")]);
        const result = await worker(engine, (work) => {
          times.push(Date.now());
          if (work.attempts < 2) {
            return Promise.reject(new HttpError("GET failed: 503", REGISTRY, { status: 503 }));
          }
          return Promise.resolve();
        }).runUntilIdle();
        assert.deepEqual(result, { done: 1, dead: 0 });
        assert.equal(times.length, 3);
        // Equal jitter: at least half of base * 2^(attempt - 1).
        assert.ok(times[1]! - times[0]! >= RETRY.baseDelayMs / 2, `${times[1]! - times[0]!} ms`);
        assert.ok(times[2]! - times[1]! >= RETRY.baseDelayMs, `${times[2]! - times[1]!} ms`);
        const status = await engine.status("packument:flaky");
        assert.equal(status?.state, "done");
        assert.equal(status?.attempts, 2);
        assert.match(status?.lastError ?? "", /503/);
      }),
  );

  await t.step("retry: Retry-After is honoured", () =>
    withEngine(options, async (engine) => {
      const times: number[] = [];
      await engine.enqueue([item("limited")]);
      await worker(engine, (work) => {
        times.push(Date.now());
        if (work.attempts === 0) {
          return Promise.reject(
            new HttpError("GET failed: 429", REGISTRY, { status: 429, retryAfter: 600 }),
          );
        }
        return Promise.resolve();
      }).runUntilIdle();
      assert.equal(times.length, 2);
      assert.ok(times[1]! - times[0]! >= 600, `retried after ${times[1]! - times[0]!} ms`);
    }));

  await t.step(
    "dead letter: after maxAttempts, with payload, error and attempts; retried on demand",
    () =>
      withEngine(options, async (engine) => {
        let healthy = false;
        const handler: Handler = () =>
          healthy
            ? Promise.resolve()
            : Promise.reject(new HttpError("GET failed: 500", REGISTRY, { status: 500 }));
        await engine.enqueue([item("broken"), item("fine", -1)]);
        healthy = false;
        const first = await worker(engine, (work) =>
          nameOf(work) === "fine" ? Promise.resolve() : handler(work, undefined!)).runUntilIdle();
        assert.deepEqual(first, { done: 1, dead: 1 });
        const [dead, ...rest] = await engine.dead();
        assert.equal(rest.length, 0);
        assert.equal(dead?.id, "packument:broken");
        assert.equal(dead?.state, "dead");
        assert.equal(dead?.attempts, RETRY.maxAttempts);
        assert.deepEqual(dead?.payload, { registry: REGISTRY, names: ["broken"] });
        assert.match(dead?.lastError ?? "", /500/);
        assert.ok((dead?.finishedAt ?? 0) >= (dead?.enqueuedAt ?? Infinity));
        assert.equal(await engine.retryDead("packument:fine"), false);
        assert.equal(await engine.retryDead("packument:nothing"), false);
        assert.equal(await engine.retryDead("packument:broken"), true);
        assert.equal((await engine.status("packument:broken"))?.state, "queued");
        healthy = true;
        const second = await worker(engine, handler).runUntilIdle();
        assert.deepEqual(second, { done: 2, dead: 0 });
        assert.deepEqual(await engine.dead(), []);
      }),
  );

  await t.step(
    "dead letter: a permanent failure is dead at once",
    () =>
      withEngine(options, async (engine) => {
        await engine.enqueue([item("forbidden"), item("invalid")]);
        let runs = 0;
        await worker(engine, (work) => {
          runs++;
          return Promise.reject(
            nameOf(work) === "forbidden"
              ? new HttpError("GET failed: 403", REGISTRY, { status: 403 })
              : new PermanentError("bad payload"),
          );
        }).runUntilIdle();
        assert.equal(runs, 2);
        for (const id of ["packument:forbidden", "packument:invalid"]) {
          const status = await engine.status(id);
          assert.equal(status?.state, "dead", id);
          assert.equal(status?.attempts, 1, id);
        }
      }),
  );

  await t.step(
    "partial batch: done names complete, failing names are retried or dead alone",
    () =>
      withEngine(options, async (engine) => {
        const batch: WorkItem = {
          type: "packument",
          id: "packument:batch",
          payload: { registry: REGISTRY, names: ["ok", "flaky", "gone"] },
          priority: 0,
          attempts: 0,
        };
        await engine.enqueue([batch]);
        const deliveries: string[] = [];
        await worker(engine, (work) => {
          deliveries.push(nameOf(work));
          if (work.attempts > 0) return Promise.resolve();
          const gone: WorkItem = {
            ...batch,
            id: "packument:batch-gone",
            payload: { registry: REGISTRY, names: ["gone"] },
          };
          return Promise.reject(
            new PartialFailure("2 of 3 names failed", {
              retryPayload: { registry: REGISTRY, names: ["flaky"] },
              buried: [{ item: gone, error: "GET failed: 403" }],
            }),
          );
        }).runUntilIdle();
        assert.deepEqual(deliveries, ["ok,flaky,gone", "flaky"]);
        const status = await engine.status("packument:batch");
        assert.equal(status?.state, "done");
        assert.deepEqual(status?.payload, { registry: REGISTRY, names: ["flaky"] });
        const dead = await engine.dead();
        assert.deepEqual(dead.map((d) => [d.id, d.payload, d.lastError]), [
          ["packument:batch-gone", { registry: REGISTRY, names: ["gone"] }, "GET failed: 403"],
        ]);
      }),
  );

  await t.step(
    "status: queued, running, done, with times; stats count each state",
    () =>
      withEngine(options, async (engine) => {
        assert.equal(await engine.status("packument:none"), undefined);
        await engine.enqueue([item("s")]);
        const queued = await engine.status("packument:s");
        assert.equal(queued?.state, "queued");
        assert.equal(queued?.type, "packument");
        assert.equal(queued?.priority, 0);
        assert.equal(queued?.attempts, 0);
        assert.ok(queued!.enqueuedAt > 0);
        assert.deepEqual(await engine.stats(), { queued: 1, running: 0, done: 0, dead: 0 });
        let release = () => {};
        const held = new Promise<void>((resolve) => release = resolve);
        const stop = new AbortController();
        const running = worker(engine, () => held).run(stop.signal);
        await waitFor(
          "running",
          async () => (await engine.status("packument:s"))?.state === "running",
        );
        assert.ok((await engine.status("packument:s"))!.startedAt! >= queued!.enqueuedAt);
        assert.deepEqual(await engine.stats(), { queued: 0, running: 1, done: 0, dead: 0 });
        release();
        await waitFor("done", async () => (await engine.status("packument:s"))?.state === "done");
        stop.abort();
        await running;
        const done = await engine.status("packument:s");
        assert.ok(done!.finishedAt! >= done!.startedAt!);
        assert.deepEqual(await engine.stats(), { queued: 0, running: 0, done: 1, dead: 0 });
      }),
  );

  await t.step(
    "concurrency: never more items in hand than the cap",
    () =>
      withEngine(options, async (engine) => {
        await engine.enqueue(Array.from({ length: 24 }, (_, i) => item(`c${i}`)));
        let inHand = 0;
        let most = 0;
        // The first items wait until the cap is reached (or 10 s pass, for an engine that never
        // hands out more than one), so reaching it does not depend on the machine's speed.
        let full = () => {};
        const capReached = new Promise<void>((resolve) => full = resolve);
        const result = await worker(engine, async () => {
          most = Math.max(most, ++inHand);
          if (inHand === 3) full();
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            capReached,
            new Promise((resolve) => timer = setTimeout(resolve, 10_000)),
          ]);
          clearTimeout(timer);
          await new Promise((resolve) => setTimeout(resolve, 5));
          inHand--;
        }, { concurrency: 3 }).runUntilIdle();
        assert.equal(result.done, 24);
        assert.equal(most, 3);
      }),
  );

  await t.step(
    "stop: items in hand past the deadline are released, unattempted, and run later",
    () =>
      withEngine(options, async (engine) => {
        await engine.enqueue([item("slow")]);
        const stop = new AbortController();
        let started = () => {};
        const began = new Promise<void>((resolve) => started = resolve);
        const running = worker(engine, (_work, context) => {
          started();
          return new Promise((_resolve, reject) => {
            context.signal.addEventListener("abort", () => reject(context.signal.reason));
          });
        }, { deadlineMs: 50 }).run(stop.signal);
        await began;
        stop.abort();
        await running;
        const released = await engine.status("packument:slow");
        assert.equal(released?.state, "queued");
        assert.equal(released?.attempts, 0);
        const again = await worker(engine, () => Promise.resolve()).runUntilIdle();
        assert.deepEqual(again, { done: 1, dead: 0 });
      }),
  );

  if (options.crash) {
    const crash = options.crash;
    await t.step(
      "at least once: an item in hand at a crash is delivered again",
      () =>
        withEngine(options, async (engine) => {
          await engine.enqueue([item("crash")]);
          let started = () => {};
          const began = new Promise<void>((resolve) => started = resolve);
          const stop = new AbortController();
          // This run never settles its item: the crash leaves it in hand.
          const abandoned = worker(engine, () => {
            started();
            return new Promise<void>(() => {});
          }).run(stop.signal);
          await began;
          const reopened = await crash(engine);
          stop.abort();
          void abandoned.catch(() => {});
          const runs: string[] = [];
          const result = await worker(reopened, (work) => {
            runs.push(nameOf(work));
            return Promise.resolve();
          }).runUntilIdle();
          assert.deepEqual(runs, ["crash"]);
          assert.deepEqual(result, { done: 1, dead: 0 });
          return reopened;
        }),
    );
  }
}
