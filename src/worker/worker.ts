/**
 * The worker core: runs the handler of each delivered item and turns what happened into an
 * {@linkcode Outcome} under the retry policy (`./retry.ts`), the same on every queue engine.
 *
 * - A handler that returns acks its item. One that throws is retried or goes dead by
 *   {@linkcode classifyFailure}; the attempt that reaches `maxAttempts` goes dead.
 * - A handler may throw a {@linkcode PartialFailure}: part of its item's work is done, some
 *   pieces are buried at once as their own dead letters (the names of a batch that failed for
 *   good), and the rest, if any, is retried with a narrowed payload.
 * - Stopping: after the run's signal aborts, the engine takes no more items; handlers in hand
 *   get `deadlineMs` to finish, then their signal aborts and their items are released (queued
 *   again, the attempt not counted).
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import {
  type NewItem,
  toWorkItem,
  type WorkItem,
  WorkItemError,
  type WorkItemType,
} from "./items.ts";
import type { EnqueueResult, Outcome, QueueEngine } from "./queue.ts";
import { classifyFailure, retryDelay, type RetryPolicy, retryPolicy } from "./retry.ts";

/** What a handler can do besides its own work. */
export interface HandlerContext {
  /** Queues follow-up items (validated like items from the API). */
  enqueue(items: readonly (NewItem | WorkItem)[]): Promise<EnqueueResult>;
  /** Aborts when the worker stops and the deadline for items in hand has passed. */
  signal: AbortSignal;
}

/** Does the work of one item type; throws to fail (see the module documentation). */
export type Handler = (item: WorkItem, context: HandlerContext) => Promise<void>;

/** A failure of part of an item's work: see the module documentation. */
export class PartialFailure extends Error {
  /** Always `PartialFailure`. */
  override name: string = "PartialFailure";
  /** The payload of what is left to retry, or `undefined` when nothing is. */
  readonly retryPayload: unknown;
  /** Whether what is left may succeed on a retry. */
  readonly transient: boolean;
  /** Pieces that failed for good, each buried as its own dead letter. */
  readonly buried: readonly { item: WorkItem; error: string }[];

  /**
   * Describes a partial failure.
   *
   * @param message What failed, for the status record.
   * @param options What to retry and what to bury.
   */
  constructor(
    message: string,
    options: {
      retryPayload?: unknown;
      transient?: boolean;
      buried?: readonly { item: WorkItem; error: string }[];
      retryAfterMs?: number;
    },
  ) {
    super(message);
    this.retryPayload = options.retryPayload;
    this.transient = options.transient ?? true;
    this.buried = options.buried ?? [];
    this.retryAfterMs = options.retryAfterMs;
  }

  /** The longest `Retry-After` among the retried pieces, in ms. */
  readonly retryAfterMs: number | undefined;
}

/** What happened to a delivery, for logs and progress. */
export interface WorkerEvent {
  /** The outcome's kind, or `start` when a delivery begins. */
  type: "start" | Outcome["kind"];
  /** The item. */
  id: string;
  /** The item type. */
  itemType: WorkItemType;
  /** Failed attempts before this delivery. */
  attempts: number;
  /** The failure, for `retry` and `dead`. */
  error?: string;
  /** The delay before a retry, in ms. */
  delayMs?: number;
}

/**
 * One log line for an event: `{"type":"item","outcome":KIND,"id",...}`.
 *
 * @param event The event.
 * @returns The JSON line, without a newline.
 *
 * @example
 * ```ts
 * import { eventLine } from "./worker.ts";
 * const line = eventLine({ type: "ack", id: "packument:1", itemType: "packument", attempts: 0 });
 * console.assert(line === '{"type":"item","outcome":"ack","id":"packument:1","itemType":"packument","attempts":0}');
 * ```
 */
export function eventLine(event: WorkerEvent): string {
  const { type, ...rest } = event;
  return JSON.stringify({ type: "item", outcome: type, ...rest });
}

/** Options of {@linkcode Worker}. */
export interface WorkerOptions {
  /** The handler of each item type. */
  handlers: Partial<Record<WorkItemType, Handler>>;
  /** Items in hand at once.
   * @default {4} */
  concurrency?: number;
  /** How failures are retried. */
  retry?: Partial<RetryPolicy>;
  /** After a stop, how long items in hand may take before they are released, in ms.
   * @default {10000} */
  deadlineMs?: number;
  /** The clock.
   * @default {systemClock} */
  clock?: Clock;
  /** Numbers in [0, 1) for the jitter.
   * @default {Math.random} */
  random?: () => number;
  /** Receives an event per delivery and outcome. */
  onEvent?: (event: WorkerEvent) => void;
}

/** The most items one worker process holds at once. */
export const MAX_WORKER_CONCURRENCY = 256;

/**
 * Validates items as the API and the CLI submit them: all or nothing.
 *
 * @param inputs The submitted items.
 * @returns The work items.
 * @throws {WorkItemError} Naming the index of the first bad item and its problem.
 */
export function toWorkItems(inputs: readonly unknown[]): WorkItem[] {
  return inputs.map((input, index) => {
    try {
      return toWorkItem(input);
    } catch (error) {
      if (error instanceof WorkItemError) {
        throw new WorkItemError(`items[${index}]: ${error.message}`);
      }
      throw error;
    }
  });
}

/**
 * The worker core over one queue engine.
 *
 * @example
 * ```ts
 * import { Worker } from "./worker.ts";
 * import { MemoryQueue } from "../../queues/memory.ts";
 * const engine = new MemoryQueue();
 * const seen: string[] = [];
 * const worker = new Worker(engine, {
 *   handlers: { packument: (item) => { seen.push(item.id); return Promise.resolve(); } },
 * });
 * await worker.enqueue([{ type: "packument", payload: { registry: "http://127.0.0.1/", names: ["ms"] } }]);
 * await worker.runUntilIdle();
 * console.assert(seen.length === 1 && (await engine.stats()).done === 1);
 * ```
 */
export class Worker {
  /** The engine. */
  readonly engine: QueueEngine;
  #handlers: Partial<Record<WorkItemType, Handler>>;
  #concurrency: number;
  #policy: RetryPolicy;
  #deadlineMs: number;
  #clock: Clock;
  #random: () => number;
  #onEvent: (event: WorkerEvent) => void;

  /**
   * Makes a worker over an engine; nothing runs until {@linkcode Worker.run}.
   *
   * @param engine The queue engine.
   * @param options Handlers and settings.
   * @throws {RangeError} When a setting is out of range.
   */
  constructor(engine: QueueEngine, options: WorkerOptions) {
    this.engine = engine;
    this.#handlers = options.handlers;
    const concurrency = options.concurrency ?? 4;
    if (
      !Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_WORKER_CONCURRENCY
    ) {
      throw new RangeError(
        `Cannot start worker: 'concurrency' must be an integer from 1 to ${MAX_WORKER_CONCURRENCY}, received ${concurrency}`,
      );
    }
    this.#concurrency = concurrency;
    this.#policy = retryPolicy(options.retry);
    this.#deadlineMs = options.deadlineMs ?? 10_000;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#onEvent = options.onEvent ?? (() => {});
  }

  /**
   * Validates and queues items: all or nothing (see {@linkcode toWorkItems}).
   *
   * @param inputs Items as submitted, or work items.
   * @returns Accepted and duplicate ids.
   * @throws {WorkItemError} When any item is invalid; then nothing is queued.
   */
  enqueue(inputs: readonly unknown[]): Promise<EnqueueResult> {
    return this.engine.enqueue(toWorkItems(inputs.map(submitted)));
  }

  /**
   * Consumes items until `signal` aborts, then lets items in hand finish within the deadline.
   *
   * @param signal Stops the run.
   */
  async run(signal: AbortSignal): Promise<void> {
    const stop = new AbortController();
    const onAbort = () => {
      const timer = setTimeout(() => stop.abort(signal.reason), this.#deadlineMs);
      stopTimers.push(timer);
    };
    const stopTimers: ReturnType<typeof setTimeout>[] = [];
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    try {
      await this.engine.consume((item) => this.process(item, stop.signal), {
        concurrency: this.#concurrency,
        signal,
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
      for (const timer of stopTimers) clearTimeout(timer);
    }
  }

  /**
   * Consumes items until nothing is queued or running (retries not yet due count as queued).
   *
   * @param pollMs How often to look, in ms.
   * @returns The stats at the end.
   */
  async runUntilIdle(pollMs = 50): Promise<{ done: number; dead: number }> {
    const stop = new AbortController();
    const running = this.run(stop.signal);
    try {
      while (true) {
        const stats = await this.engine.stats();
        if (stats.queued === 0 && stats.running === 0) {
          stop.abort();
          await running;
          return { done: stats.done, dead: stats.dead };
        }
        await Promise.race([this.#clock.sleep(pollMs), running]);
      }
    } finally {
      stop.abort();
      await running;
    }
  }

  /**
   * Runs one delivery of an item: its handler, then the retry policy on what it threw (see the
   * module documentation). This is what {@linkcode Worker.run} does with each item an engine
   * delivers, and what the push routes of the worker API do with an item Cloud Tasks or
   * Pub/Sub delivers; the caller carries the outcome out (the engine, or the HTTP answer).
   * The pieces of a {@linkcode PartialFailure} are buried on the worker's engine here.
   *
   * @param item The item, `attempts` counting the deliveries that failed before this one.
   * @param signal Aborts the handler; a failure after it aborted releases the item.
   * @returns The outcome: `ack`, `retry` (after `delayMs`, maybe with a narrowed payload),
   * `dead` (when the failure is permanent or this was the last attempt), or `release`.
   *
   * @example A transient failure is retried until the last attempt
   * ```ts
   * import { Worker } from "./worker.ts";
   * import { MemoryQueue } from "../../queues/memory.ts";
   *
   * const worker = new Worker(new MemoryQueue(), {
   *   handlers: { packument: () => Promise.reject(new Error("socket hang up")) },
   *   retry: { maxAttempts: 3 },
   * });
   * const payload = { registry: "http://127.0.0.1:4873/", names: ["ms"] };
   * const item = { type: "packument" as const, id: "p1", payload, priority: 0, attempts: 0 };
   * const signal = new AbortController().signal;
   * console.assert((await worker.process(item, signal)).kind === "retry");
   * console.assert((await worker.process({ ...item, attempts: 2 }, signal)).kind === "dead");
   * ```
   */
  async process(item: WorkItem, signal: AbortSignal): Promise<Outcome> {
    const event = { id: item.id, itemType: item.type, attempts: item.attempts };
    this.#onEvent({ type: "start", ...event });
    const outcome = await this.#outcomeOf(item, signal);
    this.#onEvent({
      type: outcome.kind,
      ...event,
      ...("error" in outcome ? { error: outcome.error } : {}),
      ...(outcome.kind === "retry" ? { delayMs: outcome.delayMs } : {}),
    });
    return outcome;
  }

  async #outcomeOf(item: WorkItem, signal: AbortSignal): Promise<Outcome> {
    const handler = this.#handlers[item.type];
    if (!handler) return { kind: "dead", error: `No handler for item type '${item.type}'` };
    const context: HandlerContext = {
      enqueue: (items) => this.enqueue(items),
      signal,
    };
    try {
      await handler(item, context);
      return { kind: "ack" };
    } catch (error) {
      if (signal.aborted) return { kind: "release" };
      const attempt = item.attempts + 1;
      if (error instanceof PartialFailure) {
        for (const piece of error.buried) await this.engine.bury(piece.item, piece.error);
        if (error.retryPayload === undefined) return { kind: "ack" };
        if (!error.transient || attempt >= this.#policy.maxAttempts) {
          return { kind: "dead", error: error.message };
        }
        const delayMs = retryDelay(this.#policy, attempt, error.retryAfterMs, this.#random);
        return { kind: "retry", delayMs, error: error.message, payload: error.retryPayload };
      }
      const failure = classifyFailure(error);
      if (!failure.transient || attempt >= this.#policy.maxAttempts) {
        return { kind: "dead", error: failure.message };
      }
      const delayMs = retryDelay(this.#policy, attempt, failure.retryAfterMs, this.#random);
      return { kind: "retry", delayMs, error: failure.message };
    }
  }
}

/** A work item passed back in (from a handler) is submitted as its type, payload and id. */
function submitted(input: unknown): unknown {
  if (typeof input === "object" && input !== null && "attempts" in input) {
    const { type, payload, priority, id } = input as WorkItem;
    return { type, payload, priority, id };
  }
  return input;
}
