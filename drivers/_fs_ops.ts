/**
 * What the fs driver runs on ({@linkcode FsOps}): its file operations, and what it needs to know
 * of its process. `./fs.ts` has them on `node:fs`, `./fs.deno.ts` on Deno's own APIs.
 *
 * @module
 */

/** An open file ({@linkcode FsOps.open}). */
export interface FsFile {
  /** Reads into `buffer` from the file's position: the bytes read, 0 at the end. */
  read(buffer: Uint8Array): Promise<number>;
  /** Writes from `data` at the file's position: the bytes written. */
  write(data: Uint8Array): Promise<number>;
  /** Flushes the file (a directory: its entries) to the disk. */
  sync(): Promise<void>;
  /** Closes the file. */
  close(): Promise<void>;
}

/** What {@linkcode FsOps.lstat} and {@linkcode FsOps.stat} tell of a path. */
export interface FsStat {
  /** Whether it is a directory. */
  isDirectory: boolean;
  /** Its size in bytes. */
  size: number;
  /** When it was last modified, in milliseconds since the epoch. */
  mtimeMs: number;
}

/**
 * The file operations the fs driver runs on, and what it needs to know of its process (to name
 * its temporary files, and to tell a dead writer's). Errors must carry Node's `code` (`ENOENT`,
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
  /** A directory's entries, each with whether it is a directory. */
  readdirTypes(path: string): Promise<{ name: string; isDirectory: boolean }[]>;
  /** What a path is, not following a symbolic link. */
  lstat(path: string): Promise<FsStat>;
  /** What a path is, following symbolic links. */
  stat(path: string): Promise<FsStat>;
  /** Opens a file to read (`r`), or makes a new one to write (`wx`: `EEXIST` when present). */
  open(path: string, mode: "r" | "wx"): Promise<FsFile>;
  /** Makes `to` a hard link to the file `from`, failing with `EEXIST` when `to` exists. */
  link(from: string, to: string): Promise<void>;
  /** This process's id. */
  readonly pid: number;
  /** This host's name. */
  hostname(): string;
  /** Whether a process of this host with that id runs (`true` when it cannot be told). */
  isRunning(pid: number): boolean;
}
