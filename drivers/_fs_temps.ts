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

import type { StaleWrite, SweepOptions } from "../src/storage/driver.ts";
import type { FsOps } from "./_fs_ops.ts";
import { randomHex } from "../src/_util/hex.ts";

/** The name every temporary file starts with. */
export const TMP_PREFIX = ".tmp-";
/** How long an untouched temporary file may be held by a writer not shown dead, by default. */
export const DEFAULT_TMP_MAX_AGE_MS = 60 * 60 * 1000;

const TMP_NAME = /^\.tmp-(\d+)-([0-9a-f]{8})-/;

/** An 8-hex-digit FNV-1a hash of this host's name. */
function hostTag(ops: FsOps): string {
  let hash = 0x811c9dc5;
  for (const char of ops.hostname()) {
    hash ^= char.codePointAt(0)!;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}

/**
 * The start of the names of one driver's temporary files (a counter follows).
 *
 * @param ops The driver's process id and host name.
 * @returns `.tmp-{pid}-{host}-{random}-`.
 */
export function tmpNamePrefix(ops: FsOps): string {
  return `${TMP_PREFIX}${ops.pid}-${hostTag(ops)}-${randomHex(4)}-`;
}

/** Whether the temporary file `name` belongs to a process of this host that has died. */
function writerDead(ops: FsOps, name: string, host: string): boolean {
  const match = TMP_NAME.exec(name);
  if (match === null || match[2] !== host) return false;
  const pid = Number(match[1]);
  return pid !== ops.pid && pid > 0 && !ops.isRunning(pid);
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/**
 * Walks `root` and yields every stale temporary file, removing it first when `remove` is set.
 * Files that vanish meanwhile (renamed into place by a write that finished) are skipped.
 *
 * @param ops The file operations, and this process's id and host.
 * @param root The driver's base directory.
 * @param options Whether to remove, and the age after which an untouched file is stale.
 * @param removed Called with the directory of each removed file (to prune it when empty).
 * @returns The stale files.
 */
export async function* sweepTemps(
  ops: FsOps,
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
  const host = hostTag(ops);
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries;
    try {
      entries = await ops.readdirTypes(dir);
    } catch (error) {
      if (isMissing(error)) continue;
      throw error;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) {
        stack.push(path);
        continue;
      }
      if (!entry.name.startsWith(TMP_PREFIX)) continue;
      let stat;
      try {
        stat = await ops.lstat(path);
      } catch (error) {
        if (isMissing(error)) continue;
        throw error;
      }
      if (!writerDead(ops, entry.name, host) && Date.now() - stat.mtimeMs < maxAgeMs) continue;
      if (options.remove) {
        try {
          await ops.unlink(path);
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
