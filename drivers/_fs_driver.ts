/**
 * The fs driver's engine ({@linkcode FsDriverBase}): the layout, durability, limits and errors
 * that `./fs.ts` documents, on file operations handed in ({@linkcode FsOps}). It imports no
 * runtime module: `./fs.ts` runs it on `node:fs` (`FsDriver`), `./fs.deno.ts` on Deno's own
 * file APIs, so that a Deno program need not load Node's compatibility layer.
 *
 * @module
 */

import { StorageError } from "../src/storage/driver.ts";
import type {
  ListOptions,
  StaleWrite,
  StorageDriver,
  StorageLimits,
  StorageValue,
  SweepOptions,
} from "../src/storage/driver.ts";
import { checkKey } from "./_checks.ts";
import { type DirReader, locate, walkKeys } from "./_fs_layout.ts";
import { sweepTemps, tmpNamePrefix } from "./_fs_temps.ts";
import type { FsFile, FsOps } from "./_fs_ops.ts";

export type { FsFile, FsOps, FsStat } from "./_fs_ops.ts";

/** The longest key, in UTF-8 bytes, that the fs driver accepts. */
export const FS_MAX_KEY_BYTES = 800;

/** Options for the fs driver. */
export interface FsDriverOptions {
  /**
   * Fsync each value before renaming it into place and its directory after, for durability
   * across power loss. Much slower.
   * @default {false}
   */
  fsync?: boolean;
  /**
   * File operations to use instead of the driver's own, some or all ({@linkcode FsOps}). The
   * `FsDriver` of `./fs.ts` runs on `nodeFsOps` (`node:fs`, on Deno and Node); on Deno,
   * `denoFsOps` from `./fs.deno.ts` is several times cheaper and loads no Node module.
   * @default {the driver's own}
   */
  ops?: Partial<FsOps>;
}

/** Files up to this size are read with blocking calls. */
export const SYNC_READ_MAX = 64 * 1024;

/** Whole-file writes up to this size are made with one blocking call. */
export const SYNC_WRITE_MAX = 256 * 1024;

/**
 * Runs a short blocking call (a small file's read or write, a rename, a directory call); a throw
 * becomes a rejection. Each such call takes tens of microseconds, and handing it to a worker
 * thread and back cost about twice the CPU on a 2-core machine (`bench/fetch_list.ts`).
 *
 * @param call The call.
 * @returns Its result.
 */
export function blocking<T>(call: () => T): Promise<T> {
  return new Promise((resolve) => resolve(call()));
}

const encoder = new TextEncoder();
const READ_CHUNK = 64 * 1024;
/** Tries at making a directory and opening a file in it, when deletes keep removing it. */
const MAKE_DIR_ATTEMPTS = 8;

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

/** A system error's code when it is a string (`EIO`, `ENOSPC`, ...). */
function systemCode(error: unknown): string | undefined {
  const code = errorCode(error);
  return typeof code === "string" ? code : undefined;
}

/**
 * A failed file operation as a {@linkcode StorageError} carrying the system error code (`EIO`,
 * `ENOSPC`, `EROFS`, `EACCES`, `ENOTDIR`, ...). An error without a code is not the disk's: it
 * is passed on as it is.
 */
function fsFailure(op: string, key: string | undefined, error: unknown): unknown {
  if (error instanceof StorageError) return error;
  const code = systemCode(error);
  if (code === undefined) return error;
  const what = key === undefined ? "keys" : `key ${JSON.stringify(key)}`;
  const reason = error instanceof Error ? error.message : String(error);
  return new StorageError(`Cannot ${op} ${what}: the file system failed: ${reason}`, {
    driver: "fs",
    ...(key === undefined ? {} : { key }),
    code,
    cause: error,
  });
}

/** Carries an error of the stream being written, so that it is passed on as it is. */
class SourceFailure {
  /** The stream's error. */
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

/** Writes all of `chunk` through `handle` at its current position. */
async function writeAll(handle: FsFile, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) offset += await handle.write(chunk.subarray(offset));
}

/** Fsyncs a directory, ignoring platforms that cannot open directories. */
async function syncDir(ops: FsOps, path: string): Promise<void> {
  let handle: FsFile;
  try {
    handle = await ops.open(path, "r");
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

/**
 * A {@linkcode StorageDriver} that stores each value in its own file under a directory, laid out
 * as an order-preserving trie (see `./fs.ts`), on the file operations it is given.
 *
 * @example Stream a value in and out, on Deno's file operations
 * ```ts
 * import { FsDriverBase } from "./_fs_driver.ts";
 * import { denoFsOps } from "./fs.deno.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const driver: FsDriverBase = new FsDriverBase(dir, denoFsOps);
 * await driver.put("big", ReadableStream.from([new Uint8Array(3), new Uint8Array(4)]));
 * const stream = await driver.getStream("big");
 * let size = 0;
 * for await (const chunk of stream!) size += chunk.byteLength;
 * console.assert(size === 7);
 * await driver.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FsDriverBase implements StorageDriver {
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
   * @param ops The file operations (`options.ops` replaces some of them).
   * @param options `fsync: true` for power-loss durability.
   */
  constructor(dir: string, ops: FsOps, options: FsDriverOptions = {}) {
    if (typeof dir !== "string" || dir === "") {
      throw new TypeError(
        `Cannot open fs driver: dir must be a non-empty string, received ${JSON.stringify(dir)}`,
      );
    }
    this.#root = dir.length > 1 && dir.endsWith("/") ? dir.slice(0, -1) : dir;
    this.#fsync = options.fsync ?? false;
    this.#ops = options.ops ? { ...ops, ...options.ops } : ops;
    this.#tmpPrefix = tmpNamePrefix(this.#ops);
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
      throw fsFailure("get", key, error);
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
    let handle: FsFile;
    try {
      handle = await this.#ops.open(path, "r");
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw fsFailure("get", key, error);
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
          const bytesRead = await handle.read(buffer);
          if (bytesRead === 0) {
            await close();
            controller.close();
            return;
          }
          controller.enqueue(bytesRead === READ_CHUNK ? buffer : buffer.slice(0, bytesRead));
        } catch (error) {
          await close().catch(() => {});
          controller.error(fsFailure("get", key, error));
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
    const tmp = `${dirPath}/${this.#tmpPrefix}${(this.#tmpCount++).toString(36)}`;
    try {
      await this.#writeTmp(dir, dirPath, tmp, value);
      // The directory holds the temporary file, so no delete can remove it before the rename.
      await this.#ops.rename(tmp, path);
      if (this.#fsync) await syncDir(this.#ops, dirPath);
    } catch (error) {
      await this.#ops.unlink(tmp).catch(() => {});
      // The caller's stream failing is its own error; the disk failing is a StorageError.
      throw error instanceof SourceFailure ? error.error : fsFailure("put", key, error);
    }
  }

  /**
   * Stores `value` under `key` only when `key` is absent: the value is written to a temporary
   * file that is then hard-linked to the key's file, which fails when that file exists (so a
   * reader never sees part of the value). Needs a file system with hard links.
   *
   * @param key The key to write.
   * @param value The bytes.
   * @returns Whether the value was stored (`false`: the key was present and is unchanged).
   */
  async putIfAbsent(key: string, value: Uint8Array): Promise<boolean> {
    const { dir, dirPath, path } = this.#locate("put", key);
    const tmp = `${dirPath}/${this.#tmpPrefix}${(this.#tmpCount++).toString(36)}`;
    try {
      await this.#writeTmp(dir, dirPath, tmp, value);
      await this.#ops.link(tmp, path);
      if (this.#fsync) await syncDir(this.#ops, dirPath);
      return true;
    } catch (error) {
      if (errorCode(error) === "EEXIST") return false;
      throw fsFailure("put", key, error);
    } finally {
      await this.#ops.unlink(tmp).catch(() => {});
    }
  }

  /**
   * Makes the directory, then writes the temporary file in it. A delete (here or in another
   * process) removes directories it leaves empty, so the directory may vanish between the two:
   * it is then made again. Only making the directory and creating the file are tried again,
   * both before any of a stream is read, so a stream is never read twice.
   */
  async #writeTmp(dir: string, dirPath: string, tmp: string, value: StorageValue): Promise<void> {
    let handle: FsFile;
    for (let attempt = 1;; attempt++) {
      try {
        await this.#ensureDir(dirPath, dir);
        if (value instanceof Uint8Array && !this.#fsync) {
          await this.#ops.writeFileExclusive(tmp, value);
          return;
        }
        handle = await this.#ops.open(tmp, "wx");
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
            let step: ReadableStreamReadResult<Uint8Array>;
            try {
              step = await reader.read();
            } catch (error) {
              throw new SourceFailure(error);
            }
            if (step.done) break;
            await writeAll(handle, step.value);
          }
        } catch (error) {
          await reader.cancel(error instanceof SourceFailure ? error.error : error).catch(() => {});
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
      if (!isMissing(error)) throw fsFailure("delete", key, error);
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
      throw fsFailure("check", key, error);
    }
  }

  /**
   * Keys in code-point order that match `options`, walking the trie depth-first and skipping
   * directories outside the prefix and range.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   */
  list(options: ListOptions = {}): AsyncIterable<string> {
    // The walk is a generator itself: no further layer per key, and every check runs on the
    // first step, as it would in a generator here.
    return walkKeys(this.#lister, this.#root, options, this.#assertListOpen);
  }

  /** Directories for `list()`: a missing one is empty, a failing one a StorageError. */
  #lister: DirReader = {
    readdir: (path) => this.#ops.readdir(path),
    failed(error): string[] {
      if (isMissing(error)) return [];
      throw fsFailure("list", undefined, error);
    },
  };

  #assertListOpen = (): void => this.#assertOpen("list");

  /**
   * Temporary files that puts killed midway left behind (see the module doc): a file whose
   * writer, a process of this host, no longer runs is stale at once; any other once untouched
   * for `maxAgeMs`. With `remove`, each is removed (and directories it leaves empty) before it
   * is yielded.
   *
   * @param options Whether to remove, and the age after which an untouched file is stale.
   * @returns The stale files with their sizes.
   */
  async *sweep(options: SweepOptions = {}): AsyncIterable<StaleWrite> {
    this.#assertOpen("sweep");
    const prune = (dir: string): Promise<void> =>
      dir.length > this.#root.length ? this.#prune(dir.slice(this.#root.length + 1)) : (
        Promise.resolve()
      );
    try {
      yield* sweepTemps(this.#ops, this.#root, options, prune);
    } catch (error) {
      throw fsFailure("sweep", undefined, error);
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
    if (made && this.#fsync) await syncDir(this.#ops, parent);
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
