/**
 * Map-reduce over the cached documents of an origin (`view run MODULE`): a module's
 * `map(doc, emit)` runs on every document (on the workers, in parallel); the emitted pairs are
 * sorted by key in the collation order of `./values.ts` (stable: pairs of one key stay in name
 * order), and, when the module has `reduce(key, values)`, the values of each key are reduced
 * to one. The output is `{"key","value"}` JSON lines.
 *
 * Bound: every emitted pair is held in memory, as the JSON text of its value and its key,
 * until the scan ends (sorting needs them all). A map that emits a few small pairs per
 * document is fine for millions of documents; one that emits whole documents is not.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import { listSuffixes, type ScanOptions, scanView } from "./query.ts";
import type { MapModule, SkippedDocument } from "./scan.ts";
import { canonicalJson, compareValues } from "./values.ts";

export type { MapModule };

/** Options of {@linkcode mapReduce}. */
export interface MapReduceOptions {
  /** The key prefix of the documents: `v1:packument:{origin}:`. */
  prefix: string;
  /** The module's URL: each thread imports it for `map`. */
  module: string;
  /** The module's `reduce`, when it has one (run on the calling thread). */
  reduce?: MapModule["reduce"] | undefined;
  /** How the scan runs (workers, corruption reports, hash, how to import the module). */
  scan?: Omit<ScanOptions, "task" | "suffixes">;
  /** Called with the documents left out (cached, but not JSON). */
  onSkipped?: (skipped: SkippedDocument) => void;
}

interface Pair {
  key: unknown;
  keyText: string;
  valueText: string;
}

/**
 * Runs a map (and reduce) over the documents under a prefix.
 *
 * @param cache The cache.
 * @param options The prefix, the module, its reduce and how the scan runs.
 * @returns `{"key","value"}` JSON lines (without line breaks), sorted by key.
 *
 * @example
 * ```ts
 * import { Cache } from "../storage/cache.ts";
 * import { packumentKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 * import { mapReduce } from "./map_reduce.ts";
 * const cache = await Cache.open(new MemoryDriver());
 * for (const [name, license] of [["a", "MIT"], ["b", "ISC"], ["c", "MIT"]] as const) {
 *   const body = new TextEncoder().encode(JSON.stringify({ name, license }));
 *   await cache.put(packumentKey("npm", name), body, { status: 200 });
 * }
 * // `importModule` loads the module (the CLI imports it dynamically); here it is at hand.
 * const licenses = {
 *   map: (doc: { license: string }, emit: (k: unknown, v: unknown) => void) => emit(doc.license, 1),
 * };
 * const scan = { importModule: () => Promise.resolve(licenses) };
 * const module = "licenses";
 * const lines: string[] = [];
 * const reduce = (_key: unknown, values: unknown[]) => values.length;
 * for await (const line of mapReduce(cache, { prefix: "v1:packument:npm:", module, reduce, scan })) {
 *   lines.push(line);
 * }
 * console.assert(lines.join("\n") === '{"key":"ISC","value":1}\n{"key":"MIT","value":2}');
 * ```
 */
export async function* mapReduce(
  cache: Cache,
  options: MapReduceOptions,
): AsyncGenerator<string> {
  const pairs: Pair[] = [];
  for await (
    const result of scanView(cache, {
      ...options.scan,
      task: { kind: "map", prefix: options.prefix, module: options.module },
      suffixes: listSuffixes(cache, options.prefix),
    })
  ) {
    for (const skipped of result.skipped) options.onSkipped?.(skipped);
    for (const text of result.lines) {
      const [key, value] = JSON.parse(text) as [unknown, unknown];
      const keyText = canonicalJson(key);
      pairs.push({ key: JSON.parse(keyText), keyText, valueText: JSON.stringify(value ?? null) });
    }
  }
  // Array.prototype.sort is stable: pairs of one key keep their name order.
  pairs.sort((a, b) => compareValues(a.key, b.key));
  const reduce = options.reduce;
  if (!reduce) {
    for (const pair of pairs) yield `{"key":${pair.keyText},"value":${pair.valueText}}`;
    return;
  }
  for (let i = 0; i < pairs.length;) {
    let j = i + 1;
    while (j < pairs.length && pairs[j]!.keyText === pairs[i]!.keyText) j++;
    const values = pairs.slice(i, j).map((pair) => JSON.parse(pair.valueText) as unknown);
    const reduced = await reduce(pairs[i]!.key, values);
    yield `{"key":${pairs[i]!.keyText},"value":${JSON.stringify(reduced ?? null)}}`;
    i = j;
  }
}
