/**
 * What the edge entry points (`workers/deno_deploy.ts`, `workers/cloudflare.ts`) build alike
 * from their settings: the scheduled items (a pass of the configured partition set, a follow of
 * `_changes`), and the worker (its handlers on the cache and the registry) with its API and read
 * replica. Each entry point reads its own settings and brings its own queue engine and storage.
 *
 * @module
 */

import type { Hono } from "hono";
import type { Cache } from "../storage/cache.ts";
import { HttpClient } from "../http/client.ts";
import { originKey } from "../storage/keys.ts";
import { eventLine, Worker, type WorkerEvent } from "./worker.ts";
import { workerHandlers } from "./handlers.ts";
import { createWorkerApp } from "./api.ts";
import type { QueueEngine } from "./queue.ts";

/** The settings every edge entry point has. */
export interface EdgeSettings {
  /** The worker API's bearer token. */
  token: string;
  /** The registry URL (ending in `/`). */
  registry: string;
  /** The registry's bearer token. */
  registryToken: string | undefined;
  /** The replication endpoint of the scheduled refresh and follow (ending in `/`). */
  origin: string | undefined;
  /** The pivots of the scheduled refresh. */
  pivots: string[] | undefined;
  /** Packuments of the scheduled refresh and follow. */
  packuments: "full" | "corgi" | undefined;
  /** Items in hand and requests in flight. */
  concurrency: number;
  /** Retries of a request and of an item. */
  retries: number;
}

/**
 * The scheduled refresh's item: a pass of the configured partition set.
 *
 * @param settings The settings (with an origin and pivots).
 * @returns The item as submitted.
 *
 * @example
 * ```ts
 * import { scheduledItem } from "./edge.ts";
 * const item = scheduledItem({
 *   token: "t", registry: "http://127.0.0.1:4873/", registryToken: undefined,
 *   origin: "http://127.0.0.1:5984/registry/", pivots: ["m"], packuments: undefined,
 *   concurrency: 8, retries: 4,
 * });
 * console.assert((item as { type: string }).type === "partition-set");
 * ```
 */
export function scheduledItem(settings: EdgeSettings): unknown {
  return {
    type: "partition-set",
    payload: {
      origin: settings.origin,
      pivots: settings.pivots,
      ...(settings.packuments ? { packuments: settings.packuments } : {}),
      registry: settings.registry,
    },
  };
}

/**
 * The scheduled follow's item: one follow of the origin's `_changes` feed, with its changed
 * packuments when `packuments` is set. Its id (`changes:{originKey}`) is the same at every
 * firing: enqueued while one is queued or running, it is a duplicate.
 *
 * @param settings The settings (with an origin).
 * @returns The item as submitted.
 *
 * @example
 * ```ts
 * import { followItem } from "./edge.ts";
 * const item = followItem({
 *   token: "t", registry: "http://127.0.0.1:4873/", registryToken: undefined,
 *   origin: "http://127.0.0.1:5984/registry/", pivots: undefined, packuments: "corgi",
 *   concurrency: 8, retries: 4,
 * });
 * console.assert((item as { type: string }).type === "changes");
 * ```
 */
export function followItem(settings: EdgeSettings): unknown {
  return {
    type: "changes",
    payload: {
      origin: settings.origin,
      ...(settings.packuments
        ? { packuments: settings.packuments, registry: settings.registry }
        : {}),
    },
  };
}

/** What {@linkcode createEdgeWorker} builds. */
export interface EdgeWorker {
  /** The worker over the queue engine. */
  worker: Worker;
  /** Its API (`/-/worker/`) and the read replica of the cache. */
  app: Hono;
}

/**
 * The worker of an edge entry point: its handlers fetch from the configured registry (with its
 * token; another registry an item names, without) into `cache`, with the settings' concurrency
 * and retries; every settled item is logged as one JSON line.
 *
 * @param engine The queue engine.
 * @param cache The cache the items fill and the replica serves.
 * @param settings The settings.
 * @param log Writes one line (an item's outcome).
 * @returns The worker and its app.
 */
export function createEdgeWorker(
  engine: QueueEngine,
  cache: Cache,
  settings: EdgeSettings,
  log: (line: string) => void,
): EdgeWorker {
  const registry = {
    url: settings.registry,
    originKey: originKey(settings.registry),
    token: settings.registryToken,
  };
  const worker = new Worker(engine, {
    handlers: workerHandlers({
      client: new HttpClient({
        fetch: (input, init) => fetch(input, init),
        concurrency: settings.concurrency,
        retries: settings.retries,
      }),
      cache,
      registry,
      registryFor: (url) => url === registry.url ? registry : { url, originKey: originKey(url) },
      maxAttempts: settings.retries + 1,
    }),
    concurrency: settings.concurrency,
    retry: { maxAttempts: settings.retries + 1 },
    onEvent: (event: WorkerEvent) => {
      if (event.type !== "start") log(eventLine(event));
    },
  });
  const app = createWorkerApp({
    worker,
    token: settings.token,
    replica: { cache, packumentOrigin: () => registry.originKey },
  });
  return { worker, app };
}
