/**
 * The Deno KV storage layout, shared by the Deno driver (`./deno_kv.ts`, on `Deno.openKv`) and
 * the Node one (`./deno_kv_node.ts`, on the `@deno/kv` package): both write the same keys and
 * values, so a KV file written on one runtime is read on the other. See `./deno_kv.ts` for the
 * layout and its limits. This module uses no runtime API: the handle is passed in.
 *
 * @module
 */

import { compareKeys } from "../src/storage/driver.ts";
import type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
import { checkKey, checkListOptions } from "./_checks.ts";

/** One part of a KV key. */
export type KvKeyPart = Uint8Array | string | number | bigint | boolean | symbol;
/** A KV key: a list of parts. */
export type KvKey = readonly KvKeyPart[];

/** An entry as read back from KV; `value` and `versionstamp` are `null` when absent. */
export interface KvEntryLike {
  /** The key. */
  readonly key: KvKey;
  /** The value, or `null`. */
  readonly value: unknown;
  /** The versionstamp, or `null`. */
  readonly versionstamp: string | null;
}

/** The part of an atomic operation the driver uses. */
export interface KvAtomicLike {
  /** Adds versionstamp checks. */
  check(...checks: { key: KvKey; versionstamp: string | null }[]): KvAtomicLike;
  /** Sets a value. */
  set(key: KvKey, value: unknown): KvAtomicLike;
  /** Deletes a key. */
  delete(key: KvKey): KvAtomicLike;
  /** Commits; `ok` is `false` when a check failed. */
  commit(): Promise<{ ok: boolean }>;
}

/** A list selector, as in Deno KV. */
export type KvSelector =
  | { prefix: KvKey }
  | { prefix: KvKey; start: KvKey }
  | { prefix: KvKey; end: KvKey }
  | { start: KvKey; end: KvKey };

/**
 * The part of a KV handle the driver uses: met by Deno's own KV handle and by the `Kv` of the
 * `@deno/kv` package (Node), which read and write the same SQLite files.
 */
export interface KvHandle {
  /** Reads one key. */
  get(key: KvKey): Promise<KvEntryLike>;
  /** Reads up to ten keys at once. */
  getMany(keys: readonly KvKey[]): Promise<readonly KvEntryLike[]>;
  /** Lists entries in key order. */
  list(
    selector: KvSelector,
    options?: { limit?: number; batchSize?: number },
  ): AsyncIterable<KvEntryLike>;
  /** Starts an atomic operation. */
  atomic(): KvAtomicLike;
  /** Closes the handle. */
  close(): void;
}

/** The longest key, in UTF-8 bytes, that {@linkcode KvLayoutDriver} accepts. */
export const DENO_KV_MAX_KEY_BYTES = 1000;

/** The size of one chunk of a chunked value, and the largest value stored inline. */
export const DENO_KV_CHUNK_BYTES = 61_440;

/** Chunks per atomic commit: 12 × (61,440 + 2,048) bytes stays under 819,200. */
const CHUNKS_PER_COMMIT = 12;
/** Deletes per atomic commit: 350 keys of at most 2,048 bytes stay under 819,200 bytes. */
const DELETES_PER_COMMIT = 350;
/** Keys per `getMany`. */
const GET_MANY = 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A decoded manifest. */
type Manifest =
  | { inline: true; value: Uint8Array }
  | { inline: false; v: string; n: number; size: number };

/** Encodes a manifest for an inline value. */
function inlineManifest(value: Uint8Array): Uint8Array {
  const out = new Uint8Array(value.byteLength + 1);
  out[0] = 0;
  out.set(value, 1);
  return out;
}

/** Encodes a manifest for a chunked value. */
function chunkedManifest(v: string, n: number, size: number): Uint8Array {
  const json = encoder.encode(JSON.stringify({ v, n, size }));
  const out = new Uint8Array(json.byteLength + 1);
  out[0] = 1;
  out.set(json, 1);
  return out;
}

/** Decodes a stored manifest. */
function decodeManifest(key: string, raw: unknown): Manifest {
  if (raw instanceof Uint8Array) {
    if (raw[0] === 0) return { inline: true, value: raw.subarray(1) };
    if (raw[0] === 1) {
      const parsed: unknown = JSON.parse(decoder.decode(raw.subarray(1)));
      if (typeof parsed === "object" && parsed !== null) {
        const { v, n, size } = parsed as Record<string, unknown>;
        if (typeof v === "string" && Number.isSafeInteger(n) && Number.isSafeInteger(size)) {
          return { inline: false, v, n: n as number, size: size as number };
        }
      }
    }
  }
  throw new TypeError(
    `Cannot read key: manifest of ${JSON.stringify(key)} is not in a known format`,
  );
}

/** A new random version id: 16 hex digits. */
function newVersion(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Splits a value into chunks of {@linkcode DENO_KV_CHUNK_BYTES}, the last one shorter. */
async function* chunksOf(value: StorageValue): AsyncGenerator<Uint8Array> {
  if (value instanceof Uint8Array) {
    for (let at = 0; at < value.byteLength; at += DENO_KV_CHUNK_BYTES) {
      yield value.subarray(at, at + DENO_KV_CHUNK_BYTES);
    }
    return;
  }
  let buffer = new Uint8Array(DENO_KV_CHUNK_BYTES);
  let fill = 0;
  let finished = false;
  const reader = value.getReader();
  try {
    while (true) {
      const { done, value: piece } = await reader.read();
      if (done) break;
      let at = 0;
      while (at < piece.byteLength) {
        const take = Math.min(DENO_KV_CHUNK_BYTES - fill, piece.byteLength - at);
        buffer.set(piece.subarray(at, at + take), fill);
        fill += take;
        at += take;
        if (fill === DENO_KV_CHUNK_BYTES) {
          yield buffer;
          buffer = new Uint8Array(DENO_KV_CHUNK_BYTES);
          fill = 0;
        }
      }
    }
    finished = true;
  } finally {
    // Stop the source when the put fails or stops reading early.
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  if (fill > 0) yield buffer.slice(0, fill);
}

/**
 * A {@linkcode StorageDriver} on a KV handle, storing large values in chunks behind an
 * atomically switched manifest (see `./deno_kv.ts`). Use `DenoKvDriver` from `./deno_kv.ts`
 * (Deno) or `./deno_kv_node.ts` (Node) rather than this class.
 */
export class KvLayoutDriver implements StorageDriver {
  /** Always `"deno_kv"`. */
  readonly name: string = "deno_kv";
  /** Keys up to {@linkcode DENO_KV_MAX_KEY_BYTES} UTF-8 bytes. */
  readonly limits: StorageLimits = { maxKeyBytes: DENO_KV_MAX_KEY_BYTES };
  #kv: KvHandle;
  #owned: boolean;
  #closed = false;

  /**
   * Wraps an open KV handle.
   *
   * @param kv An open handle.
   * @param owned Whether {@linkcode KvLayoutDriver.close} closes the handle too.
   */
  constructor(kv: KvHandle, owned: boolean) {
    this.#kv = kv;
    this.#owned = owned;
  }

  /**
   * The whole value of `key`, or `undefined` when absent.
   *
   * @param key The key to read.
   * @returns The stored bytes.
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    this.#check("get", key);
    while (true) {
      const entry = await this.#kv.get(["m", key]);
      if (entry.value === null) return undefined;
      const manifest = decodeManifest(key, entry.value);
      if (manifest.inline) return manifest.value.slice();
      const out = new Uint8Array(manifest.size);
      let offset = 0;
      let complete = true;
      for (let i = 0; i < manifest.n && complete; i += GET_MANY) {
        const chunks = await this.#chunks(key, manifest, i);
        if (chunks === undefined) complete = false;
        else {
          for (const chunk of chunks) {
            if (offset + chunk.byteLength > out.byteLength) {
              throw this.#corrupt(key, manifest);
            }
            out.set(chunk, offset);
            offset += chunk.byteLength;
          }
        }
      }
      if (complete) {
        if (offset !== manifest.size) throw this.#corrupt(key, manifest);
        return out;
      }
      await this.#assertReplaced(key, entry.versionstamp, manifest);
    }
  }

  /**
   * The value of `key` as a stream of its chunks, fetched ten at a time, or `undefined` when
   * absent. If the value is replaced and its old chunks deleted after the first ten chunks were
   * read, the stream errors rather than mix two values.
   *
   * @param key The key to read.
   * @returns A stream of the stored bytes.
   */
  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    this.#check("get", key);
    while (true) {
      const entry = await this.#kv.get(["m", key]);
      if (entry.value === null) return undefined;
      const manifest = decodeManifest(key, entry.value);
      if (manifest.inline) {
        const value = manifest.value.slice();
        return new ReadableStream<Uint8Array>({
          start(controller): void {
            if (value.byteLength > 0) controller.enqueue(value);
            controller.close();
          },
        });
      }
      const first = await this.#chunks(key, manifest, 0);
      if (first === undefined) {
        await this.#assertReplaced(key, entry.versionstamp, manifest);
        continue;
      }
      let pending: Uint8Array[] | undefined = first;
      let next = first.length;
      return new ReadableStream<Uint8Array>({
        pull: async (controller): Promise<void> => {
          if (pending !== undefined) {
            for (const chunk of pending) controller.enqueue(chunk);
            pending = undefined;
            return;
          }
          if (next >= manifest.n) {
            controller.close();
            return;
          }
          const chunks = await this.#chunks(key, manifest, next);
          if (chunks === undefined) {
            controller.error(
              new TypeError(
                `Cannot read key: ${JSON.stringify(key)} was replaced while streaming, ` +
                  `received a missing chunk ${next} of version ${manifest.v}`,
              ),
            );
            return;
          }
          next += chunks.length;
          for (const chunk of chunks) controller.enqueue(chunk);
        },
      }, { highWaterMark: 0 });
    }
  }

  /**
   * Stores `value` under `key`: inline when it fits one chunk, otherwise as chunks written
   * before the manifest switches. On failure the chunks written are deleted and the old value
   * stays.
   *
   * @param key The key to write.
   * @param value The bytes, whole or as a stream (streamed in batches, never held whole).
   * @returns A promise that resolves once the new value is visible.
   */
  async put(key: string, value: StorageValue): Promise<void> {
    this.#check("put", key);
    if (value instanceof Uint8Array && value.byteLength <= DENO_KV_CHUNK_BYTES) {
      await this.#switchManifest(key, inlineManifest(value));
      return;
    }
    const chunks = chunksOf(value);
    const first = await chunks.next();
    const second = first.done ? first : await chunks.next();
    if (second.done) {
      await this.#switchManifest(key, inlineManifest(first.done ? new Uint8Array(0) : first.value));
      return;
    }
    const version = newVersion();
    let n = 0;
    let size = 0;
    try {
      let batch = this.#kv.atomic();
      let inBatch = 0;
      const add = async (chunk: Uint8Array): Promise<void> => {
        batch.set(["c", key, version, n++], chunk);
        size += chunk.byteLength;
        if (++inBatch === CHUNKS_PER_COMMIT) {
          const pendingBatch = batch;
          batch = this.#kv.atomic();
          inBatch = 0;
          await commit(pendingBatch);
        }
      };
      await add(first.value!);
      await add(second.value);
      for await (const chunk of chunks) await add(chunk);
      if (inBatch > 0) await commit(batch);
      this.#assertOpen("put");
      await this.#switchManifest(key, chunkedManifest(version, n, size));
    } catch (error) {
      await chunks.return(undefined).catch(() => {});
      await this.#deleteChunks(key, version, 0, n).catch(() => {});
      throw error;
    }
  }

  /**
   * Removes `key` and its chunks; absent keys are not an error.
   *
   * @param key The key to remove.
   * @returns A promise that resolves once the key is gone.
   */
  async delete(key: string): Promise<void> {
    this.#check("delete", key);
    while (true) {
      const old = await this.#kv.get(["m", key]);
      if (old.value === null) return;
      const result = await this.#kv.atomic().check(old).delete(["m", key]).commit();
      if (result.ok) {
        await this.#dropChunks(key, old.value);
        return;
      }
    }
  }

  /**
   * Whether `key` is present.
   *
   * @param key The key to look up.
   * @returns `true` when the key has a manifest.
   */
  async has(key: string): Promise<boolean> {
    this.#check("check", key);
    const entry = await this.#kv.get(["m", key]);
    return entry.value !== null;
  }

  /**
   * Keys in code-point order that match `options`, iterating the manifests from the first
   * possible key and stopping as soon as keys pass the prefix or the end.
   *
   * @param options Prefix, inclusive start, exclusive end and limit.
   * @returns The matching keys, in order.
   */
  async *list(options: ListOptions = {}): AsyncIterable<string> {
    this.#assertOpen("list");
    const { prefix, start, end, limit } = checkListOptions(options);
    if (limit === 0) return;
    const from = start !== undefined && compareKeys(start, prefix) > 0 ? start : prefix;
    if (end !== undefined && compareKeys(from, end) >= 0) return;
    const selector: KvSelector = end === undefined
      ? { prefix: ["m"], start: ["m", from] }
      : { start: ["m", from], end: ["m", end] };
    const listOptions: { limit?: number; batchSize?: number } = {
      batchSize: Math.min(limit, 500),
    };
    if (limit !== Infinity) listOptions.limit = limit;
    let count = 0;
    for await (const entry of this.#kv.list(selector, listOptions)) {
      const key = entry.key[1];
      if (typeof key !== "string" || !key.startsWith(prefix)) return;
      yield key;
      if (++count >= limit) return;
      this.#assertOpen("list");
    }
  }

  /**
   * Marks the driver closed, and closes the KV handle if the driver owns it. Further calls are errors; closing twice is fine.
   *
   * @returns A promise that resolves once closed.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#owned) this.#kv.close();
    }
    return Promise.resolve();
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw new TypeError(`Cannot ${op} key: the deno_kv driver is closed`);
  }

  #check(op: string, key: string): void {
    this.#assertOpen(op);
    checkKey(op, key, DENO_KV_MAX_KEY_BYTES);
  }

  /** Chunks `from` up to `from + 10` of a chunked value, or `undefined` if one is missing. */
  async #chunks(
    key: string,
    manifest: Manifest & { inline: false },
    from: number,
  ): Promise<Uint8Array[] | undefined> {
    const keys: KvKey[] = [];
    for (let i = from; i < Math.min(from + GET_MANY, manifest.n); i++) {
      keys.push(["c", key, manifest.v, i]);
    }
    const entries = await this.#kv.getMany(keys);
    const out: Uint8Array[] = [];
    for (const entry of entries) {
      if (entry.value === null) return undefined;
      if (!(entry.value instanceof Uint8Array)) throw this.#corrupt(key, manifest);
      out.push(entry.value);
    }
    return out;
  }

  /** Throws unless the manifest of `key` changed since `versionstamp` (a chunk went missing). */
  async #assertReplaced(
    key: string,
    versionstamp: string | null,
    manifest: Manifest & { inline: false },
  ): Promise<void> {
    const now = await this.#kv.get(["m", key]);
    if (now.versionstamp === versionstamp) throw this.#corrupt(key, manifest);
  }

  #corrupt(key: string, manifest: Manifest & { inline: false }): Error {
    return new Error(
      `Cannot read key: chunks of ${JSON.stringify(key)} do not match the manifest, ` +
        `received version ${manifest.v} with ${manifest.n} chunks and ${manifest.size} bytes`,
    );
  }

  /** Sets the manifest of `key`, then deletes the chunks of the value it replaced. */
  async #switchManifest(key: string, manifest: Uint8Array): Promise<void> {
    while (true) {
      const old = await this.#kv.get(["m", key]);
      const result = await this.#kv.atomic().check(old).set(["m", key], manifest).commit();
      if (!result.ok) continue;
      if (old.value !== null) await this.#dropChunks(key, old.value);
      return;
    }
  }

  /** Deletes the chunks a replaced manifest pointed to. */
  async #dropChunks(key: string, raw: unknown): Promise<void> {
    let manifest: Manifest;
    try {
      manifest = decodeManifest(key, raw);
    } catch {
      return;
    }
    if (!manifest.inline) await this.#deleteChunks(key, manifest.v, 0, manifest.n);
  }

  /** Deletes chunks `from` to `to` (exclusive) of a version, in batched commits. */
  async #deleteChunks(key: string, version: string, from: number, to: number): Promise<void> {
    for (let at = from; at < to; at += DELETES_PER_COMMIT) {
      const op = this.#kv.atomic();
      for (let i = at; i < Math.min(at + DELETES_PER_COMMIT, to); i++) {
        op.delete(["c", key, version, i]);
      }
      await commit(op);
    }
  }
}

/** Commits an atomic operation that has no checks, which can only fail by throwing. */
async function commit(op: KvAtomicLike): Promise<void> {
  const result = await op.commit();
  if (!result.ok) throw new TypeError("Cannot commit chunks: the commit was rejected");
}
