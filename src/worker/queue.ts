/**
 * The queue engine contract: what every engine (`memory`, `kv`, and the Redis and Cloudflare
 * engines after them) provides to the worker core. The behaviour behind it is pinned by one
 * suite, `tests/_support/queue_contract.ts`, run against every engine:
 *
 * - **priority**: of waiting items, a higher `priority` is delivered first;
 * - **outcomes**: the worker core decides what happens after a delivery ({@linkcode Outcome}),
 *   the engine carries it out: `ack` marks the item done; `retry` delivers it again after
 *   `delayMs` with `attempts + 1` (and the narrowed payload, when given); `dead` records it as a
 *   dead letter with its payload, last error and attempts;
 * - **dedup**: enqueueing an id that is queued or running reports it in `duplicates` and
 *   changes nothing; an id that is done or dead is accepted and runs again;
 * - **at least once**: an item in hand when its process dies is delivered again later (so
 *   handlers are idempotent);
 * - **status**: each item's {@linkcode ItemStatus} is kept until the engine is cleared; dead
 *   letters are listed oldest first and can be retried on demand;
 * - **concurrency**: {@linkcode QueueEngine.consume} never has more than `concurrency` items
 *   in hand, and after its `signal` aborts it takes no more and resolves once those in hand
 *   are settled or released (a released item is queued again, its attempt not counted).
 *
 * @module
 */

import type { WorkItem, WorkItemType } from "./items.ts";

/** Where an item stands. */
export type ItemState = "queued" | "running" | "done" | "dead";

/** An item's record: its work, where it stands and its history. */
export interface ItemStatus {
  /** The item id. */
  id: string;
  /** The item type. */
  type: WorkItemType;
  /** The payload (as it will run next, for a narrowed retry). */
  payload: unknown;
  /** The priority. */
  priority: number;
  /** Where it stands. */
  state: ItemState;
  /** Deliveries that ended in a failure (retried or dead). */
  attempts: number;
  /** The last failure's message. */
  lastError?: string;
  /** When it was (last) enqueued, ms since the epoch. */
  enqueuedAt: number;
  /** When its last delivery started. */
  startedAt?: number;
  /** When it was done or went dead. */
  finishedAt?: number;
  /** When this record last changed. */
  updatedAt: number;
}

/** How many items stand where. */
export interface QueueStats {
  /** Waiting, including retries not yet due. */
  queued: number;
  /** In a worker's hands. */
  running: number;
  /** Completed. */
  done: number;
  /** In the dead letters. */
  dead: number;
}

/** What the worker core decided after a delivery. */
export type Outcome =
  | { kind: "ack" }
  | { kind: "retry"; delayMs: number; error: string; payload?: unknown }
  | { kind: "dead"; error: string }
  /** The worker is stopping: queue the item again without counting an attempt. */
  | { kind: "release" };

/** What {@linkcode QueueEngine.enqueue} did with each id. */
export interface EnqueueResult {
  /** Ids newly queued. */
  accepted: string[];
  /** Ids already queued or running: nothing changed. */
  duplicates: string[];
}

/** Options of {@linkcode QueueEngine.consume}. */
export interface ConsumeOptions {
  /** The most items in hand at once. */
  concurrency: number;
  /** Stops taking items; `consume` resolves when those in hand are settled. */
  signal: AbortSignal;
}

/** Runs one delivery and says what should happen to the item. Never rejects. */
export type DeliveryHandler = (item: WorkItem) => Promise<Outcome>;

/** A queue engine: see the module documentation for the behaviour every engine shares. */
export interface QueueEngine {
  /** The engine's name: `memory`, `kv`, ... */
  readonly name: string;
  /**
   * Queues items; ids queued or running already are duplicates. All of a call is one step
   * where the engine allows (an item is not half queued).
   */
  enqueue(items: readonly WorkItem[]): Promise<EnqueueResult>;
  /**
   * Records an item as a dead letter without running it (a permanent failure found while
   * running another item, such as the failing names of a batch).
   */
  bury(item: WorkItem, error: string): Promise<void>;
  /** Delivers items to `handler` until `options.signal` aborts; see {@linkcode ConsumeOptions}. */
  consume(handler: DeliveryHandler, options: ConsumeOptions): Promise<void>;
  /** One item's record, or `undefined` when unknown. */
  status(id: string): Promise<ItemStatus | undefined>;
  /** Counts by state. */
  stats(): Promise<QueueStats>;
  /** Dead letters, oldest first. */
  dead(limit?: number): Promise<ItemStatus[]>;
  /** Queues a dead letter again (attempts start over); `false` when `id` is not dead. */
  retryDead(id: string): Promise<boolean>;
  /** Releases what the engine holds (connections, timers). */
  close(): Promise<void>;
}
