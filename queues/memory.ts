/**
 * The `memory` queue engine: in-process, the reference every other engine is held to by the
 * queue contract suite. Nothing survives the process, so it suits one process whose work can be
 * lost (tests, a batch run with `--until-idle`); durable engines are `kv` and Redis.
 *
 * Waiting items are kept in a heap by priority (higher first), then by the order they became
 * due; a retry waits on a timer for its delay and then joins the heap.
 *
 * @module
 */

import type { WorkItem } from "../src/worker/items.ts";
import type {
  ConsumeOptions,
  DeliveryHandler,
  EnqueueResult,
  ItemStatus,
  Outcome,
  QueueEngine,
  QueueStats,
} from "../src/worker/queue.ts";

/** Options of {@linkcode MemoryQueue}. */
export interface MemoryQueueOptions {
  /** The time source for the status records.
   * @default {Date.now} */
  now?: () => number;
}

interface Waiting {
  item: WorkItem;
  seq: number;
}

/** A binary heap of waiting items: higher priority first, then first due. */
class ReadyHeap {
  #items: Waiting[] = [];

  get size(): number {
    return this.#items.length;
  }

  #before(a: Waiting, b: Waiting): boolean {
    return a.item.priority !== b.item.priority ? a.item.priority > b.item.priority : a.seq < b.seq;
  }

  push(entry: Waiting): void {
    const items = this.#items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): Waiting | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      while (true) {
        const left = 2 * i + 1;
        const right = left + 1;
        let best = i;
        if (left < items.length && this.#before(items[left]!, items[best]!)) best = left;
        if (right < items.length && this.#before(items[right]!, items[best]!)) best = right;
        if (best === i) break;
        [items[i], items[best]] = [items[best]!, items[i]!];
        i = best;
      }
    }
    return top;
  }
}

/**
 * The in-process queue engine.
 *
 * @example
 * ```ts
 * import { MemoryQueue } from "./memory.ts";
 * const queue = new MemoryQueue();
 * const item = { type: "packument" as const, id: "a", payload: { registry: "http://127.0.0.1/", names: ["ms"] }, priority: 0, attempts: 0 };
 * console.assert((await queue.enqueue([item, item])).duplicates[0] === "a");
 * console.assert((await queue.stats()).queued === 1);
 * ```
 */
export class MemoryQueue implements QueueEngine {
  /** Always `memory`. */
  readonly name = "memory";
  #now: () => number;
  #records = new Map<string, ItemStatus>();
  #ready = new ReadyHeap();
  #seq = 0;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Wake the consumers: an item is ready, a slot freed, or a stop. */
  #wakers = new Set<() => void>();

  /** @param options The time source. */
  constructor(options: MemoryQueueOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  enqueue(items: readonly WorkItem[]): Promise<EnqueueResult> {
    const result: EnqueueResult = { accepted: [], duplicates: [] };
    const seen = new Set<string>();
    for (const item of items) {
      const record = this.#records.get(item.id);
      if (seen.has(item.id) || record?.state === "queued" || record?.state === "running") {
        result.duplicates.push(item.id);
        continue;
      }
      seen.add(item.id);
      this.#records.set(item.id, this.#newRecord(item, { state: "queued", attempts: 0 }));
      this.#ready.push({ item: { ...item, attempts: 0 }, seq: this.#seq++ });
      result.accepted.push(item.id);
    }
    this.#notify();
    return Promise.resolve(result);
  }

  bury(item: WorkItem, error: string): Promise<void> {
    const record = this.#newRecord(item, { state: "dead", attempts: item.attempts });
    this.#records.set(item.id, { ...record, lastError: error, finishedAt: record.enqueuedAt });
    return Promise.resolve();
  }

  /** A new record of `item`, enqueued now. */
  #newRecord(item: WorkItem, from: Pick<ItemStatus, "state" | "attempts">): ItemStatus {
    const now = this.#now();
    const { id, type, payload, priority } = item;
    return { id, type, payload, priority, ...from, enqueuedAt: now, updatedAt: now };
  }

  async consume(handler: DeliveryHandler, options: ConsumeOptions): Promise<void> {
    const { concurrency, signal } = options;
    const inHand = new Set<Promise<void>>();
    let wake = () => {};
    const waker = () => wake();
    this.#wakers.add(waker);
    signal.addEventListener("abort", waker);
    try {
      while (!signal.aborted) {
        if (inHand.size < concurrency && this.#ready.size > 0) {
          const { item } = this.#ready.pop()!;
          const record = this.#records.get(item.id);
          // A stale entry: its record was retried from the dead letters or replaced.
          if (record?.state !== "queued" || record.attempts !== item.attempts) continue;
          record.state = "running";
          record.startedAt = record.updatedAt = this.#now();
          const delivery = handler(item).then((outcome) => this.#settle(item, outcome));
          inHand.add(delivery);
          delivery.finally(() => {
            inHand.delete(delivery);
            this.#notify();
          });
          continue;
        }
        await new Promise<void>((resolve) => wake = resolve);
      }
      await Promise.all(inHand);
    } finally {
      this.#wakers.delete(waker);
      signal.removeEventListener("abort", waker);
    }
  }

  status(id: string): Promise<ItemStatus | undefined> {
    const record = this.#records.get(id);
    return Promise.resolve(record && structuredClone(record));
  }

  stats(): Promise<QueueStats> {
    const stats: QueueStats = { queued: 0, running: 0, done: 0, dead: 0 };
    for (const record of this.#records.values()) stats[record.state]++;
    return Promise.resolve(stats);
  }

  dead(limit = 100): Promise<ItemStatus[]> {
    const dead = [...this.#records.values()]
      .filter((record) => record.state === "dead")
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0))
      .slice(0, limit);
    return Promise.resolve(structuredClone(dead));
  }

  retryDead(id: string): Promise<boolean> {
    const record = this.#records.get(id);
    if (record?.state !== "dead") return Promise.resolve(false);
    const now = this.#now();
    Object.assign(record, { state: "queued", attempts: 0, enqueuedAt: now, updatedAt: now });
    delete record.finishedAt;
    const item = { ...this.#itemOf(record), attempts: 0 };
    this.#ready.push({ item, seq: this.#seq++ });
    this.#notify();
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#notify();
    return Promise.resolve();
  }

  #itemOf(record: ItemStatus): WorkItem {
    return {
      type: record.type,
      id: record.id,
      payload: record.payload,
      priority: record.priority,
      attempts: record.attempts,
    } as WorkItem;
  }

  #notify(): void {
    for (const wake of this.#wakers) wake();
  }

  #settle(item: WorkItem, outcome: Outcome): void {
    const record = this.#records.get(item.id);
    if (!record || record.state !== "running") return;
    const now = this.#now();
    record.updatedAt = now;
    switch (outcome.kind) {
      case "ack":
        record.state = "done";
        record.finishedAt = now;
        return;
      case "dead":
        record.state = "dead";
        record.attempts = item.attempts + 1;
        record.lastError = outcome.error;
        record.finishedAt = now;
        return;
      case "release":
        record.state = "queued";
        this.#ready.push({ item, seq: this.#seq++ });
        return;
      case "retry": {
        record.state = "queued";
        record.attempts = item.attempts + 1;
        record.lastError = outcome.error;
        if (outcome.payload !== undefined) record.payload = outcome.payload;
        const next = this.#itemOf(record);
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          if (this.#records.get(item.id) !== record || record.state !== "queued") return;
          this.#ready.push({ item: next, seq: this.#seq++ });
          this.#notify();
        }, outcome.delayMs);
        this.#timers.add(timer);
        return;
      }
    }
  }
}
