/**
 * Plumbing shared by the benchmarks: running commands, measuring a process's wall time, CPU
 * time and peak memory the same way for every contender, and starting a fixture server in a
 * separate process.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { packageNameProblem } from "../src/npm/package_name.ts";

/** The repository root. */
export const ROOT: string = dirname(dirname(fileURLToPath(import.meta.url)));
/** Where the `all-the-package-names` package is installed for benchmarks and the demo. */
export const NAMES_DIR: string = join(ROOT, "bench", "names");
/** Its names, a JSON array. */
export const NAMES_FILE: string = join(
  NAMES_DIR,
  "node_modules",
  "all-the-package-names",
  "names.json",
);

/** Runs argv[3:] with stdout to argv[2], then writes wall/CPU/max RSS as JSON to argv[1]. */
const MEASURE_PY = `
import json, resource, subprocess, sys, time
result, stdout, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.monotonic()
with open(stdout, "wb") as out:
    code = subprocess.run(cmd, stdout=out).returncode
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(result, "w") as f:
    json.dump({"code": code, "wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime,
               "maxrss_kb": usage.ru_maxrss}, f)
`;

/** What one measured process used. */
export interface Measurement {
  /** Exit status. */
  code: number;
  /** Wall time, seconds. */
  wall: number;
  /** User CPU, seconds. */
  user: number;
  /** System CPU, seconds. */
  sys: number;
  /** Peak resident set size, KiB. */
  maxrss_kb: number;
}

/** Runs a command from the repository root; throws when it fails. */
export async function run(cmd: string, args: string[], quiet = false): Promise<void> {
  const stdout = quiet ? "null" : "inherit";
  const { code } = await new Deno.Command(cmd, { args, cwd: ROOT, stdout }).spawn().status;
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${code}`);
}

/** Installs the names package with npm when it is missing. */
export async function ensureNames(): Promise<void> {
  try {
    await Deno.stat(NAMES_FILE);
  } catch {
    console.error("installing all-the-package-names into bench/names/ ...");
    await run("npm", ["ci", "--no-audit", "--no-fund", "--prefix", NAMES_DIR]);
  }
}

/**
 * Runs `cmd` under python3 and reads its resource usage with `getrusage(RUSAGE_CHILDREN)`, the
 * same way for every contender. Its stdout goes to `stdoutFile`.
 */
export async function measure(
  tmp: string,
  label: string,
  cmd: string[],
  stdoutFile: string = join(tmp, `${label}.out`),
): Promise<Measurement & { stdout: string }> {
  const result = join(tmp, `${label}.measure.json`);
  console.error(`running ${label} ...`);
  await run("python3", ["-c", MEASURE_PY, result, stdoutFile, ...cmd]);
  const m: Measurement = JSON.parse(await Deno.readTextFile(result));
  const stat = await Deno.stat(stdoutFile);
  const stdout = stat.size < 1_000_000 ? (await Deno.readTextFile(stdoutFile)).trim() : "";
  if (m.code !== 0) throw new Error(`${label} exited with ${m.code}: ${stdout}`);
  return { ...m, stdout };
}

/** A fixture server running in its own process. */
export interface FixtureProcess {
  /** The URL it printed. */
  url: string;
  /** Its process id (for {@linkcode processCpu}). */
  pid: number;
  /** Stops it and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts a fixture module in standalone mode (it prints `listening URL` when ready).
 *
 * @param module The fixture, relative to the repository root.
 * @param args Its arguments.
 */
export async function startFixture(module: string, args: string[]): Promise<FixtureProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, module), ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the fixture exited before listening");
    buffered += value;
  }
  const match = /listening (http:\/\/127\.0\.0\.1:\d+\/?)/.exec(buffered);
  if (!match) throw new Error(`unexpected fixture output: ${buffered}`);
  return {
    url: match[1]!,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
    },
  };
}

/** The packument workload {@linkcode startPackumentRegistry} serves. */
export interface PackumentRegistry {
  /** The registry fixture's process. */
  fixture: FixtureProcess;
  /** Its URL. */
  registry: string;
  /** The names it serves. */
  names: string[];
  /** How many names the whole list holds. */
  total: number;
  /** They, as a JSON array in a file. */
  namesFile: string;
}

/**
 * The packument benchmarks' registry: `count` real names (every `step`th of
 * `all-the-package-names`, each the next one the CLI accepts and the fixture serves), written to
 * `DIR/names.json` and served by `tests/_support/registry_fixture.ts` in its own process with
 * generated packuments, `big` of them 2 to 8 MB; then the CLI's modules are loaded once, so no
 * measured run pays for a first download.
 *
 * @param dir Where to write the names.
 * @param count How many names.
 * @param step Every how many names of the list one is taken.
 * @param big How many big documents.
 * @returns The fixture, its URL and the names.
 */
export async function startPackumentRegistry(
  dir: string,
  count: number,
  step: number,
  big: number,
): Promise<PackumentRegistry> {
  const all: string[] = JSON.parse(await Deno.readTextFile(NAMES_FILE));
  const names: string[] = [];
  for (let i = 0; i < all.length && names.length < count; i += step) {
    // The next name the CLI accepts and the fixture serves (it refuses a leading "-", as in
    // the name "-", which would read as a registry path like /-/ping).
    let j = i;
    while (j < all.length && (packageNameProblem(all[j]!) || all[j]!.startsWith("-"))) j++;
    if (j < all.length) names.push(all[j]!);
  }
  const namesFile = join(dir, "names.json");
  await Deno.writeTextFile(namesFile, JSON.stringify(names));
  const fixture = await startFixture("tests/_support/registry_fixture.ts", [
    "--port",
    "0",
    "--names",
    namesFile,
    "--big",
    String(big),
  ]);
  console.error(
    `fixture at ${fixture.url}, ${names.length} of ${all.length} names (every ${step}th), ` +
      `${big} big`,
  );
  await run(Deno.execPath(), ["run", "-A", "cli.ts", "--help"], true).catch(() => {});
  return { fixture, registry: fixture.url, names, total: all.length, namesFile };
}

/** A machine whose CPUs are busier than this share of its cores is loaded. */
export const LOADED_SHARE = 0.25;

/** How busy the CPUs were over a short window (see {@linkcode checkIdle}). */
export interface IdleCheck {
  /** Cores busy on average over the window (user, nice, system, irq, softirq, steal). */
  busy: number;
  /** Cores counted (the `cpuN` lines of `/proc/stat`). */
  cores: number;
  /** Whether `busy` exceeds {@linkcode LOADED_SHARE} of `cores`. */
  loaded: boolean;
  /** One line for a report: `1.62 of 2 cores busy over 1.0 s (loaded)`. */
  text: string;
}

/** Total and idle jiffies of all CPUs, and the number of cores, from `/proc/stat`. */
async function cpuTimes(): Promise<{ total: number; idle: number; cores: number }> {
  const text = await Deno.readTextFile("/proc/stat");
  const lines = text.split("\n");
  const fields = lines[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = fields.slice(0, 8).reduce((sum, n) => sum + n, 0);
  // Time waiting on I/O is idle CPU: the load average counts those tasks, which is why it
  // sits near 2 on an idle VM whose kernel threads sleep in D state.
  const idle = fields[3]! + fields[4]!;
  const cores = lines.filter((line) => /^cpu\d+ /.test(line)).length;
  return { total, idle, cores };
}

/**
 * Measures how busy the CPUs are over `ms` (from `/proc/stat`, idle and I/O wait counted as
 * idle), for the "machine was loaded" warning of the benches: busy above
 * {@linkcode LOADED_SHARE} of the cores means loaded. Unlike the load average it is not
 * raised by tasks sleeping uninterruptibly.
 *
 * @param ms The window, in ms.
 * @returns The check, or `undefined` where `/proc/stat` cannot be read.
 */
export async function checkIdle(ms = 1000): Promise<IdleCheck | undefined> {
  try {
    const before = await cpuTimes();
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const after = await cpuTimes();
    const seconds = (performance.now() - started) / 1000;
    const total = after.total - before.total;
    const cores = after.cores || navigator.hardwareConcurrency;
    const busyShare = total > 0 ? 1 - (after.idle - before.idle) / total : 0;
    const busy = busyShare * cores;
    const loaded = busyShare > LOADED_SHARE;
    return {
      busy,
      cores,
      loaded,
      text: `${busy.toFixed(2)} of ${cores} cores busy over ${seconds.toFixed(1)} s` +
        (loaded ? ` (loaded: above ${LOADED_SHARE * 100}%)` : ""),
    };
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`: 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * The CPU time (user + system) a running process has used so far, from `/proc/PID/stat`, in
 * seconds (10 ms resolution), or `NaN` where it cannot be read.
 *
 * @param pid The process id.
 */
export async function processCpu(pid: number): Promise<number> {
  try {
    const text = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The command name may hold spaces: the fields after it start past its `)`.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** The median of some numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The path npm clients send: `/left-pad`, `/@scope%2fname`. */
export function packumentPath(name: string): string {
  return name.startsWith("@") ? `/${name.replace("/", "%2f")}` : `/${encodeURIComponent(name)}`;
}

/**
 * Fetches each of `names` with plain `fetch`, `concurrency` at once, and writes each body into
 * `outDir` with one `Deno.writeFile` (`{i}.json`): the floors' packument part.
 *
 * @returns The bytes fetched.
 */
export async function fetchPackumentFiles(
  registry: string,
  names: readonly string[],
  outDir: string,
  concurrency: number,
): Promise<number> {
  const base = registry.replace(/\/$/, "");
  let next = 0;
  let bytes = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
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
  }));
  return bytes;
}

/**
 * The packument floor: {@linkcode fetchPackumentFiles} of the names in `namesFile` (a JSON
 * array).
 */
export async function packumentFloor(
  registry: string,
  namesFile: string,
  outDir: string,
  concurrency: number,
): Promise<void> {
  const names: string[] = JSON.parse(await Deno.readTextFile(namesFile));
  const bytes = await fetchPackumentFiles(registry, names, outDir, concurrency);
  console.log(`floor: ${names.length} packuments, ${(bytes / 1e6).toFixed(1)} MB`);
}
