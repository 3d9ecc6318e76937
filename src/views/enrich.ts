/**
 * Enrichment: NDJSON records in (a lockfile's specs, say: `{"name":"ms","version":"2.1.3"}`),
 * the same records out with fields taken from each one's cached packument added:
 * `time[.version] as publishedAt`, `versions[.version].dist.integrity as integrity`, where
 * `[.version]` is the value of the input record's version field.
 *
 * Packuments are looked up by key (`v1:packument:{origin}:{hex(name)}`), read a window ahead
 * of the record being written, and the parsed ones kept in a small LRU (a lockfile names the
 * same package again and again). The output is in the order of the input.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { Sha256Hasher } from "../storage/integrity.ts";
import { hex } from "../storage/keys.ts";
import { Lru } from "../_util/lru.ts";
import { compileSelect, type SelectField } from "./expressions.ts";
import { readBody } from "./scan.ts";
import { isObject } from "./values.ts";

/** What to do with a record whose packument is not in the cache (or has no name). */
export type OnMissing = "skip" | "null" | "error";

/** The `OnMissing` choices. */
export const ON_MISSING: readonly OnMissing[] = ["skip", "null", "error"];

/** Options of {@linkcode compileEnrichment}. */
export interface EnrichOptions {
  /** The key prefix of the packuments: `v1:packument:{origin}:`. */
  prefix: string;
  /** Select lists of the fields to add, each `SELECTOR as ALIAS`, with `[.field]` input
   * references. */
  add: readonly string[];
  /** The input field holding the package name (`[.name]` reads it too).
   * @default {"name"} */
  nameField?: string;
  /** The input field `[.version]` reads.
   * @default {"version"} */
  versionField?: string;
  /** A record whose packument is missing: left out (`skip`), given `null` for every added
   * field (`null`), or the end of the run (`error`).
   * @default {"null"} */
  onMissing?: OnMissing;
  /** The runtime's SHA-256, to verify bodies (WebCrypto without one). */
  createHash?: (() => Sha256Hasher) | undefined;
  /** Records read ahead of the one written.
   * @default {64} */
  window?: number;
}

/** What one input line became. */
export type EnrichEvent =
  | { type: "record"; line: number; text: string }
  | { type: "skipped"; line: number; reason: string }
  | { type: "invalid"; line: number; reason: string };

/** A record's packument is missing and `onMissing` is `error`. */
export class EnrichMissingError extends Error {
  /** The input line (1-based). */
  readonly line: number;
  /**
   * Makes the error of an input record whose package or selected value is missing.
   *
   * @param line The input line.
   * @param message What is missing.
   */
  constructor(line: number, message: string) {
    super(message);
    this.name = "EnrichMissingError";
    this.line = line;
  }
}

/** A compiled enrichment. */
export interface Enrichment {
  /** The added fields, in order. */
  readonly fields: readonly SelectField[];
  /**
   * Enriches NDJSON lines: blank lines are passed over; a line that is not a JSON object is an
   * `invalid` event; a record whose packument is missing is `skipped` or written with `null`
   * fields, or ends the run with an {@linkcode EnrichMissingError}.
   */
  run(cache: Cache, lines: AsyncIterable<string> | Iterable<string>): AsyncGenerator<EnrichEvent>;
}

const decoder = new TextDecoder();

/** A packument as loaded: parsed, or why not. */
interface Loaded {
  doc: unknown;
  size: number;
  problem: string | undefined;
}

/**
 * Compiles the `--add` expressions of an enrichment.
 *
 * @param options The expressions, the input fields and what to do when a packument is missing.
 * @returns The enrichment.
 * @throws {ViewExpressionError} When an expression does not parse.
 * @throws {TypeError} When two added fields share a name, or there is none.
 *
 * @example
 * ```ts
 * import { Cache } from "../storage/cache.ts";
 * import { packumentKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 * import { compileEnrichment } from "./enrich.ts";
 * const cache = await Cache.open(new MemoryDriver());
 * const doc = { name: "ms", time: { "2.1.3": "2020-12-04T00:00:00.000Z" } };
 * await cache.put(packumentKey("npm", "ms"), new TextEncoder().encode(JSON.stringify(doc)), {
 *   status: 200,
 * });
 * const enrich = compileEnrichment({ prefix: "v1:packument:npm:", add: ["time[.version] as at"] });
 * const out: string[] = [];
 * for await (const event of enrich.run(cache, ['{"name":"ms","version":"2.1.3"}'])) {
 *   if (event.type === "record") out.push(event.text);
 * }
 * console.assert(out[0] === '{"name":"ms","version":"2.1.3","at":"2020-12-04T00:00:00.000Z"}');
 * ```
 */
export function compileEnrichment(options: EnrichOptions): Enrichment {
  const nameField = options.nameField ?? "name";
  const versionField = options.versionField ?? "version";
  const onMissing = options.onMissing ?? "null";
  const window = options.window ?? 64;
  if (!ON_MISSING.includes(onMissing)) {
    throw new TypeError(
      `Cannot enrich: 'onMissing' must be skip, null or error, received '${onMissing}'`,
    );
  }
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`Cannot enrich: 'window' must be a positive integer, received ${window}`);
  }
  const inputFields = { name: nameField, version: versionField };
  const fields: SelectField[] = [];
  for (const source of options.add) {
    for (const field of compileSelect(source, { inputs: true, inputFields }).fields) {
      if (fields.some((f) => f.name === field.name)) {
        throw new TypeError(`Cannot enrich: two added fields are named '${field.name}'`);
      }
      fields.push(field);
    }
  }
  if (fields.length === 0) throw new TypeError("Cannot enrich: no field to add");
  const { prefix, createHash } = options;

  async function* run(
    cache: Cache,
    lines: AsyncIterable<string> | Iterable<string>,
  ): AsyncGenerator<EnrichEvent> {
    // Parsed packuments by name (null: not in the cache), bounded by their body bytes.
    const parsed = new Lru<string, Loaded>({
      maxEntries: 1024,
      maxBytes: 32 * 1024 * 1024,
      sizeOf: (value) => value.size,
    });
    const load = async (name: string): Promise<Loaded> => {
      const body = await readBody(cache, prefix + hex(name), createHash);
      if (body === undefined) return { doc: undefined, size: 0, problem: "is not in the cache" };
      try {
        return { doc: JSON.parse(decoder.decode(body)), size: body.length, problem: undefined };
      } catch {
        return { doc: undefined, size: 0, problem: "is cached but not JSON" };
      }
    };
    let pending: { line: number; record?: Record<string, unknown>; reason?: string }[] = [];
    let number = 0;

    async function* flush(): AsyncGenerator<EnrichEvent> {
      const names = new Map<string, Promise<Loaded>>();
      for (const item of pending) {
        const name = item.record?.[nameField];
        if (typeof name !== "string" || parsed.get(name) !== undefined || names.has(name)) continue;
        const loading = load(name);
        loading.catch(() => {});
        names.set(name, loading);
      }
      for (const item of pending) {
        if (item.record === undefined) {
          yield { type: "invalid", line: item.line, reason: item.reason! };
          continue;
        }
        const record = item.record;
        const name = record[nameField];
        let doc: unknown;
        let missing: string | undefined;
        if (typeof name !== "string") missing = `no '${nameField}' field`;
        else {
          let loaded = parsed.get(name);
          if (loaded === undefined) {
            loaded = await (names.get(name) ?? load(name));
            parsed.set(name, loaded);
          }
          doc = loaded.doc;
          if (loaded.problem !== undefined) missing = `${name} ${loaded.problem}`;
        }
        if (missing !== undefined) {
          if (onMissing === "error") {
            throw new EnrichMissingError(item.line, `Line ${item.line}: ${missing}`);
          }
          if (onMissing === "skip") {
            yield { type: "skipped", line: item.line, reason: missing };
            continue;
          }
        }
        for (const field of fields) {
          const value = doc === undefined ? null : field.get(doc, record);
          if (field.name === "__proto__") {
            Object.defineProperty(record, field.name, {
              value,
              enumerable: true,
              writable: true,
              configurable: true,
            });
          } else record[field.name] = value;
        }
        yield { type: "record", line: item.line, text: JSON.stringify(record) };
      }
      pending = [];
    }

    for await (const text of lines) {
      number++;
      if (text.trim() === "") continue;
      let record: unknown;
      try {
        record = JSON.parse(text);
      } catch {
        record = undefined;
      }
      pending.push(
        isObject(record) ? { line: number, record } : { line: number, reason: "not a JSON object" },
      );
      if (pending.length >= window) yield* flush();
    }
    yield* flush();
  }

  return { fields, run };
}
