/**
 * Running scan tasks over many batches at once, on the main thread or on workers, with the
 * results handed out in key order.
 *
 * A {@linkcode BatchRunner} processes batches: {@linkcode inProcessRunner} here, or
 * {@linkcode startWorkerRunner} on a worker thread the runtime's entry point starts (a Web
 * Worker on Deno, `worker_threads` on Node) through a {@linkcode ViewWorkerFactory}. Each worker
 * opens its own storage driver from the same settings and reads the documents of its batches
 * itself (or, for a driver one thread must own, asks the calling thread for each read); only
 * names go to it and only formatted records come back. {@linkcode runInOrder}
 * keeps every runner busy with a bounded number of batches in flight and yields their results
 * in the order of the batches.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { StorageDriver } from "../storage/driver.ts";
import { answerStorageRequest } from "./_port_driver.ts";
import type { StorageRequest } from "./storage_messages.ts";
import type { BatchProcessor, BatchResult, ScanTask } from "./scan.ts";

/** Processes batches of key suffixes. */
export interface BatchRunner {
  /** Processes one batch. Batches given to one runner are processed in the order given. */
  run(suffixes: readonly string[]): Promise<BatchResult>;
  /** Ends the runner once its batches are done (a worker closes its storage and stops). */
  close(): Promise<void>;
  /** Stops at once, abandoning any batch in progress. */
  terminate(): void;
}

/**
 * A runner on the calling thread, over the caller's cache.
 *
 * @param cache The cache.
 * @param processor The compiled task.
 * @returns The runner.
 */
export function inProcessRunner(cache: Cache, processor: BatchProcessor): BatchRunner {
  return {
    run: (suffixes) => processor(cache, suffixes),
    close: () => Promise.resolve(),
    terminate: () => {},
  };
}

/** A worker thread as the runtime started it. */
export interface ViewWorkerPort {
  /** Sends a message (structured clone). */
  postMessage(message: unknown): void;
  /** Stops the worker at once. */
  terminate(): void;
}

/**
 * Starts a worker running the view worker entry point of the runtime (which calls
 * `serveViewWorker` of `./worker.ts`), calling `events.message` with each message it posts and
 * `events.error` when it fails.
 */
export type ViewWorkerFactory = (events: {
  message(data: unknown): void;
  error(error: unknown): void;
}) => ViewWorkerPort;

/** What a worker is told when it starts. */
export interface WorkerOpenMessage {
  /** What the message is. */
  type: "open";
  /** The storage settings its entry point opens a driver from (opaque here). */
  storage: unknown;
  /** Whether it reads through the calling thread instead (`storage` is then unused). */
  readThrough: boolean;
  /** The task. */
  task: ScanTask;
  /** Whether its cache removes corrupt entries it finds. */
  dropCorrupt: boolean;
}

/** A message a worker posts. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "result"; id: number; result: BatchResult }
  | { type: "failed"; id: number; name: string; message: string }
  | { type: "corrupt"; key: string; reason: string }
  | { type: "closed" }
  | StorageRequest;

/** Options of {@linkcode startWorkerRunner}. */
export interface WorkerRunnerOptions {
  /** The storage settings for the worker's entry point. */
  storage: unknown;
  /** The calling thread's driver, when the worker must read through it instead of opening
   * storage itself (a driver one thread must own: Deno KV on Node). */
  sharedDriver?: StorageDriver | undefined;
  /** The task. */
  task: ScanTask;
  /** Whether the worker's cache removes corrupt entries it finds.
   * @default {false} */
  dropCorrupt?: boolean;
  /** Called for each corrupt entry the worker finds. */
  onCorrupt?: ((key: string, reason: string) => void) | undefined;
}

/** A promise with its resolve and reject (`Promise.withResolvers`, which Node 20 lacks). */
interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An error a worker reported, with the name it had there. */
function workerError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/**
 * Starts a worker and waits until it has opened its storage and compiled the task.
 *
 * @param factory Starts the worker the runtime's way.
 * @param options The storage settings, the task, and where corrupt entries are reported.
 * @returns The runner.
 * @throws {Error} What the worker failed with while starting.
 */
export function startWorkerRunner(
  factory: ViewWorkerFactory,
  options: WorkerRunnerOptions,
): Promise<BatchRunner> {
  const pending = new Map<number, Deferred<BatchResult>>();
  let nextId = 1;
  let failure: Error | undefined;
  const ready = deferred<void>();
  const closed = deferred<void>();
  const fail = (error: Error) => {
    failure ??= error;
    for (const waiting of pending.values()) waiting.reject(failure);
    pending.clear();
    ready.reject(failure);
    closed.resolve();
  };
  // The rejections are handled where they are awaited; none is left unhandled meanwhile.
  ready.promise.catch(() => {});
  // Messages arrive asynchronously, after `port` is assigned.
  const port: ViewWorkerPort = factory({
    message(data) {
      const reply = data as WorkerReply;
      switch (reply.type) {
        case "ready":
          ready.resolve();
          break;
        case "result":
          pending.get(reply.id)?.resolve(reply.result);
          pending.delete(reply.id);
          break;
        case "failed": {
          const error = workerError(reply.name, reply.message);
          if (reply.id === 0) {
            fail(error);
            port.terminate();
          } else {
            pending.get(reply.id)?.reject(error);
            pending.delete(reply.id);
          }
          break;
        }
        case "corrupt":
          options.onCorrupt?.(reply.key, reply.reason);
          break;
        case "closed":
          closed.resolve();
          break;
        case "storage":
          if (options.sharedDriver) {
            answerStorageRequest(options.sharedDriver, reply).then((answer) => {
              if (!failure) port.postMessage(answer);
            });
          }
          break;
      }
    },
    error(error) {
      fail(error instanceof Error ? error : new Error(`View worker failed: ${String(error)}`));
    },
  });
  const open: WorkerOpenMessage = {
    type: "open",
    storage: options.sharedDriver ? undefined : options.storage,
    readThrough: options.sharedDriver !== undefined,
    task: options.task,
    dropCorrupt: options.dropCorrupt ?? false,
  };
  port.postMessage(open);
  const runner: BatchRunner = {
    run(suffixes) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      const waiting = deferred<BatchResult>();
      pending.set(id, waiting);
      port.postMessage({ type: "batch", id, suffixes });
      return waiting.promise;
    },
    async close() {
      if (!failure) {
        port.postMessage({ type: "close" });
        await closed.promise;
      }
      port.terminate();
    },
    terminate() {
      fail(new Error("View worker terminated"));
      port.terminate();
    },
  };
  return ready.promise.then(() => runner);
}

/** Options of {@linkcode runInOrder}. */
export interface RunInOrderOptions {
  /** Batches given to each runner before it has finished one.
   * @default {2} */
  perRunner?: number;
  /** Results held at most, waiting for an earlier batch to finish.
   * @default {8 per runner} */
  window?: number;
}

/**
 * Runs batches on runners and yields their results in the order of the batches. Batches are
 * taken lazily; at most `window` are in flight or waiting to be yielded. A batch that fails
 * ends the run with its error, once the batches before it have been yielded.
 *
 * @param batches The batches, in order.
 * @param runners The runners (at least one).
 * @param options How many batches each runner holds, and the window.
 * @returns The results, in order.
 * @throws {RangeError} When there is no runner.
 *
 * @example
 * ```ts
 * import { runInOrder, type BatchRunner } from "./dispatch.ts";
 * const slowFirst = (delay: number): BatchRunner => ({
 *   run: async (s) => {
 *     await new Promise((r) => setTimeout(r, s[0] === "00" ? delay : 0));
 *     return { lines: [...s], count: s.length, skipped: [] };
 *   },
 *   close: () => Promise.resolve(),
 *   terminate: () => {},
 * });
 * const batches = [["00"], ["01"], ["02"]];
 * const lines: string[] = [];
 * for await (const r of runInOrder(batches, [slowFirst(20), slowFirst(20)])) lines.push(...r.lines);
 * console.assert(lines.join() === "00,01,02");
 * ```
 */
export async function* runInOrder(
  batches: Iterable<readonly string[]> | AsyncIterable<readonly string[]>,
  runners: readonly BatchRunner[],
  options: RunInOrderOptions = {},
): AsyncGenerator<BatchResult> {
  if (runners.length === 0) throw new RangeError("Cannot run batches: no runner was given");
  const perRunner = options.perRunner ?? 2;
  const window = options.window ?? 8 * runners.length;
  const iterator = Symbol.asyncIterator in batches
    ? batches[Symbol.asyncIterator]()
    : batches[Symbol.iterator]();
  const load = runners.map(() => 0);
  const queue: { promise: Promise<BatchResult>; settled: boolean }[] = [];
  let exhausted = false;
  let freed = deferred<void>();
  try {
    while (true) {
      while (!exhausted && queue.length < window) {
        let best = -1;
        for (let i = 0; i < runners.length; i++) {
          if (load[i]! < perRunner && (best === -1 || load[i]! < load[best]!)) best = i;
        }
        if (best === -1) break;
        const next = await iterator.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        const i = best;
        load[i]!++;
        const item = { promise: runners[i]!.run(next.value), settled: false };
        const mark = () => {
          item.settled = true;
          load[i]!--;
          freed.resolve();
        };
        item.promise.then(mark, mark);
        queue.push(item);
      }
      const head = queue[0];
      if (!head) return;
      if (head.settled) {
        queue.shift();
        yield await head.promise;
        continue;
      }
      // Wake when a batch settles: the head (to yield it) or another (to refill its runner).
      await freed.promise;
      freed = deferred<void>();
    }
  } finally {
    if (!exhausted) await iterator.return?.();
  }
}
