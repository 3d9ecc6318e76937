/**
 * Storage driver benchmark: put, get and list of many small values and of fewer large ones, for
 * the fs driver, the deno_kv driver (file-backed), npm's `cacache` and a bare floor of plain
 * `node:fs/promises` files without atomicity. Every contender gets the same random payloads, a
 * fresh temporary directory per run, and the same number of operations in flight. Each contender
 * runs up to three times per workload (fewer when its runs use up its time budget, so the whole
 * benchmark stays within about three minutes); the best time of its runs is reported, with
 * ratios against cacache and the floor.
 *
 * Goal: the fs driver is at least 3x faster than cacache on put+get.
 *
 * Run with `deno run -A bench/drivers.ts`, or add `--quick` for a smaller run.
 *
 * @module
 */

import * as fsp from "node:fs/promises";
import { join } from "node:path";
import cacache from "npm:cacache@20.0.4";
import { FsDriver } from "../drivers/fs.ts";
import { denoFsOps } from "../drivers/fs.deno.ts";
import { DenoKvDriver } from "../drivers/deno_kv.deno.ts";
import type { StorageDriver } from "../src/storage/driver.ts";

const quick = Deno.args.includes("--quick");
const CONCURRENCY = 16;
const RUNS = 3;
/** A contender starts no further run of a workload once its runs took this long. */
const BUDGET_MS = quick ? 4_000 : 22_000;

/** One benchmark workload. */
interface Workload {
  name: string;
  count: number;
  size: number;
}

const WORKLOADS: Workload[] = quick
  ? [{ name: "2 KB", count: 2_000, size: 2048 }, {
    name: "1 MB",
    count: 40,
    size: 1 << 20,
  }]
  : [{ name: "2 KB", count: 20_000, size: 2048 }, {
    name: "1 MB",
    count: 200,
    size: 1 << 20,
  }];

/** The operations every contender implements. */
interface Contender {
  name: string;
  open(dir: string): Promise<void>;
  put(key: string, value: Uint8Array): Promise<void>;
  get(key: string): Promise<number>;
  list(): Promise<number>;
  close(): Promise<void>;
}

/** A contender on a {@linkcode StorageDriver}. */
function driverContender(
  name: string,
  make: (dir: string) => Promise<StorageDriver>,
): Contender {
  let driver: StorageDriver | undefined;
  return {
    name,
    async open(dir: string): Promise<void> {
      driver = await make(dir);
    },
    put(key: string, value: Uint8Array): Promise<void> {
      return driver!.put(key, value);
    },
    async get(key: string): Promise<number> {
      return (await driver!.get(key))?.byteLength ?? -1;
    },
    async list(): Promise<number> {
      let n = 0;
      for await (const _ of driver!.list()) n++;
      return n;
    },
    async close(): Promise<void> {
      await driver?.close();
      driver = undefined;
    },
  };
}

/** npm's content-addressable cache. */
function cacacheContender(): Contender {
  let root = "";
  return {
    name: "cacache",
    open(dir: string): Promise<void> {
      root = dir;
      return Promise.resolve();
    },
    async put(key: string, value: Uint8Array): Promise<void> {
      await cacache.put(root, key, value);
    },
    async get(key: string): Promise<number> {
      return (await cacache.get(root, key)).data.byteLength;
    },
    async list(): Promise<number> {
      return Object.keys(await cacache.ls(root)).length;
    },
    close(): Promise<void> {
      return Promise.resolve();
    },
  };
}

/** Plain files in one flat directory: the least any file store can do. */
function floorContender(): Contender {
  let root = "";
  const fileName = (key: string): string => encodeURIComponent(key);
  return {
    name: "floor",
    async open(dir: string): Promise<void> {
      root = dir;
      await fsp.mkdir(root, { recursive: true });
    },
    async put(key: string, value: Uint8Array): Promise<void> {
      await fsp.writeFile(join(root, fileName(key)), value);
    },
    async get(key: string): Promise<number> {
      return (await fsp.readFile(join(root, fileName(key)))).byteLength;
    },
    async list(): Promise<number> {
      return (await fsp.readdir(root)).length;
    },
    close(): Promise<void> {
      return Promise.resolve();
    },
  };
}

/** Runs `fn` over `items` with at most {@linkcode CONCURRENCY} calls in flight. */
async function pool<T>(
  items: readonly T[],
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  async function worker(): Promise<void> {
    while (next < items.length) await fn(items[next++]!);
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Random bytes (getRandomValues fills at most 64 KiB at a time). */
function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(size, at + 65536)));
  }
  return out;
}

/** Keys shaped like the real ones: hex-encoded, mostly unscoped package names. */
function makeKeys(count: number): string[] {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._";
  const keys = new Set<string>();
  let seed = 12345;
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return Math.floor((seed / 2 ** 32) * n);
  };
  while (keys.size < count) {
    let name = "";
    const length = 2 + random(18);
    for (let i = 0; i < length; i++) {
      name += alphabet[random(i === 0 ? 26 : alphabet.length)];
    }
    if (random(5) === 0) name = `@${name.slice(0, 1 + random(6))}/${name}`;
    const hex = Array.from(
      new TextEncoder().encode(name),
      (b) => b.toString(16).padStart(2, "0"),
    )
      .join("");
    keys.add(`v1:packument:npm:${hex}`);
  }
  return [...keys];
}

/** Flushes dirty pages so one contender's writeback does not slow down the next. */
async function sync(): Promise<void> {
  try {
    await new Deno.Command("sync", { stdout: "null", stderr: "null" }).output();
  } catch {
    // No sync command: run without.
  }
}

/** Timings of one run, in milliseconds. */
interface Timing {
  put: number;
  get: number;
  list: number;
  rss: number;
}

/** One run of a contender over a workload, in a fresh directory. */
async function runOnce(
  contender: Contender,
  keys: readonly string[],
  values: readonly Uint8Array[],
  size: number,
): Promise<Timing> {
  const dir = await Deno.makeTempDir({ prefix: `bench-${contender.name}-` });
  let rss = Deno.memoryUsage().rss;
  const sampler = setInterval(
    () => (rss = Math.max(rss, Deno.memoryUsage().rss)),
    25,
  );
  try {
    await contender.open(dir);
    const indexes = keys.map((_, i) => i);
    let t0 = performance.now();
    await pool(indexes, (i) => contender.put(keys[i]!, values[i]!));
    const put = performance.now() - t0;
    let bytes = 0;
    t0 = performance.now();
    await pool(indexes, async (i) => {
      const n = await contender.get(keys[i]!);
      bytes += n;
    });
    const get = performance.now() - t0;
    if (bytes !== keys.length * size) {
      throw new RangeError(`${contender.name} read ${bytes} bytes`);
    }
    t0 = performance.now();
    const listed = await contender.list();
    const list = performance.now() - t0;
    if (listed !== keys.length) {
      throw new RangeError(`${contender.name} listed ${listed} keys`);
    }
    await contender.close();
    return { put, get, list, rss: Math.max(rss, Deno.memoryUsage().rss) };
  } finally {
    clearInterval(sampler);
    await Deno.remove(dir, { recursive: true });
  }
}

const contenders: Contender[] = [
  driverContender("fs", (dir) => Promise.resolve(new FsDriver(dir))),
  // What the CLI uses on Deno: the same driver on Deno's own file operations.
  driverContender("fs (Deno ops)", (dir) => Promise.resolve(new FsDriver(dir, { ops: denoFsOps }))),
  driverContender("deno_kv", (dir) => DenoKvDriver.open(join(dir, "store.kv"))),
  cacacheContender(),
  floorContender(),
];

/** The contenders compared with cacache and the floor. */
const DRIVERS = ["fs", "fs (Deno ops)", "deno_kv"];
const started = performance.now();
const lines: string[] = [];
const ms = (value: number): string => value.toFixed(0);
const ratio = (base: number, value: number): string => `${(base / value).toFixed(2)}x`;
lines.push(
  `Storage drivers, best of up to ${RUNS} runs, ${CONCURRENCY} operations in flight` +
    (quick ? " (--quick)" : ""),
  "",
  `| workload | op | ${contenders.map((c) => `${c.name} ms`).join(" | ")} | ${
    DRIVERS.map((d) => `${d} vs cacache`).join(" | ")
  } | ${DRIVERS.map((d) => `${d} vs floor`).join(" | ")} |`,
  `| --- | --- |${" ---: |".repeat(contenders.length + 2 * DRIVERS.length)}`,
);
const goals: string[] = [];
const memory: string[] = [];
const runCounts: string[] = [];
for (const workload of WORKLOADS) {
  const keys = makeKeys(workload.count);
  const values = keys.map(() => randomBytes(workload.size));
  const timings = new Map<string, Timing[]>(
    contenders.map((c) => [c.name, []]),
  );
  const spent = new Map<string, number>(contenders.map((c) => [c.name, 0]));
  for (let run = 0; run < RUNS; run++) {
    // Rotate the order so no contender always runs first or last.
    for (let i = 0; i < contenders.length; i++) {
      const contender = contenders[(i + run) % contenders.length]!;
      if (run > 0 && spent.get(contender.name)! > BUDGET_MS) continue;
      await sync();
      const t0 = performance.now();
      timings.get(contender.name)!.push(
        await runOnce(contender, keys, values, workload.size),
      );
      spent.set(
        contender.name,
        spent.get(contender.name)! + performance.now() - t0,
      );
    }
  }
  const results = new Map<string, Timing>();
  for (const [name, runs] of timings) {
    results.set(name, {
      put: Math.min(...runs.map((r) => r.put)),
      get: Math.min(...runs.map((r) => r.get)),
      list: Math.min(...runs.map((r) => r.list)),
      rss: Math.max(...runs.map((r) => r.rss)),
    });
  }
  runCounts.push(
    `- ${workload.count.toLocaleString("en-US")} x ${workload.name}: ` +
      [...timings].map(([name, runs]) => `${name} ${runs.length}`).join(", "),
  );
  const fs = results.get("fs")!;
  const cc = results.get("cacache")!;
  const floor = results.get("floor")!;
  const label = `${workload.count.toLocaleString("en-US")} x ${workload.name}`;
  const ops: [string, (t: Timing) => number][] = [
    ["put", (t) => t.put],
    ["get", (t) => t.get],
    ["list", (t) => t.list],
    ["put+get", (t) => t.put + t.get],
  ];
  for (const [op, pick] of ops) {
    const cells = [
      ...contenders.map((c) => ms(pick(results.get(c.name)!))),
      ...DRIVERS.map((d) => ratio(pick(cc), pick(results.get(d)!))),
      ...DRIVERS.map((d) => ratio(pick(floor), pick(results.get(d)!))),
    ];
    lines.push(`| ${label} | ${op} | ${cells.join(" | ")} |`);
  }
  const fsRatio = (cc.put + cc.get) / (fs.put + fs.get);
  goals.push(
    `- ${label}: fs put+get is ${fsRatio.toFixed(2)}x cacache (goal >= 3x): ${
      fsRatio >= 3 ? "met" : "NOT met"
    }`,
  );
  memory.push(
    `- ${label}: peak RSS ` +
      [...results].map(([name, t]) => `${name} ${(t.rss / 2 ** 20).toFixed(0)} MB`).join(", "),
  );
}
lines.push(
  "",
  "Ratios are the other time divided by the contender's: above 1x means faster.",
  "",
  "Goal: fs driver >= 3x cacache on put+get.",
  ...goals,
  "",
  "Runs per contender:",
  ...runCounts,
  "",
  "Peak RSS of the whole process while each contender ran (payloads included):",
  ...memory,
  "",
  `Total ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
console.log(lines.join("\n"));
