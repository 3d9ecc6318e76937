/**
 * The `cloudflare` queue engine: Cloudflare Queues carry wake-up messages, D1 keeps the items.
 * Bindings are typed structurally ({@linkcode QueueLike}, {@linkcode MessageBatchLike},
 * {@linkcode D1DatabaseLike}: no `@cloudflare/workers-types`); only web standards are used.
 *
 * **Why D1.** Workers KV is eventually consistent: no place for dedup or claims. D1 is SQLite
 * with one writer: a statement is atomic, a `batch` is a transaction, so dedup and claims are
 * single conditional statements. A Durable Object could do it too, at the price of a class to
 * export and bind and of every call going through one object; D1 is a plain binding.
 *
 * **Bands.** Queues have no priority: an item with `priority > 0` sends its messages to the
 * `high` queue, any other to `normal`; one Worker consumes both, each with its own consumer
 * settings, so urgent work never waits behind a backlog. The order is exact anyway: a message
 * is a wake-up `{ id, priority }` naming the item it was sent for, and a delivery claims the
 * waiting item of highest priority (then first queued) that is due, whichever message brought
 * it. Items never travel in messages: payloads of any size work (a message holds 128 KB).
 *
 * **D1 layout** (table `table`, default `all_docs_queue`): one row per item, `id` the primary
 * key: `type`, `payload` (JSON), `priority`, `state` (queued, running, done, dead), `attempts`,
 * `last_error`, `seq` (order of becoming ready), `due_at` (queued: not before), `claim` and
 * `lease_until` (running: the delivery's token, and when another may take over), `lost`
 * (deliveries of this attempt that ended without an outcome), `enqueued_at`, `started_at`,
 * `finished_at`, `updated_at` (ms); indexes `(state, priority DESC, seq)`, `(state,
 * finished_at)`, `(seq)`; `{table}_counts(state, n)` kept by triggers, for `stats`. Created on
 * first use (`IF NOT EXISTS`, one transaction).
 *
 * **Transitions**, each a conditional statement:
 * - `enqueue`: an upsert per item (a transaction per 100) inserts it, or queues again an id that
 *   is done or dead; a queued or running id is a duplicate. Then a message per accepted item
 *   (`sendBatch`); items whose send failed become dead letters, and `enqueue` rejects.
 * - A delivery claims the best item queued and due, or running with its lease run out (a
 *   take-over: the delivery was lost, the attempt is not counted): `UPDATE … WHERE id = (SELECT
 *   … ORDER BY priority DESC, seq LIMIT 1) RETURNING`, with a new claim token and `lease_until =
 *   now + leaseMs`. An item whose delivery was lost `maxLost` times goes dead instead.
 * - The outcome applies `WHERE id = ? AND state = 'running' AND claim = ?`: ack → done,
 *   `msg.ack()`; dead → dead, `msg.ack()`; retry → queued with `attempts + 1`, the narrowed
 *   payload, `last_error`, `due_at = now + delayMs`, and a new message delayed
 *   `ceil(delayMs / 1000)` s (at most 12 h), then `msg.ack()`; release → queued, not counted, a
 *   new message at once. A new message rather than `msg.retry()` leaves `msg.attempts` to count
 *   failures of the engine only (ours is in the row); when the send fails, `msg.retry({
 *   delaySeconds })` does the job.
 * - A message that finds nothing to claim is sent again for when the next item is due or lease
 *   ends, or acked when nothing is queued or running.
 *
 * **Never throws.** {@linkcode CloudflareQueue.handleBatch} acks or retries each message: a
 * consumer that throws has Cloudflare retry the whole batch and later dead-letter all of it,
 * acked messages too. A D1 failure retries the message; after a claim, the lease runs out and a
 * later message takes the item over (at least once). A message Cloudflare gives up on (after
 * `max_retries`) goes to the dead-letter queue, which must be bound (else it is dropped) and
 * consumed by {@linkcode CloudflareQueue.handleDeadLetters}: the item becomes a dead letter
 * with that error, unless it is done, dead or held by a live delivery.
 *
 * **Concurrency.** At most `concurrency` deliveries in hand across the batches one isolate gets;
 * across isolates, bound it with `max_concurrency` and `max_batch_size`. `leaseMs` must outlast
 * a delivery: the default is the 15 minutes a queue consumer may run, plus one.
 *
 * @module
 */

import type { WorkItem, WorkItemType } from "../src/worker/items.ts";
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
import { describe } from "../src/_util/describe.ts";

/** What a D1 statement returned: its rows, and how many rows it changed. */
export interface D1ResultLike {
  /** The rows of a query or of `RETURNING`. */
  results?: Record<string, unknown>[];
  /** What the statement did. */
  meta?: { changes?: number };
}

/** A D1 prepared statement, as far as the engine uses it. */
export interface D1PreparedStatementLike {
  /** The statement with its `?N` parameters bound. */
  bind(...values: unknown[]): D1PreparedStatementLike;
  /** Runs it. */
  run(): Promise<D1ResultLike>;
  /** Runs it and returns its rows. */
  all(): Promise<D1ResultLike>;
}

/** The part of a D1 database binding the engine uses. */
export interface D1DatabaseLike {
  /** Prepares one SQL statement. */
  prepare(sql: string): D1PreparedStatementLike;
  /** Runs statements in one transaction, in order. */
  batch(statements: D1PreparedStatementLike[]): Promise<D1ResultLike[]>;
}

/** How a message is sent: as JSON, maybe delayed. */
export interface QueueSendOptions {
  /** Always `"json"` here. */
  contentType?: "json";
  /** Deliver no sooner than this many seconds from now. */
  delaySeconds?: number;
}

/** The part of a Queues producer binding the engine uses. */
export interface QueueLike {
  /** Sends one message. */
  send(body: unknown, options?: QueueSendOptions): Promise<unknown>;
  /** Sends up to 100 messages. */
  sendBatch(messages: Iterable<{ body: unknown } & QueueSendOptions>): Promise<unknown>;
}

/** One delivered message. */
export interface MessageLike {
  /** Its body. */
  readonly body: unknown;
  /** Deliveries so far, this one included (1 on the first). */
  readonly attempts: number;
  /** Done with: not delivered again. */
  ack(): void;
  /** Delivers it again (after `delaySeconds`), counting an attempt. */
  retry(options?: { delaySeconds?: number }): void;
}

/** A batch of messages, as a Worker's `queue()` handler receives it. */
export interface MessageBatchLike {
  /** The queue's name. */
  readonly queue: string;
  /** The messages. */
  readonly messages: readonly MessageLike[];
}

/** The bindings of {@linkcode CloudflareQueue}. */
export interface CloudflareQueueBindings {
  /** The D1 database that keeps the items. */
  db: D1DatabaseLike;
  /** The producer of the band of items with `priority > 0`. */
  high: QueueLike;
  /** The producer of the band of the other items. */
  normal: QueueLike;
}

/** Options of {@linkcode CloudflareQueue}. */
export interface CloudflareQueueOptions {
  /** The D1 table (letters, digits, `_`; two more tables take it as their prefix).
   * @default {"all_docs_queue"} */
  table?: string;
  /** How long a claim lasts, in ms: then another delivery takes the item over.
   * @default {960000} */
  leaseMs?: number;
  /** Deliveries lost (the Worker died, timed out or threw) before an item goes dead.
   * @default {3} */
  maxLost?: number;
  /** Deliveries in hand at once in this isolate (a running `consume` sets its own).
   * @default {4} */
  concurrency?: number;
  /** The time source.
   * @default {Date.now} */
  now?: () => number;
}

/** The longest delay Cloudflare Queues accept: 12 hours, in seconds. */
export const MAX_DELAY_SECONDS = 43_200;
/** Items per enqueue transaction, and messages per `sendBatch` (Cloudflare's limit). */
const CHUNK = 100;
const MAX_ERROR_LENGTH = 2000;
/** With no handler registered, a message is sent again after this many seconds. */
const IDLE_DELAY_SECONDS = 1;
const TABLE = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;

/** A message's body: the item it was sent for, and its priority (for its band). */
type Wake = { id: string; priority: number };
/** An item in hand: the work and the claim token. */
type Claim = { item: WorkItem; token: string };
/** An accepted item whose message is to be sent (`seq` tells this enqueue of it). */
type Sent = Wake & { seq: number };
/** The registered consumer: its handler and the deliveries it has in hand. */
type Consumer = { handler: DeliveryHandler; inHand: number; stopped: boolean; idle: () => void };

function wakeOf(body: unknown): Wake | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const { id, priority } = body as Record<string, unknown>;
  if (typeof id !== "string") return undefined;
  return { id, priority: typeof priority === "number" ? priority : 0 };
}

function seconds(ms: number): number {
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(ms / 1000)));
}

function clip(text: string): string {
  return text.length > MAX_ERROR_LENGTH ? `${text.slice(0, MAX_ERROR_LENGTH)}…` : text;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function outOfRange(what: string, name: string, rule: string, value: unknown): RangeError {
  return new RangeError(`Cannot ${what}: '${name}' must be ${rule}, received ${describe(value)}`);
}

function integer(name: string, value: number, least: number): number {
  if (Number.isSafeInteger(value) && value >= least) return value;
  throw outOfRange("open the cloudflare queue", name, `an integer of at least ${least}`, value);
}

const COLUMNS = "id, type, payload, priority, state, attempts, last_error, seq, due_at, " +
  "enqueued_at, finished_at, updated_at";
const NEXT_SEQ = "(SELECT IFNULL(MAX(seq), 0) + 1 FROM {t})";
/** An upsert's update: the row starts over as the inserted one. */
const REPLACE = COLUMNS.split(", ").slice(1).map((c) => `${c} = excluded.${c}`).join(", ") +
  ", claim = NULL, lease_until = NULL, lost = 0, started_at = NULL";
const COUNT = (sign: string, row: string) =>
  `UPDATE {t}_counts SET n = n ${sign} 1 WHERE state = ${row}.state;`;

/** Every statement, `{t}` standing for the table; `?N` parameters as commented. */
const SQL = {
  schema: [
    `CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY NOT NULL, type TEXT NOT NULL,
      payload TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL,
      attempts INTEGER NOT NULL, last_error TEXT, seq INTEGER NOT NULL, due_at INTEGER NOT NULL,
      claim TEXT, lease_until INTEGER, lost INTEGER NOT NULL DEFAULT 0,
      enqueued_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
      updated_at INTEGER NOT NULL)`,
    "CREATE INDEX IF NOT EXISTS {t}_ready ON {t} (state, priority DESC, seq)",
    "CREATE INDEX IF NOT EXISTS {t}_finished ON {t} (state, finished_at)",
    "CREATE INDEX IF NOT EXISTS {t}_seq ON {t} (seq)",
    "CREATE TABLE IF NOT EXISTS {t}_counts (state TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL)",
    `INSERT OR IGNORE INTO {t}_counts (state, n)
      VALUES ('queued', 0), ('running', 0), ('done', 0), ('dead', 0)`,
    `CREATE TRIGGER IF NOT EXISTS {t}_inserted AFTER INSERT ON {t}
      BEGIN ${COUNT("+", "NEW")} END`,
    `CREATE TRIGGER IF NOT EXISTS {t}_updated AFTER UPDATE OF state ON {t}
      WHEN OLD.state <> NEW.state BEGIN ${COUNT("-", "OLD")} ${COUNT("+", "NEW")} END`,
    `CREATE TRIGGER IF NOT EXISTS {t}_deleted AFTER DELETE ON {t}
      BEGIN ${COUNT("-", "OLD")} END`,
  ],
  // ?1 id, ?2 type, ?3 payload, ?4 priority, ?5 now
  enqueue: `INSERT INTO {t} (${COLUMNS})
    VALUES (?1, ?2, ?3, ?4, 'queued', 0, NULL, ${NEXT_SEQ}, ?5, ?5, NULL, ?5)
    ON CONFLICT (id) DO UPDATE SET ${REPLACE} WHERE {t}.state IN ('done', 'dead')
    RETURNING seq`,
  // ?1 id, ?2 type, ?3 payload, ?4 priority, ?5 now, ?6 attempts, ?7 error
  bury: `INSERT INTO {t} (${COLUMNS})
    VALUES (?1, ?2, ?3, ?4, 'dead', ?6, ?7, ${NEXT_SEQ}, ?5, ?5, ?5, ?5)
    ON CONFLICT (id) DO UPDATE SET ${REPLACE}`,
  // ?1 now, ?2 error, ?3 maxLost
  buryLost: `UPDATE {t} SET state = 'dead', last_error = ?2, claim = NULL, lease_until = NULL,
    finished_at = ?1, updated_at = ?1
    WHERE state = 'running' AND lease_until <= ?1 AND lost + 1 >= ?3`,
  // ?1 now, ?2 token, ?3 leaseMs: the best due item, or the best whose lease ran out
  claim: `UPDATE {t} SET state = 'running', claim = ?2, lease_until = ?1 + ?3,
    lost = lost + (state = 'running'), started_at = ?1, updated_at = ?1
    WHERE id = (SELECT id FROM (
      SELECT * FROM (SELECT id, priority, seq FROM {t} WHERE state = 'queued' AND due_at <= ?1
        ORDER BY priority DESC, seq LIMIT 1)
      UNION ALL
      SELECT * FROM (SELECT id, priority, seq FROM {t} WHERE state = 'running'
        AND lease_until <= ?1 ORDER BY priority DESC, seq LIMIT 1))
      ORDER BY priority DESC, seq LIMIT 1)
    RETURNING id, type, payload, priority, attempts`,
  nextAt: `SELECT MIN(at) AS at FROM (
    SELECT MIN(due_at) AS at FROM {t} WHERE state = 'queued' UNION ALL
    SELECT MIN(lease_until) AS at FROM {t} WHERE state = 'running')`,
  // ?1 now, ?2 id, ?3 token, ?4 state, ?5 attempts, ?6 error, ?7 payload, ?8 dueAt
  settle: `UPDATE {t} SET state = ?4, attempts = ?5, last_error = IFNULL(?6, last_error),
    payload = IFNULL(?7, payload), due_at = ?8,
    seq = CASE WHEN ?4 = 'queued' THEN ${NEXT_SEQ} ELSE seq END, claim = NULL,
    lease_until = NULL, lost = 0, finished_at = CASE WHEN ?4 = 'queued' THEN NULL ELSE ?1 END,
    updated_at = ?1 WHERE id = ?2 AND state = 'running' AND claim = ?3`,
  // ?1 now, ?2 id, ?3 token
  expire: `UPDATE {t} SET lease_until = ?1, updated_at = ?1
    WHERE id = ?2 AND state = 'running' AND claim = ?3`,
  // ?1 now, ?2 id, ?3 error
  deadLetter: `UPDATE {t} SET state = 'dead',
    last_error = ?3 || IFNULL('; last error: ' || last_error, ''), claim = NULL,
    lease_until = NULL, finished_at = ?1, updated_at = ?1
    WHERE id = ?2 AND (state = 'queued' OR (state = 'running' AND lease_until <= ?1))`,
  // ?1 now, ?2 id
  retryDead: `UPDATE {t} SET state = 'queued', attempts = 0, lost = 0, seq = ${NEXT_SEQ},
    due_at = ?1, enqueued_at = ?1, finished_at = NULL, updated_at = ?1
    WHERE id = ?2 AND state = 'dead' RETURNING priority, seq`,
  // ?1 now, ?2 id, ?3 error, ?4 seq
  unsent: `UPDATE {t} SET state = 'dead', last_error = ?3, finished_at = ?1, updated_at = ?1
    WHERE id = ?2 AND state = 'queued' AND seq = ?4`,
  status: "SELECT * FROM {t} WHERE id = ?1",
  dead: "SELECT * FROM {t} WHERE state = 'dead' ORDER BY finished_at, seq LIMIT ?1",
  stats: "SELECT state, n FROM {t}_counts",
};

/** {@linkcode SQL} for table `t`. */
function statements(t: string): typeof SQL {
  const of = (sql: string) => sql.replaceAll("{t}", t);
  const entries = Object.entries(SQL).map(([k, v]) => [k, Array.isArray(v) ? v.map(of) : of(v)]);
  return Object.fromEntries(entries) as typeof SQL;
}

/**
 * The Cloudflare Queues engine: see the module documentation for the bands, the D1 layout and
 * the guarantees. A Worker's `queue()` handler hands each batch of the bands to
 * {@linkcode CloudflareQueue.handleBatch}, and those of the dead-letter queue to
 * {@linkcode CloudflareQueue.handleDeadLetters}.
 *
 * @example Over an sqlite stand-in for D1, with producers that only record
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import { CloudflareQueue, type D1PreparedStatementLike } from "./cloudflare.ts";
 *
 * const sqlite = new DatabaseSync(":memory:");
 * const prepare = (sql: string, values: never[] = []): D1PreparedStatementLike => ({
 *   bind: (...next) => prepare(sql, next as never[]),
 *   run: async () => ({ meta: { changes: Number(sqlite.prepare(sql).run(...values).changes) } }),
 *   all: async () => ({ results: sqlite.prepare(sql).all(...values) }),
 * });
 * const db = { prepare, batch: (list: D1PreparedStatementLike[]) => Promise.all(list.map((s) => s.all())) };
 * const sent: unknown[] = [];
 * const queue = {
 *   send: async (body: unknown) => void sent.push(body),
 *   sendBatch: async (list: Iterable<{ body: unknown }>) => void sent.push(...[...list].map((m) => m.body)),
 * };
 * const engine = new CloudflareQueue({ db, high: queue, normal: queue });
 * const item = { type: "packument" as const, id: "a", payload: { registry: "http://127.0.0.1/", names: ["ms"] }, priority: 0, attempts: 0 };
 * console.assert((await engine.enqueue([item, item])).duplicates[0] === "a");
 * let acked = false;
 * const message = { body: sent[0], attempts: 1, ack: () => void (acked = true), retry: () => {} };
 * await engine.handleBatch({ queue: "work", messages: [message] }, async () => ({ kind: "ack" }));
 * console.assert(acked && (await engine.status("a"))?.state === "done");
 * ```
 */
export class CloudflareQueue implements QueueEngine {
  /** Always `cloudflare`. */
  readonly name = "cloudflare";
  #db: D1DatabaseLike;
  #high: QueueLike;
  #normal: QueueLike;
  #sql: typeof SQL;
  #leaseMs: number;
  #maxLost: number;
  #limit: number;
  #now: () => number;
  #schema: Promise<void> | undefined;
  #consumer: Consumer | undefined;
  #inHand = 0;
  #waiting: (() => void)[] = [];

  /**
   * Queues over D1 and two Queues producers.
   *
   * @param bindings The D1 database and the producers of the two bands.
   * @param options The table, the lease and the concurrency.
   * @throws {TypeError} When `table` is not a plain name.
   * @throws {RangeError} When a number is out of range.
   */
  constructor(bindings: CloudflareQueueBindings, options: CloudflareQueueOptions = {}) {
    const table = options.table ?? "all_docs_queue";
    if (typeof table !== "string" || !TABLE.test(table)) {
      throw new TypeError(
        `Cannot open the cloudflare queue: 'table' must be a letter then up to 47 letters, ` +
          `digits or _, received ${describe(table)}`,
      );
    }
    ({ db: this.#db, high: this.#high, normal: this.#normal } = bindings);
    this.#sql = statements(table);
    this.#leaseMs = integer("leaseMs", options.leaseMs ?? 16 * 60_000, 100);
    this.#maxLost = integer("maxLost", options.maxLost ?? 3, 1);
    this.#limit = integer("concurrency", options.concurrency ?? 4, 1);
    this.#now = options.now ?? Date.now;
  }

  /** Creates the tables once (again after a failure). */
  #ready(): Promise<void> {
    return this.#schema ??= this.#db.batch(this.#sql.schema.map((sql) => this.#db.prepare(sql)))
      .then(() => {}, (error) => {
        this.#schema = undefined;
        throw error;
      });
  }

  /** The rows of a statement (a query, or one with `RETURNING`). */
  async #rows(sql: string, ...values: unknown[]): Promise<Record<string, unknown>[]> {
    await this.#ready();
    return (await this.#db.prepare(sql).bind(...values).all()).results ?? [];
  }

  /** How many rows a statement changed. */
  async #changes(sql: string, ...values: unknown[]): Promise<number> {
    await this.#ready();
    return (await this.#db.prepare(sql).bind(...values).run()).meta?.changes ?? 0;
  }

  /** Sends the message of `wake` to its band. */
  #send({ id, priority }: Wake, delaySeconds = 0): Promise<unknown> {
    const options = { contentType: "json" as const, delaySeconds };
    return (priority > 0 ? this.#high : this.#normal).send({ id, priority }, options);
  }

  async enqueue(items: readonly WorkItem[]): Promise<EnqueueResult> {
    const result: EnqueueResult = { accepted: [], duplicates: [] };
    const accepted: Sent[] = [];
    await this.#ready();
    const now = this.#now();
    for (let start = 0; start < items.length; start += CHUNK) {
      const chunk = items.slice(start, start + CHUNK);
      const results = await this.#db.batch(
        chunk.map(({ id, type, payload, priority }) =>
          this.#db.prepare(this.#sql.enqueue).bind(id, type, JSON.stringify(payload), priority, now)
        ),
      );
      chunk.forEach(({ id, priority }, i) => {
        const row = results[i]?.results?.[0];
        result[row ? "accepted" : "duplicates"].push(id);
        if (row) accepted.push({ id, priority, seq: Number(row.seq) });
      });
    }
    for (const high of [true, false]) {
      const band = accepted.filter((each) => each.priority > 0 === high);
      for (let start = 0; start < band.length; start += CHUNK) {
        const messages = band.slice(start, start + CHUNK)
          .map(({ id, priority }) => ({ body: { id, priority }, contentType: "json" as const }));
        try {
          await (high ? this.#high : this.#normal).sendBatch(messages);
        } catch (error) {
          await this.#unsent(band.slice(start), error);
          throw new Error(
            `Cannot enqueue: sending ${band.length - start} messages to Cloudflare Queues failed ` +
              `(their items are dead letters): ${messageOf(error)}`,
            { cause: error },
          );
        }
      }
    }
    return result;
  }

  /** Records items whose message could not be sent as dead letters: none waits without one. */
  async #unsent(unsent: Sent[], error: unknown): Promise<void> {
    const now = this.#now();
    const text = clip(`Its message could not be sent to Cloudflare Queues: ${messageOf(error)}`);
    for (let start = 0; start < unsent.length; start += CHUNK) {
      await this.#db.batch(
        unsent.slice(start, start + CHUNK).map(({ id, seq }) =>
          this.#db.prepare(this.#sql.unsent).bind(now, id, text, seq)
        ),
      );
    }
  }

  async bury(item: WorkItem, error: string): Promise<void> {
    const { id, type, payload, priority, attempts } = item;
    const json = JSON.stringify(payload);
    const values = [id, type, json, priority, this.#now(), attempts, clip(error)];
    await this.#changes(this.#sql.bury, ...values);
  }

  /**
   * Registers `handler` for the batches {@linkcode CloudflareQueue.handleBatch} receives without
   * a handler of their own (Cloudflare pushes batches: there is nothing to pull), with
   * `concurrency` deliveries in hand at once, until `signal` aborts; then resolves once the
   * deliveries it had in hand are settled. One consumer at a time.
   *
   * @param handler Runs one delivery.
   * @param options The concurrency and the stop signal.
   * @throws {RangeError} When `concurrency` is not a positive integer.
   */
  async consume(handler: DeliveryHandler, options: ConsumeOptions): Promise<void> {
    const { concurrency, signal } = options;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw outOfRange("consume", "concurrency", "a positive integer", concurrency);
    }
    if (this.#consumer) throw new Error("Cannot consume: a consumer is registered already");
    const idle = Promise.withResolvers<void>();
    const consumer: Consumer = { handler, inHand: 0, stopped: false, idle: idle.resolve };
    this.#consumer = consumer;
    const limit = this.#limit;
    this.#limit = concurrency;
    this.#wake();
    if (!signal.aborted) {
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    }
    consumer.stopped = true;
    this.#consumer = undefined;
    this.#limit = limit;
    this.#wake();
    if (consumer.inHand > 0) await idle.promise;
  }

  /**
   * Handles a batch from a band's queue: each message claims the waiting item of highest
   * priority that is due, runs it through `deliver` (or the registered consumer's handler) and
   * carries out the {@linkcode Outcome}. Never rejects: every message is acked or retried.
   *
   * @param batch The batch the Worker's `queue()` handler received.
   * @param deliver Runs one delivery (the worker core's `process`).
   * @returns When every message of the batch is handled.
   */
  async handleBatch(batch: MessageBatchLike, deliver?: DeliveryHandler): Promise<void> {
    const handled: Promise<void>[] = [];
    for (const message of batch.messages) {
      while (this.#inHand >= this.#limit) {
        await new Promise<void>((resolve) => this.#waiting.push(resolve));
      }
      this.#inHand++;
      handled.push(this.#handle(message, deliver).finally(() => this.#wake(1)));
    }
    await Promise.all(handled);
  }

  /** Frees `freed` slots and wakes the messages waiting for one. */
  #wake(freed = 0): void {
    this.#inHand -= freed;
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  async #handle(message: MessageLike, deliver: DeliveryHandler | undefined): Promise<void> {
    const wake = wakeOf(message.body);
    if (!wake) return message.ack();
    const consumer = deliver ? undefined : this.#consumer;
    const handler = deliver ?? consumer?.handler;
    if (!handler) return await this.#resend(message, wake, IDLE_DELAY_SECONDS);
    // Counted from the claim on: a consumer that stops meanwhile waits for this delivery.
    if (consumer) consumer.inHand++;
    try {
      let claim: Claim | undefined;
      try {
        claim = await this.#claim();
        if (!claim) {
          const [next] = await this.#rows(this.#sql.nextAt);
          if (next?.at == null) return message.ack();
          return await this.#resend(message, wake, seconds(Number(next.at) - this.#now()));
        }
      } catch {
        return message.retry();
      }
      await this.#run(message, claim, handler);
    } finally {
      if (consumer && --consumer.inHand === 0 && consumer.stopped) consumer.idle();
    }
  }

  async #run(message: MessageLike, { item, token }: Claim, handler: DeliveryHandler) {
    let outcome: Outcome;
    try {
      outcome = await handler(item);
    } catch {
      // The handler never rejects; one that does lost its delivery, as a crash would: the
      // lease ends now, and the next message takes the item over and counts it lost.
      await this.#changes(this.#sql.expire, this.#now(), item.id, token).catch(() => {});
      return message.retry();
    }
    try {
      if (!(await this.#settle(item, token, outcome))) return message.ack();
      if (outcome.kind === "retry") {
        return await this.#resend(message, item, seconds(outcome.delayMs));
      }
      if (outcome.kind === "release") return await this.#resend(message, item, 0);
      message.ack();
    } catch {
      // D1 failed: the lease runs out, then a message takes the item over.
      message.retry();
    }
  }

  /** Sends a new message for `wake` and acks `message`, or retries `message` when that fails. */
  async #resend(message: MessageLike, wake: Wake, delaySeconds: number): Promise<void> {
    try {
      await this.#send(wake, delaySeconds);
      message.ack();
    } catch {
      message.retry({ delaySeconds });
    }
  }

  /** Claims the waiting item of highest priority that is due, or one whose lease ran out. */
  async #claim(): Promise<Claim | undefined> {
    await this.#ready();
    const now = this.#now();
    const token = crypto.randomUUID();
    const lost =
      `Its delivery was lost ${this.#maxLost} times (the Worker died, timed out or threw)`;
    const [, claimed] = await this.#db.batch([
      this.#db.prepare(this.#sql.buryLost).bind(now, lost, this.#maxLost),
      this.#db.prepare(this.#sql.claim).bind(now, token, this.#leaseMs),
    ]);
    const row = claimed?.results?.[0];
    if (!row) return undefined;
    const { type, id, payload, priority, attempts } = row;
    const work = { type, id, payload: JSON.parse(String(payload)), priority, attempts };
    return { item: work as WorkItem, token };
  }

  /** Applies an outcome to the item of a claim; `false` when the claim was lost meanwhile. */
  async #settle(item: WorkItem, token: string, outcome: Outcome): Promise<boolean> {
    const now = this.#now();
    const { attempts } = item;
    const [state, counted, error, payload, dueAt]: [ItemState, number, unknown, unknown, number] =
      outcome.kind === "ack"
        ? ["done", attempts, null, null, now]
        : outcome.kind === "dead"
        ? ["dead", attempts + 1, clip(outcome.error), null, now]
        : outcome.kind === "release"
        ? ["queued", attempts, null, null, now]
        : ["queued", attempts + 1, clip(outcome.error), outcome.payload, now + outcome.delayMs];
    const json = payload === null || payload === undefined ? null : JSON.stringify(payload);
    const values = [now, item.id, token, state, counted, error, json, dueAt];
    return await this.#changes(this.#sql.settle, ...values) > 0;
  }

  /**
   * Handles a batch from the dead-letter queue, the messages Cloudflare gave up on: the item
   * each was sent for becomes a dead letter with that error unless it is done or dead; one held
   * by a live delivery is looked at again when its lease ends. Never rejects.
   *
   * @param batch The batch the Worker's `queue()` handler received from the dead-letter queue.
   * @returns When every message of the batch is handled.
   */
  async handleDeadLetters(batch: MessageBatchLike): Promise<void> {
    const error = "Cloudflare Queues moved its message to the dead-letter queue after its " +
      "deliveries kept failing";
    for (const message of batch.messages) {
      const wake = wakeOf(message.body);
      try {
        const now = this.#now();
        if (!wake || await this.#changes(this.#sql.deadLetter, now, wake.id, error) > 0) {
          message.ack();
          continue;
        }
        const [row] = await this.#rows(this.#sql.status, wake.id);
        if (row?.state !== "running") message.ack();
        else message.retry({ delaySeconds: seconds(Number(row.lease_until) - now) });
      } catch {
        message.retry();
      }
    }
  }

  async status(id: string): Promise<ItemStatus | undefined> {
    const [row] = await this.#rows(this.#sql.status, id);
    return row && statusOf(row);
  }

  async stats(): Promise<QueueStats> {
    const stats: QueueStats = { queued: 0, running: 0, done: 0, dead: 0 };
    for (const row of await this.#rows(this.#sql.stats)) {
      stats[row.state as ItemState] = Number(row.n);
    }
    return stats;
  }

  async dead(limit = 100): Promise<ItemStatus[]> {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw outOfRange("list dead letters", "limit", "a non-negative integer", limit);
    }
    return (await this.#rows(this.#sql.dead, limit)).map(statusOf);
  }

  async retryDead(id: string): Promise<boolean> {
    const [row] = await this.#rows(this.#sql.retryDead, this.#now(), id);
    if (!row) return false;
    const sent = { id, priority: Number(row.priority), seq: Number(row.seq) };
    try {
      await this.#send(sent);
    } catch (error) {
      await this.#unsent([sent], error);
      throw new Error(`Cannot retry ${id}: sending its message failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
    return true;
  }

  /** Nothing to release: the bindings belong to the runtime. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A row as an {@linkcode ItemStatus}, its unset times left out. */
function statusOf(row: Record<string, unknown>): ItemStatus {
  const status: ItemStatus = {
    id: String(row.id),
    type: row.type as WorkItemType,
    payload: JSON.parse(String(row.payload)),
    priority: Number(row.priority),
    state: row.state as ItemState,
    attempts: Number(row.attempts),
    enqueuedAt: Number(row.enqueued_at),
    updatedAt: Number(row.updated_at),
  };
  if (row.last_error != null) status.lastError = String(row.last_error);
  if (row.started_at != null) status.startedAt = Number(row.started_at);
  if (row.finished_at != null) status.finishedAt = Number(row.finished_at);
  return status;
}
