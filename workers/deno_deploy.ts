/**
 * The Deno Deploy entry of the worker: `Deno.serve` with the worker API and the read replica,
 * a consumer on the `kv` queue engine (`Deno.openKv().listenQueue` underneath), the cache on the
 * same KV database (Deploy has no file system), and `Deno.cron` for a scheduled refresh and a
 * scheduled follow of `_changes`. It runs
 * locally exactly as Deploy runs it:
 *
 * ```sh
 * ALL_DOCS_WORKER_TOKEN=secret ALL_DOCS_ORIGIN=http://127.0.0.1:5984/registry/ \
 *   ALL_DOCS_REGISTRY=http://127.0.0.1:4873/ deno run -A workers/deno_deploy.ts
 * ```
 *
 * Settings, from the environment:
 * - `ALL_DOCS_WORKER_TOKEN` (required): the bearer token of the `/-/worker/` routes.
 * - `ALL_DOCS_ORIGIN`: the replication endpoint the scheduled refresh reads (required with
 *   `ALL_DOCS_PIVOTS`).
 * - `ALL_DOCS_REGISTRY`: where packuments come from (required: there is no `.npmrc` on Deploy);
 *   `ALL_DOCS_REGISTRY_TOKEN`: its bearer token, if it needs one.
 * - `ALL_DOCS_PIVOTS`: a JSON array of pivots; with it, `ALL_DOCS_CRON` (a cron schedule,
 *   default `0 * * * *`, hourly) enqueues a pass of that partition set, and with
 *   `ALL_DOCS_PACKUMENTS=full|corgi` its changed packuments too.
 * - `ALL_DOCS_FOLLOW_CRON`: a cron schedule (say `0,10,20,30,40,50 * * * *`) on which a `changes` item
 *   follows `ALL_DOCS_ORIGIN`'s `_changes` feed into the cached partitions (from the follower's
 *   checkpoint, else from the `update_seq` the last pass of a set recorded), and with
 *   `ALL_DOCS_PACKUMENTS` queues its changed packuments too. Its id is one per origin: a follow
 *   still queued or running makes the next firing a duplicate, so two never run at once.
 * - `ALL_DOCS_CONCURRENCY` (items in hand and requests in flight, default 8), `ALL_DOCS_RETRIES`
 *   (default 4: five deliveries an item).
 * - Locally only: `ALL_DOCS_KV_PATH` (the KV file; Deploy's managed KV otherwise), `PORT`
 *   (default 8000), `HOSTNAME` (default 127.0.0.1).
 *
 * Prints `listening http://HOST:PORT/` when ready, one JSON line per settled item on stderr.
 *
 * @module
 */

import { Cache } from "../src/storage/cache.ts";
import { validatePivots } from "../src/couchdb/pivots.ts";
import {
  createEdgeWorker,
  type EdgeSettings,
  followItem,
  scheduledItem,
} from "../src/worker/edge.ts";
import { toWorkItem } from "../src/worker/items.ts";
import { DenoKvDriver } from "../drivers/deno_kv.deno.ts";
import { DenoKvQueue } from "../queues/deno_kv.deno.ts";

export { followItem, scheduledItem };

/** The settings, read and checked before anything starts. */
export interface DeploySettings extends EdgeSettings {
  cron: string;
  followCron: string | undefined;
  kvPath: string | undefined;
  port: number;
  hostname: string;
}

function slash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

function httpUrl(name: string, value: string): string {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
    throw new Error(`Invalid ${name}: expected an http(s) URL`);
  }
  return slash(value);
}

function integer(env: (name: string) => string | undefined, name: string, fallback: number) {
  const raw = env(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 0) {
    throw new Error(`Invalid ${name}: expected a non-negative integer, received '${raw}'`);
  }
  return value;
}

/**
 * Reads the settings from the environment.
 *
 * @param env Reads one variable.
 * @returns The settings.
 * @throws {Error} Naming the variable, when one is missing or invalid.
 */
export function deploySettings(env: (name: string) => string | undefined): DeploySettings {
  const token = env("ALL_DOCS_WORKER_TOKEN");
  if (!token) throw new Error("ALL_DOCS_WORKER_TOKEN is required: the worker API's bearer token");
  const registryRaw = env("ALL_DOCS_REGISTRY");
  if (!registryRaw) throw new Error("ALL_DOCS_REGISTRY is required: where packuments come from");
  const originRaw = env("ALL_DOCS_ORIGIN");
  const origin = originRaw ? httpUrl("ALL_DOCS_ORIGIN", originRaw) : undefined;
  let pivots: string[] | undefined;
  const pivotsRaw = env("ALL_DOCS_PIVOTS");
  if (pivotsRaw) {
    if (!origin) throw new Error("ALL_DOCS_PIVOTS needs ALL_DOCS_ORIGIN");
    try {
      pivots = validatePivots(JSON.parse(pivotsRaw));
    } catch (error) {
      throw new Error(`Invalid ALL_DOCS_PIVOTS: ${(error as Error).message}`);
    }
  }
  const packuments = env("ALL_DOCS_PACKUMENTS") || undefined;
  if (packuments !== undefined && packuments !== "full" && packuments !== "corgi") {
    throw new Error(
      `Invalid ALL_DOCS_PACKUMENTS: expected full or corgi, received '${packuments}'`,
    );
  }
  const followCron = env("ALL_DOCS_FOLLOW_CRON") || undefined;
  if (followCron !== undefined && !origin) {
    throw new Error("ALL_DOCS_FOLLOW_CRON needs ALL_DOCS_ORIGIN: the feed it follows");
  }
  const concurrency = integer(env, "ALL_DOCS_CONCURRENCY", 8);
  if (concurrency < 1 || concurrency > 256) {
    throw new Error(`Invalid ALL_DOCS_CONCURRENCY: expected 1 to 256, received ${concurrency}`);
  }
  return {
    token,
    origin,
    registry: httpUrl("ALL_DOCS_REGISTRY", registryRaw),
    registryToken: env("ALL_DOCS_REGISTRY_TOKEN") || undefined,
    pivots,
    cron: env("ALL_DOCS_CRON") || "0 * * * *",
    followCron,
    packuments,
    concurrency,
    retries: integer(env, "ALL_DOCS_RETRIES", 4),
    kvPath: env("ALL_DOCS_KV_PATH") || undefined,
    port: integer(env, "PORT", 8000),
    hostname: env("HOSTNAME") || "127.0.0.1",
  };
}

/**
 * Starts the worker: see the module documentation.
 *
 * @param settings The settings.
 * @returns A function that stops it.
 */
export async function startDeployWorker(settings: DeploySettings): Promise<() => Promise<void>> {
  const kv = await Deno.openKv(settings.kvPath);
  const cache = await Cache.open(new DenoKvDriver(kv));
  const queue = new DenoKvQueue(kv);
  const { worker, app } = createEdgeWorker(queue, cache, settings, (line) => console.error(line));
  if (settings.pivots) {
    // Checked now, so that a bad setting fails the start rather than the first cron run.
    toWorkItem(scheduledItem(settings));
    Deno.cron("all_docs partition set refresh", settings.cron, async () => {
      await worker.enqueue([scheduledItem(settings)]);
    });
  }
  if (settings.followCron) {
    toWorkItem(followItem(settings));
    Deno.cron("all_docs changes follow", settings.followCron, async () => {
      const result = await worker.enqueue([followItem(settings)]);
      console.error(JSON.stringify({ type: "scheduled", cron: settings.followCron, ...result }));
    });
  }
  const stop = new AbortController();
  const consuming = worker.run(stop.signal);
  let listening!: (addr: Deno.NetAddr) => void;
  const ready = new Promise<Deno.NetAddr>((resolve) => listening = resolve);
  const server = Deno.serve({
    port: settings.port,
    hostname: settings.hostname,
    onListen: (addr) => listening(addr),
  }, app.fetch);
  const addr = await ready;
  console.log(`listening http://${addr.hostname}:${addr.port}/`);
  return async () => {
    stop.abort();
    await consuming;
    await server.shutdown();
    await queue.close();
    kv.close();
  };
}

if (import.meta.main) {
  let settings: DeploySettings;
  try {
    settings = deploySettings((name) => Deno.env.get(name));
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(2);
  }
  const stop = await startDeployWorker(settings);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      stop().then(() => Deno.exit(0));
    });
  }
}
