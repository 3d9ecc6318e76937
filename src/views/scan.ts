/**
 * What one worker does with a batch of documents: the scan tasks (records of a view, a join by
 * package name, the map of `view run`), compiled once per worker, and the processing of a batch
 * of names in key order. The main thread and every worker run this same code, so the output is
 * the same bytes whatever the number of workers.
 *
 * A batch is a list of key suffixes, `hex(name)`, in key order; each task reads the documents
 * `{prefix}{suffix}` it needs, with a few reads ahead of the one being parsed.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import { CacheIntegrityError, integrityOf, type Sha256Hasher } from "../storage/integrity.ts";
import { type DecodedRecord, decodeRecord } from "../storage/record.ts";
import { unhex } from "../storage/keys.ts";
import { compileSelect, compileWhere, type Predicate } from "./expressions.ts";
import { type RecordFormat, recordFormatter } from "./format.ts";
import { canonicalJson, isObject } from "./values.ts";
import { documentNeeds, type Need, parsePartial } from "./partial_json.ts";

/** The documents of one side of a scan: where they are, which count, what a record holds. */
export interface ScanSide {
  /** The key prefix of the documents: `v1:packument:{origin}:` or `v1:corgi:{origin}:`. */
  prefix: string;
  /** Which documents count. */
  where?: string | undefined;
  /** What a record holds (absent: the whole document). */
  select?: string | undefined;
}

/** How records of two views are joined. */
export type JoinMode = "left" | "inner" | "right" | "full" | "diff";

/** A task: what each document of a batch becomes. Plain data, so it can go to a worker. */
export type ScanTask =
  | {
    /** The records of a view, filtered and formatted (or only counted). */
    kind: "records";
    view: ScanSide;
    filter?: string | undefined;
    format: RecordFormat;
    count?: boolean | undefined;
    /** Prefix each line with the canonical JSON of this field of the record and a tab (JSON
     * text never holds a raw tab), for joins on a field. */
    keyField?: string | undefined;
  }
  | {
    /** `{"key","left","right"}` lines of two views joined by package name. */
    kind: "join";
    left: ScanSide;
    right: ScanSide;
    mode: JoinMode;
  }
  | {
    /** The `[key, value]` pairs a module's `map(doc, emit)` emits, as JSON texts. */
    kind: "map";
    prefix: string;
    /** The module's URL (the worker imports it). */
    module: string;
  };

/** A document a batch could not use, and why. */
export interface SkippedDocument {
  /** Its key. */
  key: string;
  /** Why it was left out. */
  reason: string;
}

/** What a batch gave. */
export interface BatchResult {
  /** The formatted records (lines without their line breaks), in key order. */
  lines: string[];
  /** How many records (the number of lines, or the count when only counting). */
  count: number;
  /** Documents that were cached but could not be read as JSON. */
  skipped: SkippedDocument[];
}

/** A module for `view run`: `map(doc, emit)` and, optionally, `reduce(key, values)`. */
export interface MapModule {
  /** Called with each document; `emit(key, value)` adds a pair. */
  map: (doc: unknown, emit: (key: unknown, value?: unknown) => void) => unknown;
  /** Folds the values of one key into one. */
  reduce?: (key: unknown, values: unknown[]) => unknown;
}

/** What compiling a task needs besides the task. */
export interface CompileOptions {
  /** Imports the module of a map task (library code imports nothing dynamically). */
  importModule?: ((specifier: string) => Promise<unknown>) | undefined;
  /** The runtime's incremental SHA-256, to verify bodies with (WebCrypto without one).
   * @default {undefined} */
  createHash?: (() => Sha256Hasher) | undefined;
}

/** A compiled task: processes one batch of key suffixes over a cache. */
export type BatchProcessor = (cache: Cache, suffixes: readonly string[]) => Promise<BatchResult>;

/** Reads ahead of the document being parsed, so I/O overlaps with parsing. */
const READ_AHEAD = 4;
const decoder = new TextDecoder();

/** One side compiled: the record of a document, or `undefined` when it does not count. */
type RecordOf = (doc: unknown) => unknown;

/** One side compiled: what its documents are parsed into, and their records. */
interface Side {
  /** What the side reads of a document (`undefined`: all of it). */
  need: Need | undefined;
  /** The record of a parsed document, or `undefined` when it does not count. */
  recordOf: RecordOf;
}

function compileSide(side: ScanSide): Side {
  const where = side.where === undefined ? undefined : compileWhere(side.where);
  const select = side.select === undefined ? undefined : compileSelect(side.select);
  const need = documentNeeds(side.select, side.where);
  let recordOf: RecordOf;
  if (where && select) recordOf = (doc) => where(doc) ? select.project(doc) : undefined;
  else if (select) recordOf = (doc) => select.project(doc);
  else if (where) recordOf = (doc) => where(doc) ? doc : undefined;
  else recordOf = (doc) => doc;
  return { need, recordOf };
}

/** The output names of a side's records (`undefined`: whole documents). */
export function sideNames(side: ScanSide): readonly string[] | undefined {
  return side.select === undefined ? undefined : compileSelect(side.select).names;
}

/**
 * The body of a cached 200 document (decoded when stored gzip), or `undefined` when it is
 * absent, recorded as not found, or corrupt. The common case is read here in one piece (the record, then the body when it is
 * stored apart) and verified with one hash; anything unexpected (a record that does not decode,
 * a body that is missing or does not match its integrity, which a concurrent writer can also
 * cause) is read again through the cache, which reports and removes corrupt entries.
 *
 * @param cache The cache.
 * @param key The document's key.
 * @param createHash The runtime's SHA-256 (WebCrypto without one).
 * @returns The body bytes.
 */
export async function readBody(
  cache: Cache,
  key: string,
  createHash: (() => Sha256Hasher) | undefined,
): Promise<Uint8Array | undefined> {
  const raw = await cache.driver.get(key);
  if (raw === undefined) return undefined;
  let record: DecodedRecord;
  try {
    record = decodeRecord(key, raw);
  } catch {
    return await readThroughCache(cache, key);
  }
  const { header, inline } = record;
  if (header.status !== 200) return undefined;
  const body = header.body === null ? inline : await cache.driver.get(header.body);
  if (
    body === undefined || body.length !== header.size ||
    (await integrityOf(body, createHash)) !== header.integrity
  ) {
    return await readThroughCache(cache, key);
  }
  if (header.encoding !== "gzip") return body;
  try {
    return await cache.gunzip(body);
  } catch {
    // Not gzip after all: the cache reports it.
    return await readThroughCache(cache, key);
  }
}

/** Reads a document through the cache, which verifies it and reports it when corrupt. */
async function readThroughCache(cache: Cache, key: string): Promise<Uint8Array | undefined> {
  const entry = await cache.get(key, { verify: "while" });
  if (!entry || entry.info.status !== 200) return undefined;
  try {
    return await entry.bytes();
  } catch (error) {
    // Found corrupt as it streamed: reported by the cache, left out here.
    if (error instanceof CacheIntegrityError) return undefined;
    throw error;
  }
}

/** Parses a body, or records why it could not. */
function parse(
  key: string,
  body: Uint8Array | undefined,
  skipped: SkippedDocument[],
  need?: Need,
): unknown {
  if (body === undefined) return undefined;
  try {
    return need === undefined ? JSON.parse(decoder.decode(body)) : parsePartial(body, need);
  } catch (error) {
    skipped.push({ key, reason: `not JSON: ${(error as Error).message}` });
    return undefined;
  }
}

/**
 * Reads `read(i)` for each index in order, a few ahead, handing each result to `use` in order.
 * A read that fails is thrown when its turn comes.
 */
async function readAhead<T>(
  count: number,
  read: (i: number) => Promise<T>,
  use: (value: T, i: number) => void | Promise<void>,
): Promise<void> {
  const reads: Promise<T>[] = [];
  const start = (i: number) => {
    const p = read(i);
    p.catch(() => {});
    reads.push(p);
  };
  for (let i = 0; i < Math.min(READ_AHEAD, count); i++) start(i);
  for (let i = 0; i < count; i++) {
    const value = await reads[i]!;
    if (i + READ_AHEAD < count) start(i + READ_AHEAD);
    await use(value, i);
    delete reads[i];
  }
}

function recordsTask(
  task: Extract<ScanTask, { kind: "records" }>,
  hash: CompileOptions["createHash"],
): BatchProcessor {
  const { need, recordOf } = compileSide(task.view);
  const format = recordFormatter(task.format, sideNames(task.view));
  const filter: Predicate | undefined = task.filter === undefined
    ? undefined
    : compileWhere(task.filter);
  const { prefix } = task.view;
  const countOnly = task.count === true;
  const keyField = task.keyField;
  const line = keyField === undefined
    ? format
    : (record: unknown) =>
      `${canonicalJson(isObject(record) ? record[keyField] : null)}\t${format(record)}`;
  return async (cache, suffixes) => {
    const lines: string[] = [];
    const skipped: SkippedDocument[] = [];
    let count = 0;
    await readAhead(
      suffixes.length,
      (i) => readBody(cache, prefix + suffixes[i]!, hash),
      (body, i) => {
        const doc = parse(prefix + suffixes[i]!, body, skipped, need);
        if (doc === undefined) return;
        const record = recordOf(doc);
        if (record === undefined || (filter && !filter(record))) return;
        count++;
        if (!countOnly) lines.push(line(record));
      },
    );
    return { lines, count, skipped };
  };
}

function joinTask(
  task: Extract<ScanTask, { kind: "join" }>,
  hash: CompileOptions["createHash"],
): BatchProcessor {
  const { need: leftNeed, recordOf: leftOf } = compileSide(task.left);
  const { need: rightNeed, recordOf: rightOf } = compileSide(task.right);
  const { mode } = task;
  const lp = task.left.prefix;
  const rp = task.right.prefix;
  return async (cache, suffixes) => {
    const lines: string[] = [];
    const skipped: SkippedDocument[] = [];
    const read = (i: number) =>
      Promise.all([
        readBody(cache, lp + suffixes[i]!, hash),
        readBody(cache, rp + suffixes[i]!, hash),
      ]);
    await readAhead(suffixes.length, read, ([lb, rb], i) => {
      const suffix = suffixes[i]!;
      // The side a join is driven by is parsed first; the other only when it matters.
      const driver = mode === "right" ? "right" : "left";
      let left: unknown;
      let right: unknown;
      if (driver === "left") {
        const doc = parse(lp + suffix, lb, skipped, leftNeed);
        left = doc === undefined ? undefined : leftOf(doc);
        if (left === undefined && mode !== "full") return;
        const other = parse(rp + suffix, rb, skipped, rightNeed);
        right = other === undefined ? undefined : rightOf(other);
      } else {
        const doc = parse(rp + suffix, rb, skipped, rightNeed);
        right = doc === undefined ? undefined : rightOf(doc);
        if (right === undefined) return;
        const other = parse(lp + suffix, lb, skipped, leftNeed);
        left = other === undefined ? undefined : leftOf(other);
      }
      if (mode === "inner" && right === undefined) return;
      if (mode === "diff" && right !== undefined) return;
      if (left === undefined && right === undefined) return;
      lines.push(
        `{"key":${JSON.stringify(unhex(suffix))},"left":${JSON.stringify(left ?? null)},` +
          `"right":${mode === "diff" ? "null" : JSON.stringify(right ?? null)}}`,
      );
    });
    return { lines, count: lines.length, skipped };
  };
}

async function mapTask(
  task: Extract<ScanTask, { kind: "map" }>,
  options: CompileOptions,
): Promise<BatchProcessor> {
  if (!options.importModule) {
    throw new TypeError("Cannot run a map task: no way to import its module was given");
  }
  const module = await options.importModule(task.module) as Partial<MapModule>;
  const map = module.map;
  if (typeof map !== "function") {
    throw new TypeError(`Cannot run a map task: ${task.module} exports no map(doc, emit) function`);
  }
  const { prefix } = task;
  const hash = options.createHash;
  return async (cache, suffixes) => {
    const lines: string[] = [];
    const skipped: SkippedDocument[] = [];
    const emit = (key: unknown, value?: unknown) => {
      lines.push(JSON.stringify([key ?? null, value ?? null]));
    };
    await readAhead(
      suffixes.length,
      (i) => readBody(cache, prefix + suffixes[i]!, hash),
      async (body, i) => {
        const doc = parse(prefix + suffixes[i]!, body, skipped);
        if (doc !== undefined) await map(doc, emit);
      },
    );
    return { lines, count: lines.length, skipped };
  };
}

/**
 * Compiles a task once, for all the batches a worker will process.
 *
 * @param task The task.
 * @param options How to import a map module.
 * @returns The batch processor.
 * @throws {ViewExpressionError} When an expression does not parse.
 * @throws {TypeError} When the format does not fit the view, or a map module has no `map`.
 */
export async function compileTask(
  task: ScanTask,
  options: CompileOptions = {},
): Promise<BatchProcessor> {
  switch (task.kind) {
    case "records":
      return recordsTask(task, options.createHash);
    case "join":
      return joinTask(task, options.createHash);
    case "map":
      return await mapTask(task, options);
  }
}
