/**
 * The cache directory check that opening embedded storage (`./select.ts`) runs before any
 * request: a command that writes makes a missing directory and proves it can write there with
 * a probe file; a command that only reads needs the directory to exist. A path that is a file,
 * sits under a file, cannot be made, or cannot be written is a {@linkcode CacheDirError}.
 *
 * @module
 */

import type { FsOps } from "./_fs_driver.ts";

/** What a command does with its storage: only reads it, or writes too. */
export type StorageAccess = "read" | "write";

/** The cache directory cannot be used; the message says why, naming the path. */
export class CacheDirError extends Error {
  override name = "CacheDirError";
  /** The system error code behind it, when there is one (`ENOENT`, `EROFS`, ...). */
  readonly code: string | undefined;

  /**
   * Creates the error.
   *
   * @param message Why, in sentence case.
   * @param code The system error code, when there is one.
   * @param cause The underlying error.
   */
  constructor(message: string, code?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

/** The file operations the check uses ({@linkcode cacheDirOps} makes them of the fs driver's). */
export interface CacheDirOps {
  /** Whether the path is a directory; rejects with the system error when it cannot be read. */
  isDirectory(path: string): Promise<boolean>;
  /** Makes the directory and its parents. */
  mkdir(path: string): Promise<void>;
  /** Writes a new file, failing if it exists. */
  writeFileExclusive(path: string, data: Uint8Array): Promise<void>;
  /** Removes a file. */
  unlink(path: string): Promise<void>;
}

/**
 * The check's file operations, of the fs driver's.
 *
 * @param ops The runtime's file operations (`nodeFsOps` of `./fs.ts`, `denoFsOps` of
 *   `./fs.deno.ts`).
 * @returns The check's.
 */
export function cacheDirOps(ops: FsOps): CacheDirOps {
  return {
    isDirectory: async (path) => (await ops.stat(path)).isDirectory,
    mkdir: (path) => ops.mkdir(path, true),
    writeFileExclusive: (path, data) => ops.writeFileExclusive(path, data),
    unlink: (path) => ops.unlink(path),
  };
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Checks that `dir` can serve as the cache directory for `access`.
 *
 * @param dir The cache directory.
 * @param access `read`: it must exist; `write`: it is made when missing and must be writable.
 * @param ops The file operations ({@linkcode cacheDirOps}; tests inject failing ones).
 * @returns Resolves when the directory is usable.
 * @throws {CacheDirError} When it is not, saying why.
 *
 * @example A missing directory is made for writing
 * ```ts
 * import { cacheDirOps, checkCacheDir } from "./select_cache_dir.ts";
 * import { denoFsOps } from "./fs.deno.ts";
 * const ops = cacheDirOps(denoFsOps);
 * const root = await Deno.makeTempDir();
 * const error = await checkCacheDir(`${root}/cache`, "read", ops).catch((e) => e);
 * console.assert(error.name === "CacheDirError" && error.code === "ENOENT");
 * await checkCacheDir(`${root}/cache`, "write", ops);
 * await checkCacheDir(`${root}/cache`, "read", ops);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function checkCacheDir(
  dir: string,
  access: StorageAccess,
  ops: CacheDirOps,
): Promise<void> {
  const shown = `Cache dir '${dir}'`;
  const statDir = async (): Promise<void> => {
    let directory: boolean;
    try {
      directory = await ops.isDirectory(dir);
    } catch (error) {
      const code = codeOf(error);
      if (code === "ENOENT") {
        throw new CacheDirError(
          `${shown} does not exist: nothing is cached there (set --cache-dir or ALL_DOCS_CACHE_DIR)`,
          code,
          error,
        );
      }
      if (code === "ENOTDIR") {
        throw new CacheDirError(`${shown} is not a directory: a part of it is a file`, code, error);
      }
      throw new CacheDirError(`${shown} cannot be read: ${reasonOf(error)}`, code, error);
    }
    if (!directory) {
      throw new CacheDirError(`${shown} is not a directory: it is a file`, "ENOTDIR");
    }
  };
  if (access === "read") return await statDir();
  try {
    await ops.mkdir(dir);
  } catch (error) {
    // A file in the way says EEXIST or ENOTDIR: tell it as such.
    const code = codeOf(error);
    if (code === "EEXIST" || code === "ENOTDIR") await statDir();
    throw new CacheDirError(`${shown} cannot be created: ${reasonOf(error)}`, codeOf(error), error);
  }
  await statDir();
  const probe = `${dir}/.probe-${crypto.randomUUID()}`;
  try {
    await ops.writeFileExclusive(probe, new Uint8Array(0));
  } catch (error) {
    throw new CacheDirError(`${shown} is not writable: ${reasonOf(error)}`, codeOf(error), error);
  }
  await ops.unlink(probe).catch(() => {});
}
