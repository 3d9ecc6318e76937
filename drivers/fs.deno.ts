/**
 * The fs driver on Deno's own file APIs ({@linkcode denoFsOps}): several times cheaper on Deno
 * than `node:fs/promises` for writes, renames and directories, and nothing of Node's
 * compatibility layer is loaded (tens of milliseconds at a process's start). Pass them as
 * `new FsDriver(dir, { ops: denoFsOps })` (`./fs.ts`), or use {@linkcode DenoFsDriver}, which
 * runs on them alone (as the CLI does).
 *
 * @example
 * ```ts
 * import { FsDriver } from "./fs.ts";
 * import { denoFsOps } from "./fs.deno.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const driver = new FsDriver(dir, { ops: denoFsOps });
 * await driver.put("a:b", new Uint8Array([1]));
 * console.assert(await driver.has("a:b"));
 * await driver.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

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

/** An open Deno file as an {@linkcode FsFile}. */
function denoFile(file: Deno.FsFile): FsFile {
  return {
    read: async (buffer) => (await file.read(buffer)) ?? 0,
    write: (data) => file.write(data),
    sync: () => file.sync(),
    close: () => blocking(() => file.close()),
  };
}

/** What the driver reads of a Deno file status. */
function statOf(stat: Deno.FileInfo): FsStat {
  // (No modification time on this platform: taken as now, so that no file looks stale for it.)
  const mtimeMs = stat.mtime?.getTime() ?? Date.now();
  return { isDirectory: stat.isDirectory, size: stat.size, mtimeMs };
}

/** Reads a whole file larger than a blocking read takes: its size, then reads into one buffer. */
async function readLargeFile(path: string): Promise<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  let buffer = new Uint8Array((await file.stat()).size);
  let length = 0;
  const scratch = new Uint8Array(64 * 1024);
  while (true) {
    if (length < buffer.length) {
      const read = await file.read(buffer.subarray(length));
      if (read === null) break;
      length += read;
      continue;
    }
    // Full: the end is read into a small buffer, and only a file that grew since its size was
    // taken makes the buffer grow.
    const read = await file.read(scratch);
    if (read === null) break;
    const grown = new Uint8Array(Math.max(buffer.length * 2, length + read));
    grown.set(buffer.subarray(0, length));
    grown.set(scratch.subarray(0, read), length);
    buffer = grown;
    length += read;
  }
  return length === buffer.length ? buffer : buffer.slice(0, length);
}

/**
 * Whether a process of this host with that id runs. Deno sends no signal 0: on Linux a running
 * process has its directory in /proc; when it has none (or elsewhere) `kill -0` asks (a process
 * not ours to signal runs); on Windows it cannot be told (`true`).
 *
 * @param pid The process id.
 * @returns Whether it runs.
 */
export function isRunning(pid: number): boolean {
  if (Deno.build.os === "windows") return true;
  if (Deno.build.os === "linux") {
    try {
      Deno.statSync(`/proc/${pid}`);
      return true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return true;
      // Not in /proc: gone, unless /proc hides other users' processes (`hidepid`): asked below.
    }
  }
  try {
    const { code, stderr } = new Deno.Command("kill", {
      args: ["-0", String(pid)],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    return code === 0 || /not permitted/i.test(new TextDecoder().decode(stderr));
  } catch {
    return true;
  }
}

/**
 * {@linkcode FsOps} on Deno's own file APIs. Deno's errors carry Node's `code`, as the driver
 * needs.
 *
 * Renames, directory calls and small writes are made with Deno's blocking calls: each takes
 * tens of microseconds, and handing it to a worker thread and back cost about twice the CPU on
 * a 2-core machine (`bench/fetch_list.ts`).
 */
export const denoFsOps: FsOps = {
  // A small file (a record header) with Deno's blocking calls; a larger one read into a buffer
  // of its size.
  readFile: (path) =>
    blocking(() => Deno.statSync(path).size <= SYNC_READ_MAX).then((small) =>
      small ? Deno.readFileSync(path) : readLargeFile(path)
    ),
  writeFileExclusive: (path, data) =>
    data.length <= SYNC_WRITE_MAX
      ? blocking(() => Deno.writeFileSync(path, data, { createNew: true }))
      : Deno.writeFile(path, data, { createNew: true }),
  rename: (from, to) => blocking(() => Deno.renameSync(from, to)),
  mkdir: (path, recursive) => blocking(() => Deno.mkdirSync(path, { recursive })),
  unlink: (path) => blocking(() => Deno.removeSync(path)),
  // Only ever given directories: without `recursive`, Deno removes an empty one and fails with
  // ENOTEMPTY otherwise.
  rmdir: (path) => blocking(() => Deno.removeSync(path)),
  access: async (path) => {
    await Deno.lstat(path);
  },
  // The names alone, with one blocking call (Deno's own: no Node `Dirent` made for each).
  readdir: (path) =>
    blocking(() => {
      const names: string[] = [];
      for (const entry of Deno.readDirSync(path)) names.push(entry.name);
      return names;
    }),
  readdirTypes: async (path) => {
    const entries: { name: string; isDirectory: boolean }[] = [];
    for await (const entry of Deno.readDir(path)) {
      entries.push({ name: entry.name, isDirectory: entry.isDirectory });
    }
    return entries;
  },
  lstat: async (path) => statOf(await Deno.lstat(path)),
  stat: async (path) => statOf(await Deno.stat(path)),
  open: async (path, mode) =>
    denoFile(
      await Deno.open(path, mode === "r" ? { read: true } : { write: true, createNew: true }),
    ),
  link: (from, to) => Deno.link(from, to),
  pid: Deno.pid,
  hostname: () => Deno.hostname(),
  isRunning,
};

/**
 * The fs driver (layout, durability and errors as `./fs.ts` documents them) on
 * {@linkcode denoFsOps} alone: it loads no Node module.
 *
 * @example
 * ```ts
 * import { DenoFsDriver } from "./fs.deno.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const driver = new DenoFsDriver(dir);
 * await driver.put("big", ReadableStream.from([new Uint8Array(3), new Uint8Array(4)]));
 * console.assert((await driver.get("big"))?.length === 7);
 * await driver.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class DenoFsDriver extends FsDriverBase {
  /**
   * Opens (lazily creating) a store in `dir`.
   *
   * @param dir The base directory; created on the first put.
   * @param options `fsync: true` for power-loss durability; `ops` to replace file operations.
   */
  constructor(dir: string, options: FsDriverOptions = {}) {
    super(dir, denoFsOps, options);
  }
}
