/**
 * Output helpers for the CLI: stdout for results, stderr for progress and errors.
 *
 * @module
 */

import process from "node:process";

/** Writes text to stdout, waiting for the stream to drain when it is full. */
export function out(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = process.stdout.write(text, (error) => error ? reject(error) : undefined);
    if (ok) resolve();
    else process.stdout.once("drain", () => resolve());
  });
}

/** Writes a line to stderr. */
export function err(text: string): void {
  process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Whether stderr is a terminal (progress bars are drawn only then). */
export function stderrIsTty(): boolean {
  return process.stderr.isTTY === true;
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

/** A progress line on stderr, redrawn in place on a terminal and silent otherwise. */
export class Progress {
  #enabled: boolean;
  #last = 0;
  constructor(enabled: boolean) {
    this.#enabled = enabled && stderrIsTty();
  }
  /** Redraws the line at most ten times a second. */
  update(text: string, force = false): void {
    if (!this.#enabled) return;
    const now = Date.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    process.stderr.write(`\r\x1b[2K${text}`);
  }
  /** Clears the line. */
  done(): void {
    if (this.#enabled) process.stderr.write("\r\x1b[2K");
  }
}

/** Formats a duration for people: `42s`, `3m05s`, `1h20m`. */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}
