/**
 * The worker side of a parallel view scan: what a worker thread's entry point runs. It opens
 * its own storage driver from the settings the main thread sends (the entry point knows how),
 * or reads through the main thread when told to (a driver one thread must own),
 * compiles the task once, then processes the batches it is sent in order, posting each result
 * back. Corrupt entries it finds are posted as they are found.
 *
 * The runtime's entry point wires the thread's messages to it: `self.onmessage` on Deno,
 * `parentPort` on Node (see the CLI's `view_worker.*.ts`).
 *
 * @module
 */

import { Cache, type CacheOptions } from "../storage/cache.ts";
import type { StorageDriver } from "../storage/driver.ts";
import { type BatchProcessor, compileTask } from "./scan.ts";
import type { WorkerOpenMessage, WorkerReply } from "./dispatch.ts";
import type { StorageAnswer } from "./storage_messages.ts";
import { PortDriver } from "./_port_driver.ts";

/** The worker thread's side of its message channel. */
export interface ViewWorkerScope {
  /** Posts a message to the main thread. */
  post(message: WorkerReply): void;
  /** Calls `handler` with each message from the main thread. */
  listen(handler: (message: unknown) => void): void;
}

/** What the entry point provides. */
export interface ServeViewWorkerOptions {
  /** Opens a storage driver from the settings the main thread sent. */
  openStorage(settings: unknown): Promise<StorageDriver>;
  /** Cache options (the runtime's hash); corrupt entries are handled here. */
  cacheOptions?: Omit<CacheOptions, "onCorrupt" | "dropCorrupt" | "bloom">;
  /** Imports the module of a `view run` task. */
  importModule?: (specifier: string) => Promise<unknown>;
}

type Incoming =
  | WorkerOpenMessage
  | { type: "batch"; id: number; suffixes: string[] }
  | { type: "close" };

function describe(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
}

/**
 * Serves a view worker: handles `open`, `batch` and `close` messages, one at a time in order.
 *
 * @param scope The thread's message channel.
 * @param options How to open storage and import modules.
 */
export function serveViewWorker(scope: ViewWorkerScope, options: ServeViewWorkerOptions): void {
  let driver: StorageDriver | undefined;
  let portDriver: PortDriver | undefined;
  let cache: Cache | undefined;
  let processor: BatchProcessor | undefined;
  let chain: Promise<void> = Promise.resolve();
  const handle = async (message: Incoming) => {
    switch (message.type) {
      case "open":
        try {
          if (message.readThrough) {
            driver = portDriver = new PortDriver((request) => scope.post(request));
          } else {
            driver = await options.openStorage(message.storage);
          }
          cache = await Cache.open(driver, {
            ...options.cacheOptions,
            bloom: false,
            dropCorrupt: message.dropCorrupt,
            onCorrupt: (key, reason) => scope.post({ type: "corrupt", key, reason }),
          });
          processor = await compileTask(message.task, {
            importModule: options.importModule,
            createHash: options.cacheOptions?.createHash,
          });
          scope.post({ type: "ready" });
        } catch (error) {
          scope.post({ type: "failed", id: 0, ...describe(error) });
        }
        return;
      case "batch":
        try {
          if (!cache || !processor) throw new Error("View worker got a batch before it opened");
          scope.post({
            type: "result",
            id: message.id,
            result: await processor(cache, message.suffixes),
          });
        } catch (error) {
          scope.post({ type: "failed", id: message.id, ...describe(error) });
        }
        return;
      case "close":
        await driver?.close().catch(() => {});
        driver = undefined;
        scope.post({ type: "closed" });
        return;
    }
  };
  scope.listen((message) => {
    // Answers to storage requests settle reads of the batch in progress: never queued behind it.
    if ((message as StorageAnswer).type === "storage-answer") {
      portDriver?.answer(message as StorageAnswer);
      return;
    }
    chain = chain.then(() => handle(message as Incoming));
  });
}
