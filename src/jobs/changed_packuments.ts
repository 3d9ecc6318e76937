/**
 * Which documents of a listing need their packument fetched: the `_rev` comparison that
 * `packument fetch-partitions` ({@linkcode syncPackuments}) and the worker's `partition` items
 * share.
 *
 * A row is skipped when the cached packument of the representation asked for was stored from a
 * 200 with the `_rev` the row lists; every other row (not cached, cached from another status,
 * cached with another or no `_rev`) is passed on.
 *
 * @module
 */

import type { AllDocsRow } from "../couchdb/rows.ts";
import type { Cache } from "../storage/cache.ts";
import { packumentKey, type Representation } from "../storage/keys.ts";
import type { RegistryTarget } from "./fetch_packuments.ts";

/** Options for {@linkcode changedPackuments}. */
export interface ChangedPackumentsOptions {
  /** Which registry serves a name: its origin key names the cached packument. */
  registryFor: (name: string) => RegistryTarget;
  /** Which document is compared.
   * @default {"full"} */
  representation?: Representation;
  /** Called for each row skipped because its cached packument has the row's `_rev`. */
  onSameRev?: (row: AllDocsRow) => void;
}

/**
 * The rows whose cached packument does not have the row's `_rev` (see the module
 * documentation), in the order given.
 *
 * @param cache The cache holding the packuments.
 * @param rows The listing (`_all_docs` rows: id and `_rev`).
 * @param options Where the packuments come from, which representation, and a counter.
 * @returns The rows to fetch.
 *
 * @example
 * ```ts
 * import { changedPackuments } from "./changed_packuments.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { packumentKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * await cache.put(packumentKey("registry", "ms"), new TextEncoder().encode("{}"), {
 *   status: 200,
 *   rev: "3-a",
 * });
 * const registry = { url: "http://registry.test/", originKey: "registry" };
 * async function* listing() {
 *   yield { id: "ms", rev: "3-a" };
 *   yield { id: "debug", rev: "1-b" };
 * }
 * const changed = [];
 * for await (const row of changedPackuments(cache, listing(), { registryFor: () => registry })) {
 *   changed.push(row.id);
 * }
 * console.assert(changed.join() === "debug");
 * ```
 */
export async function* changedPackuments(
  cache: Cache,
  rows: AsyncIterable<AllDocsRow> | Iterable<AllDocsRow>,
  options: ChangedPackumentsOptions,
): AsyncGenerator<AllDocsRow> {
  const representation = options.representation ?? "full";
  for await (const row of rows) {
    const target = options.registryFor(row.id);
    const info = await cache.info(packumentKey(target.originKey, row.id, representation));
    if (info?.rev === row.rev && info.status === 200) {
      options.onSameRev?.(row);
      continue;
    }
    yield row;
  }
}
