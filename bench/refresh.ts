/**
 * Partition refresh benchmark: mirrors the 4.5 million names of the npm package
 * `all-the-package-names` from a local `_all_docs` fixture (a separate process on 127.0.0.1)
 * with the real command line, `cli.ts partition refresh --pivots FILE` (256 ranges, fs storage,
 * a fresh cache directory), then writes `cli.ts cache create-index` to a file. Each command is
 * timed beside a bare floor measured in the same run: this script in `--floor` mode, which
 * fetches the same pages with plain `fetch` (same ranges, `limit=10000`, 4 partitions at once)
 * and writes each page body to a file. The floor runs twice, before the refresh (on a cold
 * fixture) and after create-index; ratios are against the faster of the two.
 *
 * Every process is run under `python3` (`subprocess.run`, then `getrusage(RUSAGE_CHILDREN)`), so
 * wall time, CPU time (user + sys) and peak memory (max RSS) are measured the same way for all.
 *
 * Goals: refresh within 1.5x the floor's wall time; peak memory under 300 MB.
 *
 * The refresh and create-index run twice: as they are (partition bodies stored gzip) and with
 * `--store-encoding identity` (stored as fetched, as before gzip storage); `cache stats` gives
 * the bytes stored for the decoded bytes. Goals of storing gzip: create-index at most 1.3x the
 * identity run's time.
 *
 * Run with `deno run -A bench/refresh.ts`, or add `--quick` for the first 500,000 names only,
 * `--dir /dev/shm` to keep the caches on tmpfs.
 * The names are installed with npm into `bench/names/node_modules` when missing.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { compareKeys } from "../src/storage/driver.ts";
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
const PARALLEL = 4;
const RANGES = 256;
const QUICK_NAMES = 500_000;
const GOAL_RATIO = 1.5;
const GOAL_RSS_MB = 300;

// ---------------------------------------------------------------------------------------------
// Floor mode: plain fetch, one file per page.

function encodeKey(key: string): string {
  return encodeURIComponent(JSON.stringify(key)).replace(/\./g, "%2E");
}

async function floor(
  origin: string,
  pivotsFile: string,
  outDir: string,
): Promise<void> {
  const pivots: string[] = JSON.parse(await Deno.readTextFile(pivotsFile));
  const bounds = ["", ...pivots, ""];
  let next = 0;
  let pages = 0;
  let rows = 0;
  let bytes = 0;
  async function range(index: number): Promise<void> {
    const endKey = bounds[index + 1]!;
    let startKey = bounds[index]!;
    let first = true;
    for (let page = 0;; page++) {
      const params: string[] = [];
      if (startKey !== "") params.push(`startkey=${encodeKey(startKey)}`);
      if (endKey !== "") {
        params.push(`endkey=${encodeKey(endKey)}`, "inclusive_end=false");
      }
      params.push(`limit=${LIMIT}`);
      const response = await fetch(`${origin}/_all_docs?${params.join("&")}`, {
        headers: { accept: "application/json" },
      });
      if (response.status !== 200) throw new Error(`status ${response.status}`);
      const raw = new Uint8Array(await response.arrayBuffer());
      bytes += raw.byteLength;
      await Deno.writeFile(join(outDir, `${index}-${page}.json`), raw);
      const body = new TextDecoder().decode(raw);
      pages++;
      // Count rows and find the last id without parsing the whole page: one row per line.
      let count = 0;
      let at = body.indexOf('{"id":');
      let lastAt = -1;
      while (at !== -1) {
        count++;
        lastAt = at;
        at = body.indexOf('{"id":', at + 6);
      }
      rows += first ? count : count - 1;
      first = false;
      if (count < LIMIT) return;
      const lineEnd = body.indexOf("\n", lastAt);
      const line = body.slice(lastAt, lineEnd).replace(/,$/, "");
      startKey = (JSON.parse(line) as { id: string }).id;
    }
  }
  async function worker(): Promise<void> {
    while (next < bounds.length - 1) await range(next++);
  }
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  console.log(
    `floor: ${bounds.length - 1} ranges, ${pages} pages, ${rows} rows, ` +
      `${bytes} bytes of _all_docs JSON`,
  );
}

// ---------------------------------------------------------------------------------------------
// Benchmark driver.

async function countLines(file: string): Promise<number> {
  let lines = 0;
  using handle = await Deno.open(file);
  for await (const chunk of handle.readable) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) {
      lines++;
    }
  }
  return lines;
}

async function bench(quick: boolean, dir: string | undefined): Promise<void> {
  await ensureNames();
  const tmp = await Deno.makeTempDir({
    prefix: "all-docs-refresh-bench-",
    ...(dir ? { dir } : {}),
  });
  let fixture: FixtureProcess | undefined;
  try {
    let names: string[] = JSON.parse(await Deno.readTextFile(NAMES_FILE));
    let idsFile = NAMES_FILE;
    if (quick) {
      names = names.slice(0, QUICK_NAMES);
      idsFile = join(tmp, "ids.json");
      await Deno.writeTextFile(idsFile, JSON.stringify(names));
    }
    let sorted = true;
    for (let i = 1; i < names.length && sorted; i++) {
      if (compareKeys(names[i - 1]!, names[i]!) >= 0) sorted = false;
    }
    if (!sorted) names.sort(compareKeys);
    const total = names.length;
    const pivots: string[] = [];
    for (let i = 1; i < RANGES; i++) {
      pivots.push(names[Math.floor((i * total) / RANGES)]!);
    }
    names = [];
    const pivotsFile = join(tmp, "pivots.json");
    await Deno.writeTextFile(pivotsFile, JSON.stringify(pivots));

    fixture = await startFixture("tests/_support/all_docs_fixture.ts", [
      "--port",
      "0",
      "--ids",
      idsFile,
    ]);
    const origin = fixture.url;
    console.error(
      `fixture at ${origin}, ${total} names, ${pivots.length} pivots`,
    );

    // Load (and compile) the CLI's modules once, so no run pays for a first download.
    await run(Deno.execPath(), ["run", "-A", "cli.ts", "--help"], true).catch(
      () => {},
    );

    // What the origin sent for the whole key space (pages overlap by one row): the raw JSON the
    // stored partitions compare with.
    let allDocsJsonBytes = NaN;
    // The floor runs before and after the refresh (a fresh output directory each time); the
    // faster of the two is the reference, so neither side pays alone for a cold fixture.
    const runFloor = async (label: string): Promise<Measurement> => {
      const outDir = join(tmp, label);
      await Deno.mkdir(outDir);
      const stdoutFile = join(tmp, `${label}.out`);
      const m = await measure(tmp, label, [
        Deno.execPath(),
        "run",
        "-A",
        fromFileUrl(import.meta.url),
        "--floor",
        "--origin",
        origin,
        "--pivots",
        pivotsFile,
        "--out",
        outDir,
      ], stdoutFile);
      const said = (await Deno.readTextFile(stdoutFile)).trim();
      console.error(said);
      allDocsJsonBytes = Number(/(\d+) bytes of _all_docs JSON/.exec(said)?.[1] ?? NaN);
      await Deno.remove(outDir, { recursive: true });
      return m;
    };
    // One untimed pass first: the fixture's first walk over millions of names is much slower
    // than later ones (its JIT and page cache warm up), and no contender should pay for that.
    await runFloor("warm-up");
    const floorBefore = await runFloor("floor-1");

    const refreshOut = join(tmp, "refresh.out");
    const indexFile = join(tmp, "index.csv");
    /** `partition refresh` into a fresh cache, `cache create-index` and `cache stats` of it. */
    const pass = async (label: string, cacheDir: string, extra: string[] = []) => {
      const global = ["--cache-dir", cacheDir, "--storage", "fs", "--origin", origin, ...extra];
      const cli = (...args: string[]) => [Deno.execPath(), "run", "-A", "cli.ts", ...args];
      const refresh = await measure(
        tmp,
        `refresh${label}`,
        cli("partition", "refresh", "--pivots", pivotsFile, ...global),
        refreshOut,
      );
      const index = await measure(
        tmp,
        `create-index${label}`,
        cli("cache", "create-index", ...global),
        indexFile,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "cli.ts", "cache", "stats", "--json", ...global],
        stdout: "piped",
      }).output();
      const stats = JSON.parse(new TextDecoder().decode(out.stdout)) as {
        bytes: number;
        decodedBytes: number;
      };
      return { refresh, index, stats };
    };
    const { refresh, index, stats: gzipStats } = await pass("", join(tmp, "cache"));
    console.error((await Deno.readTextFile(refreshOut)).trim());
    const lines = await countLines(indexFile);
    await Deno.remove(join(tmp, "cache"), { recursive: true });
    const identity = await pass(" identity", join(tmp, "cache-identity"), [
      "--store-encoding",
      "identity",
    ]);
    const { refresh: refreshIdentity, index: indexIdentity, stats: identityStats } = identity;
    await Deno.remove(join(tmp, "cache-identity"), { recursive: true });
    const floorAfter = await runFloor("floor-2");
    const floorRun = floorBefore.wall <= floorAfter.wall ? floorBefore : floorAfter;

    const mb = (m: Measurement) => (m.maxrss_kb / 1024).toFixed(0);
    const row = (step: string, m: Measurement) =>
      `| ${step} | ${m.wall.toFixed(2)} | ${(m.user + m.sys).toFixed(2)} | ${mb(m)} | ` +
      `${(m.wall / floorRun.wall).toFixed(2)}x |`;
    const ratio = refresh.wall / floorRun.wall;
    const peak = Math.max(refresh.maxrss_kb, index.maxrss_kb) / 1024;
    console.log(
      [
        `Partition refresh, ${total} names, ${RANGES} ranges, limit ${LIMIT}, ` +
        `${PARALLEL} partitions at once${quick ? " (--quick)" : ""}:`,
        "",
        "| step | wall s | CPU s | peak RSS MB | ratio vs floor (wall, faster floor run) |",
        "| --- | ---: | ---: | ---: | ---: |",
        row("floor, before refresh (fetch + write pages)", floorBefore),
        row("floor, after create-index", floorAfter),
        row("partition refresh (stored gzip)", refresh),
        row("cache create-index (stored gzip)", index),
        row("partition refresh --store-encoding identity", refreshIdentity),
        row("cache create-index (stored identity)", indexIdentity),
        "",
        `Partition bytes stored: gzip ${gzipStats.bytes} for ${gzipStats.decodedBytes} decoded ` +
        `(${(gzipStats.bytes / gzipStats.decodedBytes).toFixed(3)}x); identity ` +
        `${identityStats.bytes}`,
        `Against the _all_docs JSON the origin sent for them (${allDocsJsonBytes} bytes): gzip ` +
        `${(gzipStats.bytes / allDocsJsonBytes).toFixed(3)}x, identity lines ` +
        `${(identityStats.bytes / allDocsJsonBytes).toFixed(3)}x; goal at most 0.25x: ` +
        `${gzipStats.bytes / allDocsJsonBytes <= 0.25 ? "MET" : "NOT MET"}`,
        `Goal: create-index stored gzip at most 1.3x stored identity: ` +
        `${(index.wall / indexIdentity.wall).toFixed(2)}x wall, ` +
        `${
          ((index.user + index.sys) / (indexIdentity.user + indexIdentity.sys)).toFixed(2)
        }x CPU ` +
        `${index.wall / indexIdentity.wall <= 1.3 ? "MET" : "NOT MET"}`,
        `create-index lines: ${lines} (names: ${total}) ${lines === total ? "OK" : "MISMATCH"}`,
        `Goal: refresh within ${GOAL_RATIO}x the floor: ${ratio.toFixed(2)}x ` +
        `${ratio <= GOAL_RATIO ? "MET" : "NOT MET"}`,
        `Goal: peak RSS under ${GOAL_RSS_MB} MB: ${peak.toFixed(0)} MB ` +
        `${peak < GOAL_RSS_MB ? "MET" : "NOT MET"}`,
      ].join("\n"),
    );
    if (lines !== total) Deno.exitCode = 1;
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
      dir: { type: "string" },
      floor: { type: "boolean", default: false },
      origin: { type: "string" },
      pivots: { type: "string" },
      out: { type: "string" },
    },
    strict: true,
  });
  if (values.floor) {
    if (!values.origin || !values.pivots || !values.out) {
      throw new Error("--floor needs --origin, --pivots and --out");
    }
    await floor(values.origin, values.pivots, values.out);
  } else {
    await bench(values.quick, values.dir);
  }
}
