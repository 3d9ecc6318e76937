/**
 * Child processes for tests: {@linkcode run} a command to completion, or {@linkcode start} one
 * that keeps running (a server, a peer) and stop it again. Every child gets
 * {@linkcode PLAIN_ENV}, runs in the repository root unless told otherwise, and has no stdin
 * unless it asks for one.
 *
 * @module
 */

/** The repository root, where children run unless told otherwise. */
export const ROOT: string = new URL("../../", import.meta.url).pathname;

/**
 * What every child finds in its environment, under the caller's `env`: no ANSI colours, and no
 * Rust backtrace in a Deno child's panic or error output, so tests can match what it prints.
 */
export const PLAIN_ENV: Readonly<Record<string, string>> = { RUST_BACKTRACE: "0", NO_COLOR: "1" };

/** How much of each stream {@linkcode Child.output} shows. */
const SHOWN = 65536;

/** Where and with what a child runs. */
export interface SpawnOptions {
  /**
   * The child's working directory.
   *
   * @default {ROOT}
   */
  cwd?: string;
  /**
   * Environment values, over {@linkcode PLAIN_ENV}.
   *
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Give the child only {@linkcode PLAIN_ENV} and `env`, not this process's environment.
   *
   * @default {false}
   */
  clearEnv?: boolean;
}

/** What a command that ran to completion said. */
export interface RunResult {
  /** The exit code (128 + the signal number when a signal ended it). */
  code: number;
  /** Standard output, as text. */
  stdout: string;
  /** Standard output, as bytes, for comparisons byte for byte. */
  stdoutBytes: Uint8Array;
  /** Standard error, as text. */
  stderr: string;
}

function command(
  name: string,
  args: string[],
  options: SpawnOptions,
  stdin: "null" | "piped",
): Deno.Command {
  return new Deno.Command(name, {
    args,
    cwd: options.cwd ?? ROOT,
    clearEnv: options.clearEnv ?? false,
    env: { ...PLAIN_ENV, ...options.env },
    stdin,
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Runs `name` with `args` to completion and returns its exit code and output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { run } from "./spawn.ts";
 *
 * const result = await run(Deno.execPath(), ["eval", "console.log(Deno.env.get('NO_COLOR'))"]);
 * assert.deepEqual([result.code, result.stdout], [0, "1\n"]);
 * ```
 */
export async function run(
  name: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<RunResult> {
  const output = await command(name, args, options, "null").output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stdoutBytes: output.stdout,
    stderr: decoder.decode(output.stderr),
  };
}

/** What a command whose stdout was closed early said (see {@linkcode runIntoClosedPipe}). */
export interface ClosedPipeResult {
  /** The exit code (128 + the signal number when a signal ended it). */
  code: number;
  /** Everything it wrote to stderr. */
  stderr: string;
  /** The bytes of stdout read before the pipe was closed. */
  read: number;
}

/**
 * Runs `name` with stdout on a pipe whose reader takes `keep` chunks (0: none) and then closes
 * it, as `| head` does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runIntoClosedPipe } from "./spawn.ts";
 *
 * // The shell's echo finds its reader gone: SIGPIPE ends it (128 + 13).
 * const result = await runIntoClosedPipe("sh", ["-c", "sleep 0.2; echo a"], {}, 0);
 * assert.deepEqual([result.code, result.read], [141, 0]);
 * ```
 */
export async function runIntoClosedPipe(
  name: string,
  args: string[],
  options: SpawnOptions,
  keep: number,
): Promise<ClosedPipeResult> {
  const child = command(name, args, options, "null").spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  let read = 0;
  for (let i = 0; i < keep; i++) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.length;
  }
  await reader.cancel();
  const status = await child.status;
  return { code: status.code, stderr: await stderr, read };
}

/** Options for {@linkcode start}. */
export interface StartOptions extends SpawnOptions {
  /**
   * Give the child a stdin, for one that stops when it closes ({@linkcode Child.closeStdin}).
   *
   * @default {false}
   */
  stdin?: boolean;
  /**
   * Gets each chunk of stdout instead of the child keeping it, for an output too large to hold
   * that is only hashed or counted. {@linkcode Child.line} cannot be used then.
   */
  onStdout?: (chunk: Uint8Array) => void;
}

/** How a child ended. */
export interface Exit {
  /** The exit code (128 + the signal number when a signal ended it). */
  code: number;
  /** The signal that ended it, if one did. */
  signal: Deno.Signal | null;
  /** What it wrote to stdout that {@linkcode Child.line} did not take (none with `onStdout`). */
  stdout: string;
  /** Everything it wrote to stderr. */
  stderr: string;
}

/** A running child, its stdout and stderr read as they come so it never blocks on them. */
export interface Child {
  /** Its process id. */
  readonly pid: number;
  /** The next line of stdout, without its newline; rejects, with the child's output, when
   * stdout ends first. */
  line(): Promise<string>;
  /** What it printed so far (the last 64 KiB of each stream), for error messages. */
  output(): string;
  /** Whether it has exited. */
  exited(): boolean;
  /** Closes its stdin (started with `stdin: true`). */
  closeStdin(): Promise<void>;
  /** Waits until it exits and its output has been read. */
  wait(): Promise<Exit>;
  /** Sends `signal` unless it already exited, then waits; every call returns the same promise. */
  stop(signal?: Deno.Signal): Promise<Exit>;
}

/**
 * Starts `name` with `args` and reads its output while it runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { start } from "./spawn.ts";
 *
 * const script = "console.log('ready'); setInterval(() => {}, 1000)";
 * const child = start(Deno.execPath(), ["eval", script]);
 * assert.equal(await child.line(), "ready");
 * assert.equal((await child.stop()).signal, "SIGTERM");
 * ```
 */
export function start(name: string, args: string[], options: StartOptions = {}): Child {
  const child = command(name, args, options, options.stdin ? "piped" : "null").spawn();
  let stdout = "";
  let stderr = "";
  let cursor = 0;
  let stdoutEnded = false;
  let changed = Promise.withResolvers<void>();
  const pumps = Promise.all([
    (async () => {
      const onStdout = options.onStdout;
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout) {
        if (onStdout) onStdout(chunk);
        else stdout += decoder.decode(chunk, { stream: true });
        changed.resolve();
        changed = Promise.withResolvers();
      }
      stdout += decoder.decode();
      stdoutEnded = true;
      changed.resolve();
    })(),
    (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
    })(),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let waited: Promise<Exit> | undefined;
  let stopped: Promise<Exit> | undefined;
  const output = () => `stdout: ${stdout.slice(-SHOWN)}\nstderr: ${stderr.slice(-SHOWN)}`;
  const wait = (): Promise<Exit> =>
    waited ??= (async () => {
      const { code, signal } = await status;
      await pumps;
      return { code, signal, stdout: stdout.slice(cursor), stderr };
    })();
  return {
    pid: child.pid,
    async line(): Promise<string> {
      while (true) {
        const end = stdout.indexOf("\n", cursor);
        if (end !== -1) {
          const line = stdout.slice(cursor, end);
          cursor = end + 1;
          return line;
        }
        if (stdoutEnded) {
          const { code } = await wait();
          const what = name.split("/").at(-1);
          throw new Error(
            `${what} ended its output (exit code ${code}) before a line\n${output()}`,
          );
        }
        await changed.promise;
      }
    },
    output,
    exited: () => exited,
    closeStdin: () => child.stdin.close(),
    wait,
    stop(signal: Deno.Signal = "SIGTERM"): Promise<Exit> {
      stopped ??= (async () => {
        if (!exited) {
          try {
            child.kill(signal);
          } catch {
            // It exited in the meantime.
          }
        }
        return await wait();
      })();
      return stopped;
    },
  };
}

/** A peer running under Node in its own temporary directory. */
export interface NodePeer {
  /** What the peer printed so far (the last 64 KiB of each stream). */
  output(): string;
  /** Whether it has exited. */
  exited(): boolean;
  /** Stops it once and removes its directory; every call returns the same promise. */
  close(): Promise<void>;
}

/** Starts `node ...args` in `dir`, which `close()` removes again. */
export function spawnNode(args: string[], dir: string): NodePeer {
  const child = start("node", args, { cwd: dir });
  let closed: Promise<void> | undefined;
  return {
    output: child.output,
    exited: child.exited,
    close: () =>
      closed ??= (async () => {
        await child.stop();
        await Deno.remove(dir, { recursive: true });
      })(),
  };
}

/**
 * Polls `url` with GET every `interval` milliseconds, at most 300 times, until it answers 2xx.
 *
 * @throws If `peer` exits first or `url` never answers (with what the peer printed).
 */
export async function waitUntilUp(
  peer: NodePeer,
  what: string,
  url: string,
  interval = 50,
): Promise<void> {
  for (let attempt = 0; attempt < 300 && !peer.exited(); attempt++) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await delay(interval);
  }
  throw new Error(`${what} did not come up at ${url}\n${peer.output()}`);
}

/** A free TCP port on 127.0.0.1 (listen on port 0, note the port, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
