/**
 * A {@linkcode StorageDriver} on Deno KV (`Deno.openKv`), for local SQLite-backed stores and
 * hosted KV alike. Needs `"unstable": ["kv"]` (or `--unstable-kv`).
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
 * The layout lives in `./_kv_layout.ts`, shared with the Node flavour of this driver
 * (`./deno_kv_node.ts`, on the `@deno/kv` package), so a file written here is read there.
 *
 * ## Limits
 *
 * Keys are at most {@linkcode DENO_KV_MAX_KEY_BYTES} (1,000) UTF-8 bytes. KV rejects keys over
 * 2,048 encoded bytes, and its key encoding doubles `U+0000`, so the worst chunk key (1,000
 * `U+0000` characters) encodes to 2,032 bytes; measured, the largest that fits is 1,008.
 *
 * @example Open an in-memory store
 * ```ts
 * import { DenoKvDriver } from "./deno_kv.ts";
 *
 * const driver = await DenoKvDriver.open(":memory:");
 * await driver.put("v1:packument:npm:6c6f64617368", new TextEncoder().encode("{}"));
 * console.assert(await driver.has("v1:packument:npm:6c6f64617368"));
 * await driver.close();
 * ```
 *
 * @module
 */

import type { StorageDriver } from "../src/storage/driver.ts";
import { KvLayoutDriver } from "./_kv_layout.ts";

export type {
  ListOptions,
  StorageDriver,
  StorageLimits,
  StorageValue,
} from "../src/storage/driver.ts";
export { DENO_KV_CHUNK_BYTES, DENO_KV_MAX_KEY_BYTES } from "./_kv_layout.ts";

/**
 * A {@linkcode StorageDriver} on a Deno KV database, storing large values in chunks behind an
 * atomically switched manifest (see the module doc).
 *
 * @example Wrap an existing handle
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
 */
export class DenoKvDriver extends KvLayoutDriver implements StorageDriver {
  /**
   * Opens a KV database and wraps it; {@linkcode DenoKvDriver.close} closes it again.
   *
   * @param path `":memory:"`, a file path, or `undefined` for Deno's default database.
   * @returns A driver that owns the database handle.
   */
  static async open(path?: string): Promise<DenoKvDriver> {
    return new DenoKvDriver(await Deno.openKv(path), OWNED);
  }

  /**
   * Wraps an open KV handle. The caller keeps owning it: {@linkcode DenoKvDriver.close} leaves
   * it open.
   *
   * @param kv An open `Deno.Kv`.
   */
  constructor(kv: Deno.Kv);
  /** @internal Used by {@linkcode DenoKvDriver.open}. */
  constructor(kv: Deno.Kv, owned: typeof OWNED);
  constructor(kv: Deno.Kv, owned?: typeof OWNED) {
    super(kv, owned === OWNED);
  }
}

/** Marks a handle opened by {@linkcode DenoKvDriver.open}. */
const OWNED: unique symbol = Symbol("owned");
