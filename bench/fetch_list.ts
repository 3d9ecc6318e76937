/**
 * Packument fetch-list benchmark: 3,000 real package names (every 1,500th name of the npm package
 * `all-the-package-names`) are served with generated packuments of realistic sizes (a few KB each,
 * `--big 10` of them 2 to 8 MB) by `tests/_support/registry_fixture.ts`, a separate process on
 * 127.0.0.1. Three contenders fetch all of them, 32 requests in flight, the full document
 * (`Accept: application/json`):
 *
 * 1. the real command line, `cli.ts packument fetch-list FILE` (fs storage, a fresh cache
 *    directory per run), checked afterwards with `cli.ts cache stats --json`;
 * 2. npm's own client, `pacote.packument(name, { registry, cache, fullMetadata: true })` through
 *    `p-limit`, run under Node from a temporary `.mjs` (pinned in `bench/peers/package.json`,
 *    installed into `bench/peers/node_modules` when missing), a fresh cacache directory per run;
 * 3. a bare floor, this script in `--floor` mode: plain `fetch` plus one `Deno.writeFile` per name.
 *
 * Every process runs under `python3` (`subprocess.run`, then `getrusage(RUSAGE_CHILDREN)`), so
 * wall time, CPU time (user + sys) and peak memory (max RSS) are measured the same way for all.
 * One untimed floor pass warms the fixture first; each contender then runs 3 times (interleaved)
 * and the median of each measure is reported.
 *
 * Goals: the CLI's CPU time at most 2x the floor's, and at most 0.25x pacote's.
 *
 * The CLI runs twice per round: as it is (bodies stored gzip) and with `--store-encoding
 * identity` (bodies stored as fetched, as before gzip storage). Goals of storing gzip: bytes
 * stored at most 0.25x the documents' (`cache stats`), CPU at most 1.3x the identity run's.
 *
 * Run with `deno run -A bench/fetch_list.ts [--dir /dev/shm] [--runs N] [--no-pacote]`
 * (`--dir`: where the caches go, tmpfs to keep disk noise out).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import {
  ensureNames,
  type FixtureProcess,
  measure,
  type Measurement,
  median,
  packumentFloor,
  ROOT,
  run,
  startPackumentRegistry,
} from "./_measure.ts";

const PEERS_DIR = join(ROOT, "bench", "peers");

/** npm's own client: pacote.packument() for every name through p-limit, run under Node. */
const PACOTE_MJS = `
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
const [peers, namesFile, registry, cache, concurrency] = process.argv.slice(2);
const require = createRequire(join(peers, "package.json"));
const pacote = require("pacote");
const { default: pLimit } = await import(pathToFileURL(require.resolve("p-limit")).href);
const names = JSON.parse(readFileSync(namesFile, "utf8"));
const limit = pLimit(Number(concurrency));
let done = 0;
const failed = [];
await Promise.all(names.map((name) => limit(async () => {
  try {
    await pacote.packument(name, { registry, cache, fullMetadata: true });
    done++;
  } catch (error) {
    failed.push(name + ": " + error.message);
  }
})));
console.log("pacote: " + done + " packuments, " + failed.length + " failed");
if (failed.length > 0) {
  console.error(failed.slice(0, 5).join("\\n"));
  process.exit(1);
}
`;
const COUNT = 3_000;
const STEP = 1_500;
const BIG = 10;
const CONCURRENCY = 32;
let RUNS = 3;
let TMP_ROOT: string | undefined;
let PACOTE = true;
const GOAL_STORED = 0.25;
const GOAL_GZIP_CPU = 1.3;
const GOAL_VS_FLOOR = 2;
const GOAL_VS_PACOTE = 0.25;

// ---------------------------------------------------------------------------------------------
// Benchmark driver.

async function bench(): Promise<void> {
  await ensureNames();
  try {
    await Deno.stat(join(PEERS_DIR, "node_modules", "pacote", "package.json"));
    await Deno.stat(join(PEERS_DIR, "node_modules", "p-limit", "package.json"));
  } catch {
    console.error("installing pacote and p-limit into bench/peers/ ...");
    await run("npm", ["ci", "--no-audit", "--no-fund", "--prefix", PEERS_DIR]);
  }
  const tmp = await Deno.makeTempDir({
    prefix: "all-docs-fetch-bench-",
    ...(TMP_ROOT ? { dir: TMP_ROOT } : {}),
  });
  let fixture: FixtureProcess | undefined;
  try {
    const workload = await startPackumentRegistry(tmp, COUNT, STEP, BIG);
    const { fixture: started, names, namesFile, registry, total: totalNames } = workload;
    fixture = started;
    const pacoteScript = join(tmp, "pacote.mjs");
    await Deno.writeTextFile(pacoteScript, PACOTE_MJS);

    const deno = Deno.execPath();
    const node = "node";
    let serial = 0;
    const fresh = async (kind: string): Promise<string> => {
      const dir = join(tmp, `${kind}-${serial++}`);
      await Deno.mkdir(dir);
      return dir;
    };
    const floorCmd = (out: string) => [
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
    ];

    // One untimed pass so the fixture has measured and hashed every document before any run.
    const warm = await measure(tmp, "warm-up floor", floorCmd(await fresh("floor")));
    console.error(`${warm.stdout} (warm-up, ${warm.wall.toFixed(2)} s wall)`);

    const results: Record<string, Measurement[]> = {
      floor: [],
      cli: [],
      cliIdentity: [],
      pacote: [],
    };
    const stored: number[] = [];
    let stats = "";
    let identityStats = "";
    for (let r = 0; r < RUNS; r++) {
      const floorRun = await measure(tmp, `floor #${r + 1}`, floorCmd(await fresh("floor")));
      console.error(floorRun.stdout);
      results.floor!.push(floorRun);

      const cliRun = (cacheDir: string, label: string, extra: string[]) =>
        measure(tmp, label, [
          deno,
          "run",
          "-A",
          "cli.ts",
          "packument",
          "fetch-list",
          namesFile,
          "--registry",
          registry,
          "--cache-dir",
          cacheDir,
          "--storage",
          "fs",
          "--concurrency",
          String(CONCURRENCY),
          "--quiet",
          ...extra,
        ]);
      const statsOf = async (cacheDir: string) => {
        const statsOut = await new Deno.Command(deno, {
          args: ["run", "-A", "cli.ts", "cache", "stats", "--json", "--cache-dir", cacheDir],
          cwd: ROOT,
          stdout: "piped",
          stderr: "inherit",
        }).output();
        return new TextDecoder().decode(statsOut.stdout).trim();
      };
      const identityDir = await fresh("cli-identity-cache");
      results.cliIdentity!.push(
        await cliRun(identityDir, `cli identity #${r + 1}`, ["--store-encoding", "identity"]),
      );
      identityStats = await statsOf(identityDir);
      await Deno.remove(identityDir, { recursive: true });

      const cacheDir = await fresh("cli-cache");
      results.cli!.push(await cliRun(cacheDir, `cli #${r + 1}`, []));
      stats = await statsOf(cacheDir);
      const types = (JSON.parse(stats) as { types: Record<string, number> }).types;
      stored.push(types["packument"] ?? 0);
      console.error(`cache stats: ${stats}`);

      await Deno.remove(cacheDir, { recursive: true });
      if (!PACOTE) continue;
      const pacote = await measure(tmp, `pacote #${r + 1}`, [
        node,
        pacoteScript,
        PEERS_DIR,
        namesFile,
        registry,
        await fresh("cacache"),
        String(CONCURRENCY),
      ]);
      console.error(pacote.stdout);
      results.pacote!.push(pacote);
    }

    const med = (key: string) => {
      const ms = results[key]!;
      return {
        wall: median(ms.map((m) => m.wall)),
        cpu: median(ms.map((m) => m.user + m.sys)),
        rss: median(ms.map((m) => m.maxrss_kb)) / 1024,
      };
    };
    const f = med("floor");
    const c = med("cli");
    const ci = med("cliIdentity");
    const p = PACOTE ? med("pacote") : { wall: NaN, cpu: NaN, rss: NaN };
    const last = JSON.parse(stats) as { bytes: number; decodedBytes: number };
    const storedRatio = last.bytes / last.decodedBytes;
    const gzipCpu = c.cpu / ci.cpu;
    const row = (label: string, m: typeof f) =>
      `| ${label} | ${m.wall.toFixed(2)} | ${m.cpu.toFixed(2)} | ${m.rss.toFixed(0)} | ` +
      `${(m.cpu / f.cpu).toFixed(2)}x | ${(m.cpu / p.cpu).toFixed(2)}x | ` +
      `${(m.wall / f.wall).toFixed(2)}x |`;
    const all3 = (label: string, key: string) =>
      `${label}: ` +
      results[key]!.map((m) => `${m.wall.toFixed(2)} s wall / ${(m.user + m.sys).toFixed(2)} s CPU`)
        .join(", ");
    const vsFloor = c.cpu / f.cpu;
    const vsPacote = c.cpu / p.cpu;
    const complete = stored.every((n) => n === names.length);
    console.log(
      [
        `Packument fetch-list, ${names.length} names (every ${STEP}th of ${totalNames}), ` +
        `${BIG} of 2 to 8 MB, ${CONCURRENCY} in flight, median of ${RUNS} runs:`,
        "",
        "| contender | wall s | CPU s | peak RSS MB | CPU vs floor | CPU vs pacote | wall vs floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("floor (fetch + writeFile)", f),
        row("cli.ts packument fetch-list (stored gzip)", c),
        row("cli.ts packument fetch-list --store-encoding identity", ci),
        row("pacote.packument + p-limit (Node)", p),
        "",
        "Runs: " +
        [
          all3("floor", "floor"),
          all3("cli", "cli"),
          all3("cli identity", "cliIdentity"),
          ...(PACOTE ? [all3("pacote", "pacote")] : []),
        ].join("; "),
        `CLI stored packuments per run: ${stored.join(", ")} of ${names.length} ` +
        `${complete ? "OK" : "MISMATCH"}`,
        `Last cache stats: ${stats}`,
        `Last cache stats (identity): ${identityStats}`,
        `Goal: bytes stored at most ${GOAL_STORED}x the documents': ${storedRatio.toFixed(3)}x ` +
        `(${last.bytes} of ${last.decodedBytes}) ${storedRatio <= GOAL_STORED ? "MET" : "NOT MET"}`,
        `Goal: CLI CPU storing gzip at most ${GOAL_GZIP_CPU}x storing identity: ` +
        `${gzipCpu.toFixed(2)}x ${gzipCpu <= GOAL_GZIP_CPU ? "MET" : "NOT MET"}`,
        `Goal: CLI CPU at most ${GOAL_VS_FLOOR}x the floor's: ${vsFloor.toFixed(2)}x ` +
        `${vsFloor <= GOAL_VS_FLOOR ? "MET" : "NOT MET"}`,
        `Goal: CLI CPU at most ${GOAL_VS_PACOTE}x pacote's: ${vsPacote.toFixed(2)}x ` +
        `${vsPacote <= GOAL_VS_PACOTE ? "MET" : "NOT MET"}`,
        `(pacote CPU is ${(p.cpu / f.cpu).toFixed(1)}x the floor's)`,
      ].join("\n"),
    );
    if (!complete) Deno.exitCode = 1;
  } finally {
    await fixture?.stop();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      floor: { type: "boolean", default: false },
      registry: { type: "string" },
      names: { type: "string" },
      out: { type: "string" },
      dir: { type: "string" },
      runs: { type: "string" },
      "no-pacote": { type: "boolean", default: false },
    },
    strict: true,
  });
  TMP_ROOT = values.dir;
  if (values.runs) RUNS = Number(values.runs);
  PACOTE = !values["no-pacote"];
  if (values.floor) {
    if (!values.registry || !values.names || !values.out) {
      throw new Error("--floor needs --registry, --names and --out");
    }
    await packumentFloor(values.registry, values.names, values.out, CONCURRENCY);
  } else {
    await bench();
  }
}
