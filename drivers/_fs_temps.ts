/**
 * The fs driver's temporary files: their names, which say who writes them, and the sweep that
 * finds (and removes) those a killed writer left behind.
 *
 * A temporary file is named `.tmp-{pid}-{host}-{random}-{n}`: the writing process's id, an
 * 8-hex-digit hash of its host name, a random tag per driver and a counter. It is stale when
 * its writer is a process of this host that no longer runs (at once), or, whatever its name,
 * when nothing has written to it for `maxAgeMs` (one hour by default: a write in progress
 * touches its file with every chunk, so only a writer stalled that long or running on another
 * host is mistaken for a dead one).
 *
 * @module
 */

import * as fsp from "node:fs/promises";
import { hostname } from "node:os";
import process from "node:process";
import type { StaleWrite, SweepOptions } from "../src/storage/driver.ts";
import { randomHex } from "../src/_util/hex.ts";

/** The name every temporary file starts with. */
export const TMP_PREFIX = ".tmp-";
/** How long an untouched temporary file may be held by a writer not shown dead, by default. */
export const DEFAULT_TMP_MAX_AGE_MS = 60 * 60 * 1000;

const TMP_NAME = /^\.tmp-(\d+)-([0-9a-f]{8})-/;

/** An 8-hex-digit FNV-1a hash of this host's name. */
function hostTag(): string {
  let hash = 0x811c9dc5;
  for (const char of hostname()) {
    hash ^= char.codePointAt(0)!;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}

/**
 * The start of the names of one driver's temporary files (a counter follows).
 *
 * @returns `.tmp-{pid}-{host}-{random}-`.
 */
export function tmpNamePrefix(): string {
  return `${TMP_PREFIX}${process.pid}-${hostTag()}-${randomHex(4)}-`;
}

/** Whether a process of this host with id `pid` is running (`EPERM` means it is). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code !== "ESRCH";
  }
}

/** Whether the temporary file `name` belongs to a process of this host that has died. */
function writerDead(name: string, host: string): boolean {
  const match = TMP_NAME.exec(name);
  if (match === null || match[2] !== host) return false;
  const pid = Number(match[1]);
  return pid !== process.pid && pid > 0 && !isRunning(pid);
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/**
 * Walks `root` and yields every stale temporary file, removing it first when `remove` is set.
 * Files that vanish meanwhile (renamed into place by a write that finished) are skipped.
 *
 * @param root The driver's base directory.
 * @param options Whether to remove, and the age after which an untouched file is stale.
 * @param removed Called with the directory of each removed file (to prune it when empty).
 * @returns The stale files.
 */
export async function* sweepTemps(
  root: string,
  options: SweepOptions,
  removed: (dir: string) => Promise<void>,
): AsyncGenerator<StaleWrite> {
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_TMP_MAX_AGE_MS;
  if (typeof maxAgeMs !== "number" || !(maxAgeMs >= 0)) {
    throw new RangeError(
      `Cannot sweep: 'maxAgeMs' must be a non-negative number, received ${maxAgeMs}`,
    );
  }
  const host = hostTag();
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) continue;
      throw error;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        stack.push(path);
        continue;
      }
      if (!entry.name.startsWith(TMP_PREFIX)) continue;
      let stat;
      try {
        stat = await fsp.lstat(path);
      } catch (error) {
        if (isMissing(error)) continue;
        throw error;
      }
      if (!writerDead(entry.name, host) && Date.now() - stat.mtimeMs < maxAgeMs) continue;
      if (options.remove) {
        try {
          await fsp.unlink(path);
        } catch (error) {
          if (isMissing(error)) continue;
          throw error;
        }
        await removed(dir);
      }
      yield { path, bytes: stat.size };
    }
  }
}
