/**
 * What the CLI needs of the process it runs in ({@linkcode CliHost}): its standard streams,
 * environment, exit status, signals and identity. The entry point sets it: `cli.ts` to Deno's
 * own APIs (`./host.deno.ts`), so that a command loads nothing of Node's compatibility layer
 * unless it needs it (`node:process` and `node:fs` alone take tens of milliseconds to load on
 * Deno); `cli.node.ts` to `node:process`. Unset, it is made of `globalThis.process` (Node's, or
 * the one Deno has for Node code), as when a test calls the CLI's modules directly.
 *
 * @module
 */

import { runningBySignalZero } from "../src/_util/running.ts";

/** An output stream, as much of Node's `Writable` as the CLI uses. */
export interface HostStream {
  /**
   * Writes `chunk`; `done` runs once it is out (with the error, when it failed).
   *
   * @returns `false` when the stream holds more than it wants: wait for `drain`.
   */
  write(chunk: string | Uint8Array, done?: (error?: Error | null) => void): boolean;
  /** Listens for `error` (a write failed) or `drain` (room again). */
  on(event: "error" | "drain", listener: (error?: Error) => void): unknown;
  /** Listens for the next `drain`. */
  once(event: "drain", listener: () => void): unknown;
  /** Stops listening. */
  off(event: "drain", listener: () => void): unknown;
  /** Bytes written and not yet out. */
  readonly writableLength?: number;
  /** Whether it is a terminal. */
  readonly isTTY?: boolean;
  /** The terminal's width, when it is one. */
  readonly columns?: number | undefined;
}

/** The signals a command stops on. */
export type StopSignal = "SIGINT" | "SIGTERM";

/** What the CLI needs of its process. */
export interface CliHost {
  /** Standard output. */
  readonly stdout: HostStream;
  /** Standard error. */
  readonly stderr: HostStream;
  /** An environment variable (`undefined` when unset). */
  env(name: string): string | undefined;
  /** The status the process ends with, once set. */
  exitCode: number | undefined;
  /** Ends the process with {@linkcode CliHost.exitCode}. */
  exit(): void;
  /** Calls `listener` on `signal` until {@linkcode CliHost.offSignal}. */
  onSignal(signal: StopSignal, listener: () => void): void;
  /** Stops calling `listener` on `signal`. */
  offSignal(signal: StopSignal, listener: () => void): void;
  /** The operating system, as Node names it (`linux`, `darwin`, `win32`, ...). */
  readonly platform: string;
  /** The user's home directory. */
  homedir(): string;
  /** This host's name. */
  hostname(): string;
  /** This process's id. */
  readonly pid: number;
  /** Whether a process of this host with that id runs (`true` when it cannot be told). */
  isRunning(pid: number): boolean;
}

let current: CliHost | undefined;

/**
 * Sets the host the CLI runs on (the entry point does, before anything else).
 *
 * @param host The host.
 */
export function setHost(host: CliHost): void {
  current = host;
}

/**
 * The host the CLI runs on: the one set, else one made of `globalThis.process`.
 *
 * @returns The host.
 */
export function host(): CliHost {
  return current ??= processHost(
    (globalThis as unknown as { process: NodeProcessLike }).process,
  );
}

/** As much of Node's `process` (and `node:os`) as {@linkcode processHost} reads. */
export interface NodeProcessLike {
  /** Standard output. */
  stdout: HostStream;
  /** Standard error. */
  stderr: HostStream;
  /** The environment. */
  env: Record<string, string | undefined>;
  /** The status the process ends with. */
  exitCode?: number | string | null | undefined;
  /** Ends the process. */
  exit(code?: number): void;
  /** Listens for an event (a signal). */
  on(event: string, listener: () => void): unknown;
  /** Stops listening. */
  off(event: string, listener: () => void): unknown;
  /** The operating system. */
  platform: string;
  /** This process's id. */
  pid: number;
  /** Sends a signal to a process. */
  kill(pid: number, signal: number): unknown;
}

/**
 * A host made of Node's `process` and the host name and home directory `node:os` tells.
 *
 * @param process Node's `process` (or Deno's for Node code).
 * @param os `hostname` and `homedir` of `node:os` (else Deno's host name, or the environment's
 *   `HOSTNAME`; the environment's `HOME`).
 * @returns The host.
 */
export function processHost(
  process: NodeProcessLike,
  os: { hostname(): string; homedir(): string } = {
    hostname: () =>
      (globalThis as { Deno?: { hostname(): string } }).Deno?.hostname() ??
        process.env["HOSTNAME"] ?? "localhost",
    homedir: () => process.env["HOME"] || process.env["USERPROFILE"] || "/",
  },
): CliHost {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: (name) => process.env[name],
    get exitCode() {
      const code = process.exitCode;
      return code === undefined || code === null ? undefined : Number(code);
    },
    set exitCode(code) {
      process.exitCode = code;
    },
    exit: () => process.exit(),
    onSignal: (signal, listener) => process.on(signal, listener),
    offSignal: (signal, listener) => process.off(signal, listener),
    platform: process.platform,
    homedir: () => os.homedir(),
    hostname: () => os.hostname(),
    pid: process.pid,
    isRunning: runningBySignalZero((pid, signal) => process.kill(pid, signal)),
  };
}
