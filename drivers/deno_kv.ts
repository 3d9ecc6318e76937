/**
 * A {@linkcode StorageDriver} on Deno KV, for local SQLite-backed stores and hosted KV alike.
 * This module holds the driver over any open KV handle and uses no runtime API; the runtime
 * flavours add `DenoKvDriver.open(path)`: `./deno_kv.deno.ts` on `Deno.openKv` (the
 * `./drivers/deno_kv` export of `deno.json`; needs `"unstable": ["kv"]` or `--unstable-kv`) and
 * `./deno_kv.node.ts` on the `@deno/kv` package (the same export in the npm package). Both read
 * and write the same SQLite files: a KV file written on one runtime is read on the other.
 *
 * ## Layout
 *
 * Every value is stored as `Uint8Array`s only, never as JS objects or strings, so other KV
 * clients (such as `@deno/kv` on Node) read exactly what Deno wrote.
 *
 * - `["m", key]` is the manifest: one byte `0` followed by the value itself for values of at
 *   most one chunk (61,440 bytes), or one byte `1` followed by the UTF-8 JSON
 *   `{ "v": "<version id>", "n": <chunks>, "size": <bytes> }` for larger ones.
 * - `["c", key, versionId, i]` is chunk `i` (61,440 bytes, the last one shorter) of a chunked
 *   value. The version id is new (random) for each put.
 *
 * A chunked put writes its chunks first, in atomic commits that respect KV's limits (1,000
 * mutations and 819,200 bytes per commit), then switches the manifest with a versionstamp check,
 * then deletes the chunks of the version it replaced. Readers therefore never see a partial value:
 * they see the old manifest, whose chunks stay until after the switch, or the new one. A reader
 * that finds a chunk missing (the value was replaced meanwhile) reads the manifest again and
 * retries. A stream that errors during a put deletes the chunks it wrote and leaves the old value.
 * Values are streamed through in bounded batches in both directions, so a 100 MB value is never
 * held whole by `put` or `getStream`.
 *
 * ## Errors
 *
 * A failing KV call (a commit that throws or is rejected, a read that throws), chunks that do not
 * match their manifest, and a value replaced under a stream that was reading it are
 * {@linkcode StorageError}s; a bad key or a closed driver is a `TypeError` or `RangeError`.
 *
 * ## Limits
 *
 * Keys are at most {@linkcode DENO_KV_MAX_KEY_BYTES} (1,000) UTF-8 bytes. KV rejects keys over
 * 2,048 encoded bytes, and its key encoding doubles `U+0000`, so the worst chunk key (1,000
 * `U+0000` characters) encodes to 2,032 bytes; measured, the largest that fits is 1,008.
 *
 * @example Over a handle opened elsewhere
 * ```ts
 * import { DenoKvDriver } from "./deno_kv.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * const driver = new DenoKvDriver(kv);
 * await driver.put("k", new Uint8Array(100_000));
 * console.assert((await driver.get("k"))?.byteLength === 100_000);
 * await driver.close();
 * kv.close();
 * ```
 *
 * @module
 */

import { compareKeys, StorageError } from "../src/storage/driver.ts";
import type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
import { checkKey, checkListOptions } from "./_checks.ts";
import { randomHex } from "../src/_util/hex.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";

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

/** The longest key, in UTF-8 bytes, that {@linkcode DenoKvDriver} accepts. */
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
  throw new StorageError(
    `Cannot read key: manifest of ${JSON.stringify(key)} is not in a known format`,
    { driver: "deno_kv", key },
  );
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

/** Options for {@linkcode DenoKvDriver}. */
export interface DenoKvDriverOptions {
  /**
   * Whether {@linkcode DenoKvDriver.close} closes the KV handle too (`DenoKvDriver.open` of the
   * runtime flavours sets it: the driver opened the handle, so it owns it).
   * @default {false}
   */
  owned?: boolean;
}

/**
 * A {@linkcode StorageDriver} on an open KV handle, storing large values in chunks behind an
 * atomically switched manifest (see the module doc). `DenoKvDriver.open(path)` is in the runtime
 * flavours, `./deno_kv.deno.ts` and `./deno_kv.node.ts`.
 *
 * @example Chunked values
 * ```ts
 * import { DENO_KV_CHUNK_BYTES, DenoKvDriver } from "./deno_kv.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * const driver = new DenoKvDriver(kv, { owned: true });
 * await driver.put("big", new Uint8Array(DENO_KV_CHUNK_BYTES * 2 + 1));
 * console.assert((await driver.get("big"))?.byteLength === DENO_KV_CHUNK_BYTES * 2 + 1);
 * await driver.close(); // closes kv too
 * ```
 */
export class DenoKvDriver implements StorageDriver {
  /** Always `"deno_kv"`. */
  readonly name: string = "deno_kv";
  /** Keys up to {@linkcode DENO_KV_MAX_KEY_BYTES} UTF-8 bytes. */
  readonly limits: StorageLimits = { maxKeyBytes: DENO_KV_MAX_KEY_BYTES };
  #kv: KvHandle;
  #owned: boolean;
  #closed = false;

  /**
   * Wraps an open KV handle. Unless `owned` is set, the caller keeps owning it:
   * {@linkcode DenoKvDriver.close} leaves it open.
   *
   * @param kv An open handle: a `Deno.Kv`, or a `Kv` from `@deno/kv`'s `openKv`.
   * @param options Whether the driver owns the handle.
   */
  constructor(kv: KvHandle, options: DenoKvDriverOptions = {}) {
    this.#kv = kv;
    this.#owned = options.owned ?? false;
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
      const entry = await this.#manifest("get", key);
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
      const entry = await this.#manifest("get", key);
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
              new StorageError(
                `Cannot read key: ${JSON.stringify(key)} was replaced while streaming, ` +
                  `received a missing chunk ${next} of version ${manifest.v}`,
                { driver: "deno_kv", key },
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
    const version = randomHex(8);
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
          await this.#commitAll("put", key, pendingBatch);
        }
      };
      await add(first.value!);
      await add(second.value);
      for await (const chunk of chunks) await add(chunk);
      if (inBatch > 0) await this.#commitAll("put", key, batch);
      this.#assertOpen("put");
      await this.#switchManifest(key, chunkedManifest(version, n, size));
    } catch (error) {
      await chunks.return(undefined).catch(() => {});
      await this.#deleteChunks(key, version, 0, n).catch(() => {});
      throw error;
    }
  }

  /**
   * Stores `value` under `key` only when `key` is absent, in one commit checking that `key` has
   * no manifest.
   *
   * @param key The key to write.
   * @param value The bytes, at most {@linkcode DENO_KV_CHUNK_BYTES}.
   * @returns Whether the value was stored (`false`: the key was present and is unchanged).
   * @throws {RangeError} When the value is longer than one chunk.
   */
  async putIfAbsent(key: string, value: Uint8Array): Promise<boolean> {
    this.#check("put", key);
    if (value.byteLength > DENO_KV_CHUNK_BYTES) {
      throw new RangeError(
        `Cannot put key if absent: the value exceeds ${DENO_KV_CHUNK_BYTES} bytes, received ${value.byteLength}`,
      );
    }
    const absent = { key: ["m", key] as KvKey, versionstamp: null };
    const op = this.#kv.atomic().check(absent).set(["m", key], inlineManifest(value));
    return await this.#commit("put", key, op);
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
      const old = await this.#manifest("delete", key);
      if (old.value === null) return;
      if (await this.#commit("delete", key, this.#kv.atomic().check(old).delete(["m", key]))) {
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
    const entry = await this.#manifest("check", key);
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
    // Iterated by hand so that only the KV handle's failures become StorageErrors.
    const entries = this.#kv.list(selector, listOptions)[Symbol.asyncIterator]();
    let finished = false;
    try {
      while (true) {
        let step: IteratorResult<KvEntryLike>;
        try {
          step = await entries.next();
        } catch (error) {
          finished = true;
          throw kvFailure("list", undefined, error);
        }
        if (step.done) {
          finished = true;
          return;
        }
        const key = step.value.key[1];
        if (typeof key !== "string" || !key.startsWith(prefix)) return;
        yield key;
        if (++count >= limit) return;
        this.#assertOpen("list");
      }
    } finally {
      if (!finished) await entries.return?.();
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
    let entries: readonly KvEntryLike[];
    try {
      entries = await this.#kv.getMany(keys);
    } catch (error) {
      throw kvFailure("get", key, error);
    }
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
    const now = await this.#manifest("get", key);
    if (now.versionstamp === versionstamp) throw this.#corrupt(key, manifest);
  }

  #corrupt(key: string, manifest: Manifest & { inline: false }): StorageError {
    return new StorageError(
      `Cannot read key: chunks of ${JSON.stringify(key)} do not match the manifest, ` +
        `received version ${manifest.v} with ${manifest.n} chunks and ${manifest.size} bytes`,
      { driver: "deno_kv", key },
    );
  }

  /** The manifest entry of `key`; a failing read is a {@linkcode StorageError}. */
  async #manifest(op: string, key: string): Promise<KvEntryLike> {
    try {
      return await this.#kv.get(["m", key]);
    } catch (error) {
      throw kvFailure(op, key, error);
    }
  }

  /** Commits `atomic`: whether its checks held. A commit that throws is a {@linkcode StorageError}. */
  async #commit(op: string, key: string, atomic: KvAtomicLike): Promise<boolean> {
    let result: { ok: boolean };
    try {
      result = await atomic.commit();
    } catch (error) {
      throw kvFailure(op, key, error);
    }
    return result.ok;
  }

  /** Commits an atomic operation without checks, which fails only by throwing or rejecting. */
  async #commitAll(op: string, key: string, atomic: KvAtomicLike): Promise<void> {
    if (!(await this.#commit(op, key, atomic))) {
      throw new StorageError(`Cannot ${op} key ${JSON.stringify(key)}: Deno KV rejected a commit`, {
        driver: "deno_kv",
        key,
      });
    }
  }

  /** Sets the manifest of `key`, then deletes the chunks of the value it replaced. */
  async #switchManifest(key: string, manifest: Uint8Array): Promise<void> {
    while (true) {
      const old = await this.#manifest("put", key);
      if (
        !(await this.#commit("put", key, this.#kv.atomic().check(old).set(["m", key], manifest)))
      ) {
        continue; // Another writer switched it meanwhile: read the new one and try again.
      }
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
      await this.#commitAll("delete", key, op);
    }
  }
}

/** A KV call that threw, as a {@linkcode StorageError}. */
function kvFailure(op: string, key: string | undefined, error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const what = key === undefined ? "keys" : `key ${JSON.stringify(key)}`;
  const reason = error instanceof Error ? error.message : String(error);
  return new StorageError(`Cannot ${op} ${what}: Deno KV failed: ${reason}`, {
    driver: "deno_kv",
    ...(key === undefined ? {} : { key }),
    cause: error,
  });
}
