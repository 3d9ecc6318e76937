/**
 * Plumbing shared by the benchmarks: running commands, measuring a process's wall time, CPU
 * time and peak memory the same way for every contender, and starting a fixture server in a
 * separate process.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

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
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
    },
  };
}

/** The median of some numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
