/**
 * Output helpers for the CLI: stdout for results, stderr for progress and errors.
 *
 * @module
 */

import { host } from "./host.ts";

/**
 * Thrown by {@linkcode out} once the reader of stdout has gone (`cmd | head -1` closed the pipe).
 * The command stops and the CLI exits quietly with status 141 (128 + SIGPIPE), as `git` does.
 */
export class StdoutClosed extends Error {
  override name = "StdoutClosed";
  constructor() {
    super("stdout was closed");
  }
}

/** The exit status after stdout was closed: 128 + SIGPIPE (13), what git's status is. */
export const STDOUT_CLOSED_STATUS = 141;

/** A write error other than a closed pipe, kept for the next write to throw. */
let stdoutFailure: Error | undefined;
let stdoutClosed = false;
let listening = false;

function isBrokenPipe(error: unknown): boolean {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  return code === "EPIPE" || name === "BrokenPipe";
}

function noteStdoutError(error: Error): void {
  if (isBrokenPipe(error)) {
    stdoutClosed = true;
    // Also when the last write fails after the command has returned its status.
    host().exitCode = STDOUT_CLOSED_STATUS;
  } else stdoutFailure ??= error;
}

/** Whether a write to stdout found its reader gone. */
export function isStdoutClosed(): boolean {
  return stdoutClosed;
}

/**
 * Writes text or bytes to stdout, waiting for the stream to drain when it is full. Rejects with
 * {@linkcode StdoutClosed} once the reader has gone (Node emits `EPIPE`; Deno's `BrokenPipe`
 * reaches the host's stream as an error too), never with an uncaught error event.
 */
export function out(data: string | Uint8Array): Promise<void> {
  if (!listening) {
    listening = true;
    // Without a listener an EPIPE is an uncaught error event and a stack trace.
    host().stdout.on("error", (error) => noteStdoutError(error!));
  }
  if (stdoutClosed) return Promise.reject(new StdoutClosed());
  if (stdoutFailure) return Promise.reject(stdoutFailure);
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error?: Error | null) => {
      if (settled) return;
      settled = true;
      host().stdout.off("drain", onDrain);
      if (!error) resolve();
      else {
        noteStdoutError(error);
        reject(isBrokenPipe(error) ? new StdoutClosed() : error);
      }
    };
    const onDrain = () => settle();
    const ok = host().stdout.write(data, (error) => {
      if (error) settle(error);
    });
    if (ok) settle();
    // An error while waiting for "drain" settles through the write callback above.
    else host().stdout.once("drain", onDrain);
  });
}

/**
 * Ends the process once the command has returned `status`, as soon as everything written to
 * stdout and stderr has gone out (a reader slower than the command still gets all of it).
 * Nothing the command started keeps the process alive (say, a timer of a pivots module that
 * never finished loading), and the runtime's own teardown (freeing the heap) is skipped.
 *
 * @param status The command's exit status (a closed stdout makes it 141, see above).
 */
export async function exitAfterOutput(status: number): Promise<void> {
  const { stdout, stderr } = host();
  host().exitCode = isStdoutClosed() ? STDOUT_CLOSED_STATUS : status;
  await drainThenExit([stdout, stderr], () => host().exit());
}

/** What {@linkcode drainThenExit} needs of an output stream (Node's `Writable`). */
export interface DrainableStream {
  /** Writes `chunk`; `done` runs once it, and every write before it, is out (or failed). */
  write(chunk: string, done: () => void): boolean;
  /** Bytes written and not yet out. */
  readonly writableLength?: number;
}

/**
 * Calls `exit` once every stream's writes are out. Should a stream never call back, `exit` is
 * called at the first check (every `checkMs`) that finds nothing left to write in any stream.
 *
 * @param streams The streams to drain.
 * @param exit Ends the process.
 * @param checkMs How often to look for streams with nothing left to write.
 */
export async function drainThenExit(
  streams: readonly DrainableStream[],
  exit: () => void,
  checkMs = 1000,
): Promise<void> {
  let exited = false;
  const end = () => {
    if (exited) return;
    exited = true;
    exit();
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    if (streams.every((stream) => !stream.writableLength)) end();
    else timer = unrefTimer(setTimeout(check, checkMs));
  };
  timer = unrefTimer(setTimeout(check, checkMs));
  try {
    await Promise.all(
      streams.map((stream) => new Promise<void>((resolve) => stream.write("", () => resolve()))),
    );
  } finally {
    clearTimeout(timer);
  }
  end();
}

/**
 * A timer that keeps no event loop alive: Node's timer `unref()`ed, Deno's timer id passed to
 * `Deno.unrefTimer`.
 */
function unrefTimer<T>(timer: T): T {
  const deno = (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno;
  if (typeof timer === "number") deno?.unrefTimer(timer);
  else (timer as { unref?: () => void }).unref?.();
  return timer;
}

/** Writes a line to stderr. */
export function err(text: string): void {
  host().stderr.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Whether stderr is a terminal (progress bars are drawn only then). */
export function stderrIsTty(): boolean {
  return host().stderr.isTTY === true;
}

/** Formats a byte count for people. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * How progress is shown: `tty` redraws one line in place (at most ten times a second), `lines`
 * writes a plain line at most once a second (for logs, with `--progress` when stderr is not a
 * terminal, and on a terminal that declares itself `TERM=dumb`), `off` writes nothing.
 */
export type ProgressMode = "tty" | "lines" | "off";

/** Whether the terminal declares it understands no control sequences (`TERM=dumb`). */
export function isDumbTerminal(): boolean {
  return host().env("TERM") === "dumb";
}

/**
 * The progress mode the global options ask for. A `TERM=dumb` terminal gets plain lines, and
 * only when asked with `--progress`: no control sequence ever goes to it.
 */
export function progressMode(
  options: { quiet: boolean; json: boolean; progress: boolean },
  isTty: boolean = stderrIsTty(),
  dumb: boolean = isDumbTerminal(),
): ProgressMode {
  const tty = isTty && !dumb;
  if (options.progress) return tty ? "tty" : "lines";
  if (options.quiet || options.json) return "off";
  return tty ? "tty" : "off";
}

/** The width of the terminal stderr is on, in columns, when known. */
export function stderrColumns(): number | undefined {
  const columns = host().stderr.columns;
  return typeof columns === "number" && columns > 0 ? columns : undefined;
}

/** A progress line on stderr. */
export class Progress {
  #mode: ProgressMode;
  #write: (text: string) => void;
  #now: () => number;
  #columns: () => number | undefined;
  #last = -Infinity;
  #shown = false;

  /**
   * @param mode How to show progress.
   * @param write Where the text goes (stderr by default).
   * @param now The clock, in milliseconds.
   * @param columns The terminal's width (stderr's by default): a redrawn line is cut to one
   * column less, so it never wraps (a wrapped line could not be redrawn in place).
   */
  constructor(
    mode: ProgressMode,
    write: (text: string) => void = (text) => host().stderr.write(text),
    now: () => number = Date.now,
    columns: () => number | undefined = stderrColumns,
  ) {
    this.#mode = mode;
    this.#write = write;
    this.#now = now;
    this.#columns = columns;
  }

  /** The progress the global options ask for, on stderr. */
  static for(options: { quiet: boolean; json: boolean; progress: boolean }): Progress {
    return new Progress(progressMode(options));
  }

  /**
   * Shows `text`, unless the last update was too recent. On a terminal `force` shows it anyway
   * (redrawing costs nothing there); as lines, a second is the least gap whatever `force` says.
   */
  update(text: string, force = false): void {
    if (this.#mode === "off") return;
    const now = this.#now();
    const tty = this.#mode === "tty";
    if (!(force && tty) && now - this.#last < (tty ? 100 : 1000)) return;
    this.#last = now;
    this.#shown = true;
    if (!tty) {
      this.#write(`${text}\n`);
      return;
    }
    const columns = this.#columns();
    const line = columns !== undefined && text.length >= columns
      ? text.slice(0, Math.max(columns - 1, 0))
      : text;
    this.#write(`\r\x1b[2K${line}`);
  }

  /** Clears the line (on a terminal). */
  done(): void {
    if (this.#mode === "tty" && this.#shown) this.#write("\r\x1b[2K");
  }
}

/** A text progress bar: `[######------------------]`. */
export function bar(done: number, total: number | undefined, width = 24): string {
  const filled = total ? Math.min(width, Math.round((done / total) * width)) : 0;
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

/** Formats a duration for people: `42s`, `3m05s`, `1h20m`. */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}
