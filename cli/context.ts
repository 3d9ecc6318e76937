/**
 * What a command is (its words, usage, help, flags and handler) and what every command receives:
 * resolved options, its own flags and positionals, a way to open the embedded storage, and the
 * helpers several commands share (the origin key, the storage description, the HTTP client).
 *
 * @module
 */

import { join } from "node:path";
import type { ParseArgsOptionsConfig } from "node:util";
import type { StorageDriver } from "../src/storage/driver.ts";
import { Cache, type CacheOptions } from "../src/storage/cache.ts";
import { HttpClient } from "../src/http/client.ts";
import { originKey } from "../src/storage/keys.ts";
import { type GlobalOptions, UsageError } from "./options.ts";
import type { CorruptionLog } from "./corruption.ts";
import type { QueueEngine } from "../src/worker/queue.ts";
import { loadWithPeers } from "./peers.ts";

/** The queue engines the CLI knows. */
export type QueueKind = "memory" | "kv" | "redis";

/** Where and how `--queue redis://...` runs, checked by the command before anything opens. */
export interface RedisQueueSettings {
  /** `redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]`, or `rediss://` for TLS. */
  url: string;
  /** How long an item in hand stays locked without a renewal, in ms: every worker on the
   * queue must use the same. */
  lockDurationMs: number;
  /** How often a worker looks for items whose lock expired, in ms: every worker must use the
   * same. */
  stalledIntervalMs: number;
  /** Receives connection and background errors (the engine reconnects by itself). */
  onError: (error: Error) => void;
}

/** What {@linkcode OpenQueue} opens: the kv file, and for `redis` its settings. */
export interface OpenQueueOptions {
  /** The kv queue's file. */
  path: string;
  /** Set when the kind is `redis`. */
  redis?: RedisQueueSettings;
}

/**
 * How the entry point opens a queue engine (`kv` needs Deno; `redis` loads `queues/bullmq.ts`,
 * and with it the optional packages `bullmq` and `ioredis`, only when it is asked for: see
 * {@linkcode openRedisQueue}).
 */
export type OpenQueue = (kind: QueueKind, options: OpenQueueOptions) => Promise<QueueEngine>;

/** What the CLI uses of `queues/bullmq.ts`, which the entry point imports when it is needed. */
export interface BullMqModule {
  /** The engine. */
  BullMqQueue: {
    open(url: string, options: {
      lockDurationMs?: number;
      stalledIntervalMs?: number;
      onError?: (error: Error) => void;
    }): Promise<QueueEngine>;
  };
}

/** The optional packages the redis queue needs. */
const REDIS_PEERS = ["bullmq", "ioredis"];

/**
 * Opens the redis queue: loads the engine with `load` (the entry point's dynamic `import()` of
 * `queues/bullmq.ts`, so that no other command needs `bullmq` and `ioredis` installed), then
 * connects.
 *
 * @param load Imports `queues/bullmq.ts`.
 * @param settings The checked settings.
 * @returns The engine, connected.
 * @throws {Error} When `bullmq` or `ioredis` is not installed (naming the install command), or
 *   Redis cannot be reached.
 */
export async function openRedisQueue(
  load: () => Promise<BullMqModule>,
  settings: RedisQueueSettings,
): Promise<QueueEngine> {
  const module = await loadWithPeers("The redis queue", REDIS_PEERS, load);
  return await module.BullMqQueue.open(settings.url, {
    lockDurationMs: settings.lockDurationMs,
    stalledIntervalMs: settings.stalledIntervalMs,
    onError: settings.onError,
  });
}

/** What a command does with its storage: only reads it, or writes too. */
export type StorageAccess = "read" | "write";

/** How the entry point opens storage for the resolved options and the access a command needs. */
export type OpenStorage = (options: GlobalOptions, access: StorageAccess) => Promise<StorageDriver>;

/**
 * Opens storage with `open`, turning a cache directory that cannot serve `access` (an error
 * named `CacheDirError`, from `drivers/select_cache_dir.ts`) into a {@linkcode UsageError}.
 */
export async function openStorage(
  open: OpenStorage,
  options: GlobalOptions,
  access: StorageAccess,
): Promise<StorageDriver> {
  try {
    return await open(options, access);
  } catch (error) {
    if (error instanceof Error && error.name === "CacheDirError") {
      throw new UsageError(error.message, { cause: error });
    }
    throw error;
  }
}

/** A command: what `--help` says about it, the flags it takes, and what it runs. */
export interface Command {
  /** One or two words; a one-word command has no second word. */
  words: readonly [string] | readonly [string, string];
  /** The usage line, after `_all_docs `. */
  usage: string;
  /** One line for the command list. */
  summary: string;
  /** The command's own help, between its usage line and the global options. */
  help: string;
  /** Its own flags (the global ones are always accepted). */
  flags: ParseArgsOptionsConfig;
  /**
   * Boolean flags of `flags` that may also take one of these values, as `--flag VALUE` or
   * `--flag=VALUE`: the command then finds the value in `values` instead of `true`. Another
   * value after `=` is a usage error.
   */
  optionalValues?: Readonly<Record<string, readonly string[]>>;
  /** Positional arguments it takes at most. */
  maxArgs: number;
  /**
   * Whether `--origin` names where the documents it reads are cached (the upstream's view
   * vocabulary: an origin KEY, or a registry URL) rather than the replication endpoint: see
   * `documentOriginFlags` in `./options.ts`.
   */
  documentOrigin?: boolean;
  /**
   * `false` (or a function of the flags that says so): the command's cache works without the
   * runtime's native hash and one-call gzip (`CliRuntime.loadNative`), which are then not loaded
   * for it (on Deno, `node:crypto` and `node:zlib` bring Node's compatibility layer: tens of
   * milliseconds). The cache then hashes whole bodies with Web Crypto, streams in plain
   * TypeScript, and gzips as a stream.
   * @default {true}
   */
  native?: boolean | ((values: Record<string, string | boolean | undefined>) => boolean);
  /** Runs it; resolves to the exit status. */
  run(ctx: CommandContext): Promise<number>;
}

/** The context a command runs in. */
export interface CommandContext {
  /** Resolved global options. */
  options: GlobalOptions;
  /** All parsed flag values, including the command's own. */
  values: Record<string, string | boolean | undefined>;
  /** Positional arguments after the command words. */
  args: string[];
  /**
   * Opens the embedded storage driver selected by the options, after checking the cache
   * directory (`fs` and `kv`): `write` (the default) makes a missing one and fails unless a
   * probe file can be written there; `read`, for commands that only read, fails when it does
   * not exist. A failed check is a {@linkcode UsageError}: exit 2 before any request.
   */
  openDriver(access?: StorageAccess): Promise<StorageDriver>;
  /** Serves a fetch handler over HTTP, the runtime's way. */
  listen: Listen;
  /** Loads what {@linkcode CommandContext.listen} needs: a command that listens calls it before
   * it opens anything, so that a missing package stops it first. */
  prepareListen: () => Promise<void>;
  /** Opens a queue engine, the runtime's way. */
  openQueue: OpenQueue;
  /** The queue `worker start` uses when none is given: `kv` on Deno, `memory` on Node. */
  defaultQueue: Exclude<QueueKind, "redis">;
  /** Options every command opens its cache with (no bloom filter; the runtime's hash; corrupt
   * entries reported to `corruption` and removed). */
  cacheOptions: CacheOptions;
  /** The corrupt cache entries the command has read. */
  corruption: CorruptionLog;
}

/** A running HTTP server. */
export interface Server {
  /** The address it listens on. */
  hostname: string;
  /** The port it listens on. */
  port: number;
  /** Resolves once the server has stopped. */
  finished: Promise<void>;
  /** Stops accepting connections and finishes the open ones. */
  shutdown(): Promise<void>;
}

/**
 * Serves `fetch` on `hostname:port` (port 0 picks a free one). Rejects with an error whose
 * `code` is `EADDRINUSE` when the address is taken.
 */
export type Listen = (options: {
  hostname: string;
  port: number;
  fetch: (request: Request) => Response | Promise<Response>;
  onError: (error: unknown) => Response;
}) => Promise<Server>;

/** `--packuments` may name which documents: `--packuments corgi`, `--packuments=full`. */
export const PACKUMENTS_VALUES: Readonly<Record<string, readonly string[]>> = {
  packuments: ["full", "corgi"],
};

/**
 * Which packuments `--packuments [full|corgi]` asks for, `--abbreviated` (the older spelling of
 * `corgi`) taken into account.
 *
 * @param values The parsed flags.
 * @returns `full`, `corgi`, or `undefined` without `--packuments`.
 * @throws {UsageError} For `--abbreviated` without `--packuments`, or with `--packuments full`.
 */
export function packumentsFlag(
  values: Record<string, string | boolean | undefined>,
): "full" | "corgi" | undefined {
  const flag = values["packuments"];
  const abbreviated = values["abbreviated"] === true;
  if (flag === undefined || flag === false) {
    if (abbreviated) {
      throw new UsageError("--abbreviated needs --packuments (it names which packuments to keep)");
    }
    return undefined;
  }
  if (flag === "full" && abbreviated) {
    throw new UsageError("--packuments full and --abbreviated ask for different documents");
  }
  return flag === "corgi" || abbreviated ? "corgi" : "full";
}

/**
 * The origin key the options name: `--origin-key`, else the key derived from `--origin`, else
 * `undefined`.
 */
export function originKeyOf(options: GlobalOptions): string | undefined {
  return options.originKey ?? (options.origin ? originKey(options.origin) : undefined);
}

/** Where the selected storage lives, for messages. */
export function describeStorage(options: GlobalOptions): { kind: string; location: string } {
  switch (options.storage) {
    case "memory":
      return { kind: "memory", location: "in memory, gone at exit" };
    case "fs":
      return { kind: "fs", location: join(options.cacheDir, "fs") };
    case "kv":
      return { kind: "kv", location: join(options.cacheDir, "deno.kv") };
    case "s3": {
      const s3 = options.s3;
      const where = s3 === undefined ? "" : `${s3.endpoint}/${s3.bucket}/${s3.prefix}`;
      return { kind: "s3", location: where };
    }
  }
}

/** The HTTP client the global options ask for. */
export function clientFor(options: GlobalOptions): HttpClient {
  return new HttpClient({
    fetch: (input, init) => fetch(input, init),
    concurrency: options.concurrency,
    rateLimit: options.rateLimit === 0 ? Infinity : options.rateLimit,
    retries: options.retries,
    timeout: options.timeout,
  });
}

/**
 * Opens the cache for a command and closes its driver when `use` settles, whatever it did.
 *
 * @param ctx The command's context.
 * @param access What the command does to the cache dir (see {@linkcode CommandContext.openDriver}).
 * @param use The command's work on the open cache.
 * @returns What `use` returns.
 */
export async function withCache<T>(
  ctx: CommandContext,
  access: StorageAccess,
  use: (cache: Cache) => Promise<T>,
): Promise<T> {
  const driver = await ctx.openDriver(access);
  try {
    return await use(await Cache.open(driver, ctx.cacheOptions));
  } finally {
    await driver.close();
  }
}
