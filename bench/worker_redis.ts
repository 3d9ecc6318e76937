/**
 * Worker-on-Redis benchmark: the packument workload of `bench/fetch_list.ts` through the direct
 * path, through one worker process on a Redis queue and through two, beside a bare floor, in the
 * same run; then the planning figure for a crawl of the full registry derived from it.
 *
 * The origin is `tests/_support/registry_fixture.ts` in its own process on 127.0.0.1: 4,000 real
 * package names (every 1,100th of the npm package `all-the-package-names`; 1,000, every 4,400th,
 * with `--quick`), each served with a generated packument (a few KB; 4 of them, 1 with
 * `--quick`, 2 to 8 MB), with no delay, so the work is CPU-bound. Every contender has 16 requests
 * in flight per process, fs storage and a fresh cache directory:
 *
 * 1. the direct path: `cli.ts packument fetch-list FILE`;
 * 2. one worker: `cli.ts worker enqueue packuments FILE --batch-size 50 --queue redis://...` (20
 *    with `--quick`: 80 or 50 items, more than the 16 each worker holds, so a second worker
 *    finds work to share; smaller batches share better but cost more queue CPU per name, and a
 *    full crawl's default of 100 a batch makes 45,000 items), then
 *    `cli.ts worker start --queue redis://... --no-auth --port 0 --until-idle --quiet
 *    --concurrency 16`; its CPU is the sum of the two processes and of the Redis server's own
 *    (`INFO cpu` before and after), its wall time the worker's;
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
 * RSS) are measured the same way for all. One untimed floor pass warms the fixture; then each
 * run measures the four contenders (in a rotating order), 3 times (once with `--quick`), and the
 * medians are reported. After each run every cache is checked with `cache stats --json`: as many
 * packuments as names, and the same bytes as the direct path's cache, so no contender passes by
 * doing less.
 *
 * Goals: two worker processes reach at least 1.6x the items per second of one (worker wall
 * time; the enqueue, the same for both, is left out), and the one worker's CPU per item (enqueue,
 * worker and Redis) is at most 1.3x the direct path's. Exits 1 when one is missed or a check
 * fails. Scaling is only meaningful on an otherwise idle machine: the load average before and
 * after is printed, with a warning when it exceeds the number of cores.
 *
 * The planning table: for 4.5 million names at a registry rate limit of 50, 200 and 1,000
 * requests/s (one request per name), the worker processes, the 2-core machines and the hours a
 * full crawl needs. A worker process's rate is the smaller of 1 / (wall s per item of one worker)
 * and 1 / (marginal CPU s per item: the one worker's CPU, enqueue and Redis included, less that
 * of a `worker start --until-idle` on an empty queue, measured once per run); one process per
 * core; the rate limit binds once workers x that rate reach it.
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
import { packageNameProblem } from "../src/npm/package_name.ts";
import { type RedisServer, startRedis } from "../tests/_support/redis.ts";
import {
  ensureNames,
  type FixtureProcess,
  measure,
  type Measurement,
  median,
  NAMES_FILE,
  ROOT,
  run,
  startFixture,
} from "./_measure.ts";

const FULL_COUNT = 4_000;
const FULL_STEP = 1_100;
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
// Floor mode: plain fetch, one file per name.

/** The path npm clients send: `/left-pad`, `/@scope%2fname`. */
function packumentPath(name: string): string {
  return name.startsWith("@") ? `/${name.replace("/", "%2f")}` : `/${encodeURIComponent(name)}`;
}

async function floor(registry: string, namesFile: string, outDir: string): Promise<void> {
  const names: string[] = JSON.parse(await Deno.readTextFile(namesFile));
  const base = registry.replace(/\/$/, "");
  let next = 0;
  let bytes = 0;
  async function worker(): Promise<void> {
    while (next < names.length) {
      const i = next++;
      const name = names[i]!;
      const response = await fetch(`${base}${packumentPath(name)}`, {
        headers: { accept: "application/json" },
      });
      if (response.status !== 200) throw new Error(`${name}: status ${response.status}`);
      const body = await response.bytes();
      bytes += body.length;
      await Deno.writeFile(join(outDir, `${i}.json`), body);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  console.log(`floor: ${names.length} packuments, ${(bytes / 1e6).toFixed(1)} MB`);
}

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

async function loadAverage(): Promise<string> {
  return await Deno.readTextFile("/proc/loadavg").then(
    (text) => text.split(" ").slice(0, 3).join(" "),
    () => "unknown",
  );
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
}

function resultOf(ms: Measurement[], wall: number, redis = 0): Result {
  return {
    wall,
    cpu: ms.reduce((sum, m) => sum + m.user + m.sys, 0) + redis,
    redis,
    rss: Math.max(...ms.map((m) => m.maxrss_kb)) / 1024,
  };
}

async function bench(quick: boolean, dir: string | undefined): Promise<void> {
  await ensureNames();
  const count = quick ? QUICK_COUNT : FULL_COUNT;
  const step = quick ? QUICK_STEP : FULL_STEP;
  const big = quick ? QUICK_BIG : FULL_BIG;
  const runs = quick ? 1 : FULL_RUNS;
  const batch = quick ? QUICK_BATCH : FULL_BATCH;
  const loadBefore = await loadAverage();
  const tmp = await Deno.makeTempDir({
    prefix: "all-docs-worker-redis-bench-",
    ...(dir !== undefined ? { dir } : {}),
  });
  let fixture: FixtureProcess | undefined;
  let redis: RedisServer | undefined;
  try {
    const all: string[] = JSON.parse(await Deno.readTextFile(NAMES_FILE));
    const names: string[] = [];
    for (let i = 0; i < all.length && names.length < count; i += step) {
      // The next name the CLI accepts and the fixture serves (not a leading "-", as in "-").
      let j = i;
      while (j < all.length && (packageNameProblem(all[j]!) || all[j]!.startsWith("-"))) j++;
      if (j < all.length) names.push(all[j]!);
    }
    const totalNames = all.length;
    all.length = 0;
    const namesFile = join(tmp, "names.json");
    await Deno.writeTextFile(namesFile, JSON.stringify(names));

    fixture = await startFixture("tests/_support/registry_fixture.ts", [
      "--port",
      "0",
      "--names",
      namesFile,
      "--big",
      String(big),
    ]);
    const registry = fixture.url;
    console.error(
      `fixture at ${registry}, ${names.length} of ${totalNames} names (every ${step}th), ` +
        `${big} big`,
    );

    // Load (and compile) the CLI's modules once, so no run pays for a first download.
    await run(Deno.execPath(), ["run", "-A", "cli.ts", "--help"], true).catch(() => {});

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
      return resultOf([m], m.wall);
    };
    const directRun = async (label: string, cacheDir: string): Promise<Result> => {
      const m = await measure(
        tmp,
        label,
        cli("packument", "fetch-list", namesFile, ...common(cacheDir), "--quiet"),
      );
      return resultOf([m], m.wall);
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
        return resultOf(
          [enqueue, ...workers],
          Math.max(...workers.map((m) => m.wall)),
          redisUsed,
        );
      } finally {
        await redis.stop();
        redis = undefined;
      }
    };
    /** One `worker start --until-idle` on an empty queue: a worker's fixed cost. */
    const idleRun = async (label: string, cacheDir: string): Promise<Result> => {
      redis = await startRedis();
      try {
        const m = await measure(tmp, label, [
          ...cli("worker", "start", "--no-auth", "--port", "0", "--until-idle", "--quiet"),
          "--queue",
          redis.url,
          ...common(cacheDir),
        ]);
        return resultOf([m], m.wall);
      } finally {
        await redis.stop();
        redis = undefined;
      }
    };
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
    const results: Record<Key | "idle", Result[]> = {
      floor: [],
      direct: [],
      one: [],
      two: [],
      idle: [],
    };
    const problems: string[] = [];
    const checked: string[] = [];
    for (let r = 0; r < runs; r++) {
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
        results[key].push(await contenders[key]());
      }
      const idleCache = await fresh("idle-cache");
      results.idle.push(await idleRun(`idle worker #${r + 1}`, idleCache));
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

    const med = (key: Key | "idle") => {
      const rs = results[key];
      return {
        wall: median(rs.map((m) => m.wall)),
        cpu: median(rs.map((m) => m.cpu)),
        redis: median(rs.map((m) => m.redis)),
        rss: median(rs.map((m) => m.rss)),
      };
    };
    const f = med("floor");
    const d = med("direct");
    const one = med("one");
    const two = med("two");
    const idle = med("idle");
    const n = names.length;
    const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    const row = (label: string, m: typeof f) =>
      `| ${label} | ${m.wall.toFixed(2)} | ${(n / m.wall).toFixed(0)} | ${m.cpu.toFixed(2)} | ` +
      `${m.redis.toFixed(2)} | ${((m.cpu / n) * 1000).toFixed(2)} | ${m.rss.toFixed(0)} | ` +
      `${x(m.cpu, d.cpu)} | ${x(m.cpu, f.cpu)} |`;
    const each = (key: Key) =>
      `${key}: ` +
      results[key].map((m) => `${m.wall.toFixed(2)} s wall / ${m.cpu.toFixed(2)} s CPU`)
        .join(", ");
    const scaling = one.wall / two.wall;
    const overhead = one.cpu / d.cpu;
    const scalingMet = scaling >= GOAL_SCALING;
    const overheadMet = overhead <= GOAL_OVERHEAD;
    const loadAfter = await loadAverage();
    const cores = navigator.hardwareConcurrency;
    const loaded = [loadBefore, loadAfter].some((l) => Number(l.split(" ")[0]) > cores);

    // The planning figure: the marginal CPU per item of one worker (enqueue, worker and Redis,
    // less an idle worker's start and stop), one worker process per core, each doing the smaller
    // of the items/s measured and 1 / CPU per item; the rate limit binds beyond that.
    const cpuPerItem = (one.cpu > idle.cpu ? one.cpu - idle.cpu : one.cpu) / n;
    const wallPerItem = one.wall / n;
    const perWorker = Math.min(1 / wallPerItem, 1 / cpuPerItem);
    const perMachine = Math.min(n / two.wall, CORES_PER_MACHINE * perWorker);
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
        "| contender | wall s | items/s | CPU s | of which Redis s | CPU ms/item | peak RSS MB | CPU vs direct | CPU vs floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("floor (fetch + writeFile)", f),
        row("direct: packument fetch-list", d),
        row("1 worker: enqueue + worker start --until-idle", one),
        row("2 workers: enqueue + 2 x worker start --until-idle", two),
        "",
        "(wall s and items/s of the workers leave out the enqueue; their CPU includes it and Redis's)",
        "Runs: " + keys.map(each).join("; "),
        ...checked,
        `Load average before: ${loadBefore}, after: ${loadAfter} (${cores} cores)`,
        ...(loaded
          ? [
            "WARNING: the machine was loaded (load average above its cores): scaling and CPU " +
            "figures are not meaningful; re-measure on a quiet machine.",
          ]
          : []),
        `Goal: 2 workers at least ${GOAL_SCALING}x the items/s of 1: ${scaling.toFixed(2)}x ` +
        `${scalingMet ? "MET" : "NOT MET"}${loaded ? " (loaded machine: not conclusive)" : ""}`,
        `Goal: 1 worker's CPU per item at most ${GOAL_OVERHEAD}x the direct path's: ` +
        `${overhead.toFixed(2)}x ${overheadMet ? "MET" : "NOT MET"}` +
        `${loaded ? " (loaded machine: not conclusive)" : ""}`,
        "",
        `Planning, ${REGISTRY_NAMES.toLocaleString("en-US")} names, one request each: ` +
        `an idle worker's start and stop costs ${idle.cpu.toFixed(2)} s CPU, so the marginal ` +
        `cost is ${(cpuPerItem * 1000).toFixed(2)} ms CPU per item (1 worker, enqueue and Redis ` +
        `included) and ${(wallPerItem * 1000).toFixed(2)} ms wall per item (1 worker, ` +
        `${CONCURRENCY} in flight); one worker process (one core) does ` +
        `${perWorker.toFixed(0)} items/s (the smaller of 1 / wall and 1 / CPU per item); one ` +
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
    await floor(values.registry, values.names, values.out);
  } else {
    await bench(values.quick, values.dir);
  }
}
