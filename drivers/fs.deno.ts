/**
 * The fs driver's file operations on Deno's own file APIs ({@linkcode denoFsOps}): several
 * times cheaper on Deno than `node:fs/promises` for writes, renames and directories. Pass them
 * as `new FsDriver(dir, { ops: denoFsOps })`; the driver itself is in `./fs.ts`.
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

import { type FsOps, readLargeFile, SYNC_READ_MAX } from "./fs.ts";

/** Runs a short blocking call; a throw becomes a rejection. */
const blocking = <T>(call: () => T): Promise<T> => new Promise((resolve) => resolve(call()));

/** Whole-file writes up to this size are made with one blocking call. */
const SYNC_WRITE_MAX = 256 * 1024;

/**
 * {@linkcode FsOps} on Deno's own file APIs. Deno's errors carry Node's `code`, as the driver
 * needs.
 *
 * Renames, directory calls and small writes are made with Deno's blocking calls: each takes
 * tens of microseconds, and handing it to a worker thread and back cost about twice the CPU on
 * a 2-core machine (`bench/fetch_list.ts`).
 */
export const denoFsOps: FsOps = {
  // A small file with Deno's blocking calls (a third of node:fs's for a record header); a
  // larger one on node:fs, which read large files faster than Deno.readFile here.
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
};
