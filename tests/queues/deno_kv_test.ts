import assert from "node:assert/strict";
import { serialize } from "node:v8";
import { join } from "node:path";
import { DenoKvQueue } from "../../queues/deno_kv.deno.ts";
import type { QueueEngine } from "../../src/worker/queue.ts";
import type { WorkItem } from "../../src/worker/items.ts";
import { runQueueContract } from "../_support/queue_contract.ts";

const REGISTRY = "http://127.0.0.1:9/";
const ROOT = new URL("../..", import.meta.url).pathname;

function item(name: string, priority = 0, names: string[] = [name]): WorkItem {
  return {
    type: "packument",
    id: `packument:${name}`,
    payload: { registry: REGISTRY, names },
    priority,
    attempts: 0,
  };
}

/** Takes `count` items off the queue, acking each, and returns them. */
async function take(queue: DenoKvQueue, count: number): Promise<WorkItem[]> {
  const taken: WorkItem[] = [];
  const stop = new AbortController();
  await queue.consume((work) => {
    taken.push(work);
    if (taken.length >= count) stop.abort();
    return Promise.resolve({ kind: "ack" });
  }, { concurrency: 1, signal: stop.signal });
  return taken;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kv_queue_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("DenoKvQueue meets the queue contract, crash included", async (t) => {
  await withTempDir(async (dir) => {
    const paths = new Map<QueueEngine, string>();
    let n = 0;
    // A short lease, so the crash step's item comes back in about a second.
    const options = { leaseMs: 1000, pollMs: 100 };
    await runQueueContract(t, {
      async open() {
        const path = join(dir, `queue_${n++}.sqlite`);
        const engine = await DenoKvQueue.open(path, options);
        paths.set(engine, path);
        return engine;
      },
      async crash(engine) {
        // As if the process died: heartbeats and timers stop, nothing is settled or
        // released, the handle is closed; then a new process opens the same file.
        await engine.close();
        const reopened = await DenoKvQueue.open(paths.get(engine)!, options);
        paths.set(reopened, paths.get(engine)!);
        return reopened;
      },
    });
  });
});

Deno.test("DenoKvQueue.enqueue() takes 2,500 items in one call, split over several commits", async () => {
  const queue = await DenoKvQueue.open(":memory:");
  try {
    const items = Array.from({ length: 2500 }, (_, i) => item(`n${i}`, i % 3));
    // The same id again past the first chunks: still a duplicate of this call.
    items.splice(1700, 0, item("n5", 2));
    const result = await queue.enqueue(items);
    assert.equal(result.accepted.length, 2500);
    assert.deepEqual(result.accepted.slice(0, 3), ["packument:n0", "packument:n1", "packument:n2"]);
    assert.deepEqual(result.duplicates, ["packument:n5"]);
    assert.deepEqual(await queue.stats(), { queued: 2500, running: 0, done: 0, dead: 0 });
    const again = await queue.enqueue(items.slice(990, 1210));
    assert.equal(again.duplicates.length, 220);
    assert.equal(again.accepted.length, 0);
    // Priority 2 first, in the order given, across chunks.
    const first = await take(queue, 4);
    assert.deepEqual(first.map((w) => w.id), [
      "packument:n2",
      "packument:n5",
      "packument:n8",
      "packument:n11",
    ]);
    assert.deepEqual(await queue.stats(), { queued: 2496, running: 0, done: 4, dead: 0 });
  } finally {
    await queue.close();
  }
});

/** Every value the queue stored, with its key. */
async function values(kv: Deno.Kv): Promise<Deno.KvEntry<unknown>[]> {
  return await Array.fromAsync(kv.list({ prefix: ["queue"] }));
}

Deno.test("DenoKvQueue stores 1,000-name batches under KV's 64 KiB value limit", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const queue = new DenoKvQueue(kv);
  /** Checks every stored value's size as V8 serializes it (KV's limit: 65,536 bytes). */
  async function assertAllFit(): Promise<void> {
    for (const entry of await values(kv)) {
      const size = serialize(entry.value).byteLength;
      assert.ok(size <= 65_536, `${JSON.stringify(entry.key)}: ${size} bytes`);
    }
  }
  try {
    const known: string[] = JSON.parse(
      await Deno.readTextFile(join(ROOT, "tests/fixtures/npm-high-impact.json")),
    );
    const longest = known.toSorted((a, b) => b.length - a.length).slice(0, 1000);
    // The longest names npm accepts: 214 characters.
    const widest = Array.from(
      { length: 1000 },
      (_, i) => `${"x".repeat(209)}${i}`.padEnd(214, "y"),
    );
    // Just under the size kept inline in the record (56 KiB of JSON).
    const edgy = Array.from({ length: 1000 }, (_, i) => `${"e".repeat(50)}${i}`.padEnd(54, "z"));
    const real = item("real", 0, longest);
    const wide = item("wide", 0, widest);
    const edge = item("edge", 0, edgy);
    await t.step("the payloads are as large as a batch gets", () => {
      assert.ok(JSON.stringify(real.payload).length > 40_000);
      assert.ok(JSON.stringify(wide.payload).length > 215_000);
      const inline = JSON.stringify(edge.payload).length;
      assert.ok(inline > 56_000 && inline <= 56 * 1024, `${inline}`);
    });
    await t.step("enqueued, every stored value is under 64 KiB", async () => {
      assert.equal((await queue.enqueue([real, wide, edge])).accepted.length, 3);
      await assertAllFit();
      assert.equal((await values(kv)).filter((e) => e.key[1] === "body").length, 4);
      for (const work of [real, wide, edge]) {
        assert.ok(
          JSON.stringify((await queue.status(work.id))?.payload) === JSON.stringify(work.payload),
        );
      }
    });
    await t.step("delivered whole; retried, a narrowed payload drops the parts", async () => {
      const seen: WorkItem[] = [];
      const stop = new AbortController();
      await queue.consume((work) => {
        seen.push(work);
        if (seen.length === 3) stop.abort();
        if (work.id === edge.id) {
          // The longest error kept, in characters V8 stores in two bytes each.
          return Promise.resolve({ kind: "retry", delayMs: 60_000, error: "é".repeat(5000) });
        }
        const narrowed = { registry: REGISTRY, names: ["ms"] };
        return Promise.resolve({ kind: "retry", delayMs: 60_000, error: "e", payload: narrowed });
      }, { concurrency: 3, signal: stop.signal });
      assert.deepEqual(seen.map((w) => w.id).sort(), [edge.id, real.id, wide.id]);
      for (const work of seen) {
        const sent = [real, wide, edge].find((w) => w.id === work.id)!;
        assert.ok(JSON.stringify(work.payload) === JSON.stringify(sent.payload), work.id);
      }
      await assertAllFit();
      assert.equal((await values(kv)).filter((e) => e.key[1] === "body").length, 0);
      const narrowed = { registry: REGISTRY, names: ["ms"] };
      assert.deepEqual((await queue.status(wide.id))?.payload, narrowed);
      assert.equal((await queue.status(edge.id))?.lastError?.length, 2000);
    });
    await t.step("buried, the dead letter keeps the whole payload", async () => {
      await queue.bury(item("wide-dead", 0, widest), "GET failed: 403");
      const [dead] = await queue.dead();
      assert.ok(JSON.stringify(dead?.payload) === JSON.stringify(wide.payload));
      assert.equal(dead?.lastError, "GET failed: 403");
    });
  } finally {
    await queue.close();
    // The engine did not own the handle: it is still open.
    assert.notEqual((await kv.get(["queue", "count", "dead"])).value, null);
    kv.close();
  }
});

Deno.test("DenoKvQueue reopened on the same file sees queued items and status records", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "queue.sqlite");
    const first = await DenoKvQueue.open(path);
    await first.enqueue([item("a", 1), item("b", 5), item("c", 3)]);
    assert.deepEqual((await take(first, 1)).map((w) => w.id), ["packument:b"]);
    await first.bury(item("gone"), "GET failed: 403");
    await first.close();

    const again = await DenoKvQueue.open(path);
    try {
      assert.deepEqual(await again.stats(), { queued: 2, running: 0, done: 1, dead: 1 });
      assert.equal((await again.status("packument:b"))?.state, "done");
      assert.equal((await again.status("packument:a"))?.state, "queued");
      assert.deepEqual((await again.dead()).map((d) => [d.id, d.lastError]), [
        ["packument:gone", "GET failed: 403"],
      ]);
      assert.deepEqual((await again.enqueue([item("a")])).duplicates, ["packument:a"]);
      assert.deepEqual((await take(again, 2)).map((w) => w.id), ["packument:c", "packument:a"]);
      assert.deepEqual(await again.stats(), { queued: 0, running: 0, done: 3, dead: 1 });
    } finally {
      await again.close();
    }
  });
});

Deno.test("DenoKvQueue is woken by its KV queue message, not only by its poll", async () => {
  const kv = await Deno.openKv(":memory:");
  // Polls once a minute: only the wake-up message can deliver within the test.
  const consumer = new DenoKvQueue(kv, { pollMs: 60_000 });
  const producer = new DenoKvQueue(kv, { pollMs: 60_000 });
  const other = new DenoKvQueue(kv, { prefix: ["other"], pollMs: 60_000 });
  try {
    const stop = new AbortController();
    const taken: string[] = [];
    const running = consumer.consume((work) => {
      taken.push(work.id);
      stop.abort();
      return Promise.resolve({ kind: "ack" });
    }, { concurrency: 1, signal: stop.signal });
    // The consumer has looked once and found nothing; then another engine enqueues.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await other.enqueue([item("elsewhere")]);
    await producer.enqueue([item("woken")]);
    const timeout = setTimeout(() => stop.abort(), 10_000);
    await running;
    clearTimeout(timeout);
    assert.deepEqual(taken, ["packument:woken"]);
    assert.equal((await other.status("packument:elsewhere"))?.state, "queued");
    assert.equal(consumer.handleMessage({ allDocsQueue: ["queue"] }), true);
    assert.equal(consumer.handleMessage({ allDocsQueue: ["other"] }), false);
    assert.equal(consumer.handleMessage("hello"), false);
  } finally {
    await Promise.all([consumer.close(), producer.close(), other.close()]);
    kv.close();
  }
});

Deno.test("DenoKvQueue redelivers an item whose process was killed with SIGKILL", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "queue.sqlite");
    const child = join(dir, "child.ts");
    await Deno.writeTextFile(
      child,
      `import { DenoKvQueue } from ${
        JSON.stringify(new URL("queues/deno_kv.deno.ts", `file://${ROOT}`).href)
      };
const queue = await DenoKvQueue.open(Deno.args[0], { leaseMs: 500 });
await queue.enqueue([${JSON.stringify(item("killed"))}]);
await queue.consume(() => {
  console.log("in hand");
  return new Promise(() => {});
}, { concurrency: 1, signal: new AbortController().signal });
`,
    );
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", join(ROOT, "deno.json"), child, path],
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    }).spawn();
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("in hand")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    proc.kill("SIGKILL");
    await reader.cancel();
    assert.equal((await proc.status).signal, "SIGKILL");
    assert.match(out, /in hand/);

    const queue = await DenoKvQueue.open(path, { leaseMs: 500, pollMs: 100 });
    try {
      assert.equal((await queue.status("packument:killed"))?.state, "running");
      const again = await take(queue, 1);
      assert.deepEqual(again.map((w) => [w.id, w.attempts]), [["packument:killed", 0]]);
      assert.equal((await queue.status("packument:killed"))?.state, "done");
    } finally {
      await queue.close();
    }
  });
});

Deno.test("DenoKvQueue checks its options up front", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    assert.throws(
      () => new DenoKvQueue(kv, { leaseMs: 0 }),
      new RangeError(
        "Cannot open the kv queue: 'leaseMs' must be an integer of at least 30, received 0",
      ),
    );
    assert.throws(() => new DenoKvQueue(kv, { pollMs: 1.5 }), RangeError);
    await assert.rejects(DenoKvQueue.open(":memory:", { leaseMs: -1 }), RangeError);
    const closed = new DenoKvQueue(kv);
    await closed.close();
    await assert.rejects(closed.enqueue([item("late")]), /closed/);
  } finally {
    kv.close();
  }
});
