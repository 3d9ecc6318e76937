/**
 * A {@linkcode StorageDriver} on plain files, built on `node:fs` so it runs on Deno and Node
 * alike. Its engine is `./_fs_driver.ts`; `./fs.deno.ts` runs the same on Deno's own file APIs.
 *
 * ## Layout
 *
 * Keys are laid out as an order-preserving trie of directories, so millions of keys stay fast and
 * `list()` walks them in order with bounded memory. The driver works on the key's UTF-8 bytes:
 *
 * - The key is split at `:` into segments. Every segment but the last becomes a directory, the
 *   last one a file.
 * - At each level of a segment, the remaining bytes `R` are compared with the level's chunk size
 *   `k` (2, 2, then 64 bytes for every further level). When `|R| > k`, the key goes into the
 *   chunk directory `c` + esc(`R[0:k]`) and `R[k:]` continues at the next level. Otherwise `R`
 *   is a direct entry: the file `v` + esc(`R`) for the last segment, or the segment directory
 *   `s` + esc(`R`) for any other (whose children start again at level 0 with the next segment).
 * - esc() keeps the bytes `a-z`, `0-9`, `_` and `-` and writes every other byte as `%` plus two
 *   lower-case hex digits, so names are safe on case-insensitive file systems and are never `.`
 *   or `..`. An empty `R` is the type letter alone.
 *
 * For example `v1:packument:npm:40626162656c2f636f7265` is stored at
 * `sv1/cpa/cck/sument/cnp/sm/c40/c62/v6162656c2f636f7265`. The layout's code (the path of a key,
 * the in-order walk of the trie) is in `./_fs_layout.ts`.
 *
 * ## Durability
 *
 * Every `put` writes a temporary file (`.tmp-{pid}-{host}-*`, ignored by `list()`) next to its
 * target and renames it into place. The rename is atomic, so readers never see a partial value, and a put
 * that fails (for example because its stream errors) leaves the old value intact. By default
 * nothing is fsynced: the data survives a crash or `kill -9` of the process but not a power loss
 * or a kernel crash, which may lose recent puts or leave them empty. With `{ fsync: true }` the
 * file is fsynced before the rename and its directory (plus any directory the put created)
 * after it, which adds power-loss durability at the cost of much slower puts.
 *
 * A process killed during a put leaves its temporary file behind. `sweep()` finds such files
 * and with `{ remove: true }` removes them: a file whose writer was a process of this host that
 * is no longer running is stale at once, any other once nothing has written to it for an hour
 * (`maxAgeMs`). The rules are in `./_fs_temps.ts`.
 *
 * ## Limits
 *
 * Keys are at most {@linkcode FS_MAX_KEY_BYTES} (800) UTF-8 bytes. In the worst case (every
 * byte escaped, short segments) such a key takes 2,820 bytes of relative path, which leaves more
 * than 1,200 bytes for the base directory within a `PATH_MAX` of 4,096; no file or directory name
 * is longer than 193 bytes (`NAME_MAX` is 255).
 *
 * ## Directories
 *
 * A `delete` removes the directories it leaves empty, up to the first one that still holds
 * something, so a cache whose bodies are replaced again and again does not fill with empty
 * directories. A `put` whose directory vanishes before its temporary file is open (a delete in
 * this or another process emptied it) makes the directory again.
 *
 * ## Errors
 *
 * A file operation that fails for any reason but a missing path (`EIO`, `ENOSPC`, `EROFS`,
 * `EACCES`, `ENOTDIR`, `EISDIR`, ...) is a {@linkcode StorageError} whose `code` is the system
 * error code and whose `cause` is the original error. A bad key or option, or a closed driver, is
 * a `TypeError` or `RangeError`; an error of a stream being put is passed on as it is.
 *
 * ## Runtimes
 *
 * The file operations are `node:fs`'s ({@linkcode nodeFsOps}). On Deno, `denoFsOps` from
 * `./fs.deno.ts` (`new FsDriver(dir, { ops: denoFsOps })`) are several times cheaper for
 * whole-file work; `./fs.deno.ts`'s own driver runs on them without loading `node:fs` at all
 * (Node's compatibility layer takes tens of milliseconds to load).
 *
 * @example Store and list
 * ```ts
 * import { FsDriver } from "./fs.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const driver = new FsDriver(dir);
 * await driver.put("v1:packument:npm:6c6f64617368", new TextEncoder().encode("{}"));
 * const keys = await Array.fromAsync(driver.list({ prefix: "v1:packument:" }));
 * console.assert(keys.length === 1);
 * await driver.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import * as fsp from "node:fs/promises";
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import process from "node:process";
import { runningBySignalZero } from "../src/_util/running.ts";
import {
  blocking,
  FsDriverBase,
  type FsDriverOptions,
  type FsFile,
  type FsOps,
  type FsStat,
  SYNC_READ_MAX,
  SYNC_WRITE_MAX,
} from "./_fs_driver.ts";

export {
  FS_MAX_KEY_BYTES,
  FsDriverBase,
  type FsDriverOptions,
  type FsFile,
  type FsOps,
  type FsStat,
  SYNC_READ_MAX,
} from "./_fs_driver.ts";
export type {
  ListOptions,
  StaleWrite,
  StorageDriver,
  StorageLimits,
  StorageValue,
  SweepOptions,
} from "../src/storage/driver.ts";

/**
 * Reads a file too large for a blocking read (see {@linkcode SYNC_READ_MAX}) on
 * `node:fs/promises`.
 *
 * @param path The file.
 * @returns Its bytes, as a plain `Uint8Array`.
 */
export async function readLargeFile(path: string): Promise<Uint8Array> {
  return plain(await fsp.readFile(path));
}

/** An open `node:fs` file as an {@linkcode FsFile}. */
function nodeFile(handle: fsp.FileHandle): FsFile {
  return {
    read: async (buffer) => (await handle.read(buffer, 0, buffer.length, null)).bytesRead,
    write: async (data) => (await handle.write(data, 0, data.length, null)).bytesWritten,
    sync: () => handle.sync(),
    close: () => handle.close(),
  };
}

/**
 * {@linkcode FsOps} on `node:fs`: runs on Deno and Node. Directories are read with one
 * blocking call: it took 10 to 15 us a directory here where the async call took 150 to 200 us
 * (thread hop and back), and a `list()` of npm's 256 partitions reads about 2,800 of them. Small
 * files are read and written, renamed and removed with blocking calls too, as on Deno
 * (`./fs.deno.ts`); large ones go through `node:fs/promises`.
 */
export const nodeFsOps: FsOps = {
  // A small file (a record header, a small packument) is read with blocking calls too.
  readFile: (path) =>
    blocking(() => statSync(path).size <= SYNC_READ_MAX).then((small) =>
      small ? plain(readFileSync(path)) : readLargeFile(path)
    ),
  // Small writes, renames and directory calls with blocking calls too, as on Deno.
  writeFileExclusive: (path, data) =>
    data.length <= SYNC_WRITE_MAX
      ? blocking(() => writeFileSync(path, data, { flag: "wx" }))
      : fsp.writeFile(path, data, { flag: "wx" }),
  rename: (from, to) => blocking(() => renameSync(from, to)),
  mkdir: (path, recursive) =>
    blocking(() => {
      mkdirSync(path, { recursive });
    }),
  unlink: (path) => blocking(() => unlinkSync(path)),
  rmdir: (path) => blocking(() => rmdirSync(path)),
  access: (path) => fsp.access(path),
  readdir: (path) => blocking(() => readdirSync(path)),
  readdirTypes: async (path) =>
    (await fsp.readdir(path, { withFileTypes: true })).map((entry) => ({
      name: entry.name,
      isDirectory: entry.isDirectory(),
    })),
  lstat: async (path) => statOf(await fsp.lstat(path)),
  stat: async (path) => statOf(await fsp.stat(path)),
  open: async (path, mode) => nodeFile(await fsp.open(path, mode)),
  link: (from, to) => fsp.link(from, to),
  pid: process.pid,
  hostname: () => hostname(),
  isRunning: runningBySignalZero((pid, signal) => process.kill(pid, signal)),
};

/** What the driver reads of a `node:fs` status. */
function statOf(stat: { isDirectory(): boolean; size: number; mtimeMs: number }): FsStat {
  return { isDirectory: stat.isDirectory(), size: stat.size, mtimeMs: stat.mtimeMs };
}

/** A plain `Uint8Array` over a `Buffer`'s bytes. */
function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A {@linkcode StorageDriver} that stores each value in its own file under a directory, laid out
 * as an order-preserving trie (see the module doc), on {@linkcode nodeFsOps} (`options.ops`
 * replaces some or all of them).
 *
 * @example Stream a value in and out
 * ```ts
 * import { FsDriver } from "./fs.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const driver = new FsDriver(dir);
 * await driver.put("big", ReadableStream.from([new Uint8Array(3), new Uint8Array(4)]));
 * const stream = await driver.getStream("big");
 * let size = 0;
 * for await (const chunk of stream!) size += chunk.byteLength;
 * console.assert(size === 7);
 * await driver.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FsDriver extends FsDriverBase {
  /**
   * Opens (lazily creating) a store in `dir`.
   *
   * @param dir The base directory; created on the first put.
   * @param options `fsync: true` for power-loss durability; `ops` to replace file operations.
   */
  constructor(dir: string, options: FsDriverOptions = {}) {
    super(dir, nodeFsOps, options);
  }
}
