/**
 * `worker start|enqueue|status|dead`: the worker runtime from the command line. `start` runs the
 * consumer and the worker API (with the read replica) in one process; the others talk to a
 * running worker over its API (`--worker URL`) or straight to a durable queue (`--queue kv`, or
 * `--queue redis://HOST:PORT`, which many `worker start` processes on many machines share).
 *
 * @module
 */

import { host } from "../host.ts";
import { Cache } from "../../src/storage/cache.ts";
import { eventLine, Worker, type WorkerEvent } from "../../src/worker/worker.ts";
import type { EnqueueResult, ItemStatus, QueueEngine, QueueStats } from "../../src/worker/queue.ts";
import {
  MAX_BATCH_NAMES,
  MAX_PRIORITY,
  MIN_PRIORITY,
  toWorkItem,
  type WorkItem,
} from "../../src/worker/items.ts";
import { WorkItemError } from "../../src/worker/items.ts";
import { MAX_PAGE_LIMIT } from "../../src/couchdb/rows.ts";
import { DEFAULT_WINDOW } from "../../src/jobs/follow_changes.ts";
import { toWorkItems } from "../../src/worker/worker.ts";
import { workerHandlers } from "../../src/worker/handlers.ts";
import type { OidcOptions } from "../../src/worker/oidc.ts";
import {
  clientFor,
  type Command,
  type CommandContext,
  originKeyOf,
  PACKUMENTS_VALUES,
  packumentsFlag,
  type QueueKind,
  type RedisQueueSettings,
  type Server,
} from "../context.ts";
import { err, out } from "../io.ts";
import {
  checkRedisUrl,
  checkServiceUrl,
  type GlobalOptions,
  maskUrl,
  UsageError,
} from "../options.ts";
import { registryLookup } from "../registry.ts";
import { HTTP_PEERS, loadWithPeers } from "../peers.ts";
import { loadPivots } from "../pivots_file.ts";
import { isLoopback, listenAddress, listenAndAnnounce } from "./serve.ts";
import { readNameListFile } from "./packument.ts";

/** The port `worker start` listens on when `--port` is not given. */
export const DEFAULT_WORKER_PORT = 5985;
/** Keys a worker lists to seed its bloom filter before giving it up (as `packument fetch-list`). */
const WORKER_BLOOM_SEED_LIMIT = 100_000;
/** What a worker's bloom filter is sized for: the seed plus what it fetches over a long run. */
const WORKER_BLOOM_ITEMS = WORKER_BLOOM_SEED_LIMIT + 1_000_000;
/** Names per `packument` item `worker enqueue packuments` makes. */
export const DEFAULT_BATCH_SIZE = 100;
/** The most items in hand one worker process allows. */
export const MAX_WORKER_ITEMS = 256;

/** The redis queue's lock duration when none is given (BullMQ's): every worker shares it. */
export const DEFAULT_REDIS_LOCK_MS = 30_000;
/** The redis queue's stalled-check interval when none is given (BullMQ's): every worker
 * shares it. */
export const DEFAULT_REDIS_STALLED_MS = 30_000;

/** The queue a command uses: its kind, and for `redis` its URL. */
interface QueueChoice {
  kind: QueueKind;
  url?: string;
}

function queueOf(ctx: CommandContext, fallback: QueueKind): QueueChoice {
  const raw = ctx.values["queue"] ?? host().env("ALL_DOCS_QUEUE");
  if (raw === undefined || raw === "") return { kind: fallback };
  const source = ctx.values["queue"] !== undefined ? "--queue" : "ALL_DOCS_QUEUE";
  const text = String(raw);
  if (text === "memory" || text === "kv") return { kind: text };
  if (/^rediss?:\/\//i.test(text)) return { kind: "redis", url: checkRedisUrl(source, text) };
  throw new UsageError(
    `Invalid ${source}: expected memory, kv or redis://HOST:PORT[/DB], received '${maskUrl(text)}'`,
  );
}

/** A lock setting of the redis queue: its flag, else its variable, else the default. */
function lockSetting(
  ctx: CommandContext,
  flag: string,
  name: string,
  min: number,
  fallback: number,
): number {
  const fromFlag = ctx.values[flag];
  const raw = fromFlag ?? host().env(name);
  if (raw === undefined || raw === "") return fallback;
  const source = fromFlag !== undefined ? `--${flag}` : name;
  const value = Number(raw);
  if (!/^\d+$/.test(String(raw)) || value < min || value > 3_600_000) {
    throw new UsageError(
      `Invalid ${source}: expected an integer from ${min} to 3600000 (ms), received '${
        String(raw)
      }'`,
    );
  }
  return value;
}

/** The settings of a redis queue, or a usage error for a lock flag given to another queue. */
function redisSettings(
  ctx: CommandContext,
  queue: QueueChoice,
  onError: (error: Error) => void,
): RedisQueueSettings | undefined {
  // Read (and checked) for every queue: a bad value is a mistake wherever it is set.
  const lockDurationMs = lockSetting(
    ctx,
    "lock-ms",
    "ALL_DOCS_WORKER_LOCK_MS",
    1000,
    DEFAULT_REDIS_LOCK_MS,
  );
  const stalledIntervalMs = lockSetting(
    ctx,
    "stalled-ms",
    "ALL_DOCS_WORKER_STALLED_MS",
    100,
    DEFAULT_REDIS_STALLED_MS,
  );
  if (queue.url === undefined) {
    const flag = ["lock-ms", "stalled-ms"].find((name) => ctx.values[name] !== undefined);
    if (flag !== undefined) {
      throw new UsageError(`--${flag} is a setting of a redis queue, not of the ${queue.kind} one`);
    }
    return undefined;
  }
  return { url: queue.url, lockDurationMs, stalledIntervalMs, onError };
}

/** Reports the redis queue's connection errors, each message at most once every 10 s (a Redis
 * that is away fails every reconnection attempt of every client). */
function redisErrorLog(line: (message: string) => string): (error: Error) => void {
  const seen = new Map<string, number>();
  return (error) => {
    const message = error?.message ?? String(error);
    const now = Date.now();
    if (now - (seen.get(message) ?? -Infinity) < 10_000) return;
    if (seen.size >= 100) seen.clear();
    seen.set(message, now);
    err(line(message));
  };
}

function integerFlag(
  ctx: CommandContext,
  flag: string,
  min: number,
  max: number,
  fallback: number,
) {
  const raw = ctx.values[flag];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^-?\d+$/.test(String(raw)) || value < min || value > max) {
    throw new UsageError(
      `Invalid --${flag}: expected an integer from ${min} to ${max}, received '${String(raw)}'`,
    );
  }
  return value;
}

function kvPath(ctx: CommandContext): string {
  const raw = ctx.values["kv-path"];
  if (typeof raw === "string") return raw;
  return `${ctx.options.cacheDir}/queue.kv`;
}

function token(): string | undefined {
  const value = host().env("ALL_DOCS_WORKER_TOKEN");
  return value === undefined || value === "" ? undefined : value;
}

/** The OIDC settings of the push routes, from the flags and the environment. */
function oidcOptions(ctx: CommandContext): OidcOptions | undefined {
  const setting = (flag: string, name: string) => {
    const raw = ctx.values[flag] ?? host().env(name);
    const source = ctx.values[flag] !== undefined ? `--${flag}` : name;
    return raw === undefined || raw === "" ? undefined : { raw: String(raw), source };
  };
  const audience = setting("oidc-audience", "ALL_DOCS_WORKER_OIDC_AUDIENCE");
  const email = setting("oidc-email", "ALL_DOCS_WORKER_OIDC_EMAIL");
  const jwks = host().env("ALL_DOCS_WORKER_OIDC_JWKS_URL");
  if (audience === undefined) {
    if (email !== undefined || (jwks !== undefined && jwks !== "")) {
      throw new UsageError(
        "OIDC for the push routes needs an audience: give --oidc-audience AUD " +
          "(or ALL_DOCS_WORKER_OIDC_AUDIENCE)",
      );
    }
    return undefined;
  }
  if (!/^[\x21-\x7e]{1,2048}$/.test(audience.raw)) {
    throw new UsageError(`Invalid ${audience.source}: expected 1 to 2048 visible ASCII characters`);
  }
  if (email !== undefined && !/^[^@\s]+@[^@\s]+$/.test(email.raw)) {
    throw new UsageError(
      `Invalid ${email.source}: expected an email address, received '${email.raw}'`,
    );
  }
  return {
    audience: audience.raw,
    ...(email !== undefined ? { serviceAccountEmail: email.raw } : {}),
    ...(jwks !== undefined && jwks !== ""
      ? { jwksUrl: checkServiceUrl("ALL_DOCS_WORKER_OIDC_JWKS_URL", jwks) }
      : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Talking to a worker: over its API, or straight to a queue

/** What `enqueue`, `status` and `dead` need from a worker. */
interface WorkerTarget {
  enqueue(items: unknown[]): Promise<EnqueueResult>;
  status(id: string): Promise<ItemStatus | undefined>;
  stats(): Promise<QueueStats>;
  dead(limit: number): Promise<ItemStatus[]>;
  retry(id: string): Promise<boolean>;
  close(): Promise<void>;
}

function apiTarget(base: string): WorkerTarget {
  const secret = token();
  const call = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { accept: "application/json" };
    if (secret !== undefined) headers.authorization = `Bearer ${secret}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(new URL(path, base), {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (cause) {
      throw new Error(`Cannot reach the worker at ${maskUrl(base)}: ${(cause as Error).message}`);
    }
    const text = await response.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (response.status === 401) {
      throw new UsageError(
        "The worker refused the request (401): set ALL_DOCS_WORKER_TOKEN to its token",
      );
    }
    if (response.status === 400) {
      const reason = (value as { reason?: string } | undefined)?.reason ?? text;
      throw new UsageError(`The worker refused the items: ${reason}`);
    }
    return { status: response.status, value };
  };
  const ok = (result: { status: number; value: unknown }, what: string) => {
    if (result.status >= 300) {
      throw new Error(`${what} failed: the worker answered ${result.status}`);
    }
    return result.value;
  };
  return {
    async enqueue(items) {
      return ok(await call("POST", "-/worker/items", { items }), "Enqueue") as EnqueueResult;
    },
    async status(id) {
      const result = await call("GET", `-/worker/items/${encodeURIComponent(id)}`);
      return result.status === 404 ? undefined : ok(result, "Status") as ItemStatus;
    },
    async stats() {
      return ok(await call("GET", "-/worker/stats"), "Stats") as QueueStats;
    },
    async dead(limit) {
      const value = ok(await call("GET", `-/worker/dead?limit=${limit}`), "Listing dead letters");
      return (value as { items: ItemStatus[] }).items;
    },
    async retry(id) {
      const result = await call("POST", `-/worker/dead/${encodeURIComponent(id)}/retry`);
      return result.status === 404 ? false : (ok(result, "Retry"), true);
    },
    close: () => Promise.resolve(),
  };
}

function engineTarget(engine: QueueEngine): WorkerTarget {
  return {
    enqueue: (items) => engine.enqueue(toWorkItems(items)),
    status: (id) => engine.status(id),
    stats: () => engine.stats(),
    dead: (limit) => engine.dead(limit),
    retry: (id) => engine.retryDead(id),
    close: () => engine.close(),
  };
}

async function targetOf(ctx: CommandContext): Promise<WorkerTarget> {
  const raw = ctx.values["worker"] ?? host().env("ALL_DOCS_WORKER_URL");
  if (typeof raw === "string") {
    const source = ctx.values["worker"] !== undefined ? "--worker" : "ALL_DOCS_WORKER_URL";
    const url = checkServiceUrl(source, raw);
    return apiTarget(url.endsWith("/") ? url : `${url}/`);
  }
  const queue = queueOf(ctx, "kv");
  if (queue.kind === "memory") {
    throw new UsageError(
      "No worker to talk to: give --worker URL (or ALL_DOCS_WORKER_URL) of a running worker, " +
        "--queue kv for its queue file, or --queue redis://HOST:PORT for its Redis " +
        "(a memory queue lives inside its worker only)",
    );
  }
  const redis = redisSettings(ctx, queue, redisErrorLog((message) => `redis queue: ${message}`));
  return engineTarget(
    await ctx.openQueue(queue.kind, { path: kvPath(ctx), ...(redis ? { redis } : {}) }),
  );
}

// ---------------------------------------------------------------------------------------------
// worker start

function logEvent(options: GlobalOptions, event: WorkerEvent): void {
  if (options.quiet || event.type === "start") return;
  err(eventLine(event));
}

/** A queue engine that can enqueue an item on a schedule (the redis one). */
interface SchedulingEngine {
  schedule(item: WorkItem, everyMs: number): Promise<void>;
}

/** `--follow-every`: the scheduled follow of `--origin`, checked up front. */
function followSchedule(
  ctx: CommandContext,
  queue: QueueChoice,
  untilIdle: boolean,
): { item: WorkItem; everyMs: number } | undefined {
  const { options, values } = ctx;
  const raw = values["follow-every"];
  const packuments = values["follow-packuments"];
  if (raw === undefined) {
    if (packuments !== undefined) throw new UsageError("--follow-packuments needs --follow-every");
    return undefined;
  }
  const seconds = Number(raw);
  if (!/^\d+$/.test(String(raw)) || (seconds !== 0 && seconds < 1) || seconds > 2_000_000) {
    throw new UsageError(
      `Invalid --follow-every: expected seconds from 1 to 2000000, or 0 to remove the schedule, received '${
        String(raw)
      }'`,
    );
  }
  if (queue.kind !== "redis") {
    throw new UsageError(
      `--follow-every schedules a job in Redis: it needs --queue redis://HOST:PORT, not the ${queue.kind} queue`,
    );
  }
  if (untilIdle && seconds > 0) {
    throw new UsageError("--follow-every never lets the queue go idle: drop --until-idle");
  }
  if (!options.origin || originKeyOf(options) === undefined) {
    throw new UsageError(
      "--follow-every follows --origin: set --origin URL or ALL_DOCS_ORIGIN to the CouchDB replication endpoint",
    );
  }
  if (packuments !== undefined && packuments !== "full" && packuments !== "corgi") {
    throw new UsageError(
      `Invalid --follow-packuments: expected full or corgi, received '${String(packuments)}'`,
    );
  }
  const payload: Record<string, unknown> = { origin: options.origin };
  if (options.originKey !== undefined) payload.originKey = options.originKey;
  if (packuments !== undefined) {
    payload.packuments = packuments;
    if (options.registry !== undefined) payload.registry = options.registry;
  }
  try {
    return { item: toWorkItem({ type: "changes", payload }), everyMs: seconds * 1000 };
  } catch (error) {
    if (error instanceof WorkItemError) throw new UsageError(error.message);
    throw error;
  }
}

async function workerStart(ctx: CommandContext): Promise<number> {
  const { options, values } = ctx;
  const queue = queueOf(ctx, ctx.defaultQueue);
  const redis = redisSettings(
    ctx,
    queue,
    redisErrorLog((message) => JSON.stringify({ type: "queue-error", engine: "redis", message })),
  );
  const address = listenAddress(ctx, DEFAULT_WORKER_PORT, "the worker");
  const bindHost = address.hostname;
  const secret = token();
  if (secret === undefined && !(values["no-auth"] === true && isLoopback(bindHost))) {
    throw new UsageError(
      "worker start needs a token: set ALL_DOCS_WORKER_TOKEN " +
        "(or give --no-auth on a loopback address)",
    );
  }
  if (options.concurrency > MAX_WORKER_ITEMS) {
    throw new UsageError(
      `Invalid --concurrency for a worker: at most ${MAX_WORKER_ITEMS} items in hand, received ${options.concurrency}`,
    );
  }
  const batchSize = integerFlag(ctx, "batch-size", 1, MAX_BATCH_NAMES, DEFAULT_BATCH_SIZE);
  const oidc = oidcOptions(ctx);
  const untilIdle = values["until-idle"] === true;
  const follow = followSchedule(ctx, queue, untilIdle);
  const registries = await registryLookup(options);
  const registry = registries.defaultTarget();
  const partitionsOrigin = originKeyOf(options);
  // Hono (needed by `serve` and `worker start` only), and the runtime's HTTP server, before
  // anything is opened (storage, the queue, a schedule): on Node they are optional packages.
  const { createWorkerApp } = await loadWithPeers(
    "worker start",
    HTTP_PEERS,
    () => import("../../src/worker/api.ts"),
  );
  await ctx.prepareListen();
  const driver = await ctx.openDriver("write");
  let engine: QueueEngine | undefined;
  let server: Server | undefined;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  try {
    // As `packument fetch-list`: a bloom filter answers "not cached" for new names without a
    // read (a read of a missing file costs about as much CPU as storing one). A name another
    // process cached after this one listed the cache is fetched whole instead of revalidated;
    // the cache stays exact either way. A cache of more keys than the seed limit goes without.
    const cache = await Cache.open(driver, {
      ...ctx.cacheOptions,
      bloom: { seedLimit: WORKER_BLOOM_SEED_LIMIT, expectedItems: WORKER_BLOOM_ITEMS },
    });
    engine = await ctx.openQueue(queue.kind, { path: kvPath(ctx), ...(redis ? { redis } : {}) });
    // One schedule per queue and item id, however many workers start with it.
    if (follow) await (engine as unknown as SchedulingEngine).schedule(follow.item, follow.everyMs);
    const worker = new Worker(engine, {
      handlers: workerHandlers({
        client: clientFor(options),
        cache,
        registry,
        registryFor: (url) => registries.forUrl(url),
        batchSize,
        maxAttempts: options.retries + 1,
      }),
      concurrency: options.concurrency,
      retry: { maxAttempts: options.retries + 1 },
      onEvent: (event) => logEvent(options, event),
    });
    const app = createWorkerApp({
      worker,
      token: secret,
      replica: {
        cache,
        packumentOrigin: (name) => registries.forName(name).originKey,
        ...(partitionsOrigin !== undefined ? { partitionsOrigin } : {}),
      },
      ...(options.quiet ? {} : { log: (line: string) => err(line) }),
      ...(oidc ? { push: { oidc } } : {}),
    });
    host().onSignal("SIGINT", onSignal);
    host().onSignal("SIGTERM", onSignal);
    server = await listenAndAnnounce(ctx, address, app.fetch);
    if (server === undefined) return 1;
    if (untilIdle) {
      const running = worker.runUntilIdle();
      const ended = await Promise.race([
        running,
        new Promise<undefined>((resolve) =>
          stop.signal.addEventListener("abort", () => resolve(undefined))
        ),
      ]);
      const result = ended ?? await running;
      const stats = await engine.stats();
      const summary = { type: "summary", ...stats };
      if (options.json) await out(JSON.stringify(summary) + "\n");
      else if (!options.quiet) err(`done ${stats.done}, dead ${stats.dead}`);
      return result.dead > 0 ? 1 : 0;
    }
    await worker.run(stop.signal);
    return 0;
  } finally {
    host().offSignal("SIGINT", onSignal);
    host().offSignal("SIGTERM", onSignal);
    stop.abort();
    await server?.shutdown().catch(() => {});
    await engine?.close();
    await driver.close();
  }
}

// ---------------------------------------------------------------------------------------------
// worker enqueue, status, dead

async function readNames(file: string): Promise<string[]> {
  const { names } = await readNameListFile(file);
  if (names.length === 0) throw new UsageError(`The name list '${file}' has no names`);
  return names;
}

async function workerEnqueue(ctx: CommandContext): Promise<number> {
  const { options, values, args } = ctx;
  const what = args[0];
  const priority = integerFlag(ctx, "priority", MIN_PRIORITY, MAX_PRIORITY, 0);
  const representation = values["abbreviated"] === true ? "corgi" : "full";
  if (what === "packuments" && values["packuments"] !== undefined) {
    throw new UsageError(
      "--packuments is for partition-set and changes: 'packuments FILE' takes --abbreviated",
    );
  }
  let items: unknown[];
  if (what === "partition-set") {
    if (args.length > 1) throw new UsageError(`Unexpected argument '${args[1]}'`);
    const originKey = originKeyOf(options);
    if (!options.origin || originKey === undefined) {
      throw new UsageError(
        "Missing origin: set --origin URL or ALL_DOCS_ORIGIN to the CouchDB replication endpoint",
      );
    }
    if (typeof values["pivots"] !== "string") {
      throw new UsageError("Missing --pivots FILE: worker enqueue partition-set --pivots FILE");
    }
    const fetchPackuments = packumentsFlag(values);
    const pivots = await loadPivots(values["pivots"]);
    const payload: Record<string, unknown> = { origin: options.origin, pivots };
    if (options.originKey !== undefined) payload.originKey = options.originKey;
    if (fetchPackuments) {
      payload.packuments = fetchPackuments;
      if (options.registry !== undefined) payload.registry = options.registry;
    }
    items = [{ type: "partition-set", payload, priority }];
  } else if (what === "changes") {
    if (args.length > 1) throw new UsageError(`Unexpected argument '${args[1]}'`);
    if (!options.origin || originKeyOf(options) === undefined) {
      throw new UsageError(
        "Missing origin: set --origin URL or ALL_DOCS_ORIGIN to the CouchDB replication endpoint",
      );
    }
    const payload: Record<string, unknown> = { origin: options.origin };
    if (options.originKey !== undefined) payload.originKey = options.originKey;
    const fetchPackuments = packumentsFlag(values);
    if (fetchPackuments) {
      payload.packuments = fetchPackuments;
      if (options.registry !== undefined) payload.registry = options.registry;
    }
    if (values["window"] !== undefined) {
      payload.window = integerFlag(ctx, "window", 0, Number.MAX_SAFE_INTEGER, 0);
    }
    if (values["limit"] !== undefined) {
      payload.limit = integerFlag(ctx, "limit", 1, MAX_PAGE_LIMIT, MAX_PAGE_LIMIT);
    }
    items = [{ type: "changes", payload, priority }];
  } else if (what === "packuments") {
    const file = args[1];
    if (file === undefined) throw new UsageError("Missing FILE: worker enqueue packuments FILE");
    const batchSize = integerFlag(ctx, "batch-size", 1, MAX_BATCH_NAMES, DEFAULT_BATCH_SIZE);
    const names = await readNames(file);
    const registry = (await registryLookup(options)).defaultTarget().url;
    items = [];
    for (let i = 0; i < names.length; i += batchSize) {
      const payload = { registry, names: names.slice(i, i + batchSize), representation };
      items.push({ type: "packument", payload, priority });
    }
  } else {
    throw new UsageError(
      what === undefined
        ? "Missing what to enqueue: worker enqueue partition-set --pivots FILE, worker enqueue changes, or worker enqueue packuments FILE"
        : `Cannot enqueue '${what}': expected partition-set, changes or packuments`,
    );
  }
  // Checked here, before any request: the worker would refuse them anyway.
  try {
    items.forEach((item) => toWorkItem(item));
  } catch (error) {
    if (error instanceof WorkItemError) throw new UsageError(error.message);
    throw error;
  }
  const target = await targetOf(ctx);
  try {
    const result = await target.enqueue(items);
    if (options.json) await out(JSON.stringify({ type: "enqueued", ...result }) + "\n");
    else {
      await out(
        `accepted ${result.accepted.length}, duplicates ${result.duplicates.length}\n` +
          result.accepted.map((id) => `  ${id}\n`).join(""),
      );
    }
    return 0;
  } finally {
    await target.close();
  }
}

function statusLine(status: ItemStatus): string {
  const error = status.lastError ? `  ${status.lastError}` : "";
  return `${status.id}  ${status.state}  attempts ${status.attempts}${error}`;
}

async function workerStatus(ctx: CommandContext): Promise<number> {
  const { options, args } = ctx;
  const target = await targetOf(ctx);
  try {
    const id = args[0];
    if (id === undefined) {
      const stats = await target.stats();
      if (options.json) await out(JSON.stringify(stats) + "\n");
      else {
        await out(
          `queued ${stats.queued}, running ${stats.running}, done ${stats.done}, dead ${stats.dead}\n`,
        );
      }
      return 0;
    }
    const status = await target.status(id);
    if (status === undefined) {
      err(`error: no item '${id}'`);
      return 1;
    }
    await out(options.json ? JSON.stringify(status) + "\n" : statusLine(status) + "\n");
    return 0;
  } finally {
    await target.close();
  }
}

async function workerDead(ctx: CommandContext): Promise<number> {
  const { options, values } = ctx;
  const retry = values["retry"];
  const retryAll = values["retry-all"] === true;
  if (retry !== undefined && retryAll) {
    throw new UsageError("Give --retry ID or --retry-all, not both");
  }
  if (retry !== undefined && (typeof retry !== "string" || retry === "")) {
    throw new UsageError("Invalid --retry: expected an item id");
  }
  const target = await targetOf(ctx);
  try {
    if (typeof retry === "string") {
      if (!(await target.retry(retry))) {
        err(`error: '${retry}' is not in the dead letters`);
        return 1;
      }
      await out(options.json ? JSON.stringify({ retried: [retry] }) + "\n" : `retried ${retry}\n`);
      return 0;
    }
    const dead = await target.dead(1000);
    if (retryAll) {
      const retried: string[] = [];
      for (const item of dead) if (await target.retry(item.id)) retried.push(item.id);
      await out(
        options.json ? JSON.stringify({ retried }) + "\n" : `retried ${retried.length}\n`,
      );
      return 0;
    }
    if (options.json) {
      for (const item of dead) await out(JSON.stringify(item) + "\n");
    } else {
      await out(dead.length === 0 ? "no dead letters\n" : dead.map(statusLine).join("\n") + "\n");
    }
    return 0;
  } finally {
    await target.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The commands

const TARGET_HELP =
  "The worker: --worker URL (or ALL_DOCS_WORKER_URL) of a running 'worker start',\n" +
  "with ALL_DOCS_WORKER_TOKEN; else its queue, with no worker running: the kv file\n" +
  "(--queue kv, --kv-path FILE; the default) or Redis (--queue redis://HOST:PORT[/DB],\n" +
  "or ALL_DOCS_QUEUE).";

const TARGET_FLAGS = {
  worker: { type: "string" },
  queue: { type: "string" },
  "kv-path": { type: "string" },
} as const;

/** The `worker` commands. */
export const WORKER_COMMANDS: readonly Command[] = [
  {
    words: ["worker", "start"],
    usage: "worker start [--queue memory|kv|redis://HOST:PORT] [--port N] [--until-idle]",
    summary: "run a worker: consume queued items and serve the worker API",
    help: "Consumes work items from a queue and serves the worker API and the read replica\n" +
      "in one process. Prints 'listening http://HOST:PORT/' on stdout when ready; one JSON\n" +
      "line per request and per settled item on stderr (none with --quiet). Stops on SIGINT\n" +
      "or SIGTERM: takes no more items, and releases those in hand after 10 s.\n\n" +
      "The token comes from ALL_DOCS_WORKER_TOKEN; every /-/worker/ route but health needs\n" +
      "'Authorization: Bearer TOKEN'. Without a token the worker refuses to start unless it\n" +
      "listens on a loopback address and is given --no-auth.\n\n" +
      "Push: POST /-/worker/push/cloud-tasks (the body is one item) and\n" +
      "POST /-/worker/push/pubsub (a Pub/Sub push envelope) run an item at once: 2xx when\n" +
      "it is done or dead (recorded in the dead letters), 503 with Retry-After to retry.\n" +
      "They take the token, or with --oidc-audience an OIDC identity token (as Cloud Tasks\n" +
      "and Pub/Sub send for a service account), checked against Google's keys\n" +
      "(ALL_DOCS_WORKER_OIDC_JWKS_URL to use another key set).\n\n" +
      "Options:\n" +
      "  --queue Q           the queue engine (ALL_DOCS_QUEUE; default kv under Deno, memory\n" +
      "                      under Node): memory loses what is queued when the process ends;\n" +
      "                      kv keeps it in a Deno KV file, for one process;\n" +
      "                      redis://[:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS) puts it\n" +
      "                      on BullMQ in Redis, shared by any number of workers on any number\n" +
      "                      of machines (give them one storage: fs on one machine, s3 across\n" +
      "                      machines; on Node install bullmq and ioredis)\n" +
      "  --kv-path FILE      the kv queue's file (default CACHE_DIR/queue.kv)\n" +
      "  --lock-ms MS        redis: how long an item in hand stays locked without renewal\n" +
      `                      (ALL_DOCS_WORKER_LOCK_MS; default ${DEFAULT_REDIS_LOCK_MS}); a worker that dies\n` +
      "                      leaves its items to the others once their locks expire\n" +
      "  --stalled-ms MS     redis: how often a worker looks for expired locks\n" +
      `                      (ALL_DOCS_WORKER_STALLED_MS; default ${DEFAULT_REDIS_STALLED_MS}). Every worker on\n` +
      "                      one queue must use the same two settings\n" +
      `  --port N            0 to 65535; 0 picks a free port (default ${DEFAULT_WORKER_PORT})\n` +
      "  --hostname H        address to bind (default 127.0.0.1)\n" +
      "  --public            required to bind an address that is not loopback\n" +
      "  --no-auth           allow no token (loopback only)\n" +
      "  --oidc-audience AUD accept OIDC tokens for AUD on the push routes\n" +
      "                      (ALL_DOCS_WORKER_OIDC_AUDIENCE)\n" +
      "  --oidc-email EMAIL  ... only from this service account (ALL_DOCS_WORKER_OIDC_EMAIL)\n" +
      `  --concurrency N     items in hand and requests in flight (1 to ${MAX_WORKER_ITEMS})\n` +
      `  --batch-size N      names per packument item a partition enqueues (default ${DEFAULT_BATCH_SIZE})\n` +
      "  --until-idle        exit when nothing is queued or running: 0, or 1 if any item is\n" +
      "                      in the dead letters (a summary is printed; --json: as JSON)\n" +
      "  --follow-every S    redis: enqueue a follow of --origin's _changes (a 'changes' item,\n" +
      "                      as 'worker enqueue changes') every S seconds, the first at once:\n" +
      "                      one BullMQ job scheduler per queue, however many workers start\n" +
      "                      with it (the last one started sets the period), kept in Redis\n" +
      "                      after they stop; 0 removes it. A follow still queued or running\n" +
      "                      makes the next firing a duplicate: never two at once\n" +
      "  --follow-packuments full|corgi\n" +
      "                      ... and fetch the packuments whose _rev changed, from --registry\n\n" +
      "Redis connection errors are logged on stderr (each message at most every 10 s, even\n" +
      "with --quiet); workers reconnect by themselves. For a queue that survives a Redis\n" +
      "restart, run Redis with appendonly yes and maxmemory-policy noeviction.\n\n" +
      "Retries: --retries N gives each item N + 1 deliveries, with exponential backoff\n" +
      "and jitter, honouring Retry-After; then the item goes to the dead letters.",
    flags: {
      queue: { type: "string" },
      "kv-path": { type: "string" },
      "lock-ms": { type: "string" },
      "stalled-ms": { type: "string" },
      port: { type: "string" },
      hostname: { type: "string" },
      public: { type: "boolean" },
      "no-auth": { type: "boolean" },
      "oidc-audience": { type: "string" },
      "oidc-email": { type: "string" },
      "until-idle": { type: "boolean" },
      "batch-size": { type: "string" },
      "follow-every": { type: "string" },
      "follow-packuments": { type: "string" },
    },
    maxArgs: 0,
    run: workerStart,
  },
  {
    words: ["worker", "enqueue"],
    usage: "worker enqueue partition-set --pivots FILE | changes | packuments FILE",
    summary: "queue a partition set, a follow of _changes or a list of packuments",
    help: "Queues work for a worker.\n\n" +
      "  partition-set --pivots FILE [--packuments [full|corgi]]\n" +
      "      a pass of the set of --origin; with --packuments, the packuments whose _rev\n" +
      "      changed too (the abbreviated ones with corgi, or --abbreviated), from --registry\n" +
      "  changes [--packuments [full|corgi]] [--window N] [--limit N]\n" +
      "      one follow of the _changes feed of --origin into its cached partitions, as\n" +
      "      'changes follow --once' (from its checkpoint, else from the update_seq of a\n" +
      "      refreshed set); one per origin is queued or running at a time, so enqueue it\n" +
      "      on a schedule (cron) as often as you like. --window: seqs re-read for late\n" +
      `      entries (default ${DEFAULT_WINDOW}); --limit: entries per page (1 to ${MAX_PAGE_LIMIT})\n` +
      "  packuments FILE [--abbreviated] [--batch-size N]\n" +
      `      the names of FILE (as packument fetch-list reads it), ${DEFAULT_BATCH_SIZE} names per item\n\n` +
      "Options:\n" +
      `  --priority N        higher runs first (${MIN_PRIORITY} to ${MAX_PRIORITY}, default 0)\n\n` +
      TARGET_HELP + "\n\n" +
      "Prints the accepted ids and how many were duplicates (queued or running already);\n" +
      "--json: one JSON object.",
    flags: {
      ...TARGET_FLAGS,
      pivots: { type: "string" },
      packuments: { type: "boolean" },
      abbreviated: { type: "boolean" },
      priority: { type: "string" },
      "batch-size": { type: "string" },
      window: { type: "string" },
      limit: { type: "string" },
    },
    optionalValues: PACKUMENTS_VALUES,
    maxArgs: 2,
    run: workerEnqueue,
  },
  {
    words: ["worker", "status"],
    usage: "worker status [ID] [--json]",
    summary: "counts by state, or one item's record",
    help: "Without ID: how many items are queued, running, done and dead. With ID: that item's\n" +
      "state, attempts and last error (exit 1 when unknown).\n\n" + TARGET_HELP,
    flags: TARGET_FLAGS,
    maxArgs: 1,
    run: workerStatus,
  },
  {
    words: ["worker", "dead"],
    usage: "worker dead [--retry ID | --retry-all] [--json]",
    summary: "list the dead letters, or queue them again",
    help: "Lists the items that went dead (oldest first, up to 1000), with their last error;\n" +
      "--json: one JSON object per line. --retry ID queues one again, --retry-all all of\n" +
      "them (their attempts start over).\n\n" + TARGET_HELP,
    flags: { ...TARGET_FLAGS, retry: { type: "string" }, "retry-all": { type: "boolean" } },
    maxArgs: 0,
    run: workerDead,
  },
];
