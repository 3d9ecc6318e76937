/**
 * Scans the documents of views: lists the keys in order, cuts them into batches, processes the
 * batches on the calling thread or on workers (see `./dispatch.ts`), and hands out the results
 * in key order. `view query`, `view join` and `view run` are built on {@linkcode scanView}.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { Sha256Hasher } from "../storage/integrity.ts";
import { type ViewDefinition, viewDocumentPrefix } from "./definition.ts";
import {
  type BatchRunner,
  inProcessRunner,
  runInOrder,
  startWorkerRunner,
  type ViewWorkerFactory,
} from "./dispatch.ts";
import { type BatchResult, compileTask, type ScanSide, type ScanTask } from "./scan.ts";

/** How a scan runs in parallel. */
export interface ScanWorkers {
  /** How many threads read documents, the calling one included (it starts `count - 1`
   * workers). */
  count: number;
  /** Starts one, the runtime's way. */
  factory: ViewWorkerFactory;
  /** The storage settings each worker opens its own driver from. */
  storage: unknown;
  /** Whether workers read through the calling thread's driver instead of opening their own
   * (for a driver one thread must own: Deno KV on Node).
   * @default {false} */
  readThrough?: boolean;
}

/** Options of {@linkcode scanView}. */
export interface ScanOptions {
  /** The task. */
  task: ScanTask;
  /** The key suffixes (`hex(name)`) to process, in key order. */
  suffixes: AsyncIterable<string> | Iterable<string>;
  /** Workers to process batches on beside the calling thread; without them, or for a short
   * scan, the calling thread does all.
   * @default {undefined} */
  workers?: ScanWorkers | undefined;
  /** Documents per batch.
   * @default {32} */
  batchSize?: number;
  /** Scans of fewer documents run on the calling thread: starting workers costs more.
   * @default {256} */
  minForWorkers?: number;
  /** Whether caches remove corrupt entries they find (the caller's cache has its own option).
   * @default {false} */
  dropCorrupt?: boolean;
  /** Called for each corrupt entry a worker finds (the caller's cache reports its own). */
  onCorrupt?: ((key: string, reason: string) => void) | undefined;
  /** Imports the module of a map task. */
  importModule?: ((specifier: string) => Promise<unknown>) | undefined;
  /** The runtime's incremental SHA-256, for scans on the calling thread (workers bring their
   * own). */
  createHash?: (() => Sha256Hasher) | undefined;
}

/**
 * The key suffixes (`hex(name)`) of the documents under a prefix, in key order.
 *
 * @param cache The cache.
 * @param prefix A document prefix such as `v1:packument:npm:`.
 * @returns The suffixes.
 */
export async function* listSuffixes(cache: Cache, prefix: string): AsyncGenerator<string> {
  for await (const key of cache.keys(prefix)) {
    const suffix = key.slice(prefix.length);
    if (/^(?:[0-9a-f]{2})+$/.test(suffix)) yield suffix;
  }
}

/**
 * Merges two sorted lists of suffixes into one, each suffix once.
 *
 * @param a Suffixes in order.
 * @param b Suffixes in order.
 * @returns Both, in order, without repeats.
 */
export async function* mergeSuffixes(
  a: AsyncIterable<string>,
  b: AsyncIterable<string>,
): AsyncGenerator<string> {
  const x = a[Symbol.asyncIterator]();
  const y = b[Symbol.asyncIterator]();
  let p = await x.next();
  let q = await y.next();
  while (!p.done || !q.done) {
    if (q.done || (!p.done && p.value < q.value)) {
      yield p.value as string;
      p = await x.next();
    } else if (p.done || q.value < p.value) {
      yield q.value;
      q = await y.next();
    } else {
      yield p.value;
      p = await x.next();
      q = await y.next();
    }
  }
}

async function* batchesOf(
  items: AsyncIterable<string> | Iterable<string>,
  size: number,
): AsyncGenerator<string[]> {
  let batch: string[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

async function* chain<T>(first: T[], rest: AsyncIterator<T>): AsyncGenerator<T> {
  yield* first;
  while (true) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/**
 * Runs a scan task over documents in key order, on the calling thread and, when there are
 * enough documents, `workers.count - 1` workers beside it, and yields each batch's result in
 * order. Stopping early (a `break`, `--limit`) stops the
 * workers at once.
 *
 * @param cache The cache of the calling thread (used when it processes the batches itself).
 * @param options The task, the suffixes, and the workers.
 * @returns The batch results, in key order.
 * @throws {RangeError} When `batchSize` or `minForWorkers` is out of range.
 *
 * @example
 * ```ts
 * import { Cache } from "../storage/cache.ts";
 * import { packumentKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 * import { listSuffixes, scanView } from "./query.ts";
 * const cache = await Cache.open(new MemoryDriver());
 * for (const name of ["b", "a"]) {
 *   const body = new TextEncoder().encode(JSON.stringify({ name, license: "MIT" }));
 *   await cache.put(packumentKey("npm", name), body, { status: 200 });
 * }
 * const prefix = "v1:packument:npm:";
 * const lines: string[] = [];
 * const task = { kind: "records", view: { prefix, select: "name" }, format: "ndjson" } as const;
 * for await (const result of scanView(cache, { task, suffixes: listSuffixes(cache, prefix) })) {
 *   lines.push(...result.lines);
 * }
 * console.assert(lines.join("\n") === '{"name":"a"}\n{"name":"b"}');
 * ```
 */
export async function* scanView(cache: Cache, options: ScanOptions): AsyncGenerator<BatchResult> {
  const batchSize = options.batchSize ?? 32;
  const minForWorkers = options.minForWorkers ?? 256;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(
      `Cannot scan a view: 'batchSize' must be a positive integer, received ${batchSize}`,
    );
  }
  if (!Number.isInteger(minForWorkers) || minForWorkers < 0) {
    throw new RangeError(
      `Cannot scan a view: 'minForWorkers' must be a non-negative integer, received ${minForWorkers}`,
    );
  }
  const batches = batchesOf(options.suffixes, batchSize);
  const first: string[][] = [];
  let seen = 0;
  let more = true;
  while (seen < minForWorkers || (seen === 0 && minForWorkers === 0)) {
    const next = await batches.next();
    if (next.done) {
      more = false;
      break;
    }
    first.push(next.value);
    seen += next.value.length;
  }
  const workers = options.workers;
  // The calling thread reads too: N threads are the calling one and N - 1 workers.
  const extra = workers !== undefined && more ? Math.max(workers.count - 1, 0) : 0;
  let runners: BatchRunner[] = [];
  let finished = false;
  try {
    const processor = await compileTask(options.task, {
      importModule: options.importModule,
      createHash: options.createHash,
    });
    runners = [inProcessRunner(cache, processor)];
    if (extra > 0) {
      const starting = Array.from({ length: extra }, () =>
        startWorkerRunner(workers!.factory, {
          storage: workers!.storage,
          sharedDriver: workers!.readThrough ? cache.driver : undefined,
          task: options.task,
          dropCorrupt: options.dropCorrupt ?? false,
          onCorrupt: options.onCorrupt,
        }));
      const started = await Promise.allSettled(starting);
      runners.push(...started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []));
      const failed = started.find((s) => s.status === "rejected");
      if (failed) throw failed.reason;
    }
    yield* runInOrder(chain(first, batches), runners);
    finished = true;
  } finally {
    if (finished) await Promise.all(runners.map((runner) => runner.close()));
    else for (const runner of runners) runner.terminate();
    await batches.return(undefined);
  }
}

/**
 * The scan side of a view: its document prefix, `where` and `select`.
 *
 * @param view The view.
 * @returns The side.
 */
export function viewSide(view: ViewDefinition): ScanSide {
  return { prefix: viewDocumentPrefix(view), where: view.where, select: view.select };
}
