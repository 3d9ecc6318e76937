/**
 * Runs the CLI as a user would: `deno run -A cli.ts ...` from the repository root, through the
 * helpers of `spawn.ts`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type Child, delay, run, type RunResult, start } from "./spawn.ts";

/** The command line up to the CLI's own arguments. */
const CLI = ["run", "-A", "cli.ts"];

/**
 * Runs `cli.ts` with `args` and extra environment values to completion; with `clearEnv`, the
 * child gets only `env` (and the settings that keep its output plain).
 */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  options: { clearEnv?: boolean } = {},
): Promise<RunResult> {
  return run(Deno.execPath(), [...CLI, ...args], { env, clearEnv: options.clearEnv ?? false });
}

/** Starts `cli.ts` with `args` and extra environment values, for a run the test stops or reads
 * as it goes. */
export function startCli(args: string[], env: Record<string, string> = {}): Child {
  return start(Deno.execPath(), [...CLI, ...args], { env });
}

/** A CLI run whose peak memory was watched. */
export interface MeasuredRun {
  code: number;
  /** SHA-256 (hex) of everything written to stdout. */
  stdoutSha256: string;
  stdoutBytes: number;
  stderr: string;
  /** The process's peak resident set size (VmHWM), in bytes, as last read from /proc. */
  peakRss: number;
}

/**
 * Runs `cli.ts` while reading its peak resident set size from `/proc/<pid>/status` (Linux), and
 * hashes stdout as it streams so a large output is never held.
 */
export async function runCliMeasured(
  args: string[],
  env: Record<string, string> = {},
): Promise<MeasuredRun> {
  const hash = createHash("sha256");
  let stdoutBytes = 0;
  const child = start(Deno.execPath(), [...CLI, ...args], {
    env,
    onStdout(chunk) {
      hash.update(chunk);
      stdoutBytes += chunk.length;
    },
  });
  const watch = watchPeakRss(child.pid);
  const { code, stderr } = await child.wait();
  const peakRss = await watch.stop();
  return { code, stdoutSha256: hash.digest("hex"), stdoutBytes, stderr, peakRss };
}

/**
 * Watches a process's peak resident set size (VmHWM, from `/proc/<pid>/status`, Linux) every
 * 10 ms until stopped.
 *
 * @returns `stop()`, which resolves to the peak in bytes (0 when it was never read).
 */
export function watchPeakRss(pid: number): { stop(): Promise<number> } {
  let peakRss = 0;
  let running = true;
  const watch = (async () => {
    while (running) {
      try {
        const status = await Deno.readTextFile(`/proc/${pid}/status`);
        const match = /VmHWM:\s+(\d+) kB/.exec(status);
        if (match) peakRss = Math.max(peakRss, Number(match[1]) * 1024);
      } catch {
        // The process has exited.
      }
      await delay(10);
    }
  })();
  return {
    async stop() {
      running = false;
      await watch;
      return peakRss;
    },
  };
}
