/**
 * The fs driver's key-to-path layout (documented in `./fs.ts`): where a key's file lives, and
 * the walk of the directory trie that lists keys in code-point order. Pure path arithmetic plus
 * one injected `readdir`; the file operations and their errors stay in `./fs.ts`.
 *
 * @module
 */

import type { ListOptions } from "../src/storage/driver.ts";
import { bytesToHex } from "../src/_util/hex.ts";
import { concatBytes } from "../src/_util/bytes.ts";
import { checkListOptions } from "./_checks.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const COLON = 0x3a;
const COLON_BYTES = new Uint8Array([COLON]);

/** The chunk size in bytes at `level` within a segment. */
function chunkSize(level: number): number {
  return level < 2 ? 2 : 64;
}

/** esc() of every byte. */
const ESCAPE: readonly string[] = Array.from({ length: 256 }, (_, b) => {
  const literal = (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x5f ||
    b === 0x2d;
  return literal ? String.fromCharCode(b) : "%" + bytesToHex(Uint8Array.of(b));
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
export interface Location {
  /** The directory, relative to the root, `/`-separated; `""` is the root. */
  dir: string;
  /** The file name in it. */
  file: string;
}

/**
 * The relative directory and file name of a key, as documented in `./fs.ts`.
 *
 * @param bytes The key's UTF-8 bytes.
 * @returns The location of the key's file.
 */
export function locate(bytes: Uint8Array): Location {
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

/** How {@linkcode walkKeys} reads directories. */
export interface DirReader {
  /** The names in a directory. */
  readdir(path: string): Promise<string[]>;
  /** What to make of a failed `readdir`: `[]` for a missing directory, else it throws. */
  failed(error: unknown): string[];
}

/**
 * The keys stored under `root` that match `options`, in code-point order: walks the trie
 * depth-first from the deepest directory the prefix determines, skipping directories outside
 * the prefix and range.
 *
 * @param dirs Lists directories.
 * @param root The driver's base directory.
 * @param options Prefix, inclusive start, exclusive end and limit (checked on the first step).
 * @param assertOpen Throws when the driver is closed; called on the first step and after each
 *   key is consumed.
 * @returns The keys.
 */
export async function* walkKeys(
  dirs: DirReader,
  root: string,
  options: ListOptions,
  assertOpen: () => void,
): AsyncGenerator<string> {
  assertOpen();
  const checked = checkListOptions(options);
  const limit = checked.limit;
  if (limit === 0) return;
  const prefix = encoder.encode(checked.prefix);
  const start = checked.start === undefined ? undefined : encoder.encode(checked.start);
  const end = checked.end === undefined ? undefined : encoder.encode(checked.end);

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
    nodes: await readNodes(dirs, root + dir, level, prefix.subarray(0, from), undefined),
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
      assertOpen();
      continue;
    }
    // Every key below starts with q: skip the block when all of them are before start.
    if (start !== undefined && compareBytes(q, start) < 0 && !startsWith(start, q)) continue;
    const childLevel = node.kind === "c" ? node.level : 0;
    stack.push({
      nodes: await readNodes(dirs, node.path, childLevel, q, node.merged),
      next: 0,
    });
  }
}

/** Reads a directory into nodes sorted in key order; `acc` is the key prefix it stands for. */
async function readNodes(
  dirs: DirReader,
  path: string,
  level: number,
  acc: Uint8Array,
  merged: string | undefined,
): Promise<Node[]> {
  let names: string[];
  try {
    names = await dirs.readdir(path);
  } catch (error) {
    names = dirs.failed(error);
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
      nodes.push({ kind, path: full, key: concatBytes([acc, bytes]), level: 0 });
    } else if (kind === "s") {
      const node: Node = {
        kind,
        path: full,
        key: concatBytes([acc, bytes, COLON_BYTES]),
        level: 0,
      };
      nodes.push(node);
      (segments ??= new Map()).set(name.slice(1), node);
    } else if (bytes.length === k) {
      const node: Node = { kind, path: full, key: concatBytes([acc, bytes]), level: level + 1 };
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
    result.push({ kind: "s", path: merged, key: concatBytes([acc, COLON_BYTES]), level: 0 });
  }
  return result.sort(compareNodes);
}
