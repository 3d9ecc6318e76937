/**
 * A {@linkcode StorageDriver} on plain files, built on `node:fs/promises` so it runs on Deno and
 * Node alike.
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
 * `sv1/cpa/cck/sument/cnp/sm/c40/c62/v6162656c2f636f7265`.
 *
 * ## Durability
 *
 * Every `put` writes a temporary file (`.tmp-*`, ignored by `list()`) next to its target and
 * renames it into place. The rename is atomic, so readers never see a partial value, and a put
 * that fails (for example because its stream errors) leaves the old value intact. By default
 * nothing is fsynced: the data survives a crash or `kill -9` of the process but not a power loss
 * or a kernel crash, which may lose recent puts or leave them empty. With `{ fsync: true }` the
 * file is fsynced before the rename and its directory (plus any directory the put created)
 * after it, which adds power-loss durability at the cost of much slower puts.
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
import type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
import { checkKey, checkListOptions } from "./_checks.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";

/** The longest key, in UTF-8 bytes, that {@linkcode FsDriver} accepts. */
export const FS_MAX_KEY_BYTES = 800;

/** Options for {@linkcode FsDriver}. */
export interface FsDriverOptions {
  /**
   * Fsync each value before renaming it into place and its directory after, for durability
   * across power loss. Much slower.
   * @default {false}
   */
  fsync?: boolean;
  /**
   * The file operations for whole-file work (reads, writes, renames, directories). The default
   * uses `node:fs/promises`, which runs on Deno and Node; a runtime's entry point may pass
   * native ones (on Deno, {@linkcode denoFsOps} in `drivers/for_deno.ts` is several times
   * cheaper). Streaming reads and writes always use `node:fs/promises`.
   * @default {nodeFsOps}
   */
  ops?: FsOps;
}

/**
 * Whole-file operations the fs driver needs. Errors must carry Node's `code` (`ENOENT`,
 * `EEXIST`), as both `node:fs` and Deno's own errors do.
 */
export interface FsOps {
  /** Reads a whole file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Writes a new file, failing with `EEXIST` if it exists. */
  writeFileExclusive(path: string, data: Uint8Array): Promise<void>;
  /** Renames a file, replacing the target atomically. */
  rename(from: string, to: string): Promise<void>;
  /** Creates a directory (with its parents when `recursive`). */
  mkdir(path: string, recursive: boolean): Promise<void>;
  /** Removes a file. */
  unlink(path: string): Promise<void>;
  /** Removes an empty directory, failing with `ENOTEMPTY` (or `EEXIST`) when it is not. Without
   * it, directories a delete leaves empty stay in place. */
  rmdir?(path: string): Promise<void>;
  /** Resolves when the path exists. */
  access(path: string): Promise<void>;
  /** The names in a directory. */
  readdir(path: string): Promise<string[]>;
}

/** {@linkcode FsOps} on `node:fs/promises`: runs on Deno and Node. */
export const nodeFsOps: FsOps = {
  readFile: async (path) => plain(await fsp.readFile(path)),
  writeFileExclusive: (path, data) => fsp.writeFile(path, data, { flag: "wx" }),
  rename: (from, to) => fsp.rename(from, to),
  mkdir: async (path, recursive) => {
    await fsp.mkdir(path, { recursive });
  },
  unlink: (path) => fsp.unlink(path),
  rmdir: (path) => fsp.rmdir(path),
  access: (path) => fsp.access(path),
  readdir: (path) => fsp.readdir(path),
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const COLON = 0x3a;
const READ_CHUNK = 64 * 1024;
/** Tries at making a directory and opening a file in it, when deletes keep removing it. */
const MAKE_DIR_ATTEMPTS = 8;

/** The chunk size in bytes at `level` within a segment. */
function chunkSize(level: number): number {
  return level < 2 ? 2 : 64;
}

/** esc() of every byte. */
const ESCAPE: readonly string[] = Array.from({ length: 256 }, (_, b) => {
  const literal = (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x5f ||
    b === 0x2d;
  return literal ? String.fromCharCode(b) : "%" + b.toString(16).padStart(2, "0");
});

/** The byte value of a hex digit, or -1. */
function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/** esc() of `bytes[from:to]`. */
function escapeBytes(bytes: Uint8Array, from: number, to: number): string {
  let out = "";
  for (let i = from; i < to; i++) out += ESCAPE[bytes[i]!];
  return out;
}

/** The bytes an escaped name (without its type letter) stands for, or `undefined` if invalid. */
function unescapeName(name: string): Uint8Array | undefined {
  const out = new Uint8Array(name.length - 1);
  let n = 0;
  for (let i = 1; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code === 0x25) {
      const hi = hexValue(name.charCodeAt(i + 1));
      const lo = hexValue(name.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      out[n++] = hi * 16 + lo;
      i += 2;
    } else if (code < 128 && ESCAPE[code]!.length === 1) {
      out[n++] = code;
    } else {
      return undefined;
    }
  }
  return out.subarray(0, n);
}

/** Where a key lives: its directory relative to the root (`""` for the root) and file name. */
interface Location {
  dir: string;
  file: string;
}

/**
 * The relative directory and file name of a key, as documented in the module doc.
 *
 * @param bytes The key's UTF-8 bytes.
 * @returns The location of the key's file.
 */
function locate(bytes: Uint8Array): Location {
  let dir = "";
  let from = 0;
  while (true) {
    let to = bytes.indexOf(COLON, from);
    const last = to < 0;
    if (last) to = bytes.length;
    let level = 0;
    while (to - from > chunkSize(level)) {
      const k = chunkSize(level);
      dir += (dir === "" ? "c" : "/c") + escapeBytes(bytes, from, from + k);
      from += k;
      level++;
    }
    const name = escapeBytes(bytes, from, to);
    if (last) return { dir, file: "v" + name };
    dir += (dir === "" ? "s" : "/s") + name;
    from = to + 1;
  }
}

/** Compares two byte strings. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** Whether `bytes` starts with `prefix`. */
function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (prefix.length > bytes.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** `a` followed by `b`, and optionally one more byte. */
function concat(a: Uint8Array, b: Uint8Array, extra?: number): Uint8Array {
  const out = new Uint8Array(a.length + b.length + (extra === undefined ? 0 : 1));
  out.set(a, 0);
  out.set(b, a.length);
  if (extra !== undefined) out[a.length + b.length] = extra;
  return out;
}

/** An entry of a directory during `list()`. */
interface Node {
  /** `v` file, `s` segment directory, `c` chunk directory. */
  kind: "v" | "s" | "c";
  /** Its full path. */
  path: string;
  /** The exact key (`v`) or the prefix every key below it starts with (`s`, `c`). */
  key: Uint8Array;
  /** For `c`: the chunk level of its children. */
  level: number;
  /** For `c`: the path of the sibling segment directory with the same bytes, merged into it. */
  merged?: string;
}

/** Sorts nodes in key order; a file sorts before a chunk directory with the same bytes. */
function compareNodes(a: Node, b: Node): number {
  const d = compareBytes(a.key, b.key);
  if (d !== 0) return d;
  return a.kind === "v" ? -1 : b.kind === "v" ? 1 : 0;
}

/** The error code of a Node.js system error, if any. */
function errorCode(error: unknown): unknown {
  return typeof error === "object" && error !== null && "code" in error
    ? (error as { code: unknown }).code
    : undefined;
}

/** Whether an error means the path is not there. */
function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

/** Writes all of `chunk` through `handle` at its current position. */
async function writeAll(handle: fsp.FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset, null);
    offset += bytesWritten;
  }
}

/** Fsyncs a directory, ignoring platforms that cannot open directories. */
async function syncDir(path: string): Promise<void> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, "r");
  } catch (error) {
    const code = errorCode(error);
    if (code === "EISDIR" || code === "EPERM" || code === "EACCES") return;
    throw error;
  }
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The parent of a relative directory path (`""` for a top-level one). */
function parentOf(relative: string): string {
  const cut = relative.lastIndexOf("/");
  return cut < 0 ? "" : relative.slice(0, cut);
}

/** Creates a directory whose parent exists; returns whether it was created. */
async function mkdirIfMissing(ops: FsOps, path: string): Promise<boolean> {
  try {
    await ops.mkdir(path, false);
    return true;
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    throw error;
  }
}

/** A plain `Uint8Array` over a `Buffer`'s bytes. */
function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A {@linkcode StorageDriver} that stores each value in its own file under a directory, laid out
 * as an order-preserving trie (see the module doc).
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
export class FsDriver implements StorageDriver {
  /** Always `"fs"`. */
  readonly name: string = "fs";
  /** Keys up to {@linkcode FS_MAX_KEY_BYTES} UTF-8 bytes. */
  readonly limits: StorageLimits = { maxKeyBytes: FS_MAX_KEY_BYTES };
  #root: string;
  #fsync: boolean;
  #ops: FsOps;
  #dirs: Set<string> = new Set();
  #creating: Map<string, Promise<void>> = new Map();
  #tmpPrefix: string;
  #tmpCount = 0;
  #closed = false;

  /**
   * Opens (lazily creating) a store in `dir`.
   *
   * @param dir The base directory; created on the first put.
   * @param options `fsync: true` for power-loss durability.
   */
  constructor(dir: string, options: FsDriverOptions = {}) {
    if (typeof dir !== "string" || dir === "") {
      throw new TypeError(
        `Cannot open fs driver: dir must be a non-empty string, received ${JSON.stringify(dir)}`,
      );
    }
    this.#root = dir.length > 1 && dir.endsWith("/") ? dir.slice(0, -1) : dir;
    this.#fsync = options.fsync ?? false;
    this.#ops = options.ops ?? nodeFsOps;
    const random = new Uint8Array(6);
    crypto.getRandomValues(random);
    this.#tmpPrefix = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /**
   * The whole value of `key`, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns The stored bytes.
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    const path = this.#locate("get", key).path;
    try {
      return await this.#ops.readFile(path);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /**
   * The value of `key` as a stream read from the file in 64 KiB chunks, or `undefined` when
   * absent. The stream reads the value as it was when the file was opened, even if it is
   * replaced meanwhile. Read it to the end or cancel it, so the file handle is closed.
   *
   * @param key The key to read.
   * @returns A stream of the stored bytes.
   */
  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const path = this.#locate("get", key).path;
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(path, "r");
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    let open = true;
    async function close(): Promise<void> {
      if (!open) return;
      open = false;
      await handle.close();
    }
    return new ReadableStream<Uint8Array>({
      async pull(controller): Promise<void> {
        try {
          const buffer = new Uint8Array(READ_CHUNK);
          const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK, null);
          if (bytesRead === 0) {
            await close();
            controller.close();
            return;
          }
          controller.enqueue(bytesRead === READ_CHUNK ? buffer : buffer.slice(0, bytesRead));
        } catch (error) {
          await close().catch(() => {});
          controller.error(error);
        }
      },
      async cancel(): Promise<void> {
        await close();
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Stores `value` under `key` through a temporary file and an atomic rename. On failure the
   * temporary file is removed and the old value stays.
   *
   * @param key The key to write.
   * @param value The bytes, whole or as a stream (streamed to disk, never held whole).
   * @returns A promise that resolves once the value is in place.
   */
  async put(key: string, value: StorageValue): Promise<void> {
    const { dir, dirPath, path } = this.#locate("put", key);
    const tmp = `${dirPath}/.tmp-${this.#tmpPrefix}${(this.#tmpCount++).toString(36)}`;
    try {
      await this.#writeTmp(dir, dirPath, tmp, value);
      // The directory holds the temporary file, so no delete can remove it before the rename.
      await this.#ops.rename(tmp, path);
    } catch (error) {
      await this.#ops.unlink(tmp).catch(() => {});
      throw error;
    }
    if (this.#fsync) await syncDir(dirPath);
  }

  /**
   * Makes the directory, then writes the temporary file in it. A delete (here or in another
   * process) removes directories it leaves empty, so the directory may vanish between the two:
   * it is then made again. Only making the directory and creating the file are tried again,
   * both before any of a stream is read, so a stream is never read twice.
   */
  async #writeTmp(dir: string, dirPath: string, tmp: string, value: StorageValue): Promise<void> {
    let handle: fsp.FileHandle;
    for (let attempt = 1;; attempt++) {
      try {
        await this.#ensureDir(dirPath, dir);
        if (value instanceof Uint8Array && !this.#fsync) {
          await this.#ops.writeFileExclusive(tmp, value);
          return;
        }
        handle = await fsp.open(tmp, "wx");
        break;
      } catch (error) {
        if (errorCode(error) !== "ENOENT" || attempt >= MAKE_DIR_ATTEMPTS) throw error;
        // Forget `dir` and its ancestors: one of them was removed.
        for (let at = dir; at !== ""; at = parentOf(at)) this.#dirs.delete(this.#abs(at));
      }
    }
    try {
      if (value instanceof Uint8Array) {
        await writeAll(handle, value);
      } else {
        const reader = value.getReader();
        try {
          while (true) {
            const { done, value: chunk } = await reader.read();
            if (done) break;
            await writeAll(handle, chunk);
          }
        } catch (error) {
          await reader.cancel(error).catch(() => {});
          throw error;
        } finally {
          reader.releaseLock();
        }
      }
      if (this.#fsync) await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /**
   * Removes `key`'s file; absent keys are not an error. Directories it leaves empty are removed
   * too, up to the first one that still holds something (a put racing into one of them makes it
   * again).
   *
   * @param key The key to remove.
   * @returns A promise that resolves once the key is gone.
   */
  async delete(key: string): Promise<void> {
    const { dir, path } = this.#locate("delete", key);
    try {
      await this.#ops.unlink(path);
    } catch (error) {
      if (!isMissing(error)) throw error;
      return;
    }
    await this.#prune(dir);
  }

  /** Removes `relative` and its ancestors below the root while they are empty. */
  async #prune(relative: string): Promise<void> {
    const rmdir = this.#ops.rmdir;
    if (rmdir === undefined) return;
    for (let at = relative; at !== ""; at = parentOf(at)) {
      const path = this.#abs(at);
      try {
        await rmdir(path);
      } catch {
        return; // Not empty (or gone already): its ancestors are not empty either.
      }
      this.#dirs.delete(path);
    }
  }

  /**
   * Whether `key` is present.
   *
   * @param key The key to look up.
   * @returns `true` when the key's file exists.
   */
  async has(key: string): Promise<boolean> {
    const path = this.#locate("check", key).path;
    try {
      await this.#ops.access(path);
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  /**
   * Keys in code-point order that match `options`, walking the trie depth-first and skipping
   * directories outside the prefix and range.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   */
  async *list(options: ListOptions = {}): AsyncIterable<string> {
    this.#assertOpen("list");
    const checked = checkListOptions(options);
    if (checked.limit === 0) return;
    const prefix = encoder.encode(checked.prefix);
    const start = checked.start === undefined ? undefined : encoder.encode(checked.start);
    const end = checked.end === undefined ? undefined : encoder.encode(checked.end);
    const limit = checked.limit;

    // Go straight to the deepest directory the prefix determines.
    let dir = "";
    let level = 0;
    let from = 0;
    while (true) {
      const colon = prefix.indexOf(COLON, from);
      const to = colon < 0 ? prefix.length : colon;
      level = 0;
      while (to - from > chunkSize(level)) {
        const k = chunkSize(level);
        dir += "/c" + escapeBytes(prefix, from, from + k);
        from += k;
        level++;
      }
      if (colon < 0) break;
      dir += "/s" + escapeBytes(prefix, from, to);
      from = to + 1;
    }

    let count = 0;
    const stack: { nodes: Node[]; next: number }[] = [{
      nodes: await readNodes(
        this.#ops,
        this.#root + dir,
        level,
        prefix.subarray(0, from),
        undefined,
      ),
      next: 0,
    }];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const node = frame.nodes[frame.next++];
      if (node === undefined) {
        stack.pop();
        continue;
      }
      const q = node.key;
      if (end !== undefined && compareBytes(q, end) >= 0) return;
      if (!startsWith(q, prefix)) {
        if (compareBytes(q, prefix) > 0) return;
        if (node.kind === "v" || !startsWith(prefix, q)) continue;
      }
      if (node.kind === "v") {
        if (start !== undefined && compareBytes(q, start) < 0) continue;
        yield decoder.decode(q);
        if (++count >= limit) return;
        this.#assertOpen("list");
        continue;
      }
      // Every key below starts with q: skip the block when all of them are before start.
      if (start !== undefined && compareBytes(q, start) < 0 && !startsWith(start, q)) continue;
      const childLevel = node.kind === "c" ? node.level : 0;
      stack.push({
        nodes: await readNodes(this.#ops, node.path, childLevel, q, node.merged),
        next: 0,
      });
    }
  }

  /**
   * Marks the driver closed; further calls are errors. Closing twice is fine.
   *
   * @returns A promise that resolves once closed.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#dirs.clear();
    return Promise.resolve();
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw new TypeError(`Cannot ${op} key: the fs driver is closed`);
  }

  #encode(op: string, key: string): Uint8Array {
    checkKey(op, key);
    const bytes = encoder.encode(key);
    if (bytes.length > FS_MAX_KEY_BYTES) {
      throw new RangeError(
        `Cannot ${op} key: key exceeds ${FS_MAX_KEY_BYTES} UTF-8 bytes, received ${bytes.length}`,
      );
    }
    return bytes;
  }

  /** Where `key` lives: its directory (relative, and absolute) and its file. */
  #locate(op: string, key: string): { dir: string; dirPath: string; path: string } {
    this.#assertOpen(op);
    const { dir, file } = locate(this.#encode(op, key));
    const dirPath = this.#abs(dir);
    return { dir, dirPath, path: `${dirPath}/${file}` };
  }

  /** The absolute path of the directory `relative` (`""` is the root). */
  #abs(relative: string): string {
    return relative === "" ? this.#root : `${this.#root}/${relative}`;
  }

  /**
   * Creates the directory `relative` (and missing parents), remembering what exists. Concurrent
   * calls for one directory share one creation.
   */
  #ensureDir(path: string, relative: string, missing = false): Promise<void> {
    if (this.#dirs.has(path)) return Promise.resolve();
    let pending = this.#creating.get(path);
    if (pending === undefined) {
      pending = this.#createDir(path, relative, missing).finally(() => {
        this.#creating.delete(path);
      });
      this.#creating.set(path, pending);
    }
    return pending;
  }

  /**
   * Makes one directory. When its parent is known to exist, one mkdir. Otherwise one mkdir
   * settles the common cases (the parent exists; the directory exists); when that finds the
   * parent missing (or `missing` says so already), the parent is made first, the same way.
   */
  async #createDir(path: string, relative: string, missing: boolean): Promise<void> {
    if (relative === "") {
      await this.#ops.mkdir(path, true);
      this.#dirs.add(path);
      return;
    }
    const parentRelative = parentOf(relative);
    const parent = this.#abs(parentRelative);
    let made = missing ? undefined : await this.#tryMkdir(path);
    if (made === undefined) {
      await this.#ensureDir(parent, parentRelative, true);
      made = await mkdirIfMissing(this.#ops, path);
    }
    // A new directory entry needs its parent fsynced to survive a power loss.
    if (made && this.#fsync) await syncDir(parent);
    this.#dirs.add(path);
  }

  /** One mkdir: whether it made the directory, or `undefined` when its parent is missing. */
  async #tryMkdir(path: string): Promise<boolean | undefined> {
    try {
      await this.#ops.mkdir(path, false);
      return true;
    } catch (error) {
      const code = errorCode(error);
      if (code === "EEXIST") return false;
      if (code === "ENOENT") return undefined;
      throw error;
    }
  }
}

/** Reads a directory into nodes sorted in key order; `acc` is the key prefix it stands for. */
async function readNodes(
  ops: FsOps,
  path: string,
  level: number,
  acc: Uint8Array,
  merged: string | undefined,
): Promise<Node[]> {
  let names: string[];
  try {
    names = await ops.readdir(path);
  } catch (error) {
    if (isMissing(error)) names = [];
    else throw error;
  }
  const k = chunkSize(level);
  const nodes: Node[] = [];
  let segments: Map<string, Node> | undefined;
  let chunks: Map<string, Node> | undefined;
  for (const name of names) {
    const kind = name[0];
    if (kind !== "v" && kind !== "s" && kind !== "c") continue;
    const bytes = unescapeName(name);
    if (bytes === undefined) continue;
    const full = `${path}/${name}`;
    if (kind === "v") {
      nodes.push({ kind, path: full, key: concat(acc, bytes), level: 0 });
    } else if (kind === "s") {
      const node: Node = { kind, path: full, key: concat(acc, bytes, COLON), level: 0 };
      nodes.push(node);
      (segments ??= new Map()).set(name.slice(1), node);
    } else if (bytes.length === k) {
      const node: Node = { kind, path: full, key: concat(acc, bytes), level: level + 1 };
      nodes.push(node);
      (chunks ??= new Map()).set(name.slice(1), node);
    }
  }
  // A segment directory X holds keys `X:...` and the chunk directory X keys `X<byte>...`, which
  // interleave (`-` and digits sort before `:`). Walk the segment directory from inside the
  // chunk directory, where it sorts as the entry `:`.
  let result = nodes;
  if (segments !== undefined && chunks !== undefined) {
    const drop = new Set<Node>();
    for (const [bytes, chunk] of chunks) {
      const segment = segments.get(bytes);
      if (segment === undefined) continue;
      chunk.merged = segment.path;
      drop.add(segment);
    }
    if (drop.size > 0) result = nodes.filter((node) => !drop.has(node));
  }
  if (merged !== undefined) {
    result.push({ kind: "s", path: merged, key: concat(acc, new Uint8Array(0), COLON), level: 0 });
  }
  return result.sort(compareNodes);
}
