import { createHash } from "node:crypto";

/** Runs the CLI as a user would: `deno run -A cli.ts ...` from the repository root. */

const root = new URL("../../", import.meta.url).pathname;

/** The outcome of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cli.ts` with `args` and extra environment values; with `clearEnv`, the child gets only
 * `env` (and the two settings that keep its output plain).
 */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  options: { clearEnv?: boolean } = {},
): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: root,
    clearEnv: options.clearEnv === true,
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
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
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: root,
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peakRss = 0;
  let running = true;
  const watch = (async () => {
    while (running) {
      try {
        const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
        const match = /VmHWM:\s+(\d+) kB/.exec(status);
        if (match) peakRss = Math.max(peakRss, Number(match[1]) * 1024);
      } catch {
        // The process has exited.
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const hash = createHash("sha256");
  let stdoutBytes = 0;
  const stdoutDone = (async () => {
    for await (const chunk of child.stdout) {
      hash.update(chunk);
      stdoutBytes += chunk.length;
    }
  })();
  const stderr = new Response(child.stderr).text();
  const status = await child.status;
  running = false;
  await Promise.all([watch, stdoutDone]);
  return {
    code: status.code,
    stdoutSha256: hash.digest("hex"),
    stdoutBytes,
    stderr: await stderr,
    peakRss,
  };
}
