/**
 * The packuments of a `_changes` follower: the documents whose `_rev` changed are fetched with
 * the packument fetcher, and one is done only when the cache holds it at the announced `_rev`
 * or a newer one. The registry may lag the replication feed: a packument still older than the
 * announced `_rev` (or a 404, or a failure) stays pending and is asked for again on the next
 * round, up to `maxTries` rounds.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { HttpClient } from "../http/client.ts";
import { packumentKey, type Representation } from "../storage/keys.ts";
import { revWins } from "../couchdb/partition_patch.ts";
import { fetchPackuments, type PackumentResult, type RegistryTarget } from "./fetch_packuments.ts";

/** Packuments to fetch: the `_rev` the feed announced and how many rounds tried it. */
export type PendingPackuments = Record<string, { rev: string; tries: number }>;

/** How a follower fetches packuments. */
export interface FollowPackumentOptions {
  /** Which registry serves a name. */
  registryFor: (name: string) => RegistryTarget;
  /** Which document to keep current.
   * @default {"full"} */
  representation?: Representation;
  /** Names fetched at once.
   * @default {16} */
  parallel?: number;
  /** Rounds a name stays pending before the follower gives up on it.
   * @default {20} */
  maxTries?: number;
  /** The HTTP client for the registry.
   * @default {the follower's client} */
  client?: HttpClient;
}

/** What one round of packument fetches did. */
export interface PackumentRound {
  /** Names now cached at their announced `_rev` (or newer). */
  done: number;
  /** Names whose cached `_rev` is still older than announced (the registry lags). */
  lagging: string[];
  /** Names whose fetch failed this round. */
  failed: PackumentResult[];
  /** Names given up after `maxTries` rounds. */
  abandoned: string[];
}

/**
 * Fetches every pending packument once, and takes off `pending` those now cached at their
 * announced `_rev` or a newer one (the abbreviated document has no `_rev` of its own: it is
 * recorded with the announced one).
 */
export async function fetchPending(
  client: HttpClient,
  cache: Cache,
  pending: PendingPackuments,
  options: FollowPackumentOptions,
  signal: AbortSignal | undefined,
  onResult: (result: PackumentResult, done: boolean, cachedRev: string | undefined) => void,
): Promise<PackumentRound> {
  const representation = options.representation ?? "full";
  const maxTries = options.maxTries ?? 20;
  const round: PackumentRound = { done: 0, lagging: [], failed: [], abandoned: [] };
  const results = new Map<string, PackumentResult>();
  await fetchPackuments(options.client ?? client, cache, Object.keys(pending), {
    registryFor: options.registryFor,
    representation,
    refresh: true,
    parallel: options.parallel ?? 16,
    ...(signal ? { signal } : {}),
    revFor: (name) => pending[name]?.rev,
    onResult: (result) => results.set(result.name, result),
  });
  for (const [name, result] of results) {
    const wanted = pending[name];
    if (wanted === undefined) continue;
    const target = options.registryFor(name);
    const info = await cache.info(packumentKey(target.originKey, name, representation));
    const cachedRev = info?.status === 200 ? info.rev : undefined;
    const done = cachedRev !== undefined && !revWins(wanted.rev, cachedRev);
    onResult(result, done, cachedRev);
    if (done) {
      delete pending[name];
      round.done++;
      continue;
    }
    if (result.outcome === "failed") round.failed.push(result);
    else round.lagging.push(name);
    wanted.tries++;
    if (wanted.tries >= maxTries) {
      delete pending[name];
      round.abandoned.push(name);
    }
  }
  return round;
}

/**
 * Removes the cached packuments (both representations) of a deleted document.
 *
 * @returns How many entries were removed.
 */
export async function dropPackuments(
  cache: Cache,
  name: string,
  registryFor: (name: string) => RegistryTarget,
): Promise<number> {
  const { originKey } = registryFor(name);
  let dropped = 0;
  for (const representation of ["full", "abbreviated"] as const) {
    if (await cache.delete(packumentKey(originKey, name, representation))) dropped++;
  }
  return dropped;
}
