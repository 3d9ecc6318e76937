/**
 * Worker benchmark: one partition set with its packuments, mirrored by the worker
 * (`worker start --queue kv --until-idle`) and by the CLI commands it replaces
 * (`partition refresh` then `packument fetch-partitions`), beside a bare floor, in the same run.
 *
 * The origins are two fixtures, each in its own process on 127.0.0.1 (this script in `--serve`
 * mode): an `_all_docs` endpoint (`tests/_support/all_docs_fixture.ts`) listing 5,000 generated
 * package names (1,000 with `--quick`), and a registry (`tests/_support/registry_fixture.ts`)
 * serving a generated packument for each (`tests/_support/packuments.ts`, seeded: 1 to 8
 * versions, a few KB; 5 of them, 1 with `--quick`, 2 to 8 MB). The listing's `_rev` of each name
 * is its packument's. 15 pivots at evenly spaced names make 16 ranges; every contender runs with
 * `--concurrency 16` (requests in flight; the worker's items in hand too), fs storage, a fresh
 * cache directory:
 *
 * 1. the CLI path: `cli.ts partition refresh --pivots FILE`, then `cli.ts packument
 *    fetch-partitions --pivots FILE`; wall and CPU are the sums of the two processes, peak RSS
 *    the larger;
 * 2. the worker: `cli.ts worker enqueue partition-set --pivots FILE --packuments` straight into
 *    the kv queue file of the cache directory, then `cli.ts worker start --no-auth --port 0
 *    --until-idle --quiet` (the partition-set item queues 16 `partition` items, each of which
 *    reads its range and queues `packument` items of 100 names); summed the same way;
 * 3. a bare floor, this script in `--floor` mode: plain `fetch` of the same `_all_docs` pages
 *    (`limit=10000`, 4 ranges at once), each page written to a file, then of every listed
 *    packument (16 in flight), each body written to a file.
 *
 * Every process runs under `python3` (`subprocess.run`, then `getrusage(RUSAGE_CHILDREN)`), so
 * wall time, CPU time (user + sys) and peak memory (max RSS) are measured the same way for all.
 * One untimed floor pass warms the fixtures; then each run measures the floor, the CLI path and
 * the worker (these two in alternating order), 5 times (once with `--quick`), and the medians
 * are reported. After each run both caches are checked: `cache create-index` output byte for
 * byte equal between the CLI path and the worker and one line per listed name, and every
 * packument stored by both, the same bytes in all (`cache stats --json`), so neither can pass
 * by doing less.
 *
 * Goal: the worker's CPU time at most 1.3x the CLI path's. Exits 1 when it is missed or a check
 * fails.
 *
 * Run with `deno run -A bench/worker.ts` (`deno task bench:worker`), or add `--quick`. The
 * caches and the floor's files go to a temporary directory in the system's (`--dir DIR` for
 * another place: `--dir /dev/shm` takes the disk out of the figures).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { compareKeys } from "../src/storage/driver.ts";
import { packageNameProblem } from "../src/npm/package_name.ts";
import { generateNames, startAllDocsFixture } from "../tests/_support/all_docs_fixture.ts";
import { startRegistryFixture } from "../tests/_support/registry_fixture.ts";
import { generatePackumentChunks } from "../tests/_support/packuments.ts";
import {
  fetchPackumentFiles,
  type FixtureProcess,
  measure,
  type Measurement,
  median,
  ROOT,
  run,
  startFixture,
} from "./_measure.ts";

const FULL_IDS = 5_000;
const QUICK_IDS = 1_000;
const FULL_BIG = 5;
const QUICK_BIG = 1;
const RANGES = 16;
const CONCURRENCY = 16;
const LIMIT = 10_000;
const PARALLEL = 4;
const SEED = 12;
const FULL_RUNS = 5;
const GOAL = 1.3;

// ---------------------------------------------------------------------------------------------
// The generated origin: names and their packuments.

/** `count` valid package names of {@linkcode generateNames}, in code-point order. */
function benchNames(count: number): string[] {
  const names = generateNames(Math.ceil(count * 1.1)).filter((name) => !packageNameProblem(name));
  return names.slice(0, count).sort(compareKeys);
}

/** A small deterministic hash of a name, for picking sizes. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Generation options per name: a few KB each; `big` of them, spread evenly, 2 to 8 MB. */
function documentPlan(
  names: readonly string[],
  seed: number,
  big: number,
): Map<string, { versions: number; seed: number; targetBytes?: number }> {
  const bigOnes = new Set<number>();
  const count = Math.min(big, names.length);
  for (let i = 0; i < count; i++) bigOnes.add(Math.floor(((i + 0.5) * names.length) / count));
  const plan = new Map<string, { versions: number; seed: number; targetBytes?: number }>();
  names.forEach((name, i) => {
    const h = nameHash(name);
    plan.set(
      name,
      bigOnes.has(i)
        ? { versions: 150 + (h % 350), seed, targetBytes: (2 + (h % 7)) * 1_000_000 }
        : { versions: 1 + (h % 8), seed },
    );
  });
  return plan;
}

/** Serves one of the two origins for `--serve`; prints `listening URL`. */
async function serve(kind: string, idsFile: string, seed: number, big: number): Promise<void> {
  const names: string[] = JSON.parse(await Deno.readTextFile(idsFile));
  const plan = documentPlan(names, seed, big);
  let close: () => Promise<void>;
  if (kind === "all-docs") {
    // The listing's _rev is the packument's own: it sits in the first piece of the document,
    // which does not depend on the padding.
    const revs = new Map<string, string>();
    for (const [name, options] of plan) {
      const { targetBytes: _padding, ...unpadded } = options;
      const first = generatePackumentChunks(name, unpadded)[Symbol.iterator]().next().value!;
      revs.set(name, /"_rev":"([^"]+)"/.exec(first)![1]!);
    }
    const fixture = await startAllDocsFixture({ ids: names, revFor: (id) => revs.get(id)! });
    console.log(`listening ${fixture.origin}`);
    close = () => fixture.close();
  } else if (kind === "registry") {
    const packuments = new Map<string, () => Iterable<string>>();
    for (const [name, options] of plan) {
      packuments.set(name, () => generatePackumentChunks(name, options));
    }
    const fixture = await startRegistryFixture({ packuments });
    console.log(`listening ${fixture.url}`);
    close = () => fixture.close();
  } else {
    throw new TypeError(`--serve takes all-docs or registry, received '${kind}'`);
  }
  const stop = (): void => {
    close().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

// ---------------------------------------------------------------------------------------------
// Floor mode: plain fetch, one file per page and per packument.

function encodeKey(key: string): string {
  return encodeURIComponent(JSON.stringify(key)).replace(/\./g, "%2E");
}

async function floor(
  origin: string,
  registry: string,
  pivotsFile: string,
  outDir: string,
  concurrency: number,
): Promise<void> {
  const pivots: string[] = JSON.parse(await Deno.readTextFile(pivotsFile));
  const bounds = ["", ...pivots, ""];
  const ids: string[] = [];
  let pages = 0;
  let nextRange = 0;
  async function range(index: number): Promise<void> {
    const endKey = bounds[index + 1]!;
    let startKey = bounds[index]!;
    let skipFirst = false;
    for (let page = 0;; page++) {
      const params: string[] = [];
      if (startKey !== "") params.push(`startkey=${encodeKey(startKey)}`);
      if (endKey !== "") params.push(`endkey=${encodeKey(endKey)}`, "inclusive_end=false");
      params.push(`limit=${LIMIT}`);
      const response = await fetch(`${origin}/_all_docs?${params.join("&")}`, {
        headers: { accept: "application/json" },
      });
      if (response.status !== 200) throw new Error(`_all_docs: status ${response.status}`);
      const body = await response.text();
      await Deno.writeTextFile(join(outDir, `page-${index}-${page}.json`), body);
      pages++;
      const rows = (JSON.parse(body) as { rows: { id: string }[] }).rows;
      for (let i = skipFirst ? 1 : 0; i < rows.length; i++) ids.push(rows[i]!.id);
      if (rows.length < LIMIT) return;
      startKey = rows.at(-1)!.id;
      skipFirst = true;
    }
  }
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (nextRange < bounds.length - 1) await range(nextRange++);
  }));

  const bytes = await fetchPackumentFiles(registry, ids, outDir, concurrency);
  console.log(
    `floor: ${pages} pages, ${ids.length} ids, ${ids.length} packuments, ` +
      `${(bytes / 1e6).toFixed(1)} MB`,
  );
}

// ---------------------------------------------------------------------------------------------
// Benchmark driver.

/** Two processes in a row as one contender: wall and CPU summed, the larger peak RSS. */
function sum(a: Measurement, b: Measurement): Measurement {
  return {
    code: a.code || b.code,
    wall: a.wall + b.wall,
    user: a.user + b.user,
    sys: a.sys + b.sys,
    maxrss_kb: Math.max(a.maxrss_kb, b.maxrss_kb),
  };
}

async function output(args: string[]): Promise<Uint8Array> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (result.code !== 0) throw new Error(`cli.ts ${args.join(" ")} exited with ${result.code}`);
  return result.stdout;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function countLines(bytes: Uint8Array): number {
  let lines = 0;
  for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) lines++;
  return lines;
}

async function bench(quick: boolean, dir: string | undefined): Promise<void> {
  const count = quick ? QUICK_IDS : FULL_IDS;
  const big = quick ? QUICK_BIG : FULL_BIG;
  const runs = quick ? 1 : FULL_RUNS;
  const tmp = await Deno.makeTempDir({
    prefix: "all-docs-worker-bench-",
    ...(dir !== undefined ? { dir } : {}),
  });
  const fixtures: FixtureProcess[] = [];
  try {
    const names = benchNames(count);
    const idsFile = join(tmp, "ids.json");
    await Deno.writeTextFile(idsFile, JSON.stringify(names));
    const pivots: string[] = [];
    for (let i = 1; i < RANGES; i++) pivots.push(names[Math.floor((i * names.length) / RANGES)]!);
    const pivotsFile = join(tmp, "pivots.json");
    await Deno.writeTextFile(pivotsFile, JSON.stringify(pivots));

    const self = "bench/worker.ts";
    const serveArgs = ["--ids", idsFile, "--seed", String(SEED), "--big", String(big)];
    const allDocs = await startFixture(self, ["--serve", "all-docs", ...serveArgs]);
    fixtures.push(allDocs);
    const registryFixture = await startFixture(self, ["--serve", "registry", ...serveArgs]);
    fixtures.push(registryFixture);
    const origin = allDocs.url.replace(/\/$/, "");
    const registry = registryFixture.url;
    console.error(
      `_all_docs at ${origin}, registry at ${registry}: ${names.length} names, ` +
        `${pivots.length} pivots, ${big} big packuments`,
    );

    // Load (and compile) the CLI's modules once, so no run pays for a first download.
    await run(Deno.execPath(), ["run", "-A", "cli.ts", "--help"], true).catch(() => {});

    const deno = Deno.execPath();
    let serial = 0;
    const fresh = async (kind: string): Promise<string> => {
      const dir = join(tmp, `${kind}-${serial++}`);
      await Deno.mkdir(dir);
      return dir;
    };
    const floorRun = async (label: string): Promise<Measurement> => {
      const out = await fresh("floor");
      const m = await measure(tmp, label, [
        deno,
        "run",
        "-A",
        fromFileUrl(import.meta.url),
        "--floor",
        "--origin",
        origin,
        "--registry",
        registry,
        "--pivots",
        pivotsFile,
        "--out",
        out,
        "--concurrency",
        String(CONCURRENCY),
      ]);
      console.error(m.stdout);
      await Deno.remove(out, { recursive: true });
      return m;
    };
    const global = (cacheDir: string) => [
      "--cache-dir",
      cacheDir,
      "--storage",
      "fs",
      "--origin",
      origin,
      "--registry",
      registry,
      "--concurrency",
      String(CONCURRENCY),
    ];
    const cliRun = async (label: string, cacheDir: string): Promise<Measurement> => {
      const refresh = await measure(tmp, `${label} refresh`, [
        deno,
        "run",
        "-A",
        "cli.ts",
        "partition",
        "refresh",
        "--pivots",
        pivotsFile,
        ...global(cacheDir),
      ]);
      console.error(refresh.stdout);
      const fetch = await measure(tmp, `${label} fetch-partitions`, [
        deno,
        "run",
        "-A",
        "cli.ts",
        "packument",
        "fetch-partitions",
        "--pivots",
        pivotsFile,
        ...global(cacheDir),
      ]);
      console.error(fetch.stdout);
      return sum(refresh, fetch);
    };
    const workerRun = async (label: string, cacheDir: string): Promise<Measurement> => {
      const enqueue = await measure(tmp, `${label} enqueue`, [
        deno,
        "run",
        "-A",
        "cli.ts",
        "worker",
        "enqueue",
        "partition-set",
        "--pivots",
        pivotsFile,
        "--packuments",
        "--queue",
        "kv",
        ...global(cacheDir),
      ]);
      const start = await measure(tmp, `${label} start`, [
        deno,
        "run",
        "-A",
        "cli.ts",
        "worker",
        "start",
        "--queue",
        "kv",
        "--no-auth",
        "--port",
        "0",
        "--until-idle",
        "--quiet",
        ...global(cacheDir),
      ]);
      return sum(enqueue, start);
    };
    /** The checks: create-index output and the packuments stored. */
    const check = async (cacheDir: string) => {
      const index = await output(["cache", "create-index", ...global(cacheDir)]);
      const stats = JSON.parse(
        new TextDecoder().decode(
          await output(["cache", "stats", "--json", "--cache-dir", cacheDir]),
        ),
      ) as { types: Record<string, number>; bytes: number };
      return { index, packuments: stats.types["packument"] ?? 0, bytes: stats.bytes };
    };

    // One untimed pass so the fixtures have generated, measured and hashed every document.
    await floorRun("warm-up floor");

    const results: Record<"floor" | "cli" | "worker", Measurement[]> = {
      floor: [],
      cli: [],
      worker: [],
    };
    const problems: string[] = [];
    const checked: string[] = [];
    for (let r = 0; r < runs; r++) {
      results.floor.push(await floorRun(`floor #${r + 1}`));
      const cliCache = await fresh("cli-cache");
      const workerCache = await fresh("worker-cache");
      // Alternate the order, so neither always runs on a machine the other has just warmed.
      if (r % 2 === 0) {
        results.cli.push(await cliRun(`cli #${r + 1}`, cliCache));
        results.worker.push(await workerRun(`worker #${r + 1}`, workerCache));
      } else {
        results.worker.push(await workerRun(`worker #${r + 1}`, workerCache));
        results.cli.push(await cliRun(`cli #${r + 1}`, cliCache));
      }
      const cli = await check(cliCache);
      const worker = await check(workerCache);
      const lines = countLines(cli.index);
      if (!sameBytes(cli.index, worker.index)) {
        problems.push(`run ${r + 1}: create-index differs between the CLI path and the worker`);
      }
      if (lines !== names.length) {
        problems.push(`run ${r + 1}: create-index has ${lines} lines, expected ${names.length}`);
      }
      if (cli.packuments !== names.length || worker.packuments !== names.length) {
        problems.push(
          `run ${r + 1}: packuments stored: CLI path ${cli.packuments}, worker ` +
            `${worker.packuments}, expected ${names.length}`,
        );
      }
      if (cli.bytes !== worker.bytes) {
        problems.push(`run ${r + 1}: bytes stored: CLI path ${cli.bytes}, worker ${worker.bytes}`);
      }
      checked.push(
        `run ${r + 1}: create-index ${lines} lines, ${
          sameBytes(cli.index, worker.index) ? "equal" : "DIFFERENT"
        }; packuments CLI ${cli.packuments}, worker ${worker.packuments}; bytes CLI ${cli.bytes}, ` +
          `worker ${worker.bytes}`,
      );
      await Deno.remove(cliCache, { recursive: true });
      await Deno.remove(workerCache, { recursive: true });
    }

    const med = (key: keyof typeof results) => {
      const ms = results[key];
      return {
        wall: median(ms.map((m) => m.wall)),
        cpu: median(ms.map((m) => m.user + m.sys)),
        rss: median(ms.map((m) => m.maxrss_kb)) / 1024,
      };
    };
    const f = med("floor");
    const c = med("cli");
    const w = med("worker");
    const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    const row = (label: string, m: typeof f) =>
      `| ${label} | ${m.wall.toFixed(2)} | ${m.cpu.toFixed(2)} | ${m.rss.toFixed(0)} | ` +
      `${x(m.cpu, c.cpu)} | ${x(m.cpu, f.cpu)} | ${x(m.wall, c.wall)} | ${x(m.wall, f.wall)} |`;
    const each = (key: keyof typeof results) =>
      `${key}: ` +
      results[key].map((m) => `${m.wall.toFixed(2)} s wall / ${(m.user + m.sys).toFixed(2)} s CPU`)
        .join(", ");
    const perRun = results.worker.map((m, i) => {
      const cli = results.cli[i]!;
      return x(m.user + m.sys, cli.user + cli.sys);
    });
    const ratio = w.cpu / c.cpu;
    const met = ratio <= GOAL;
    const load = await Deno.readTextFile("/proc/loadavg").then(
      (text) => text.split(" ").slice(0, 3).join(" "),
      () => "unknown",
    );
    console.log(
      [
        `Worker vs CLI, ${names.length} names in ${RANGES} ranges with their packuments ` +
        `(${big} of 2 to 8 MB), --concurrency ${CONCURRENCY}, ` +
        `median of ${runs} run${runs === 1 ? "" : "s"}${quick ? " (--quick)" : ""}, ` +
        `files under ${dirname(tmp)}:`,
        "",
        "| contender | wall s | CPU s | peak RSS MB | CPU vs CLI | CPU vs floor | wall vs CLI | wall vs floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("floor (fetch + write pages and packuments)", f),
        row("CLI: partition refresh + packument fetch-partitions", c),
        row("worker: enqueue partition-set + worker start --until-idle", w),
        "",
        "Runs: " + [each("floor"), each("cli"), each("worker")].join("; "),
        `Worker CPU vs CLI per run: ${perRun.join(", ")}`,
        ...checked,
        `Load average at the end: ${load}`,
        `Goal: worker CPU at most ${GOAL}x the CLI path's: ${ratio.toFixed(2)}x ` +
        `${met ? "MET" : "NOT MET"}`,
        ...problems.map((p) => `CHECK FAILED: ${p}`),
      ].join("\n"),
    );
    if (!met || problems.length > 0) Deno.exitCode = 1;
  } finally {
    for (const fixture of fixtures) await fixture.stop();
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
      serve: { type: "string" },
      ids: { type: "string" },
      seed: { type: "string", default: String(SEED) },
      big: { type: "string", default: "0" },
      origin: { type: "string" },
      registry: { type: "string" },
      pivots: { type: "string" },
      out: { type: "string" },
      concurrency: { type: "string", default: String(CONCURRENCY) },
    },
    strict: true,
  });
  if (values.serve !== undefined) {
    if (!values.ids) throw new Error("--serve needs --ids");
    await serve(values.serve, values.ids, Number(values.seed), Number(values.big));
  } else if (values.floor) {
    if (!values.origin || !values.registry || !values.pivots || !values.out) {
      throw new Error("--floor needs --origin, --registry, --pivots and --out");
    }
    await floor(
      values.origin,
      values.registry,
      values.pivots,
      values.out,
      Number(values.concurrency),
    );
  } else {
    await bench(values.quick, values.dir);
  }
}
