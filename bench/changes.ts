/**
 * `_changes` follower benchmark: applies 100,000 changes to a cache holding the partitions of
 * the 4.5 million names of `all-the-package-names` (256 ranges, fs storage), with the real
 * command line, `cli.ts changes follow --once --since N`, against a local fixture (a separate
 * process on 127.0.0.1) whose feed holds the names at seqs 1..N and then the changes
 * (`--changes 100000`: updates, about 0.5% creations and 0.5% deletions, spread over the key
 * space). Beside it runs a bare floor measured the same way: this script in `--floor` mode,
 * which reads the same pages (`_changes?since=...&limit=10000`) with plain `fetch` and appends
 * each page body to a file. Each contender runs three times (the follow on a fresh copy of the
 * cache each time) and the fastest run counts: on a shared machine the slower runs measure the
 * neighbours. The ratio is in changes per second.
 *
 * The cache is written directly (the partitions `partition refresh` would have fetched before
 * the changes: the same lines, the same keys), which saves a full refresh per run.
 *
 * Every process is run under `python3` (`subprocess.run`, then `getrusage(RUSAGE_CHILDREN)`),
 * so wall time, CPU time and peak memory (max RSS) are measured the same way for all.
 *
 * Goals: at least 0.5x the floor's changes per second; peak memory under 300 MB.
 *
 * Run with `deno task bench:changes`, or add `--quick` for 500,000 names and 20,000 changes;
 * `--dir DIR` puts the work files (the cache, the floor's pages) there, `/dev/shm` for a tmpfs
 * (no disk noise; default: the system's temporary directory).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { compareKeys } from "../src/storage/driver.ts";
import { Cache } from "../src/storage/cache.ts";
import { originKey, partitionKey } from "../src/storage/keys.ts";
import { encodePartitionLines } from "../src/couchdb/partition_lines.ts";
import { FsDriver } from "../drivers/fs.ts";
import { defaultRev } from "../tests/_support/all_docs_fixture.ts";
import {
  ensureNames,
  type FixtureProcess,
  measure,
  type Measurement,
  NAMES_FILE,
  run,
  startFixture,
} from "./_measure.ts";

const LIMIT = 10_000;
const RANGES = 256;
const CHANGES = 100_000;
const QUICK_NAMES = 500_000;
const QUICK_CHANGES = 20_000;
const GOAL_RATIO = 0.5;
const GOAL_RSS_MB = 300;
const RUNS = 3;

// ---------------------------------------------------------------------------------------------
// Floor mode: plain fetch, every page appended to one file.

async function floor(origin: string, since: string, out: string): Promise<void> {
  using file = await Deno.open(out, { write: true, create: true, append: true });
  const encoder = new TextEncoder();
  let at = since;
  let pages = 0;
  let entries = 0;
  for (;;) {
    const response = await fetch(`${origin}_changes?since=${at}&limit=${LIMIT}`, {
      headers: { accept: "application/json" },
    });
    if (response.status !== 200) throw new Error(`status ${response.status}`);
    const body = await response.text();
    await file.write(encoder.encode(body));
    pages++;
    // Count entries and find last_seq without parsing the page: one entry per line.
    let count = 0;
    for (let i = body.indexOf('{"seq":'); i !== -1; i = body.indexOf('{"seq":', i + 7)) count++;
    entries += count;
    at = /"last_seq":("[^"]*"|\d+)/.exec(body)![1]!.replaceAll('"', "");
    if (count < LIMIT) break;
  }
  console.log(`floor: ${pages} pages, ${entries} entries`);
}

// ---------------------------------------------------------------------------------------------
// The cache as `partition refresh` leaves it.

export async function writePartitions(
  cacheDir: string,
  origin: string,
  names: string[],
  pivots: string[],
): Promise<void> {
  const driver = new FsDriver(join(cacheDir, "fs"));
  try {
    const cache = await Cache.open(driver, { bloom: false });
    const key = originKey(origin);
    const bounds = ["", ...pivots, ""];
    let at = 0;
    for (let i = 0; i < bounds.length - 1; i++) {
      const end = bounds[i + 1]!;
      const rows = [];
      while (at < names.length && (end === "" || compareKeys(names[at]!, end) < 0)) {
        const id = names[at++]!;
        rows.push({ id, rev: defaultRev(id) });
      }
      await cache.put(partitionKey(key, bounds[i]!, end), encodePartitionLines(rows), {
        status: 200,
        contentType: "application/x-ndjson",
        representation: "partition",
        count: rows.length,
      });
    }
  } finally {
    await driver.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Benchmark driver.

async function countLines(file: string): Promise<number> {
  let lines = 0;
  using handle = await Deno.open(file);
  for await (const chunk of handle.readable) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
  }
  return lines;
}

async function bench(quick: boolean, dir: string | undefined): Promise<void> {
  await ensureNames();
  const tmp = await Deno.makeTempDir({
    prefix: "all-docs-changes-bench-",
    ...(dir !== undefined ? { dir } : {}),
  });
  let fixture: FixtureProcess | undefined;
  try {
    let names: string[] = JSON.parse(await Deno.readTextFile(NAMES_FILE));
    if (quick) names = names.slice(0, QUICK_NAMES);
    names.sort(compareKeys);
    names = names.filter((name, i) => i === 0 || name !== names[i - 1]);
    const total = names.length;
    const changes = quick ? QUICK_CHANGES : CHANGES;
    const idsFile = join(tmp, "ids.json");
    await Deno.writeTextFile(idsFile, JSON.stringify(names));
    const pivots: string[] = [];
    for (let i = 1; i < RANGES; i++) pivots.push(names[Math.floor((i * total) / RANGES)]!);

    fixture = await startFixture("tests/_support/all_docs_fixture.ts", [
      "--port",
      "0",
      "--ids",
      idsFile,
      "--changes",
      String(changes),
    ]);
    const origin = fixture.url.endsWith("/") ? fixture.url : `${fixture.url}/`;
    const info = await (await fetch(origin)).json() as { update_seq: number; doc_count: number };
    console.error(`fixture at ${origin}: ${total} names, head ${info.update_seq}`);

    const cacheDir = join(tmp, "cache");
    const started = performance.now();
    await writePartitions(cacheDir, origin, names, pivots);
    names = [];
    console.error(`wrote ${RANGES} partitions in ${Math.round(performance.now() - started)} ms`);

    // Load (and compile) the CLI's modules once, so no run pays for a first download.
    await run(Deno.execPath(), ["run", "-A", "cli.ts", "--help"], true).catch(() => {});

    const runFloor = async (label: string): Promise<Measurement> => {
      const out = join(tmp, `${label}.pages`);
      const stdoutFile = join(tmp, `${label}.out`);
      const m = await measure(tmp, label, [
        Deno.execPath(),
        "run",
        "-A",
        fromFileUrl(import.meta.url),
        "--floor",
        "--origin",
        origin,
        "--since",
        String(total),
        "--out",
        out,
      ], stdoutFile);
      console.error((await Deno.readTextFile(stdoutFile)).trim());
      await Deno.remove(out);
      return m;
    };
    await runFloor("warm-up");
    const pristine = join(tmp, "pristine");
    await run("cp", ["-a", cacheDir, pristine]);

    const global = ["--cache-dir", cacheDir, "--storage", "fs", "--origin", origin];
    const floors: Measurement[] = [];
    const follows: Measurement[] = [];
    for (let n = 1; n <= RUNS; n++) {
      floors.push(await runFloor(`floor-${n}`));
      await Deno.remove(cacheDir, { recursive: true });
      await run("cp", ["-a", pristine, cacheDir]);
      const followOut = join(tmp, `follow-${n}.out`);
      follows.push(
        await measure(tmp, `follow-${n}`, [
          Deno.execPath(),
          "run",
          "-A",
          "cli.ts",
          "changes",
          "follow",
          "--once",
          "--since",
          String(total),
          "--json",
          ...global,
        ], followOut),
      );
      const summary = JSON.parse((await Deno.readTextFile(followOut)).trim().split("\n").at(-1)!);
      console.error(
        `follow: seen ${summary.seen}, applied ${summary.applied}, ${summary.pages} pages, ` +
          `${summary.requests} requests, patched ${summary.patched}`,
      );
    }
    const fastest = (runs: Measurement[]) => runs.reduce((a, b) => (b.wall < a.wall ? b : a));
    const floorRun = fastest(floors);
    const follow = fastest(follows);

    const indexFile = join(tmp, "index.csv");
    await measure(
      tmp,
      "create-index",
      [Deno.execPath(), "run", "-A", "cli.ts", "cache", "create-index", ...global],
      indexFile,
    );
    const lines = await countLines(indexFile);

    const mb = (m: Measurement) => (m.maxrss_kb / 1024).toFixed(0);
    const perSecond = (m: Measurement) => Math.round(changes / m.wall);
    const row = (step: string, m: Measurement) =>
      `| ${step} | ${m.wall.toFixed(2)} | ${(m.user + m.sys).toFixed(2)} | ${mb(m)} | ` +
      `${perSecond(m)} | ${(floorRun.wall / m.wall).toFixed(2)}x |`;
    const ratio = floorRun.wall / follow.wall;
    const peak = Math.max(...follows.map((m) => m.maxrss_kb)) / 1024;
    console.log(
      [
        `changes follow, ${changes} changes over ${total} names in ${RANGES} partitions, ` +
        `limit ${LIMIT}${quick ? " (--quick)" : ""}:`,
        "",
        "| step | wall s | CPU s | peak RSS MB | changes/s | ratio vs floor (changes/s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        row(`floor (fetch + append pages), fastest of ${RUNS}`, floorRun),
        row(`changes follow --once, fastest of ${RUNS}`, follow),
        "",
        `all runs, wall s: floor ${floors.map((m) => m.wall.toFixed(2)).join(", ")}; ` +
        `follow ${follows.map((m) => m.wall.toFixed(2)).join(", ")}`,
        "",
        `create-index lines: ${lines} (doc_count: ${info.doc_count}) ` +
        `${lines === info.doc_count ? "OK" : "MISMATCH"}`,
        `Goal: at least ${GOAL_RATIO}x the floor: ${ratio.toFixed(2)}x ` +
        `${ratio >= GOAL_RATIO ? "MET" : "NOT MET"}`,
        `Goal: peak RSS under ${GOAL_RSS_MB} MB: ${peak.toFixed(0)} MB ` +
        `${peak < GOAL_RSS_MB ? "MET" : "NOT MET"}`,
      ].join("\n"),
    );
    if (lines !== info.doc_count) Deno.exitCode = 1;
  } finally {
    await fixture?.stop();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      floor: { type: "boolean", default: false },
      origin: { type: "string" },
      since: { type: "string" },
      out: { type: "string" },
      dir: { type: "string" },
    },
    strict: true,
  });
  if (values.floor) {
    if (!values.origin || !values.since || !values.out) {
      throw new Error("--floor needs --origin, --since and --out");
    }
    await floor(values.origin, values.since, values.out);
  } else {
    await bench(values.quick, values.dir);
  }
}
