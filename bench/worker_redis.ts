/**
 * Worker-on-Redis benchmark: the packument workload of `bench/fetch_list.ts` through the direct
 * path, through one worker process on a Redis queue and through two, beside a bare floor, in the
 * same run; then the planning figure for a crawl of the full registry derived from it.
 *
 * The origin is `tests/_support/registry_fixture.ts` in its own process on 127.0.0.1: 12,000
 * real package names (every 370th of the npm package `all-the-package-names`; 1,000, every
 * 4,400th, with `--quick`; 12,000 rather than fewer so that the processes' start and stop, a few
 * tenths of a second each, weigh little beside the items), each served with a generated packument (a few KB; 4 of them, 1 with
 * `--quick`, 2 to 8 MB), with no delay, so the work is CPU-bound. Every contender has 16 requests
 * in flight per process, fs storage and a fresh cache directory:
 *
 * 1. the direct path: `cli.ts packument fetch-list FILE`;
 * 2. one worker: `cli.ts worker enqueue packuments FILE --batch-size 50 --queue redis://...` (20
 *    with `--quick`: 240 or 50 items, more than the 16 each worker holds, so a second worker
 *    finds work to share; smaller batches share better but cost more queue CPU per name, and a
 *    full crawl's default of 100 a batch makes 45,000 items), then
 *    `cli.ts worker start --queue redis://... --no-auth --port 0 --until-idle --quiet
 *    --concurrency 16`; its CPU is the sum of the two processes and of the Redis server's own
 *    (`INFO cpu` before and after), its wall time the worker's, and its processing span the
 *    time from the first item taken to the last one done (BullMQ's `processedOn` and
 *    `finishedOn` of the completed jobs: the workers' start and stop are outside it);
 * 3. two workers: the same enqueue, then two such `worker start` processes started together on
 *    the same queue and the same cache directory (both exit once nothing is queued or running);
 *    the wall time is the slower one's, CPU the sum of the three processes and Redis's, peak RSS
 *    the larger worker's;
 * 4. a bare floor, this script in `--floor` mode: plain `fetch` plus one `Deno.writeFile` per
 *    name, 16 in flight.
 *
 * Each run gets a fresh `redis-server` (`tests/_support/redis.ts`, persistence off; install it
 * with `bash scripts/ensure_redis.sh`). Every process runs under `python3` (`subprocess.run`,
 * then `getrusage(RUSAGE_CHILDREN)`), so wall time, CPU time (user + sys) and peak memory (max
 * RSS) are measured the same way for all. The fixture's own CPU during each contender is read
 * from `/proc/PID/stat` and reported beside it, not added to it (it stands for the remote
 * registry), with the cores each fetching process kept busy (its CPU over its wall time): on
 * two cores, what one worker, the fixture and Redis already use bounds what a second worker can
 * add. One untimed floor pass warms the fixture; then each run measures the four contenders (in
 * a rotating order), 3 times (once with `--quick`), and the medians are reported. After each run
 * every cache is checked with `cache stats --json`: as many packuments as names, and the same
 * bytes as the direct path's cache, so no contender passes by doing less.
 *
 * Goals: two worker processes reach at least 1.6x the items per second of one while processing
 * (the same 12,000 names, over the processing span; the end-to-end ratio over the workers' wall
 * time, their start and stop included, is printed beside it), and the one worker's CPU per item
 * is at most 1.3x the direct path's. CPU per item is what a crawl of millions of names pays for
 * each: a path's CPU (for the worker: the enqueue process, the worker process from start to
 * exit, and Redis) less its fixed cost, measured once per run (an enqueue of one name, a
 * `worker start --until-idle` on an empty queue; the direct path on one name), over the
 * names. The whole run's ratio, fixed costs and all, is printed beside it. Exits 1 when one is missed or a
 * check fails. The figures are only meaningful on an otherwise idle machine: before each run
 * and at the end, the CPUs' idle time over a second is read from `/proc/stat`, and a warning is
 * printed when other work kept more than a quarter of the cores busy (the load average is not
 * used: it counts tasks sleeping uninterruptibly, and sits near 2 on an idle VM).
 *
 * The planning table: for 4.5 million names at a registry rate limit of 50, 200 and 1,000
 * requests/s (one request per name), the worker processes, the 2-core machines and the hours a
 * full crawl needs. A worker process's rate is the smaller of 1 / (processing span per item of
 * one worker) and 1 / (marginal CPU s per item: the one worker's CPU, enqueue and Redis
 * included, less that of a `worker start --until-idle` on an empty queue, measured once per
 * run); one process per core; the rate limit binds once workers x that rate reach it.
 *
 * Run with `deno run -A bench/worker_redis.ts` (`deno task bench:worker-redis`), or add
 * `--quick`. The caches go to a temporary directory in the system's (`--dir DIR` for another
 * place).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { Redis } from "ioredis";
import { DEFAULT_PREFIX, DEFAULT_QUEUE_NAME } from "../queues/bullmq.ts";
import { type RedisServer, startRedis } from "../tests/_support/redis.ts";
import {
  checkIdle,
  ensureNames,
  type FixtureProcess,
  type IdleCheck,
  measure,
  type Measurement,
  median,
  packumentFloor,
  processCpu,
  ROOT,
  startPackumentRegistry,
} from "./_measure.ts";

const FULL_COUNT = 12_000;
const FULL_STEP = 370;
const QUICK_COUNT = 1_000;
const QUICK_STEP = 4_400;
const FULL_BIG = 4;
const QUICK_BIG = 1;
const CONCURRENCY = 16;
const FULL_BATCH = 50;
const QUICK_BATCH = 20;
const FULL_RUNS = 3;
const GOAL_SCALING = 1.6;
const GOAL_OVERHEAD = 1.3;
const REGISTRY_NAMES = 4_500_000;
const RATE_LIMITS = [50, 200, 1_000];
const CORES_PER_MACHINE = 2;

// ---------------------------------------------------------------------------------------------
// Redis's own CPU, from `INFO cpu`.

/** Seconds of CPU (user + sys) the Redis server has used so far. */
async function redisCpu(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode("INFO cpu\r\n"));
    const buffer = new Uint8Array(4096);
    let text = "";
    // A bulk string: `$LENGTH\r\n` then the body and `\r\n`.
    while (true) {
      const read = await conn.read(buffer);
      if (read === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, read));
      const header = /^\$(\d+)\r\n/.exec(text);
      if (header && text.length >= header[0].length + Number(header[1])) break;
    }
    const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(text)?.[1] ?? 0);
    return field("used_cpu_user") + field("used_cpu_sys");
  } finally {
    conn.close();
  }
}

/**
 * The span in which the items were processed, from BullMQ's own records: the first job's
 * `processedOn` to the last one's `finishedOn`, in seconds (the workers' start and stop are
 * outside it).
 */
async function processingSpan(url: string): Promise<number> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    const key = `${DEFAULT_PREFIX}:${DEFAULT_QUEUE_NAME}`;
    const ids = await client.zrange(`${key}:completed`, 0, -1);
    const pipeline = client.pipeline();
    for (const id of ids) pipeline.hmget(`${key}:${id}`, "processedOn", "finishedOn");
    let first = Infinity;
    let last = -Infinity;
    for (const [error, fields] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      const [processedOn, finishedOn] = (fields as (string | null)[]).map(Number);
      first = Math.min(first, processedOn!);
      last = Math.max(last, finishedOn!);
    }
    return ids.length > 0 ? (last - first) / 1000 : NaN;
  } finally {
    client.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Benchmark driver.

/** What one contender used in one run. */
interface Result {
  /** Wall time of the part that fetches (the workers, not the enqueue), seconds. */
  wall: number;
  /** CPU of every process of the contender, Redis included, seconds. */
  cpu: number;
  /** The Redis server's share of `cpu`, seconds. */
  redis: number;
  /** The largest peak RSS of its processes, MiB. */
  rss: number;
  /** CPU of each process that fetches (the workers, or the one process), seconds. */
  fetchers: number[];
  /** Wall time of each of them, seconds. */
  fetcherWalls: number[];
  /** The fixture's CPU meanwhile (not in `cpu`: the registry is not the user's), seconds. */
  fixture: number;
  /** For the workers, from the first item taken to the last one done (their start and stop
   * left out), seconds; else `wall`. */
  span: number;
  /** For the workers, the enqueue process's share of `cpu`, seconds; else 0. */
  enqueue: number;
}

function resultOf(
  ms: Measurement[],
  wall: number,
  fetchers: Measurement[],
  redis = 0,
): Result {
  return {
    wall,
    cpu: ms.reduce((sum, m) => sum + m.user + m.sys, 0) + redis,
    redis,
    rss: Math.max(...ms.map((m) => m.maxrss_kb)) / 1024,
    fetchers: fetchers.map((m) => m.user + m.sys),
    fetcherWalls: fetchers.map((m) => m.wall),
    fixture: 0,
    span: wall,
    enqueue: 0,
  };
}

async function bench(quick: boolean, dir: string | undefined): Promise<void> {
  await ensureNames();
  const count = quick ? QUICK_COUNT : FULL_COUNT;
  const step = quick ? QUICK_STEP : FULL_STEP;
  const big = quick ? QUICK_BIG : FULL_BIG;
  const runs = quick ? 1 : FULL_RUNS;
  const batch = quick ? QUICK_BATCH : FULL_BATCH;
  const idleChecks: IdleCheck[] = [];
  const tmp = await Deno.makeTempDir({
    prefix: "all-docs-worker-redis-bench-",
    ...(dir !== undefined ? { dir } : {}),
  });
  let fixture: FixtureProcess | undefined;
  let redis: RedisServer | undefined;
  try {
    const workload = await startPackumentRegistry(tmp, count, step, big);
    const { fixture: started, names, namesFile, registry, total: totalNames } = workload;
    fixture = started;
    const oneName = join(tmp, "one-name.json");
    await Deno.writeTextFile(oneName, JSON.stringify(names.slice(0, 1)));

    const deno = Deno.execPath();
    let serial = 0;
    const fresh = async (kind: string): Promise<string> => {
      const path = join(tmp, `${kind}-${serial++}`);
      await Deno.mkdir(path);
      return path;
    };
    const cli = (...args: string[]) => [deno, "run", "-A", "cli.ts", ...args];
    const common = (cacheDir: string) => [
      "--registry",
      registry,
      "--cache-dir",
      cacheDir,
      "--storage",
      "fs",
      "--concurrency",
      String(CONCURRENCY),
    ];

    const floorRun = async (label: string): Promise<Result> => {
      const out = await fresh("floor");
      const m = await measure(tmp, label, [
        deno,
        "run",
        "-A",
        fromFileUrl(import.meta.url),
        "--floor",
        "--registry",
        registry,
        "--names",
        namesFile,
        "--out",
        out,
      ]);
      console.error(m.stdout);
      await Deno.remove(out, { recursive: true });
      return resultOf([m], m.wall, [m]);
    };
    const directRun = async (label: string, cacheDir: string, list = namesFile) => {
      const m = await measure(
        tmp,
        label,
        cli("packument", "fetch-list", list, ...common(cacheDir), "--quiet"),
      );
      return resultOf([m], m.wall, [m]);
    };
    /** Enqueue, then `processes` workers started together; a fresh Redis for the run. */
    const workerRun = async (
      label: string,
      cacheDir: string,
      processes: number,
    ): Promise<Result> => {
      redis = await startRedis();
      try {
        const queue = ["--queue", redis.url];
        const cpuBefore = await redisCpu(redis.port);
        const enqueue = await measure(tmp, `${label} enqueue`, [
          ...cli("worker", "enqueue", "packuments", namesFile, "--batch-size", String(batch)),
          ...queue,
          ...common(cacheDir),
        ]);
        const workers = await Promise.all(
          Array.from({ length: processes }, (_, i) =>
            measure(tmp, `${label} start ${i + 1}`, [
              ...cli("worker", "start", "--no-auth", "--port", "0", "--until-idle", "--quiet"),
              ...queue,
              ...common(cacheDir),
            ])),
        );
        const redisUsed = (await redisCpu(redis.port)) - cpuBefore;
        const result = resultOf(
          [enqueue, ...workers],
          Math.max(...workers.map((m) => m.wall)),
          workers,
          redisUsed,
        );
        result.span = await processingSpan(redis.url);
        result.enqueue = enqueue.user + enqueue.sys;
        return result;
      } finally {
        await redis.stop();
        redis = undefined;
      }
    };
    /** One CLI command against a fresh, empty Redis queue: a fixed cost. */
    const onEmptyQueue = async (label: string, cacheDir: string, args: string[]) => {
      redis = await startRedis();
      try {
        const m = await measure(tmp, label, [
          ...cli(...args),
          "--queue",
          redis.url,
          ...common(cacheDir),
        ]);
        return resultOf([m], m.wall, [m]);
      } finally {
        await redis.stop();
        redis = undefined;
      }
    };
    /** One `worker enqueue` of one name: the enqueue process's fixed cost. */
    const enqueueOneRun = (label: string, cacheDir: string): Promise<Result> =>
      onEmptyQueue(label, cacheDir, [
        "worker",
        "enqueue",
        "packuments",
        oneName,
        "--batch-size",
        String(batch),
      ]);
    /** One `worker start --until-idle` on an empty queue: a worker's fixed cost. */
    const idleRun = (label: string, cacheDir: string): Promise<Result> =>
      onEmptyQueue(label, cacheDir, [
        "worker",
        "start",
        "--no-auth",
        "--port",
        "0",
        "--until-idle",
        "--quiet",
      ]);
    const stats = async (cacheDir: string) => {
      const result = await new Deno.Command(deno, {
        args: ["run", "-A", "cli.ts", "cache", "stats", "--json", "--cache-dir", cacheDir],
        cwd: ROOT,
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (result.code !== 0) throw new Error(`cache stats exited with ${result.code}`);
      const parsed = JSON.parse(new TextDecoder().decode(result.stdout)) as {
        types: Record<string, number>;
        bytes: number;
      };
      return { packuments: parsed.types["packument"] ?? 0, bytes: parsed.bytes };
    };

    // One untimed pass so the fixture has generated, measured and hashed every document.
    await floorRun("warm-up floor");

    type Key = "floor" | "direct" | "one" | "two";
    const keys: Key[] = ["floor", "direct", "one", "two"];
    const results: Record<Key | "idle" | "directIdle" | "enqueueOne", Result[]> = {
      floor: [],
      direct: [],
      one: [],
      two: [],
      idle: [],
      directIdle: [],
      enqueueOne: [],
    };
    const problems: string[] = [];
    const checked: string[] = [];
    for (let r = 0; r < runs; r++) {
      // Idle CPU over a second before each run: other work on the machine skews every figure.
      const check = await checkIdle();
      if (check) {
        idleChecks.push(check);
        console.error(`before run ${r + 1}: ${check.text}`);
      }
      const caches = {
        direct: await fresh("direct-cache"),
        one: await fresh("one-worker-cache"),
        two: await fresh("two-workers-cache"),
      };
      const contenders: Record<Key, () => Promise<Result>> = {
        floor: () => floorRun(`floor #${r + 1}`),
        direct: () => directRun(`direct #${r + 1}`, caches.direct),
        one: () => workerRun(`one worker #${r + 1}`, caches.one, 1),
        two: () => workerRun(`two workers #${r + 1}`, caches.two, 2),
      };
      // Rotate the order, so no contender always runs on a machine another has just warmed.
      for (let k = 0; k < keys.length; k++) {
        const key = keys[(k + r) % keys.length]!;
        const fixtureBefore = await processCpu(fixture.pid);
        const result = await contenders[key]();
        result.fixture = (await processCpu(fixture.pid)) - fixtureBefore;
        results[key].push(result);
      }
      const idleCache = await fresh("idle-cache");
      results.idle.push(await idleRun(`idle worker #${r + 1}`, idleCache));
      results.enqueueOne.push(await enqueueOneRun(`enqueue of one name #${r + 1}`, idleCache));
      // The direct path's fixed cost: its start and stop around a single name.
      results.directIdle.push(await directRun(`direct, one name #${r + 1}`, idleCache, oneName));
      await Deno.remove(idleCache, { recursive: true });
      const direct = await stats(caches.direct);
      const one = await stats(caches.one);
      const two = await stats(caches.two);
      for (const [label, s] of [["direct", direct], ["one worker", one], ["two workers", two]]) {
        const { packuments, bytes } = s as typeof direct;
        if (packuments !== names.length) {
          problems.push(
            `run ${r + 1}: ${label} stored ${packuments} packuments, expected ${names.length}`,
          );
        }
        if (bytes !== direct.bytes) {
          problems.push(`run ${r + 1}: ${label} stored ${bytes} bytes, direct ${direct.bytes}`);
        }
      }
      checked.push(
        `run ${r + 1}: packuments direct ${direct.packuments}, one worker ${one.packuments}, ` +
          `two workers ${two.packuments}; bytes direct ${direct.bytes}, one ${one.bytes}, ` +
          `two ${two.bytes}`,
      );
      for (const cache of Object.values(caches)) await Deno.remove(cache, { recursive: true });
    }

    const med = (key: Key | "idle" | "directIdle" | "enqueueOne") => {
      const rs = results[key];
      return {
        wall: median(rs.map((m) => m.wall)),
        cpu: median(rs.map((m) => m.cpu)),
        redis: median(rs.map((m) => m.redis)),
        rss: median(rs.map((m) => m.rss)),
        fixture: median(rs.map((m) => m.fixture)),
        span: median(rs.map((m) => m.span)),
        // Cores each fetching process kept busy (its CPU over its wall time), per process.
        busy: rs[0]!.fetchers.map((_, i) =>
          median(rs.map((m) => m.fetchers[i]! / m.fetcherWalls[i]!))
        ),
      };
    };
    const f = med("floor");
    const d = med("direct");
    const one = med("one");
    const two = med("two");
    const idle = med("idle");
    const n = names.length;
    const directIdle = med("directIdle");
    const enqueueCpu = median(results.one.map((m) => m.enqueue));
    const enqueueOne = med("enqueueOne");
    // The goal's measure: CPU per item beyond each path's fixed cost (a process's start and
    // stop: an idle worker's, an enqueue of one name, the direct path on one name), what a crawl
    // of millions of names pays per name. The whole run's ratio, fixed costs and all, is printed
    // beside it.
    const marginalOne = (one.cpu - enqueueOne.cpu - idle.cpu) / n;
    const marginalDirect = (d.cpu - directIdle.cpu) / n;
    const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    const row = (label: string, m: typeof f) =>
      `| ${label} | ${m.wall.toFixed(2)} | ${(n / m.wall).toFixed(0)} | ${m.cpu.toFixed(2)} | ` +
      `${m.redis.toFixed(2)} | ${((m.cpu / n) * 1000).toFixed(2)} | ${m.rss.toFixed(0)} | ` +
      `${x(m.cpu, d.cpu)} | ${x(m.cpu, f.cpu)} | ${m.fixture.toFixed(2)} | ` +
      `${m.busy.map((b) => b.toFixed(2)).join(" + ")} |`;
    const each = (key: Key) =>
      `${key}: ` +
      results[key].map((m) => `${m.wall.toFixed(2)} s wall / ${m.cpu.toFixed(2)} s CPU`)
        .join(", ");
    // Items per second while the items are processed (BullMQ's records), the goal's measure;
    // end to end (each process's start and stop included) beside it.
    const scaling = one.span / two.span;
    const scalingWall = one.wall / two.wall;
    const overhead = marginalOne / marginalDirect;
    const scalingMet = scaling >= GOAL_SCALING;
    const overheadMet = overhead <= GOAL_OVERHEAD;
    const checkAfter = await checkIdle();
    if (checkAfter) idleChecks.push(checkAfter);
    const cores = navigator.hardwareConcurrency;
    const loaded = idleChecks.some((c) => c.loaded);
    // What the two workers ran into: the cores they, the fixture and Redis kept busy.
    const twoBusy = two.busy.reduce((sum, b) => sum + b, 0) + (two.fixture + two.redis) / two.wall;
    // And what one worker already used: the cores left for a second bound the ratio.
    const oneBusy = one.busy[0]! + (one.fixture + one.redis) / one.wall;

    // The planning figure: the marginal CPU per item of one worker (enqueue, worker and Redis,
    // less an idle worker's start and stop), one worker process per core, each doing the smaller
    // of the items/s measured and 1 / CPU per item; the rate limit binds beyond that.
    const cpuPerItem = (one.cpu > idle.cpu ? one.cpu - idle.cpu : one.cpu) / n;
    const wallPerItem = one.span / n;
    const perWorker = Math.min(1 / wallPerItem, 1 / cpuPerItem);
    const perMachine = Math.min(n / two.span, CORES_PER_MACHINE * perWorker);
    const hours = (rate: number) => REGISTRY_NAMES / rate / 3600;
    const planning = [
      "| registry rate limit (requests/s) | worker processes | 2-core machines | hours for 4.5M names |",
      "| ---: | ---: | ---: | ---: |",
      ...RATE_LIMITS.map((limit) => {
        const workers = Math.max(1, Math.ceil(limit / perWorker));
        return `| ${limit.toLocaleString("en-US")} | ${workers} | ` +
          `${Math.ceil(workers / CORES_PER_MACHINE)} | ${hours(limit).toFixed(1)} |`;
      }),
      `| none (one machine, 2 workers) | 2 | 1 | ${hours(perMachine).toFixed(1)} |`,
    ];

    console.log(
      [
        `Worker on Redis, ${n} names (every ${step}th of ${totalNames}), ${big} of 2 to 8 MB, ` +
        `no delay, ${CONCURRENCY} in flight per process, --batch-size ${batch}, ` +
        `median of ${runs} run${runs === 1 ? "" : "s"}${quick ? " (--quick)" : ""}, ` +
        `files under ${dirname(tmp)}:`,
        "",
        "| contender | wall s | items/s | CPU s | of which Redis s | CPU ms/item | peak RSS MB | CPU vs direct | CPU vs floor | fixture CPU s | cores busy per process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("floor (fetch + writeFile)", f),
        row("direct: packument fetch-list", d),
        row("1 worker: enqueue + worker start --until-idle", one),
        row("2 workers: enqueue + 2 x worker start --until-idle", two),
        "",
        "(wall s and items/s of the workers leave out the enqueue; their CPU includes it and " +
        "Redis's, not the fixture's, which stands for the remote registry; cores busy per " +
        "process = its CPU / its wall time)",
        `2 workers: the workers kept ${two.busy.map((b) => b.toFixed(2)).join(" and ")} cores ` +
        `busy, the fixture ${(two.fixture / two.wall).toFixed(2)}, Redis ` +
        `${(two.redis / two.wall).toFixed(2)}: ${twoBusy.toFixed(2)} of ${cores} cores; with 1 ` +
        `worker, it, the fixture and Redis kept ${oneBusy.toFixed(2)} busy, so on ${cores} ` +
        `cores 2 workers can do at most ${(cores / oneBusy).toFixed(2)}x the items/s of 1`,
        "Runs: " + keys.map(each).join("; "),
        ...checked,
        "Idle CPU before each run and after (from /proc/stat): " +
        (idleChecks.length > 0 ? idleChecks.map((c) => c.text).join("; ") : "unknown"),
        ...(loaded
          ? [
            "WARNING: the machine was loaded (other work kept more than a quarter of its cores " +
            "busy): scaling and CPU figures are not meaningful; re-measure on a quiet machine.",
          ]
          : []),
        `Processing span (the first item taken to the last one done, from BullMQ's records): ` +
        `1 worker ${one.span.toFixed(2)} s (${(n / one.span).toFixed(0)} items/s), 2 workers ` +
        `${two.span.toFixed(2)} s (${(n / two.span).toFixed(0)} items/s); end to end (the ` +
        `workers' wall time, their start and stop included) 2 workers do ` +
        `${scalingWall.toFixed(2)}x the items/s of 1`,
        `Goal: 2 workers at least ${GOAL_SCALING}x the items/s of 1 while processing: ` +
        `${scaling.toFixed(2)}x ` +
        `${scalingMet ? "MET" : "NOT MET"}${loaded ? " (loaded machine: not conclusive)" : ""}`,
        `Fixed costs: an enqueue of one name ${enqueueOne.cpu.toFixed(2)} s CPU (of this ` +
        `run's enqueue's ${enqueueCpu.toFixed(2)} s), a worker's start and stop ` +
        `${idle.cpu.toFixed(2)} s, the direct path's start and stop (one name) ` +
        `${directIdle.cpu.toFixed(2)} s; the whole run, fixed costs and all: 1 worker ` +
        `${x(one.cpu, d.cpu)} the direct path's CPU`,
        `Goal: 1 worker's CPU per item (beyond the fixed costs: enqueue, worker and Redis) at ` +
        `most ${GOAL_OVERHEAD}x the direct path's: ${(marginalOne * 1000).toFixed(2)} ms ` +
        `against ${(marginalDirect * 1000).toFixed(2)} ms, ${overhead.toFixed(2)}x ` +
        `${overheadMet ? "MET" : "NOT MET"}${loaded ? " (loaded machine: not conclusive)" : ""}`,
        "",
        `Planning, ${REGISTRY_NAMES.toLocaleString("en-US")} names, one request each: ` +
        `an idle worker's start and stop costs ${idle.cpu.toFixed(2)} s CPU, so the marginal ` +
        `cost is ${(cpuPerItem * 1000).toFixed(2)} ms CPU per item (1 worker, enqueue and Redis ` +
        `included) and ${
          (wallPerItem * 1000).toFixed(2)
        } ms of processing span per item (1 worker, ` +
        `${CONCURRENCY} in flight); one worker process (one core) does ` +
        `${perWorker.toFixed(0)} items/s (the smaller of 1 / span and 1 / CPU per item); one ` +
        `2-core machine ${perMachine.toFixed(0)} items/s (2 workers as measured, or 2 workers' ` +
        `worth if less). Workers = ceil(limit / per-worker rate), machines = ceil(workers / 2), ` +
        `hours = names / limit / 3600 (the limit binds once workers x per-worker rate reach it).`,
        "",
        ...planning,
        ...problems.map((p) => `CHECK FAILED: ${p}`),
      ].join("\n"),
    );
    if (!scalingMet || !overheadMet || problems.length > 0) Deno.exitCode = 1;
  } finally {
    await (redis as RedisServer | undefined)?.stop();
    await fixture?.stop();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      dir: { type: "string" },
      floor: { type: "boolean", default: false },
      registry: { type: "string" },
      names: { type: "string" },
      out: { type: "string" },
    },
    strict: true,
  });
  if (values.floor) {
    if (!values.registry || !values.names || !values.out) {
      throw new Error("--floor needs --registry, --names and --out");
    }
    await packumentFloor(values.registry, values.names, values.out, CONCURRENCY);
  } else {
    await bench(values.quick, values.dir);
  }
}
