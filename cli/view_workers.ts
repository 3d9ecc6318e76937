/**
 * How `view` commands start worker threads: the runtime's entry point (`cli.ts`, `cli.node.ts`)
 * says so here, at start, without loading the view commands themselves (they load with the
 * command that needs them).
 *
 * @module
 */

import type { ViewWorkerFactory } from "../src/views/dispatch.ts";

let workerFactory: ViewWorkerFactory | undefined;
let readThroughStorages: readonly string[] = [];

/**
 * Lets the runtime's entry point say how to start a view worker thread; without one, scans run
 * on the main thread.
 *
 * @param factory Starts a worker running the runtime's view worker entry point.
 * @param readThrough The `--storage` kinds whose driver only the main thread may hold: workers
 * read those through it.
 */
export function setViewWorkerFactory(
  factory: ViewWorkerFactory | undefined,
  readThrough: readonly string[] = [],
): void {
  workerFactory = factory;
  readThroughStorages = readThrough;
}

/**
 * What {@linkcode setViewWorkerFactory} was given.
 *
 * @returns The factory (if any) and the storage kinds read through the main thread.
 */
export function viewWorkers(): {
  factory: ViewWorkerFactory | undefined;
  readThrough: readonly string[];
} {
  return { factory: workerFactory, readThrough: readThroughStorages };
}
