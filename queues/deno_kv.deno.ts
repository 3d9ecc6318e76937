/**
 * The `kv` queue engine on Deno KV. Deno KV queues have no priority, no dedup, no attempt count
 * and no concurrency cap (QUEUES.md), so items live under ordered keys and `kv.enqueue` carries
 * only wake-up messages. Key layout, under `prefix` (default `["queue"]`):
 *
 * - `[...prefix, "item", id]`: the record ({@linkcode ItemStatus}, the payload as JSON bytes, the
 *   key of its one index entry, the claim of the delivery in hand). A payload over 56 KiB of JSON
 *   goes in parts of 60,000 bytes at `[...prefix, "body", id, tag, i]` (a 1,000-name batch of
 *   214-character names, about 220 KB, takes four): no value comes near KV's 64 KiB limit.
 * - The index entry, by state: ready at `[...prefix, "ready", MAX_PRIORITY - priority, seq, id]`
 *   (consumers claim the first key: higher priority, then first ready); waiting for a retry at
 *   `[...prefix, "delayed", dueAt, seq, id]`; running at `[...prefix, "lease", until, id]`; dead
 *   at `[...prefix, "dead", finishedAt, seq, id]` (oldest first); done has none.
 * - `[...prefix, "count", state]`: a `Deno.KvU64` per state, summed in every transition's commit.
 *
 * Atomic: each transition of an item (claim, settle, lease renewal, requeue, retry of a dead
 * letter, bury) is one commit that checks the record's versionstamp and writes the record, its
 * index entry, the counters and the wake-up; a conflict reads again. `enqueue` checks each record
 * it writes and is atomic per chunk: KV allows 100 checks, 1,000 mutations and about 800 KB per
 * commit, so a large call takes several commits of up to 100 items, and a failure part way
 * leaves the earlier chunks queued.
 *
 * Guaranteed: priority; dedup of queued and running ids; attempts; the concurrency cap; at least
 * once: an item in hand holds a lease of `leaseMs`, renewed every third of it, and when a lease
 * expires (its process died) any consumer puts the item back to ready, the attempt not counted
 * (at its start and every `pollMs`). Wake-ups: `consume` listens with `kv.listenQueue` (once per
 * handle: two listeners would split the messages) and each enqueue, release and retry commits a
 * message (a retry's is delayed until due), so an idle Deno Deploy isolate is started by its
 * queue; `pollMs` is the safety net.
 *
 * One process: a local KV file has one sqlite writer (about 1,000 messages/s however many
 * processes share it), an idle process is not woken by another's enqueue (about 58 s; this
 * engine's poll finds the work sooner), and a process joining late saw every in-flight message
 * delivered twice. Use a local file from one process; on Deno Deploy the managed KV is the
 * scale-out; several processes or machines belong on the Redis engine.
 *
 * @module
 */

import { MAX_PRIORITY, type WorkItem } from "../src/worker/items.ts";
import type {
  ConsumeOptions,
  DeliveryHandler,
  EnqueueResult,
  ItemState,
  ItemStatus,
  Outcome,
  QueueEngine,
  QueueStats,
} from "../src/worker/queue.ts";

/** Options of {@linkcode DenoKvQueue}. */
export interface DenoKvQueueOptions {
  /** Where the queue's keys live in the KV database.
   * @default {["queue"]} */
  prefix?: Deno.KvKey;
  /** How long a claim lasts without a heartbeat, in ms: a crashed process's items run again then.
   * @default {30000} */
  leaseMs?: number;
  /** How often a consumer looks for expired leases and due retries without a wake-up, in ms.
   * @default {1000} */
  pollMs?: number;
  /** Whether {@linkcode DenoKvQueue.consume} calls `kv.listenQueue` for wake-ups. Pass `false`
   * when the application registers the listener itself (on Deno Deploy, at the top level of the
   * entry module) and hands the messages to {@linkcode DenoKvQueue.handleMessage}.
   * @default {true} */
  listen?: boolean;
  /** The time source for records, leases and due times.
   * @default {Date.now} */
  now?: () => number;
}

/** An item's record as stored: the payload is JSON bytes inline, or the tag and number of its
 * parts; `at` is its one index entry (none when done); `claim` names the delivery in hand. */
interface Stored extends Omit<ItemStatus, "payload"> {
  body: Uint8Array | { tag: number; parts: number };
  at?: Deno.KvKey;
  claim?: string;
}

type Entry = Deno.KvEntryMaybe<Stored>;

/** A record's next state; `body`: a new payload, as JSON bytes; `wake`: send a wake-up message
 * after this many ms. */
interface Change {
  record: Stored;
  body?: Uint8Array;
  wake?: number;
}

const INLINE_MAX = 56 * 1024;
const PART_SIZE = 60_000;
/** Items per enqueue commit: KV allows 100 checks per commit. */
const CHUNK = 100;
const MAX_MUTATIONS = 1000;
/** Bytes per commit we plan for (KV allows 819,200 of keys and values). */
const COMMIT_BUDGET = 700_000;
const MAX_ERROR_LENGTH = 2000;
const MAX_DELAY_MS = 30 * 24 * 3600 * 1000;
const STATES: readonly ItemState[] = ["queued", "running", "done", "dead"];

function keyEquals(a: Deno.KvKey | undefined, b: Deno.KvKey | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((part, i) => {
    const other = b[i]!;
    if (!(part instanceof Uint8Array && other instanceof Uint8Array)) return Object.is(part, other);
    return part.length === other.length && part.every((byte, j) => byte === other[j]);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function integer(name: string, value: number, least: number): number {
  if (Number.isSafeInteger(value) && value >= least) return value;
  throw new RangeError(
    `Cannot open the kv queue: '${name}' must be an integer of at least ${least}, received ${value}`,
  );
}

/** `record` with `fields`, no longer held by a delivery. */
function released(record: Stored, fields: Partial<Stored>): Stored {
  const { claim: _claim, ...rest } = record;
  return { ...rest, ...fields };
}

/** A commit in the making, counting what KV limits (its checks are at most {@linkcode CHUNK}),
 * and the changes of the counter of each state, in {@linkcode STATES} order. */
interface Batch {
  op: Deno.AtomicOperation;
  mutations: number;
  bytes: number;
  deltas: number[];
}

/** One `listenQueue` per handle (two would split the messages), shared by its engines. */
const listeners = new WeakMap<Deno.Kv, Set<DenoKvQueue>>();

function listen(kv: Deno.Kv, engine: DenoKvQueue): void {
  let engines = listeners.get(kv);
  if (!engines) {
    const set = engines = new Set<DenoKvQueue>();
    listeners.set(kv, set);
    // Without a listener (it failed), the poll still finds the work.
    kv.listenQueue((message) => set.forEach((each) => each.handleMessage(message))).catch(() => {});
  }
  engines.add(engine);
}

/**
 * The Deno KV queue engine: see the module documentation for its layout and guarantees.
 *
 * @example
 * ```ts
 * import { DenoKvQueue } from "./deno_kv.deno.ts";
 * const queue = await DenoKvQueue.open(":memory:");
 * const item = { type: "packument" as const, id: "a", payload: { registry: "http://127.0.0.1/", names: ["ms"] }, priority: 0, attempts: 0 };
 * console.assert((await queue.enqueue([item, item])).duplicates[0] === "a");
 * const stop = new AbortController();
 * await queue.consume(() => {
 *   stop.abort();
 *   return Promise.resolve({ kind: "ack" as const });
 * }, { concurrency: 1, signal: stop.signal });
 * console.assert((await queue.stats()).done === 1);
 * await queue.close();
 * ```
 */
export class DenoKvQueue implements QueueEngine {
  /** Always `kv`. */
  readonly name = "kv";
  #kv: Deno.Kv;
  #owned = false;
  #prefix: Deno.KvKey;
  #leaseMs: number;
  #pollMs: number;
  #listen: boolean;
  #now: () => number;
  #lastSeq = 0;
  #closed = false;
  #closing = Promise.withResolvers<void>();
  /** The earliest due time of a delayed item we know of (`-Infinity`: look). */
  #nextDueAt = -Infinity;
  /** Wake the consume loops (work may be ready, a slot freed, a stop); deliveries in hand (id to
   * claim) for the heartbeat; loops, settles and heartbeats in flight for close. */
  #wakers = new Set<() => void>();
  #held = new Map<string, string>();
  #busy = new Set<Promise<unknown>>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #renewing = false;

  /**
   * Opens a KV database and queues in it; {@linkcode DenoKvQueue.close} closes it again.
   *
   * @param path `":memory:"`, a file path, or `undefined` for Deno's default database.
   * @param options The prefix, lease and poll settings.
   * @returns The engine, owning the handle.
   * @throws {RangeError} When an option is out of range.
   */
  static async open(path: string | undefined, options?: DenoKvQueueOptions): Promise<DenoKvQueue> {
    const kv = await Deno.openKv(path);
    try {
      const queue = new DenoKvQueue(kv, options);
      queue.#owned = true;
      return queue;
    } catch (error) {
      kv.close();
      throw error;
    }
  }

  /**
   * Queues in a KV database the caller keeps owning (on Deno Deploy, the one shared with
   * storage): {@linkcode DenoKvQueue.close} leaves it open.
   *
   * @param kv The database.
   * @param options The prefix, lease and poll settings.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(kv: Deno.Kv, options: DenoKvQueueOptions = {}) {
    const prefix = options.prefix ?? ["queue"];
    if (!Array.isArray(prefix)) {
      throw new TypeError(`Cannot open the kv queue: 'prefix' must be a KV key (an array)`);
    }
    this.#kv = kv;
    this.#prefix = [...prefix];
    this.#leaseMs = integer("leaseMs", options.leaseMs ?? 30_000, 30);
    this.#pollMs = integer("pollMs", options.pollMs ?? 1000, 10);
    this.#listen = options.listen ?? true;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Takes a `listenQueue` message: when it is one of this queue's wake-ups, wakes the
   * consumers. Needed only with `listen: false`.
   *
   * @param message The message.
   * @returns Whether it was this queue's.
   */
  handleMessage(message: unknown): boolean {
    const key = (message as { allDocsQueue?: unknown } | null)?.allDocsQueue;
    if (!Array.isArray(key) || !keyEquals(key, this.#prefix)) return false;
    this.#nextDueAt = -Infinity;
    this.#notify();
    return true;
  }

  /**
   * Queues items; ids queued or running (already, or earlier in the call) are duplicates.
   * Atomic per chunk of up to 100 items (KV's limits per commit): see the module documentation.
   *
   * @param items The items.
   * @returns Accepted and duplicate ids, in the order given.
   * @throws {RangeError} When one item's payload is too large for a KV commit.
   */
  async enqueue(items: readonly WorkItem[]): Promise<EnqueueResult> {
    this.#assertOpen();
    const result: EnqueueResult = { accepted: [], duplicates: [] };
    const seen = new Set<string>();
    const bodies = items.map((item) => json(item.payload));
    for (let start = 0, size = CHUNK; start < items.length;) {
      const end = Math.min(items.length, start + size);
      const entries = await this.#records(items.slice(start, end).map((item) => item.id));
      const batch = this.#batch();
      const local = new Set(seen);
      const accepted: boolean[] = [];
      const now = this.#now();
      for (let i = start; i < end; i++) {
        const id = items[i]!.id;
        const entry = entries.get(id)!;
        const state = entry.value?.state;
        accepted.push(!local.has(id) && state !== "queued" && state !== "running");
        if (!accepted.at(-1)) continue;
        local.add(id);
        this.#put(batch, entry, this.#fresh(items[i]!, now), bodies[i]!);
      }
      if (batch.bytes > COMMIT_BUDGET || batch.mutations + 5 > MAX_MUTATIONS) {
        if (end - start === 1) {
          const id = items[start]!.id;
          throw new RangeError(`Cannot enqueue '${id}': its payload is too large for a KV commit`);
        }
        size = Math.max(1, (end - start) >> 1);
        continue;
      }
      // A conflict: someone changed a record meanwhile; read again.
      if (!(await this.#commit(batch, accepted.includes(true) ? 0 : undefined))) continue;
      accepted.forEach((yes, i) => {
        const id = items[start + i]!.id;
        if (yes) seen.add(id);
        (yes ? result.accepted : result.duplicates).push(id);
      });
      start = end;
      size = Math.min(CHUNK, size * 2);
    }
    if (result.accepted.length > 0) this.#notify();
    return result;
  }

  async bury(item: WorkItem, error: string): Promise<void> {
    this.#assertOpen();
    const body = json(item.payload);
    await this.#update(item.id, (_, now) => {
      const fresh = { ...this.#fresh(item, now), attempts: item.attempts };
      return { record: this.#finish(fresh, "dead", error, now), body };
    });
  }

  /**
   * Delivers items to `handler`, at most `concurrency` at once, until `signal` aborts, then
   * resolves once those in hand are settled; usable again after. After {@linkcode close} it
   * resolves at once, and items still in hand are left to their lease, as after a crash.
   *
   * @param handler Runs a delivery and says what happens to the item.
   * @param options The concurrency cap and the stop signal.
   * @throws {Error} When KV keeps failing (items in hand still settle, or come back later).
   */
  consume(handler: DeliveryHandler, options: ConsumeOptions): Promise<void> {
    this.#assertOpen();
    if (this.#listen) listen(this.#kv, this);
    return this.#track(this.#loop(handler, options));
  }

  async status(id: string): Promise<ItemStatus | undefined> {
    this.#assertOpen();
    while (true) {
      const record = (await this.#kv.get<Stored>(this.#key("item", id))).value;
      if (!record) return undefined;
      const payload = await this.#payloadOf(record);
      const { body: _body, at: _at, claim: _claim, ...status } = record;
      if (payload) return { ...status, payload: payload.value };
    }
  }

  async stats(): Promise<QueueStats> {
    this.#assertOpen();
    const keys = STATES.map((state) => this.#key("count", state));
    const entries = await this.#kv.getMany<Deno.KvU64[]>(keys);
    const [queued, running, done, dead] = entries.map((entry) =>
      Math.max(0, Number(BigInt.asIntN(64, entry.value?.value ?? 0n)))
    );
    return { queued, running, done, dead } as QueueStats;
  }

  async dead(limit = 100): Promise<ItemStatus[]> {
    this.#assertOpen();
    const out: ItemStatus[] = [];
    for await (const entry of this.#kv.list({ prefix: this.#key("dead") }, { limit })) {
      const status = await this.status(entry.key.at(-1) as string);
      if (status?.state === "dead") out.push(status);
    }
    return out;
  }

  async retryDead(id: string): Promise<boolean> {
    this.#assertOpen();
    const retried = await this.#update(id, (record, now) => {
      if (record?.state !== "dead") return undefined;
      const { finishedAt: _finished, ...rest } = record;
      const fresh = { state: "queued", attempts: 0, enqueuedAt: now, updatedAt: now } as const;
      return { record: { ...rest, ...fresh, at: this.#readyKey(record.priority, id) }, wake: 0 };
    });
    return retried !== undefined;
  }

  /**
   * Stops the consume loops and the heartbeat, without settling or releasing items in hand
   * (they run again after their lease), and closes the KV handle when the engine opened it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.resolve();
    listeners.get(this.#kv)?.delete(this);
    this.#notify();
    await Promise.allSettled([...this.#busy]);
    clearInterval(this.#heartbeat);
    this.#held.clear();
    if (this.#owned) this.#kv.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("Cannot use the kv queue: it is closed");
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#busy.add(promise);
    promise.then(() => this.#busy.delete(promise), () => this.#busy.delete(promise));
    return promise;
  }

  #notify(): void {
    for (const wake of this.#wakers) wake();
  }

  #seq(): number {
    return this.#lastSeq = Math.max(this.#now() * 1000, this.#lastSeq + 1);
  }

  #key(...parts: Deno.KvKey): Deno.KvKey {
    return [...this.#prefix, ...parts];
  }

  #readyKey(priority: number, id: string): Deno.KvKey {
    return this.#key("ready", MAX_PRIORITY - priority, this.#seq(), id);
  }

  #batch(): Batch {
    return { op: this.#kv.atomic(), mutations: 0, bytes: 0, deltas: [0, 0, 0, 0] };
  }

  /** Commits `batch` with its counters (a decrement is a `sum` wrapping around 2^64) and, with
   * `wake`, a wake-up message delayed by that many ms. */
  async #commit(batch: Batch, wake?: number): Promise<boolean> {
    if (wake !== undefined) {
      const delay = Math.min(MAX_DELAY_MS, Math.max(0, Math.round(wake)));
      batch.op.enqueue({ allDocsQueue: this.#prefix }, delay > 0 ? { delay } : {});
    }
    batch.deltas.forEach((delta, i) => {
      const sum = BigInt(delta) + (delta < 0 ? 1n << 64n : 0n);
      if (delta !== 0) batch.op.sum(this.#key("count", STATES[i]!), sum);
    });
    return (await batch.op.commit()).ok;
  }

  /** A new record of `item`, queued. */
  #fresh({ id, type, priority }: WorkItem, now: number): Stored {
    const fresh = { state: "queued", attempts: 0, enqueuedAt: now, updatedAt: now } as const;
    const at = this.#readyKey(priority, id);
    return { id, type, priority, ...fresh, body: new Uint8Array(), at };
  }

  /** `record` done or dead at `now`, out of any delivery's hands. */
  #finish(record: Stored, state: "done" | "dead", error: string | undefined, now: number): Stored {
    const next = released(record, { state, finishedAt: now, updatedAt: now });
    delete next.at;
    if (state === "dead") next.at = this.#key("dead", now, this.#seq(), record.id);
    if (error !== undefined) next.lastError = error.slice(0, MAX_ERROR_LENGTH);
    return next;
  }

  /** Records by id, ten keys per read. */
  async #records(ids: readonly string[]): Promise<Map<string, Entry>> {
    const unique = [...new Set(ids)];
    const groups = Array.from({ length: Math.ceil(unique.length / 10) }, (_, i) => {
      return unique.slice(i * 10, i * 10 + 10);
    });
    const reads = await Promise.all(groups.map((group) => {
      return this.#kv.getMany<Stored[]>(group.map((id) => this.#key("item", id)));
    }));
    return new Map(groups.flatMap((group, i) => group.map((id, j) => [id, reads[i]![j]!])));
  }

  /**
   * Adds one transition to `batch`: checks the old record, moves the index entry, writes the
   * payload (when `body` is given) and the record, and counts the change of state.
   */
  #put(batch: Batch, old: Entry, next: Stored, body?: Uint8Array): void {
    const write = (key: Deno.KvKey, value?: unknown, size = 0) => {
      if (value === undefined) batch.op.delete(key);
      else batch.op.set(key, value);
      batch.mutations++;
      batch.bytes += size + key.reduce<number>((n, p) => n + String(p).length * 3 + 8, 8);
    };
    const previous = old.value;
    batch.op.check(old);
    if (previous?.at && !keyEquals(previous.at, next.at)) write(previous.at);
    if (next.at && !keyEquals(previous?.at, next.at)) write(next.at, next.id);
    if (body !== undefined) {
      const stale = previous?.body;
      if (stale && !(stale instanceof Uint8Array)) {
        for (let i = 0; i < stale.parts; i++) write(this.#key("body", next.id, stale.tag, i));
      }
      next.body = body;
      if (body.length > INLINE_MAX) {
        next.body = { tag: this.#seq(), parts: Math.ceil(body.length / PART_SIZE) };
        for (let i = 0; i < next.body.parts; i++) {
          const part = body.subarray(i * PART_SIZE, (i + 1) * PART_SIZE);
          write(this.#key("body", next.id, next.body.tag, i), part, part.length);
        }
      }
    }
    const inline = next.body instanceof Uint8Array ? next.body.length : 0;
    write(this.#key("item", next.id), next, inline + 512 + 4 * (next.lastError?.length ?? 0));
    if (previous?.state !== next.state) {
      if (previous) batch.deltas[STATES.indexOf(previous.state)]!--;
      batch.deltas[STATES.indexOf(next.state)]!++;
    }
  }

  /** Reads a record, lets `change` say what it becomes and commits that (see {@linkcode #put}),
   * reading again on a conflict. Returns the record written, or `undefined` if `change` declined. */
  async #update(
    id: string,
    change: (record: Stored | null, now: number) => Change | undefined,
  ): Promise<Stored | undefined> {
    while (true) {
      const entry = await this.#kv.get<Stored>(this.#key("item", id));
      const now = this.#now();
      const next = change(entry.value, now);
      if (!next) return undefined;
      const batch = this.#batch();
      this.#put(batch, entry, next.record, next.body);
      if (!(await this.#commit(batch, next.wake))) continue;
      if (next.wake !== undefined) {
        if (next.wake > 0) this.#nextDueAt = Math.min(this.#nextDueAt, now + next.wake);
        this.#notify();
      }
      return next.record;
    }
  }

  /** The payload of a record, or `undefined` when its parts changed while being read. */
  async #payloadOf(record: Stored): Promise<{ value: unknown } | undefined> {
    const body = record.body;
    if (body instanceof Uint8Array) return { value: JSON.parse(new TextDecoder().decode(body)) };
    const parts = await Promise.all(Array.from({ length: body.parts }, (_, i) => {
      return this.#kv.get<Uint8Array<ArrayBuffer>>(this.#key("body", record.id, body.tag, i));
    }));
    if (parts.some((part) => !part.value)) return undefined;
    return { value: JSON.parse(await new Blob(parts.map((part) => part.value!)).text()) };
  }

  async #loop(handler: DeliveryHandler, { concurrency, signal }: ConsumeOptions): Promise<void> {
    const inHand = new Set<Promise<void>>();
    let pending = false;
    let resolve = () => {};
    const wake = () => {
      pending = true;
      resolve();
    };
    this.#wakers.add(wake);
    signal.addEventListener("abort", wake);
    let lastPoll = -Infinity;
    let failures = 0;
    try {
      while (!signal.aborted && !this.#closed) {
        pending = false;
        try {
          if (Date.now() - lastPoll >= this.#pollMs) {
            lastPoll = Date.now();
            this.#nextDueAt = -Infinity;
            await this.#requeueDue("lease");
          }
          if (inHand.size < concurrency) {
            if (this.#now() >= this.#nextDueAt) {
              this.#nextDueAt = Infinity; // Retries scheduled meanwhile lower it again.
              this.#nextDueAt = Math.min(await this.#requeueDue("delayed"), this.#nextDueAt);
            }
            const claimed = await this.#claim();
            failures = 0;
            if (claimed) {
              const delivery = this.#deliver(handler, claimed).finally(() => {
                inHand.delete(delivery);
                wake();
              });
              inHand.add(delivery);
              continue;
            }
          }
        } catch (error) {
          if (this.#closed) break;
          if (++failures > 8) throw error;
          await sleep(Math.min(this.#pollMs, 10 * 2 ** failures));
          continue;
        }
        const ms = Math.min(lastPoll + this.#pollMs - Date.now(), this.#nextDueAt - this.#now());
        if (pending) continue;
        await new Promise<void>((done) => {
          const timer = setTimeout(done, Math.max(0, ms));
          resolve = () => (clearTimeout(timer), done());
        });
      }
      await Promise.race([Promise.all(inHand), this.#closing.promise]);
    } finally {
      this.#wakers.delete(wake);
      signal.removeEventListener("abort", wake);
    }
  }

  /** Claims the first ready item, or returns `undefined` when none is ready. */
  async #claim(): Promise<{ item: WorkItem; claim: string } | undefined> {
    while (!this.#closed) {
      let head: Deno.KvEntry<unknown> | undefined;
      const ready = this.#kv.list({ prefix: this.#key("ready") }, { limit: 1 });
      for await (const entry of ready) head = entry;
      if (!head) return undefined;
      const id = head.key.at(-1) as string;
      const claim = crypto.randomUUID();
      const record = await this.#update(id, (record, now) => {
        if (record?.state !== "queued" || !keyEquals(record.at, head.key)) return undefined;
        const at = this.#key("lease", now + this.#leaseMs, id);
        const running = { state: "running", startedAt: now, updatedAt: now } as const;
        return { record: { ...record, ...running, at, claim } };
      });
      if (this.#closed) return undefined; // Claimed while closing: left to its lease.
      if (!record) {
        // Stale: its item moved on (retried from the dead letters, replaced, claimed).
        await this.#kv.atomic().check(head).delete(head.key).commit();
        continue;
      }
      const payload = await this.#payloadOf(record);
      const { type, priority, attempts } = record;
      const item = { type, id, payload: payload?.value, priority, attempts } as WorkItem;
      this.#held.set(id, claim);
      this.#heartbeat ??= setInterval(() => {
        if (!this.#renewing) void this.#track(this.#renew());
      }, Math.max(10, Math.floor(this.#leaseMs / 3)));
      return { item, claim };
    }
    return undefined;
  }

  async #deliver(handler: DeliveryHandler, { item, claim }: { item: WorkItem; claim: string }) {
    // Handlers never reject; if one does, retry it as the worker core retries a throw.
    const outcome = await handler(item).catch((error): Outcome => {
      return { kind: "retry", delayMs: this.#pollMs, error: String(error) };
    });
    if (this.#held.get(item.id) === claim) this.#held.delete(item.id);
    if (this.#held.size === 0) this.#heartbeat = void clearInterval(this.#heartbeat);
    if (!this.#closed) await this.#track(this.#settle(item.id, claim, outcome));
  }

  /** Carries out an outcome, if the delivery still holds its item. */
  async #settle(id: string, claim: string, outcome: Outcome): Promise<void> {
    const change = (record: Stored | null, now: number): Change | undefined => {
      if (record?.state !== "running" || record.claim !== claim) return undefined;
      if (outcome.kind === "ack") return { record: this.#finish(record, "done", undefined, now) };
      if (outcome.kind === "dead") {
        const dead = this.#finish(record, "dead", outcome.error, now);
        return { record: { ...dead, attempts: record.attempts + 1 } };
      }
      const next = released(record, { state: "queued", updatedAt: now });
      if (outcome.kind === "release") {
        return { record: { ...next, at: this.#readyKey(record.priority, id) }, wake: 0 };
      }
      const delay = Math.max(0, outcome.delayMs);
      next.attempts++;
      next.lastError = outcome.error.slice(0, MAX_ERROR_LENGTH);
      next.at = delay > 0
        ? this.#key("delayed", now + delay, this.#seq(), id)
        : this.#readyKey(record.priority, id);
      const body = outcome.payload === undefined ? undefined : json(outcome.payload);
      return { record: next, wake: delay, ...(body ? { body } : {}) };
    };
    for (let tries = 0; !this.#closed; tries++) {
      try {
        await this.#update(id, change);
        return;
      } catch {
        // Still failing: the item returns after its lease.
        if (tries >= 5) return;
        await sleep(20 * 2 ** tries);
      }
    }
  }

  /** The heartbeat: extends the lease of every item in hand. */
  async #renew(): Promise<void> {
    this.#renewing = true;
    try {
      for (const [id, claim] of [...this.#held]) {
        if (this.#closed || this.#held.get(id) !== claim) continue;
        await this.#update(id, (record, now) => {
          if (record?.state !== "running" || record.claim !== claim) return undefined;
          return { record: { ...record, at: this.#key("lease", now + this.#leaseMs, id) } };
        });
      }
    } catch {
      // The next beat tries again.
    } finally {
      this.#renewing = false;
    }
  }

  /** Puts back to ready the items whose time in `index` has come: due retries, and items whose
   * lease expired (their process died; the attempt is not counted). Deletes stale entries.
   * Returns when the next entry is due (`-Infinity`: more are due now). */
  async #requeueDue(index: "delayed" | "lease"): Promise<number> {
    const prefix = [...this.#prefix, index];
    let count = 0;
    for await (const entry of this.#kv.list({ prefix }, { limit: 100 })) {
      const at = entry.key[prefix.length] as number;
      if (at > this.#now()) return at;
      count++;
      const id = entry.key.at(-1) as string;
      const moved = await this.#update(id, (record, now) => {
        if (!record || !keyEquals(record.at, entry.key)) return undefined;
        const at = this.#readyKey(record.priority, id);
        return { record: released(record, { state: "queued", updatedAt: now, at }), wake: 0 };
      });
      if (!moved) await this.#kv.atomic().check(entry).delete(entry.key).commit();
    }
    return count === 100 ? -Infinity : Infinity;
  }
}
