/**
 * The Deno KV {@linkcode StorageDriver} on Node: `DenoKvDriver.open(path)` on the `@deno/kv`
 * package's `openKv`, which reads and writes the same SQLite files as `Deno.openKv`. A KV file
 * written by the Deno CLI is read here byte for byte, and the other way round. In the npm
 * package this module is the `./drivers/deno_kv` export (the build swaps `./deno_kv.deno.ts` for
 * it); the driver itself, its layout and limits are in `./deno_kv.ts`.
 *
 * @example Open an in-memory store
 * ```ts ignore
 * import { DenoKvDriver } from "./deno_kv.node.ts";
 *
 * const driver = await DenoKvDriver.open(":memory:");
 * await driver.put("k", new TextEncoder().encode("{}"));
 * console.assert(await driver.has("k"));
 * await driver.close();
 * ```
 *
 * @module
 */

import { openKv } from "@deno/kv";
import { DenoKvDriver as KvHandleDriver } from "./deno_kv.ts";

// Everything of the driver module; the local DenoKvDriver below takes the place of its own.
export * from "./deno_kv.ts";

/**
 * The Deno KV {@linkcode StorageDriver} of `./deno_kv.ts`, with {@linkcode DenoKvDriver.open}
 * on `@deno/kv`. `new DenoKvDriver(kv)` wraps a `Kv` from `@deno/kv`'s `openKv` that the caller
 * keeps owning.
 */
export class DenoKvDriver extends KvHandleDriver {
  /**
   * Opens a KV database and wraps it; {@linkcode DenoKvDriver.close} closes it again.
   *
   * @param path `":memory:"` or a file path (the SQLite file Deno would use); `undefined` opens
   *   an ephemeral in-memory database.
   * @returns A driver that owns the database handle.
   */
  static async open(path?: string): Promise<DenoKvDriver> {
    const kv = path === ":memory:" || path === undefined ? await openKv() : await openKv(path);
    return new DenoKvDriver(kv, { owned: true });
  }
}
