/**
 * The Cloudflare Workers entry: one module exporting `fetch` (the worker API and the read
 * replica), `queue` (the `cloudflare` queue engine's consumer) and `scheduled` (a cron refresh).
 * `workers/wrangler.toml` is an example configuration with every binding;
 * `deno task bundle:edge` bundles this module, Hono included, into one ES module, and
 * `deno task dev:cloudflare` runs that bundle in workerd through Miniflare.
 *
 * **The worker** (when `BODIES` is bound): bodies and checkpoints in R2
 * ({@linkcode CloudflareR2Driver}), items in D1 with Queues carrying wake-ups
 * ({@linkcode CloudflareQueue}: two bands, `WORK_HIGH` for items with `priority > 0` and
 * `WORK_NORMAL` for the rest, and a dead-letter queue), the handlers of `worker start`
 * (`workerHandlers`, built by `createEdgeWorker`) over an HTTP client calling the Worker's own `fetch`.
 *
 * | binding | kind | meaning |
 * |---|---|---|
 * | `BODIES` | R2 bucket | the cache: packuments, partitions, checkpoints |
 * | `STATE` | D1 database | the queue's items (dedup, status, claims, dead letters) |
 * | `WORK_HIGH`, `WORK_NORMAL` | Queues producers | the two bands; this Worker consumes both |
 * | `DEAD_LETTER_QUEUE` | var | the name of the bands' dead-letter queue, also consumed here |
 * | `WORKER_TOKEN` | secret | the bearer token of the `/-/worker/` routes (required) |
 * | `REGISTRY` | var | where packuments come from (required) |
 * | `REGISTRY_TOKEN` | secret, optional | the registry's bearer token |
 * | `ORIGIN` | var, optional | the replication endpoint the cron refresh reads |
 * | `PIVOTS` | var, optional | a JSON array of pivots: the partition set the cron enqueues |
 * | `PACKUMENTS` | var, optional | `full` or `corgi`: the cron pass fetches changed packuments |
 * | `FOLLOW_CRON` | var, optional | the cron pattern (one of the triggers) that follows `ORIGIN`'s `_changes` |
 * | `CONCURRENCY` | var, optional | deliveries in hand and requests in flight per isolate (8) |
 * | `RETRIES` | var, optional | retries of a request and of an item (4: five deliveries) |
 *
 * `queue()` hands a batch of the dead-letter queue to
 * {@linkcode CloudflareQueue.handleDeadLetters}, any other to
 * {@linkcode CloudflareQueue.handleBatch} with {@linkcode Worker.process}, under a signal made
 * in that invocation (workerd refuses to abort a controller from another request).
 * `scheduled()`, fired by the cron pattern `FOLLOW_CRON`, enqueues a follow of `ORIGIN`'s
 * `_changes` feed into the cached partitions (a `changes` item: from the follower's checkpoint,
 * else from the `update_seq` a pass of a set recorded; its id is one per origin, so a follow
 * still queued or running makes the firing a duplicate: never two at once); fired by any
 * other pattern, a pass of the partition set of `ORIGIN` and `PIVOTS` (nothing without
 * `PIVOTS`). Both fetch the changed packuments when `PACKUMENTS` is set.
 *
 * **Replica only** (when `BODIES` is not bound): the read replica over a cache kept in Workers
 * KV: `CACHE` (a KV namespace holding the records a {@linkcode Cache} writes),
 * `REGISTRY_ORIGIN_KEY` (the origin key of the packuments) and `PARTITIONS_ORIGIN_KEY`
 * (optional: the partitions `/_all_docs` serves; every one when absent).
 *
 * The app is built once per isolate, on its first event. Only web-standard APIs are used.
 *
 * @module
 */

import type { ExecutionContext, Hono } from "hono";
import { Cache } from "../src/storage/cache.ts";
import { validatePivots } from "../src/couchdb/pivots.ts";
import { createReplicaApp } from "../src/replica/app.ts";
import type { Worker } from "../src/worker/worker.ts";
import {
  createEdgeWorker,
  type EdgeSettings,
  followItem,
  scheduledItem,
} from "../src/worker/edge.ts";
import { toWorkItem } from "../src/worker/items.ts";
import { CloudflareKvDriver, type KvNamespaceLike } from "../drivers/cloudflare_kv.ts";
import { CloudflareR2Driver, type R2BucketLike } from "../drivers/cloudflare_r2.ts";
import {
  CloudflareQueue,
  type D1DatabaseLike,
  type MessageBatchLike,
  type QueueLike,
} from "../queues/cloudflare.ts";

/** The bindings the Worker reads (see the module documentation). */
export interface CloudflareEnv {
  /** The R2 bucket of the cache; its presence selects the full worker. */
  BODIES?: R2BucketLike;
  /** The D1 database of the queue. */
  STATE?: D1DatabaseLike;
  /** The producer of the high band. */
  WORK_HIGH?: QueueLike;
  /** The producer of the normal band. */
  WORK_NORMAL?: QueueLike;
  /** The dead-letter queue's name. */
  DEAD_LETTER_QUEUE?: string;
  /** The worker API's bearer token. */
  WORKER_TOKEN?: string;
  /** The packument registry. */
  REGISTRY?: string;
  /** The registry's bearer token. */
  REGISTRY_TOKEN?: string;
  /** The replication endpoint of the cron refresh. */
  ORIGIN?: string;
  /** The pivots of the cron refresh, as a JSON array. */
  PIVOTS?: string;
  /** `full` or `corgi`: the cron refresh fetches changed packuments too. */
  PACKUMENTS?: string;
  /** The cron pattern that follows `ORIGIN`'s `_changes` feed. */
  FOLLOW_CRON?: string;
  /** Deliveries in hand and requests in flight. */
  CONCURRENCY?: string;
  /** Retries of a request and of an item. */
  RETRIES?: string;
  /** Replica only: the KV namespace holding the cache. */
  CACHE?: KvNamespaceLike;
  /** Replica only: the origin key the packuments were cached under. */
  REGISTRY_ORIGIN_KEY?: string;
  /** Replica only: the origin key of the partitions `/_all_docs` serves. */
  PARTITIONS_ORIGIN_KEY?: string;
}

/** The Workers `ExecutionContext` (`waitUntil`, `passThroughOnException`, `props`), as Hono types it. */
export type CloudflareContext = ExecutionContext;

/** What a cron trigger hands `scheduled()`. */
export interface ScheduledControllerLike {
  /** The cron pattern that fired. */
  readonly cron: string;
  /** When it was due, in ms since the epoch. */
  readonly scheduledTime: number;
}

/** The full worker's settings, read from the bindings and checked before anything starts. */
export interface CloudflareSettings extends EdgeSettings {
  /** The cron pattern of the follow of `_changes`. */
  followCron: string | undefined;
  /** The name of the dead-letter queue. */
  deadLetterQueue: string;
}

export { followItem, scheduledItem };

function slash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

function httpUrl(name: string, value: string): string {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
    throw new TypeError(`Cannot start the worker: ${name} must be an http(s) URL`);
  }
  return slash(value);
}

function count(name: string, raw: string | undefined, fallback: number, most: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value > most) {
    throw new RangeError(
      `Cannot start the worker: ${name} must be an integer from 0 to ${most}, received '${raw}'`,
    );
  }
  return value;
}

function required<T>(env: CloudflareEnv, name: keyof CloudflareEnv, what: string): T {
  const value = env[name];
  if (value === undefined || value === null || value === "") {
    throw new TypeError(`Cannot start the worker: the ${name} binding (${what}) is not set`);
  }
  return value as T;
}

/**
 * Reads the full worker's settings from its bindings.
 *
 * @param env The Worker's bindings.
 * @returns The settings.
 * @throws {TypeError} Naming the binding, when one is missing or not what it must be.
 * @throws {RangeError} When `CONCURRENCY` or `RETRIES` is out of range.
 *
 * @example
 * ```ts
 * import { cloudflareSettings } from "./cloudflare.ts";
 * const settings = cloudflareSettings({
 *   WORKER_TOKEN: "secret",
 *   REGISTRY: "http://127.0.0.1:4873",
 *   DEAD_LETTER_QUEUE: "all-docs-dead",
 *   ORIGIN: "http://127.0.0.1:5984/registry",
 *   PIVOTS: '["g","p"]',
 * });
 * console.assert(settings.registry === "http://127.0.0.1:4873/");
 * console.assert(settings.pivots?.length === 2 && settings.concurrency === 8);
 * ```
 */
export function cloudflareSettings(env: CloudflareEnv): CloudflareSettings {
  const token = required<string>(env, "WORKER_TOKEN", "the worker API's bearer token");
  const registry = httpUrl(
    "REGISTRY",
    required<string>(env, "REGISTRY", "where packuments come from"),
  );
  const deadLetterQueue = required<string>(
    env,
    "DEAD_LETTER_QUEUE",
    "the dead-letter queue's name",
  );
  const origin = env.ORIGIN ? httpUrl("ORIGIN", env.ORIGIN) : undefined;
  let pivots: string[] | undefined;
  if (env.PIVOTS) {
    if (!origin) throw new TypeError("Cannot start the worker: PIVOTS needs ORIGIN");
    try {
      pivots = validatePivots(JSON.parse(env.PIVOTS));
    } catch (error) {
      throw new TypeError(`Cannot start the worker: PIVOTS is invalid: ${messageOf(error)}`);
    }
  }
  const packuments = env.PACKUMENTS || undefined;
  if (packuments !== undefined && packuments !== "full" && packuments !== "corgi") {
    throw new TypeError(
      `Cannot start the worker: PACKUMENTS must be full or corgi, received '${packuments}'`,
    );
  }
  const followCron = env.FOLLOW_CRON || undefined;
  if (followCron !== undefined && !origin) {
    throw new TypeError("Cannot start the worker: FOLLOW_CRON needs ORIGIN");
  }
  const concurrency = count("CONCURRENCY", env.CONCURRENCY, 8, 256);
  if (concurrency < 1) {
    throw new RangeError("Cannot start the worker: CONCURRENCY must be at least 1, received '0'");
  }
  return {
    token,
    registry,
    registryToken: env.REGISTRY_TOKEN || undefined,
    origin,
    pivots,
    packuments,
    followCron,
    deadLetterQueue,
    concurrency,
    retries: count("RETRIES", env.RETRIES, 4, 100),
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The full worker of this isolate. */
interface Full {
  settings: CloudflareSettings;
  engine: CloudflareQueue;
  worker: Worker;
  app: Hono;
}

/** Builds the full worker over the bindings of `env`. */
async function buildFull(env: CloudflareEnv): Promise<Full> {
  const settings = cloudflareSettings(env);
  if (settings.pivots) toWorkItem(scheduledItem(settings));
  if (settings.followCron) toWorkItem(followItem(settings));
  const engine = new CloudflareQueue({
    db: required(env, "STATE", "the D1 database of the queue"),
    high: required(env, "WORK_HIGH", "the producer of the high band"),
    normal: required(env, "WORK_NORMAL", "the producer of the normal band"),
  }, { concurrency: settings.concurrency });
  const cache = await Cache.open(new CloudflareR2Driver(env.BODIES!), { bloom: false });
  const { worker, app } = createEdgeWorker(engine, cache, settings, (line) => console.log(line));
  return { settings, engine, worker, app };
}

/** Builds the replica-only app over the KV namespace of `env`. */
async function buildReplica(env: CloudflareEnv): Promise<Hono> {
  const origin = required<string>(env, "REGISTRY_ORIGIN_KEY", "the packuments' origin key");
  const cache = await Cache.open(
    new CloudflareKvDriver(required(env, "CACHE", "the KV namespace of the cache")),
    { bloom: false },
  );
  const partitionsOrigin = env.PARTITIONS_ORIGIN_KEY;
  return createReplicaApp({
    cache,
    packumentOrigin: () => origin,
    ...(typeof partitionsOrigin === "string" && partitionsOrigin !== ""
      ? { partitionsOrigin }
      : {}),
  });
}

/** The full worker of this isolate, built on its first event. */
let full: Promise<Full> | undefined;
/** The replica-only app of this isolate, built on its first request. */
let replica: Promise<Hono> | undefined;

function fullWorker(env: CloudflareEnv): Promise<Full> {
  if (full === undefined) {
    full = buildFull(env);
    full.catch(() => full = undefined);
  }
  return full;
}

function replicaApp(env: CloudflareEnv): Promise<Hono> {
  if (replica === undefined) {
    replica = buildReplica(env);
    replica.catch(() => replica = undefined);
  }
  return replica;
}

/** The Worker's handlers. */
const worker: {
  fetch(request: Request, env: CloudflareEnv, ctx: CloudflareContext): Promise<Response>;
  queue(batch: MessageBatchLike, env: CloudflareEnv, ctx: CloudflareContext): Promise<void>;
  scheduled(
    controller: ScheduledControllerLike,
    env: CloudflareEnv,
    ctx: CloudflareContext,
  ): Promise<void>;
} = {
  async fetch(request: Request, env: CloudflareEnv, ctx: CloudflareContext): Promise<Response> {
    const app = env.BODIES === undefined ? await replicaApp(env) : (await fullWorker(env)).app;
    return await app.fetch(request, env, ctx);
  },

  async queue(batch: MessageBatchLike, env: CloudflareEnv): Promise<void> {
    const { settings, engine, worker } = await fullWorker(env);
    if (batch.queue === settings.deadLetterQueue) return await engine.handleDeadLetters(batch);
    // Made here: workerd refuses to abort a controller made by another request.
    const signal = new AbortController().signal;
    await engine.handleBatch(batch, (item) => worker.process(item, signal));
  },

  async scheduled(controller: ScheduledControllerLike, env: CloudflareEnv): Promise<void> {
    const { settings, worker } = await fullWorker(env);
    const follow = settings.followCron !== undefined && controller.cron === settings.followCron;
    if (!follow && !settings.pivots) return;
    const result = await worker.enqueue([follow ? followItem(settings) : scheduledItem(settings)]);
    console.log(JSON.stringify({ type: "scheduled", cron: controller.cron, ...result }));
  },
};

export default worker;
