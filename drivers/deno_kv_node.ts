/**
 * The Deno KV {@linkcode StorageDriver} for Node: the same layout as `./deno_kv.ts` (shared in
 * `./_kv_layout.ts`), on the `@deno/kv` package's `openKv`, which reads and writes the same
 * SQLite files as `Deno.openKv`. A KV file written by the Deno CLI is read here byte for byte,
 * and the other way round. In the npm package this module is the `./drivers/deno_kv` export.
 *
 * @example Open an in-memory store
 * ```ts ignore
 * import { DenoKvDriver } from "./deno_kv_node.ts";
 *
 * const driver = await DenoKvDriver.open(":memory:");
 * await driver.put("k", new TextEncoder().encode("{}"));
 * console.assert(await driver.has("k"));
 * await driver.close();
 * ```
 *
 * @module
 */

import { type Kv, openKv } from "@deno/kv";
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
 * A {@linkcode StorageDriver} on a Deno KV database opened with `@deno/kv`, storing large values
 * in chunks behind an atomically switched manifest (see `./deno_kv.ts`).
 */
export class DenoKvDriver extends KvLayoutDriver implements StorageDriver {
  /**
   * Opens a KV database and wraps it; {@linkcode DenoKvDriver.close} closes it again.
   *
   * @param path `":memory:"` or a file path (the SQLite file Deno would use); `undefined` opens
   *   an ephemeral in-memory database.
   * @returns A driver that owns the database handle.
   */
  static async open(path?: string): Promise<DenoKvDriver> {
    const kv = path === ":memory:" || path === undefined ? await openKv() : await openKv(path);
    return new DenoKvDriver(kv, OWNED);
  }

  /**
   * Wraps an open `@deno/kv` handle. The caller keeps owning it: {@linkcode DenoKvDriver.close}
   * leaves it open.
   *
   * @param kv An open `Kv` from `@deno/kv`'s `openKv`.
   */
  constructor(kv: Kv);
  /** @internal Used by {@linkcode DenoKvDriver.open}. */
  constructor(kv: Kv, owned: typeof OWNED);
  constructor(kv: Kv, owned?: typeof OWNED) {
    super(kv, owned === OWNED);
  }
}

/** Marks a handle opened by {@linkcode DenoKvDriver.open}. */
const OWNED: unique symbol = Symbol("owned");
