/**
 * The CLI's host on Deno's own APIs ({@linkcode denoHost}): nothing of Node's compatibility
 * layer is loaded for it. `cli.ts` sets it (`setHost` of `./host.ts`).
 *
 * @module
 */

import type { CliHost, HostStream, StopSignal } from "./host.ts";
import { isRunning } from "../drivers/fs.deno.ts";

const encoder = new TextEncoder();

/**
 * Deno's stdout or stderr as a {@linkcode HostStream}. Writes are made at once, whole, with
 * blocking calls (as the `process.stdout` Deno has for Node code makes them), so they keep their
 * order with anything else written; a failed one calls back with the error and tells the `error`
 * listeners (a reader that has gone: Deno's `BrokenPipe`).
 */
function denoStream(file: typeof Deno.stdout, columns: () => number | undefined): HostStream {
  const errorListeners: ((error?: Error) => void)[] = [];
  return {
    write(chunk, done) {
      const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
      try {
        let offset = 0;
        while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
      } catch (error) {
        for (const listener of errorListeners) listener(error as Error);
        done?.(error as Error);
        return true;
      }
      done?.();
      return true;
    },
    on(event, listener) {
      if (event === "error") errorListeners.push(listener);
    },
    once() {},
    off() {},
    writableLength: 0,
    isTTY: file.isTerminal(),
    get columns() {
      return columns();
    },
  };
}

/** The terminal's width, when stderr is one. */
function consoleColumns(): number | undefined {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return undefined;
  }
}

/** Windows has no SIGTERM to listen for (Deno throws): a host there stops on SIGINT alone. */
function listenable(signal: StopSignal): boolean {
  return !(signal === "SIGTERM" && Deno.build.os === "windows");
}

/** The home directory the environment names (`HOME`; on Windows `USERPROFILE` first). */
function homeFromEnv(): string | undefined {
  const names = Deno.build.os === "windows" ? ["USERPROFILE", "HOME"] : ["HOME", "USERPROFILE"];
  for (const name of names) {
    const value = Deno.env.get(name);
    if (value) return value;
  }
  return undefined;
}

/** `node:os`'s `homedir` (it asks the system's user database), when the environment names none. */
let systemHomedir: (() => string) | undefined;

/**
 * Readies {@linkcode denoHost} for a process whose environment names no home directory (an
 * `env -i` run, a service without `HOME`): loads `node:os` to ask the user database, as Node
 * does. Nothing is loaded when `HOME` is set.
 */
export async function prepareDenoHost(): Promise<void> {
  if (homeFromEnv() === undefined) systemHomedir = (await import("node:os")).homedir;
}

/** The CLI's host on Deno. */
export const denoHost: CliHost = {
  stdout: denoStream(Deno.stdout, () => undefined),
  stderr: denoStream(Deno.stderr, () => Deno.stderr.isTerminal() ? consoleColumns() : undefined),
  env: (name) => Deno.env.get(name),
  get exitCode() {
    return Deno.exitCode === 0 ? undefined : Deno.exitCode;
  },
  set exitCode(code) {
    Deno.exitCode = code ?? 0;
  },
  exit: () => Deno.exit(),
  onSignal: (signal: StopSignal, listener) => {
    if (listenable(signal)) Deno.addSignalListener(signal, listener);
  },
  offSignal: (signal: StopSignal, listener) => {
    if (listenable(signal)) Deno.removeSignalListener(signal, listener);
  },
  platform: Deno.build.os === "windows" ? "win32" : Deno.build.os,
  homedir: () => homeFromEnv() ?? systemHomedir?.() ?? "/",
  hostname: () => Deno.hostname(),
  pid: Deno.pid,
  isRunning,
};
