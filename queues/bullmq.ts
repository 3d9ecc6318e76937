/**
 * The `redis` queue engine, on BullMQ (`bullmq` 6.7.0, with `ioredis` 5.11.1 installed explicitly:
 * it is an optional peer of `bullmq`). Many worker processes on many machines share one Redis;
 * it runs under Deno (through `npm:`) and under Node (the npm build) alike. Status, stats and
 * the dead letters are BullMQ's own records (the job hashes, the state lists and sets, the
 * failed set): there is no parallel store.
 *
 * | our outcome / operation | BullMQ |
 * |---|---|
 * | ack | the processor returns: the job is completed |
 * | retry | `job.updateData` with the narrowed payload when given, then a throw: the job has `attempts` without a practical limit and a custom backoff whose `backoffStrategy` returns our `delayMs` |
 * | dead | a throw of `UnrecoverableError`: failed at once, `failedReason` is our error |
 * | release | `job.moveToWait(token)` then a throw of `WaitingError`: back to waiting (the front of its priority), no attempt counted |
 * | attempts | `attemptsMade` at delivery (completed jobs count their last, successful attempt: one is taken off) |
 * | dead letters | the failed set, oldest first (`getJobs(["failed"], …, asc)`) |
 * | retry of a dead letter | `job.retry("failed", { resetAttemptsMade, resetAttemptsStarted })` |
 * | bury | a job flagged as buried, added unprioritised at the head of the queue (BullMQ serves unprioritised jobs first): the next worker to take it fails it with `UnrecoverableError` without running it, so it is dead as soon as a consumer has a free slot (`bury` is called from inside a delivery, so one is running; until then its status says queued). A done or dead job with its id is replaced; a queued or running one keeps its course |
 * | status | `waiting`, `prioritized`, `delayed`, `waiting-children` → queued; `active` → running; `completed` → done; `failed` → dead; `attemptsMade`, `failedReason`, `timestamp`, `processedOn`, `finishedOn` |
 * | stats | `getJobCounts` |
 *
 * **Priority.** BullMQ runs a lower number first, from 1 to 2^21-1, and jobs without a priority
 * before all prioritised ones, so every job gets one: our priority p (an integer from -1,000,000
 * to 1,000,000, higher first) becomes `1,000,001 - p`, from 1 to 2,000,001, which fits: the
 * mapping is exact, no two priorities share a BullMQ priority. A priority outside our range (or
 * not an integer) is clamped and rounded first. Ties run in the order they were queued (BullMQ's
 * priority counter); a released item goes to the front of its priority.
 *
 * **Ids.** BullMQ refuses custom job ids with `:` (the separator of its keys) and ids that read
 * as integers (`${parseInt(id, 10)}` equal to the id: `12`, `-3`, `NaN`). An id is encoded by
 * writing `%` as `%25` and `:` as `%3A`, and, when the result still reads as an integer, its first
 * character as `%XX`: `packument:ab` → `packument%3Aab`, `12` → `%312`. Decoding turns every
 * `%XX` back, so the encoding is reversible and ids stay readable in Redis.
 *
 * **Dedup.** Adding an existing job id returns the existing job, whatever its state, so
 * `enqueue` reads each id's state first: waiting, delayed or active ids are duplicates; done or
 * dead ones are removed (BullMQ refuses to remove a locked job: one running again meanwhile is a
 * duplicate), then added again with the new ones, all in one `addBulk` (a MULTI: the call's
 * items are queued together). The read, the removal and the add are separate steps: two
 * producers enqueueing one done id at the same moment may both report it accepted (it is queued
 * once, or runs twice: both were accepted); a done id re-enqueued by a producer that dies between
 * the removal and the add is gone (the caller saw no answer and enqueues again). BullMQ's own
 * atomic `deduplication` option was not used: it keys jobs by a generated id, so a done item
 * could no longer be found by its id.
 *
 * **Crashes.** An item in hand holds a lock of `lockDurationMs`, renewed every half of it; when
 * its process dies the lock expires and a worker's stalled check (every `stalledIntervalMs`)
 * puts it back, the attempt not counted, at the first or second check after the lock expired
 * (QUEUES.md measured 60 s with the defaults, 3 s with a 3 s lock and a 1 s interval). Every
 * worker on a queue must use the same two settings: a worker on the defaults delays the others'
 * recovery (QUEUES.md). An item whose process dies more than `maxStalledCount` times goes dead
 * ("job stalled more than allowable limit"). {@linkcode BullMqQueue.close} during a `consume`
 * leaves the items in hand to that recovery, as a crash would.
 *
 * **Redis restarts.** Workers reconnect by themselves (a command waits for the connection: the
 * queue's own commands for about 10 s, the workers' without limit); an item in hand whose lock
 * expires while Redis is away is put back and may run twice. Nothing is lost only when
 * Redis persists its data: `appendonly yes` with `appendfsync everysec` (at most a second of
 * writes lost in a crash of Redis itself; a graceful restart loses nothing), or RDB snapshots
 * (`save` rules: everything since the last snapshot is lost in a crash), and
 * `maxmemory-policy noeviction` (BullMQ warns at connection time about any other policy: an
 * evicted job key corrupts the queue). A Redis restarted without persistence comes back empty:
 * every queued, running, done and dead item is gone and workers idle; enqueue the work again
 * (a new pass of a set fetches again only the packuments whose `_rev` changed).
 *
 * @module
 */

import {
  type Job,
  Queue,
  UnrecoverableError,
  WaitingError,
  Worker,
  type WorkerOptions,
} from "bullmq";
import { Redis, type RedisOptions } from "ioredis";
import {
  MAX_PRIORITY,
  MIN_PRIORITY,
  type WorkItem,
  type WorkItemType,
} from "../src/worker/items.ts";
import type {
  ConsumeOptions,
  DeliveryHandler,
  EnqueueResult,
  ItemState,
  ItemStatus,
  QueueEngine,
  QueueStats,
} from "../src/worker/queue.ts";
import { describe } from "../src/_util/describe.ts";
import { scheduleItem } from "./_bullmq_schedule.ts";

/** BullMQ's default lock duration, ours too: every worker on a queue must use the same. */
export const DEFAULT_LOCK_DURATION_MS = 30_000;
/** BullMQ's default stalled-check interval, ours too: every worker must use the same. */
export const DEFAULT_STALLED_INTERVAL_MS = 30_000;
/** How many times an item may be found stalled before it goes dead (BullMQ's default). */
export const DEFAULT_MAX_STALLED_COUNT = 1;
/** The BullMQ queue name by default. */
export const DEFAULT_QUEUE_NAME = "all_docs";
/** The Redis key prefix by default (BullMQ's). */
export const DEFAULT_PREFIX = "bull";

/** Options of {@linkcode BullMqQueue.open}. */
export interface BullMqQueueOptions {
  /** The BullMQ queue: every process of one deployment uses the same.
   * @default {"all_docs"} */
  queueName?: string;
  /** The prefix of every Redis key.
   * @default {"bull"} */
  prefix?: string;
  /** How long an item in hand stays locked without a renewal, in ms (see the module docs:
   * every worker must share it).
   * @default {30000} */
  lockDurationMs?: number;
  /** How often a worker looks for items whose lock expired, in ms (every worker must share it).
   * @default {30000} */
  stalledIntervalMs?: number;
  /** Stalls an item survives before it goes dead.
   * @default {1} */
  maxStalledCount?: number;
  /** Receives connection and background errors (BullMQ retries by itself).
   * @default {writes one line to stderr} */
  onError?: (error: Error) => void;
}

/** What `redis://` URL parsing yields: ioredis connection options. */
export interface RedisTarget {
  /** The host name or address. */
  host: string;
  /** The port. */
  port: number;
  /** The database number. */
  db: number;
  /** From the URL's user, if any. */
  username?: string;
  /** From the URL's password, if any. */
  password?: string;
  /** Set for `rediss://` (TLS). */
  tls?: Record<string, never>;
}

/** A job's `data`: the item's payload and priority, plus what BullMQ has no field for. */
interface JobData {
  payload: unknown;
  priority: number;
  /** Set by {@linkcode BullMqQueue.retryDead}: when it was queued again. */
  retriedAt?: number;
  /** Set by {@linkcode BullMqQueue.bury}: the next worker fails the job with `error`. */
  buried?: { error: string; attempts: number };
  /** Set on the jobs of a {@linkcode BullMqQueue.schedule}: the worker enqueues this item. */
  scheduled?: WorkItem;
}

/** A BullMQ job of this engine. */
type ItemJob = Job<JobData, unknown, string>;

/** A retry outcome carried to the backoff strategy. */
class RetryLater extends Error {
  override name = "RetryLater";
  constructor(message: string, readonly delayMs: number) {
    super(message);
  }
}

/** Custom backoff type name: the delay comes from {@linkcode RetryLater}. */
const BACKOFF_TYPE = "all_docs";
/** Attempts BullMQ allows: the worker core decides when an item goes dead. */
const UNLIMITED_ATTEMPTS = 2 ** 31 - 1;
/** Delay before an unexpected error (not an outcome) is retried, in ms. */
const UNEXPECTED_RETRY_MS = 1000;
/** How long a BullMQ worker waits after a connection error before trying again, in ms. */
const RECONNECT_RETRY_MS = 500;
/** Retries of a queue command while Redis is unreachable (ioredis backs off to 2 s: ~10 s). */
const QUEUE_COMMAND_RETRIES = 20;

/**
 * Parses `redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]` (`rediss://` for TLS).
 *
 * @param url The URL.
 * @returns The connection target.
 * @throws {TypeError} When `url` is not such a URL (the message never shows a password).
 *
 * @example
 * ```ts
 * import { parseRedisUrl } from "./bullmq.ts";
 * const target = parseRedisUrl("redis://127.0.0.1:6380/2");
 * console.assert(target.host === "127.0.0.1" && target.port === 6380 && target.db === 2);
 * ```
 */
export function parseRedisUrl(url: string): RedisTarget {
  const fail = (why: string, shown: string = describe(url)): never => {
    throw new TypeError(
      `Cannot open the redis queue: 'url' must be redis://HOST:PORT[/DB] (${why}), received ${shown}`,
    );
  };
  if (typeof url !== "string") fail("not a string");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail("not a URL");
  }
  const shown = parsed.password
    ? describe(url.replace(`:${parsed.password}@`, ":***@"))
    : undefined;
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    fail("the scheme is redis: or rediss:", shown);
  }
  if (parsed.hostname === "") fail("no host", shown);
  if (parsed.search !== "" || parsed.hash !== "") fail("no query or fragment", shown);
  const path = parsed.pathname.replace(/^\//, "");
  if (path !== "" && !/^\d{1,5}$/.test(path)) fail("the path is a database number", shown);
  const target: RedisTarget = {
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: parsed.port === "" ? 6379 : Number(parsed.port),
    db: path === "" ? 0 : Number(path),
  };
  if (parsed.username) target.username = decodeURIComponent(parsed.username);
  if (parsed.password) target.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === "rediss:") target.tls = {};
  return target;
}

/**
 * Encodes an item id as a BullMQ job id (see the module docs): reversible, never with `:`,
 * never integer-looking.
 *
 * @param id The item id (not empty).
 * @returns The job id.
 * @throws {RangeError} When `id` is empty (BullMQ would make up an id).
 *
 * @example
 * ```ts
 * import { decodeJobId, encodeJobId } from "./bullmq.ts";
 * console.assert(encodeJobId("packument:ab") === "packument%3Aab");
 * console.assert(encodeJobId("12") === "%312" && decodeJobId("%312") === "12");
 * ```
 */
export function encodeJobId(id: string): string {
  if (id === "") throw new RangeError("Cannot queue an item with an empty id");
  const escaped = id.replace(/[%:]/g, (c) => c === "%" ? "%25" : "%3A");
  if (`${parseInt(escaped, 10)}` !== escaped) return escaped;
  const code = escaped.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
  return `%${code}${escaped.slice(1)}`;
}

/**
 * Decodes a job id made by {@linkcode encodeJobId}.
 *
 * @param jobId The job id.
 * @returns The item id.
 */
export function decodeJobId(jobId: string): string {
  return jobId.replace(
    /%([0-9A-F]{2})/g,
    (_, hex: string) => String.fromCharCode(parseInt(hex, 16)),
  );
}

/**
 * Our priority (higher first) as a BullMQ priority (lower first, 1 to 2^21-1): see the module
 * docs.
 *
 * @param priority The item's priority.
 * @returns The BullMQ priority.
 *
 * @example
 * ```ts
 * import { bullPriority } from "./bullmq.ts";
 * console.assert(bullPriority(1_000_000) === 1 && bullPriority(0) === 1_000_001);
 * console.assert(bullPriority(-1_000_000) === 2_000_001);
 * ```
 */
export function bullPriority(priority: number): number {
  const p = Number.isFinite(priority) ? Math.round(priority) : 0;
  return MAX_PRIORITY + 1 - Math.min(MAX_PRIORITY, Math.max(MIN_PRIORITY, p));
}

function integerOption(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot open the redis queue: '${name}' must be an integer from ${min} to ${max}, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

function nameOption(name: string, value: string): string {
  if (typeof value !== "string" || !/^[A-Za-z0-9_.-]{1,100}$/.test(value)) {
    throw new TypeError(
      `Cannot open the redis queue: '${name}' must be 1 to 100 letters, digits, '_', '.' or '-', received ${
        describe(value)
      }`,
    );
  }
  return value;
}

/** Settings checked by {@linkcode BullMqQueue.open}. */
interface Settings {
  queueName: string;
  prefix: string;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  onError: (error: Error) => void;
}

function settingsOf(options: BullMqQueueOptions): Settings {
  return {
    queueName: nameOption("queueName", options.queueName ?? DEFAULT_QUEUE_NAME),
    prefix: nameOption("prefix", options.prefix ?? DEFAULT_PREFIX),
    lockDurationMs: integerOption(
      "lockDurationMs",
      options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS,
      1000,
      3_600_000,
    ),
    stalledIntervalMs: integerOption(
      "stalledIntervalMs",
      options.stalledIntervalMs ?? DEFAULT_STALLED_INTERVAL_MS,
      100,
      3_600_000,
    ),
    maxStalledCount: integerOption(
      "maxStalledCount",
      options.maxStalledCount ?? DEFAULT_MAX_STALLED_COUNT,
      0,
      1000,
    ),
    onError: options.onError ??
      ((error) => console.error(`redis queue: ${error.message}`)),
  };
}

/** A running `consume`: its BullMQ worker and its connection. */
interface Consumer {
  worker: Worker<JobData, unknown, string>;
  client: Redis;
}

/**
 * The Redis queue engine on BullMQ: see the module documentation.
 *
 * @example
 * ```ts ignore
 * import { BullMqQueue } from "./bullmq.ts";
 * const queue = await BullMqQueue.open("redis://127.0.0.1:6379/0");
 * await queue.enqueue([{ type: "packument", id: "packument:1", payload: { registry: "http://127.0.0.1/", names: ["ms"] }, priority: 0, attempts: 0 }]);
 * await queue.close();
 * ```
 */
export class BullMqQueue implements QueueEngine {
  /** Always `redis`. */
  readonly name = "redis";
  #target: RedisTarget;
  #settings: Settings;
  #client: Redis;
  #queue: Queue<JobData, unknown, string>;
  #consumers = new Set<Consumer>();
  #closed = false;
  /** Wakes the running `consume` calls when the engine closes. */
  #closing = new AbortController();

  private constructor(target: RedisTarget, settings: Settings, client: Redis) {
    this.#target = target;
    this.#settings = settings;
    this.#client = client;
    this.#queue = new Queue<JobData, unknown, string>(settings.queueName, {
      connection: client,
      prefix: settings.prefix,
    });
    this.#queue.on("error", (error: Error) => settings.onError(error));
  }

  /**
   * Connects to Redis and opens the queue.
   *
   * @param url `redis://HOST:PORT[/DB]` (see {@linkcode parseRedisUrl}).
   * @param options Queue name, prefix, stalled-job settings.
   * @returns The engine, connected.
   * @throws {TypeError} When `url` or a name option is malformed.
   * @throws {RangeError} When a number option is out of range.
   * @throws {Error} When Redis cannot be reached.
   */
  static async open(url: string, options: BullMqQueueOptions = {}): Promise<BullMqQueue> {
    const target = parseRedisUrl(url);
    const settings = settingsOf(options);
    const client = connect(target, { maxRetriesPerRequest: QUEUE_COMMAND_RETRIES });
    // Connection errors reach `onError` through BullMQ (the queue's error event).
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      const shown = `redis://${target.host}:${target.port}/${target.db}`;
      throw new Error(
        `Cannot open the redis queue: cannot connect to ${shown}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const engine = new BullMqQueue(target, settings, client);
    try {
      await engine.#queue.waitUntilReady();
    } catch (error) {
      await engine.close();
      throw error;
    }
    return engine;
  }

  async enqueue(items: readonly WorkItem[]): Promise<EnqueueResult> {
    this.#open();
    const result: EnqueueResult = { accepted: [], duplicates: [] };
    const unique: WorkItem[] = [];
    const seen = new Set<string>();
    for (const item of items) {
      if (seen.has(item.id)) result.duplicates.push(item.id);
      else (seen.add(item.id), unique.push(item));
    }
    const jobIds = unique.map((item) => encodeJobId(item.id));
    const states = await Promise.all(jobIds.map((jobId) => this.#queue.getJobState(jobId)));
    const removed = await Promise.all(jobIds.map((jobId, i) => {
      const state = states[i];
      if (state === "unknown") return true;
      if (state === "completed" || state === "failed") return this.#remove(jobId);
      return false;
    }));
    const adds = unique.filter((_, i) => removed[i]);
    if (adds.length > 0) {
      await this.#queue.addBulk(adds.map((item) => ({
        name: item.type,
        data: { payload: item.payload, priority: item.priority },
        opts: { ...jobOptions(item), priority: bullPriority(item.priority) },
      })));
    }
    for (const [i, item] of unique.entries()) {
      (removed[i] ? result.accepted : result.duplicates).push(item.id);
    }
    return result;
  }

  async bury(item: WorkItem, error: string): Promise<void> {
    this.#open();
    const jobId = encodeJobId(item.id);
    const state = await this.#queue.getJobState(jobId);
    // A queued or running job with this id keeps its course.
    if (state !== "unknown" && !(state === "completed" || state === "failed")) return;
    if (state !== "unknown" && !(await this.#remove(jobId))) return;
    const data: JobData = {
      payload: item.payload,
      priority: item.priority,
      buried: { error, attempts: item.attempts },
    };
    // Unprioritised and LIFO: the very next job any worker takes.
    await this.#queue.add(item.type, data, { ...jobOptions(item), lifo: true });
  }

  /**
   * Enqueues `item` every `everyMs` ms (the first at once) through one BullMQ job scheduler per
   * item id, or with `everyMs` 0 removes it: see `./_bullmq_schedule.ts`.
   *
   * @param item The item.
   * @param everyMs The period in ms (1,000 to 2,147,483,647), or 0.
   * @throws {RangeError} When `everyMs` is out of range.
   */
  async schedule(item: WorkItem, everyMs: number): Promise<void> {
    this.#open();
    await scheduleItem(this.#queue, encodeJobId(item.id), item, everyMs);
  }

  async consume(handler: DeliveryHandler, options: ConsumeOptions): Promise<void> {
    this.#open();
    const { concurrency, signal } = options;
    if (signal.aborted) return;
    const settings = this.#settings;
    const client = connect(this.#target, { maxRetriesPerRequest: null });
    client.on("error", () => {}); // Reported by BullMQ through the worker's error event.
    const workerOptions: WorkerOptions = {
      connection: client,
      prefix: settings.prefix,
      concurrency,
      autorun: false,
      lockDuration: settings.lockDurationMs,
      stalledInterval: settings.stalledIntervalMs,
      maxStalledCount: settings.maxStalledCount,
      runRetryDelay: RECONNECT_RETRY_MS,
      settings: {
        backoffStrategy: (_attempts, _type, error) =>
          error instanceof RetryLater ? error.delayMs : UNEXPECTED_RETRY_MS,
      },
    };
    const worker = new Worker<JobData, unknown, string>(
      settings.queueName,
      (job, token) => this.#process(job as ItemJob, token, handler, signal),
      workerOptions,
    );
    worker.on("error", (error: Error) => settings.onError(error));
    const consumer: Consumer = { worker, client };
    this.#consumers.add(consumer);
    const running = worker.run();
    const stop = () => void worker.close().catch(settings.onError);
    signal.addEventListener("abort", stop, { once: true });
    this.#closing.signal.addEventListener("abort", stop, { once: true });
    try {
      await running;
    } finally {
      signal.removeEventListener("abort", stop);
      this.#closing.signal.removeEventListener("abort", stop);
      await worker.close();
      this.#consumers.delete(consumer);
      client.disconnect();
    }
  }

  async status(id: string): Promise<ItemStatus | undefined> {
    this.#open();
    const job = await this.#queue.getJob(encodeJobId(id)) as ItemJob | undefined;
    if (!job) return undefined;
    const state = stateOf(await job.getState());
    return state && recordOf(job, state);
  }

  async stats(): Promise<QueueStats> {
    this.#open();
    const counts = await this.#queue.getJobCounts(
      "waiting",
      "prioritized",
      "delayed",
      "waiting-children",
      "active",
      "completed",
      "failed",
    );
    const count = (name: string) => counts[name] ?? 0;
    return {
      queued: count("waiting") + count("prioritized") + count("delayed") +
        count("waiting-children"),
      running: count("active"),
      done: count("completed"),
      dead: count("failed"),
    };
  }

  async dead(limit = 100): Promise<ItemStatus[]> {
    this.#open();
    const count = Math.floor(limit);
    if (!(count > 0)) return [];
    const jobs = await this.#queue.getJobs(["failed"], 0, count - 1, true) as ItemJob[];
    return jobs.map((job) => recordOf(job, "dead"));
  }

  async retryDead(id: string): Promise<boolean> {
    this.#open();
    const job = await this.#queue.getJob(encodeJobId(id)) as ItemJob | undefined;
    if (!job || (await job.getState()) !== "failed") return false;
    const { payload, priority } = job.data;
    await job.updateData({ payload, priority, retriedAt: Date.now() });
    // A buried job was added unprioritised: it takes its priority now.
    if (job.priority !== bullPriority(priority)) {
      await job.changePriority({ priority: bullPriority(priority) });
    }
    try {
      await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
      return true;
    } catch {
      return false; // No longer failed: retried or removed meanwhile.
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Like a crash: items in hand are left to their locks (see the module docs).
    await Promise.all([...this.#consumers].map(async ({ worker, client }) => {
      await worker.close(true);
      client.disconnect();
    }));
    this.#closing.abort();
    await this.#queue.close();
    this.#client.disconnect();
  }

  #open(): void {
    if (this.#closed) throw new Error("Cannot use the redis queue: it is closed");
  }

  /** Removes a done or dead job; `false` when it is locked (running again) meanwhile. */
  async #remove(jobId: string): Promise<boolean> {
    return (await this.#queue.remove(jobId)) === 1;
  }

  async #process(
    job: ItemJob,
    token: string | undefined,
    handler: DeliveryHandler,
    signal: AbortSignal,
  ): Promise<void> {
    const data = job.data;
    if (data.buried) throw new UnrecoverableError(data.buried.error);
    if (signal.aborted || this.#closed) {
      // Taken while stopping: back to waiting at once.
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (data.scheduled) {
      await this.enqueue([data.scheduled]);
      return;
    }
    const item = {
      type: job.name as WorkItemType,
      id: decodeJobId(job.id!),
      payload: data.payload,
      priority: data.priority,
      attempts: job.attemptsMade,
    } as WorkItem;
    const outcome = await handler(item);
    switch (outcome.kind) {
      case "ack":
        return;
      case "retry":
        if (outcome.payload !== undefined) {
          await job.updateData({ ...data, payload: outcome.payload });
        }
        throw new RetryLater(outcome.error, outcome.delayMs);
      case "dead":
        throw new UnrecoverableError(outcome.error);
      case "release":
        await job.moveToWait(token);
        throw new WaitingError();
    }
  }
}

function connect(target: RedisTarget, extra: Partial<RedisOptions>): Redis {
  return new Redis({ ...target, lazyConnect: true, ...extra } as RedisOptions);
}

/** Options of every job: no removal (the records are the status), no stack traces. */
function jobOptions(item: WorkItem) {
  return {
    jobId: encodeJobId(item.id),
    attempts: UNLIMITED_ATTEMPTS,
    backoff: { type: BACKOFF_TYPE },
    removeOnComplete: false,
    removeOnFail: false,
    stackTraceLimit: 0,
  };
}

function stateOf(state: string): ItemState | undefined {
  switch (state) {
    case "waiting":
    case "prioritized":
    case "delayed":
    case "waiting-children":
    case "paused":
      return "queued";
    case "active":
      return "running";
    case "completed":
      return "done";
    case "failed":
      return "dead";
    default:
      return undefined;
  }
}

function recordOf(job: ItemJob, state: ItemState): ItemStatus {
  const data = job.data;
  const attempts = data.buried
    ? data.buried.attempts
    : state === "done"
    ? Math.max(0, job.attemptsMade - 1) // BullMQ counts the successful attempt too.
    : job.attemptsMade;
  const enqueuedAt = data.retriedAt ?? job.timestamp;
  const record: ItemStatus = {
    id: decodeJobId(job.id!),
    type: job.name as WorkItemType,
    payload: data.payload,
    priority: data.priority,
    state,
    attempts,
    enqueuedAt,
    updatedAt: Math.max(enqueuedAt, job.processedOn ?? 0, job.finishedOn ?? 0),
  };
  const lastError = data.buried?.error ?? job.failedReason;
  if (lastError) record.lastError = lastError;
  if (job.processedOn) record.startedAt = job.processedOn;
  if ((state === "done" || state === "dead") && job.finishedOn) record.finishedAt = job.finishedOn;
  return record;
}
