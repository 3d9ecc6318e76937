/**
 * The Deno KV {@linkcode StorageDriver} on Deno: `DenoKvDriver.open(path)` on `Deno.openKv`
 * (needs `"unstable": ["kv"]` or `--unstable-kv`). This module is the `./drivers/deno_kv`
 * export of `deno.json`; the driver itself, its layout and limits are in `./deno_kv.ts`, shared
 * with the Node flavour `./deno_kv.node.ts`, so a file written here is read there.
 *
 * @example Open an in-memory store
 * ```ts
 * import { DenoKvDriver } from "./deno_kv.deno.ts";
 *
 * const driver = await DenoKvDriver.open(":memory:");
 * await driver.put("v1:packument:npm:6c6f64617368", new TextEncoder().encode("{}"));
 * console.assert(await driver.has("v1:packument:npm:6c6f64617368"));
 * await driver.close();
 * ```
 *
 * @module
 */

import { DenoKvDriver as KvHandleDriver } from "./deno_kv.ts";

// Everything of the driver module; the local DenoKvDriver below takes the place of its own.
export * from "./deno_kv.ts";

/**
 * The Deno KV {@linkcode StorageDriver} of `./deno_kv.ts`, with {@linkcode DenoKvDriver.open}
 * on `Deno.openKv`. `new DenoKvDriver(kv)` wraps a `Deno.Kv` the caller keeps owning.
 *
 * @example Wrap an existing handle
 * ```ts
 * import { DenoKvDriver } from "./deno_kv.deno.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * const driver = new DenoKvDriver(kv);
 * await driver.put("k", new Uint8Array(100_000));
 * console.assert((await driver.get("k"))?.byteLength === 100_000);
 * await driver.close();
 * kv.close();
 * ```
 */
export class DenoKvDriver extends KvHandleDriver {
  /**
   * Opens a KV database and wraps it; {@linkcode DenoKvDriver.close} closes it again.
   *
   * @param path `":memory:"`, a file path, or `undefined` for Deno's default database.
   * @returns A driver that owns the database handle.
   */
  static async open(path?: string): Promise<DenoKvDriver> {
    return new DenoKvDriver(await Deno.openKv(path), { owned: true });
  }
}
