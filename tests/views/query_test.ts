import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import type { StorageDriver } from "../../src/storage/driver.ts";
import { packumentKey } from "../../src/storage/keys.ts";
import {
  type BatchRunner,
  runInOrder,
  startWorkerRunner,
  type ViewWorkerFactory,
} from "../../src/views/dispatch.ts";
import { serveViewWorker } from "../../src/views/worker.ts";
import {
  listSuffixes,
  mergeSuffixes,
  type ScanOptions,
  scanView,
  viewSide,
} from "../../src/views/query.ts";
import type { BatchResult, ScanTask } from "../../src/views/scan.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { EXAMPLE_PACKUMENTS, seed } from "./seed.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";

/** A driver whose close() leaves the shared driver open (each "worker" closes its own). */
function shared(driver: StorageDriver): StorageDriver {
  return new Proxy(driver, {
    get: (target, key) => {
      if (key === "close") return () => Promise.resolve();
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Workers on this thread, over message channels (structured clone, as real workers). */
function channelWorkers(driver: StorageDriver, started: { count: number }): ViewWorkerFactory {
  return ({ message }) => {
    started.count++;
    const channel = new MessageChannel();
    serveViewWorker({
      post: (m) => channel.port2.postMessage(m),
      listen: (handler) => {
        channel.port2.onmessage = (event) => handler(event.data);
      },
    }, {
      openStorage: () => Promise.resolve(shared(driver)),
      importModule: (specifier) => import(specifier),
    });
    channel.port1.onmessage = (event) => message(event.data);
    return {
      postMessage: (m) => channel.port1.postMessage(m),
      terminate: () => {
        channel.port1.close();
        channel.port2.close();
      },
    };
  };
}

async function fixtureCache(): Promise<{ driver: MemoryDriver; cache: Cache }> {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { bloom: false });
  await seed(cache, "npm", EXAMPLE_PACKUMENTS);
  await seed(cache, "npm", await loadFixturePackuments());
  for (let i = 0; i < 40; i++) {
    await seed(cache, "npm", { [`gen-${i}`]: { name: `gen-${i}`, n: i, tags: [i % 3] } });
  }
  return { driver, cache };
}

async function collect(cache: Cache, options: ScanOptions): Promise<string[]> {
  const lines: string[] = [];
  for await (const result of scanView(cache, options)) lines.push(...result.lines);
  return lines;
}

const SIDE = {
  prefix: "v1:packument:npm:",
  where: "name != 'ms'",
  select: "name, versions | keys | length as versions, license",
};

Deno.test("scanView() gives the same lines on 1, 2, 3 and 4 threads, in name order", async () => {
  const { driver, cache } = await fixtureCache();
  const task: ScanTask = { kind: "records", view: SIDE, filter: "versions >= 0", format: "ndjson" };
  const started = { count: 0 };
  const run = (count: number, batchSize: number) =>
    collect(cache, {
      task,
      suffixes: listSuffixes(cache, SIDE.prefix),
      batchSize,
      minForWorkers: 0,
      workers: count > 1
        ? { count, factory: channelWorkers(driver, started), storage: null }
        : undefined,
    });
  const one = await run(1, 32);
  assert.equal(one.length, 49);
  const names = one.map((line) => JSON.parse(line).name as string);
  assert.deepStrictEqual(names, [...names].sort());
  assert.ok(!names.includes("ms"));
  for (const count of [2, 3, 4]) {
    for (const batchSize of [1, 3, 7]) {
      assert.deepStrictEqual(
        await run(count, batchSize),
        one,
        `${count} threads, batch ${batchSize}`,
      );
    }
  }
  assert.equal(started.count, (1 + 2 + 3) * 3, "1, 2 and 3 workers for each batch size");
});

Deno.test("scanView() a short scan stays on the calling thread", async () => {
  const { driver, cache } = await fixtureCache();
  const started = { count: 0 };
  const task: ScanTask = { kind: "records", view: SIDE, format: "ndjson", count: true };
  const results: BatchResult[] = [];
  for await (
    const result of scanView(cache, {
      task,
      suffixes: listSuffixes(cache, SIDE.prefix),
      workers: { count: 4, factory: channelWorkers(driver, started), storage: null },
    })
  ) results.push(result);
  assert.equal(started.count, 0, "fewer than 256 documents");
  assert.equal(results.reduce((n, r) => n + r.count, 0), 49);
  assert.ok(results.every((r) => r.lines.length === 0), "only counted");
});

Deno.test("scanView() over an empty origin gives nothing", async () => {
  const { cache } = await fixtureCache();
  const task: ScanTask = {
    kind: "records",
    view: { prefix: "v1:packument:none:" },
    format: "json",
  };
  assert.deepStrictEqual(
    await collect(cache, { task, suffixes: listSuffixes(cache, "v1:packument:none:") }),
    [],
  );
});

Deno.test("scanView() leaves out 404 records and reports bodies that are not JSON", async () => {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { bloom: false });
  await seed(cache, "o", { a: { name: "a" }, c: "{not json", d: { name: "d" } });
  await cache.put(packumentKey("o", "b"), new TextEncoder().encode("{}"), { status: 404 });
  const results: BatchResult[] = [];
  const task: ScanTask = { kind: "records", view: { prefix: "v1:packument:o:" }, format: "ndjson" };
  for await (
    const r of scanView(cache, { task, suffixes: listSuffixes(cache, "v1:packument:o:") })
  ) results.push(r);
  assert.deepStrictEqual(results.flatMap((r) => r.lines), ['{"name":"a"}', '{"name":"d"}']);
  const skipped = results.flatMap((r) => r.skipped);
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0]!.key, packumentKey("o", "c"));
  assert.match(skipped[0]!.reason, /^not JSON/);
});

Deno.test("scanView() a corrupt entry is reported by the cache and left out, on workers too", async () => {
  for (const threads of [1, 2]) {
    const driver = new MemoryDriver();
    const corrupt: string[] = [];
    const cache = await Cache.open(driver, {
      bloom: false,
      inlineMax: 16,
      onCorrupt: (key) => corrupt.push(key),
    });
    const docs: Record<string, unknown> = {};
    for (let i = 0; i < 10; i++) docs[`p${i}`] = { name: `p${i}`, pad: "x".repeat(i * 10) };
    await seed(cache, "o", docs);
    // Flip a byte of a body stored apart, and of an inline one.
    for (const key of [packumentKey("o", "p5"), packumentKey("o", "p0")]) {
      const raw = (await driver.get(key))!;
      const header = JSON.parse(
        new TextDecoder().decode(
          raw.subarray(8, 8 + new DataView(raw.buffer, raw.byteOffset).getUint32(4)),
        ),
      );
      const target = header.body ?? key;
      const bytes = (await driver.get(target))!.slice();
      bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 1;
      await driver.put(target, bytes);
    }
    const workerCorrupt: string[] = [];
    const task: ScanTask = {
      kind: "records",
      view: { prefix: "v1:packument:o:", select: "name" },
      format: "ndjson",
    };
    const lines = await collect(cache, {
      task,
      suffixes: listSuffixes(cache, "v1:packument:o:"),
      batchSize: 2,
      minForWorkers: 0,
      workers: threads > 1
        ? { count: threads, factory: channelWorkers(driver, { count: 0 }), storage: null }
        : undefined,
      onCorrupt: (key) => workerCorrupt.push(key),
    });
    assert.deepStrictEqual(
      lines.map((l) => JSON.parse(l).name),
      ["p1", "p2", "p3", "p4", "p6", "p7", "p8", "p9"],
      `${threads} threads`,
    );
    assert.deepStrictEqual(
      [...corrupt, ...workerCorrupt].sort(),
      [packumentKey("o", "p0"), packumentKey("o", "p5")],
    );
  }
});

Deno.test("scanView() formats lines and csv, with --filter on output names", async () => {
  const { cache } = await fixtureCache();
  const side = { prefix: "v1:packument:npm:", select: "name as n, tags" };
  const run = (task: ScanTask) =>
    collect(cache, { task, suffixes: listSuffixes(cache, side.prefix) });
  assert.deepStrictEqual(
    await run({
      kind: "records",
      view: { ...side, select: "name" },
      filter: 'name < "gen-11"',
      format: "lines",
    }),
    ["chalk", "debug", "gen-0", "gen-1", "gen-10"],
  );
  assert.deepStrictEqual(
    await run({ kind: "records", view: side, filter: "n = 'gen-2' || n = 'ms'", format: "csv" }),
    ["gen-2,[2]", "ms,"],
  );
  await assert.rejects(
    () => run({ kind: "records", view: side, format: "lines" }),
    /exactly one field/,
  );
});

Deno.test("runInOrder() yields in batch order whatever order runners finish in", async () => {
  const runner = (delays: Map<string, number>): BatchRunner => ({
    run: async (suffixes) => {
      await new Promise((r) => setTimeout(r, delays.get(suffixes[0]!) ?? 0));
      return { lines: [...suffixes], count: suffixes.length, skipped: [] };
    },
    close: () => Promise.resolve(),
    terminate: () => {},
  });
  const batches = Array.from({ length: 30 }, (_, i) => [String(i).padStart(2, "0")]);
  const delays = new Map(batches.map(([b], i) => [b!, (i * 7) % 5]));
  const lines: string[] = [];
  for await (const r of runInOrder(batches, [runner(delays), runner(delays), runner(delays)])) {
    lines.push(...r.lines);
  }
  assert.deepStrictEqual(lines, batches.flat());
  await assert.rejects(async () => {
    for await (const _ of runInOrder([], [])) { /* nothing */ }
  }, RangeError);
});

Deno.test("runInOrder() a failed batch ends the run after the batches before it", async () => {
  const runner: BatchRunner = {
    run: (suffixes) =>
      suffixes[0] === "bad"
        ? Promise.reject(new Error("disk on fire"))
        : Promise.resolve({ lines: [...suffixes], count: 1, skipped: [] }),
    close: () => Promise.resolve(),
    terminate: () => {},
  };
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const r of runInOrder([["a"], ["b"], ["bad"], ["c"]], [runner])) {
      seen.push(...r.lines);
    }
  }, /disk on fire/);
  assert.deepStrictEqual(seen, ["a", "b"]);
});

Deno.test("runInOrder() keeps at most `window` batches taken", async () => {
  let taken = 0;
  let most = 0;
  let inFlight = 0;
  async function* batches() {
    for (let i = 0; i < 50; i++) {
      taken++;
      yield [String(i)];
    }
  }
  const runner: BatchRunner = {
    run: async (s) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
      return { lines: [...s], count: 1, skipped: [] };
    },
    close: () => Promise.resolve(),
    terminate: () => {},
  };
  let yielded = 0;
  for await (const _ of runInOrder(batches(), [runner, runner], { perRunner: 2, window: 3 })) {
    yielded++;
    assert.ok(taken - yielded <= 3, `taken ${taken}, yielded ${yielded}`);
    if (yielded === 10) break;
  }
  assert.ok(most <= 3);
});

Deno.test("startWorkerRunner() fails with the worker's error when opening fails", async () => {
  const factory: ViewWorkerFactory = ({ message }) => {
    const channel = new MessageChannel();
    serveViewWorker({
      post: (m) => channel.port2.postMessage(m),
      listen: (handler) => {
        channel.port2.onmessage = (event) => handler(event.data);
      },
    }, { openStorage: () => Promise.reject(new TypeError("no such bucket")) });
    channel.port1.onmessage = (event) => message(event.data);
    return {
      postMessage: (m) => channel.port1.postMessage(m),
      terminate: () => {
        channel.port1.close();
        channel.port2.close();
      },
    };
  };
  const task: ScanTask = { kind: "records", view: { prefix: "x" }, format: "ndjson" };
  const error = await startWorkerRunner(factory, { storage: null, task }).catch((e) => e);
  assert.equal(error.name, "TypeError");
  assert.equal(error.message, "no such bucket");
});

Deno.test("startWorkerRunner() a worker that crashes fails its batches", async () => {
  let crash!: (error: unknown) => void;
  const factory: ViewWorkerFactory = ({ message, error }) => {
    crash = error;
    queueMicrotask(() => message({ type: "ready" }));
    return { postMessage: () => {}, terminate: () => {} };
  };
  const task: ScanTask = { kind: "records", view: { prefix: "x" }, format: "ndjson" };
  const runner = await startWorkerRunner(factory, { storage: null, task });
  const batch = runner.run(["00"]);
  crash(new Error("out of memory"));
  await assert.rejects(batch, /out of memory/);
  await assert.rejects(runner.run(["01"]), /out of memory/);
  await runner.close();
});

Deno.test("scanView() stopping early stops the workers", async () => {
  const { driver, cache } = await fixtureCache();
  const terminated = { count: 0 };
  const inner = channelWorkers(driver, { count: 0 });
  const factory: ViewWorkerFactory = (events) => {
    const port = inner(events);
    return {
      postMessage: (m) => port.postMessage(m),
      terminate: () => {
        terminated.count++;
        port.terminate();
      },
    };
  };
  const task: ScanTask = { kind: "records", view: SIDE, format: "ndjson" };
  for await (
    const _ of scanView(cache, {
      task,
      suffixes: listSuffixes(cache, SIDE.prefix),
      batchSize: 2,
      minForWorkers: 0,
      workers: { count: 3, factory, storage: null },
    })
  ) break;
  assert.equal(terminated.count, 2);
});

Deno.test("scanView() workers that read through the calling thread never open storage, and give the same lines", async () => {
  const { driver, cache } = await fixtureCache();
  // A corrupt body: a worker finds it through the calling thread and drops it.
  const doc = { name: "zz-corrupt", pad: "x".repeat(4096) };
  await seed(cache, "npm", { "zz-corrupt": doc });
  const key = packumentKey("npm", "zz-corrupt");
  const raw = (await driver.get(key))!;
  const header = JSON.parse(
    new TextDecoder().decode(
      raw.subarray(8, 8 + new DataView(raw.buffer, raw.byteOffset).getUint32(4)),
    ),
  );
  const target = header.body ?? key;
  const bytes = (await driver.get(target))!.slice();
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 1;
  await driver.put(target, bytes);
  let reads = 0;
  const counting = new Proxy(driver, {
    get: (target, name) => {
      const value = Reflect.get(target, name, target);
      if (name === "get") reads++;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const factory: ViewWorkerFactory = ({ message }) => {
    const channel = new MessageChannel();
    serveViewWorker({
      post: (m) => channel.port2.postMessage(m),
      listen: (handler) => {
        channel.port2.onmessage = (event) => handler(event.data);
      },
    }, {
      openStorage: () => Promise.reject(new Error("opened storage")),
    });
    channel.port1.onmessage = (event) => message(event.data);
    return {
      postMessage: (m) => channel.port1.postMessage(m),
      terminate: () => {
        channel.port1.close();
        channel.port2.close();
      },
    };
  };
  const task: ScanTask = { kind: "records", view: SIDE, format: "ndjson" };
  const corrupt: string[] = [];
  const run = async (count: number) => {
    const mainCache = await Cache.open(counting, {
      bloom: false,
      onCorrupt: (k) => corrupt.push(k),
    });
    return await collect(mainCache, {
      task,
      suffixes: listSuffixes(cache, SIDE.prefix),
      batchSize: 1,
      minForWorkers: 0,
      workers: count > 1 ? { count, factory, storage: null, readThrough: true } : undefined,
      onCorrupt: (k) => corrupt.push(k),
    });
  };
  const one = await collect(cache, { task, suffixes: listSuffixes(cache, SIDE.prefix) });
  assert.equal(one.length, 49);
  reads = 0;
  assert.deepStrictEqual(await run(3), one);
  // Every document was read on the calling thread's driver, the workers' reads included.
  assert.ok(reads >= one.length + 1, `${reads} reads`);
  assert.deepStrictEqual(corrupt, [key]);
});

Deno.test("scanView() rejects bad options", async () => {
  const { cache } = await fixtureCache();
  const task: ScanTask = { kind: "records", view: SIDE, format: "ndjson" };
  await assert.rejects(() => collect(cache, { task, suffixes: [], batchSize: 0 }), RangeError);
  await assert.rejects(() => collect(cache, { task, suffixes: [], minForWorkers: -1 }), RangeError);
});

Deno.test("listSuffixes() and mergeSuffixes() list names in key order", async () => {
  const { cache } = await fixtureCache();
  await seed(cache, "other", { "ms": {}, "zzz": {}, "aaa": {} });
  await cache.put("v1:packument:other:not-hex", new Uint8Array(), { status: 200 });
  const a = await Array.fromAsync(listSuffixes(cache, "v1:packument:other:"));
  assert.deepStrictEqual(a, ["616161", "6d73", "7a7a7a"]);
  async function* of(items: string[]) {
    yield* items;
  }
  assert.deepStrictEqual(
    await Array.fromAsync(mergeSuffixes(of(["61", "6162", "63"]), of(["6162", "62", "64"]))),
    ["61", "6162", "62", "63", "64"],
  );
  assert.deepStrictEqual(await Array.fromAsync(mergeSuffixes(of([]), of(["61"]))), ["61"]);
});

Deno.test("viewSide() takes a view's prefix, where and select", () => {
  assert.deepStrictEqual(
    viewSide({
      name: "v",
      origin: "npm",
      type: "corgi",
      where: "a",
      createdAt: "",
    }),
    { prefix: "v1:corgi:npm:", where: "a", select: undefined },
  );
});
