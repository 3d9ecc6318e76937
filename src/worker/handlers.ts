/**
 * The handlers of the three item types: the worker's work, done with the same code as the CLI
 * (`partition refresh`, `packument fetch-list`, `packument fetch-partitions`), so the cache and
 * the checkpoints end the same whichever did it.
 *
 * - `partition-set`: records the set in the checkpoint `partition refresh` uses, decides the
 *   pass as it does ({@linkcode planPass}: a completed set starts a new pass, an incomplete one
 *   continues its pass, a done partition whose cache entry is gone is redone), records the
 *   origin's `update_seq` for a pass it starts (where a `changes` item starts from, as after
 *   `partition refresh`; a failure to read it leaves the pass without one) and enqueues one
 *   `partition` item per range not done in that pass, at the set item's priority.
 * - `partition`: reads its range completely into the cache ({@linkcode refreshRange},
 *   conditionally where it can), recording it in the set's checkpoint: claimed atomically where
 *   the driver allows, in progress with a heartbeat while fetching, done with its rows; after a
 *   failure pending (failed on the last attempt, or for a permanent failure) with the error,
 *   and the error is thrown again so the worker retries. A partition done in the item's pass
 *   and still cached is skipped; an item of a pass the set has left is acked without work; a
 *   partition another worker holds (its heartbeat younger than `leaseMs`) is retried once its
 *   lease would run out (each such try counts as an attempt). An item whose set has no
 *   checkpoint, or whose range is not the set's, is dead at once. With `packuments`, each row whose `_rev` differs from the cached
 *   packument's ({@linkcode changedPackuments}) is queued in `packument` items of up to
 *   `batchSize` names, before the partition is marked done (so a crash in between queues them
 *   again). Ids that are not package names (design documents) are left out.
 * - `changes`: follows the origin's `_changes` feed once into its cached partitions
 *   ({@linkcode followChanges} with `once`, from its checkpoint, as `changes follow --once`);
 *   with `packuments`, each applied batch queues `packument` items for its changed documents
 *   (before the checkpoint moves past them) and drops the cached packuments of deleted ones. No
 *   start (no checkpoint, no refreshed set) is permanent: dead at once.
 * - `packument`: fetches its names with {@linkcode fetchPackuments} (the representation asked
 *   for; a 404 is a result), revalidating cached entries: a batch is queued because its names
 *   changed. Names that failed for good (a 4xx other than 404, 408 and 429; a body that is not
 *   a JSON object) are buried as their own `packument` item with their errors; names that may
 *   pass later (no answer, 408, 429, 5xx, a body cut short) are retried as a narrowed item,
 *   after the longest `Retry-After` they were given. On the last attempt, failing names of a
 *   batch whose other names succeeded are buried as their own item; a batch in which every name
 *   failed goes dead itself. A storage failure throws (and is retried).
 *
 * Handlers never wait between attempts of an item themselves: the HTTP client retries
 * requests (its `retries`, as the CLI sets them) and a bad `_all_docs` page is asked for again
 * as `partition refresh` does; the worker's retry policy retries items.
 *
 * @module
 */

import type { HttpClient } from "../http/client.ts";
import type { Cache } from "../storage/cache.ts";
import { Checkpoint, type PartitionState } from "../storage/checkpoint.ts";
import { originKey as originKeyOfUrl, partitionKey, type Representation } from "../storage/keys.ts";
import { type Clock, systemClock } from "../clock.ts";
import { MAX_PAGE_LIMIT } from "../couchdb/rows.ts";
import { readUpdateSeq } from "../couchdb/changes.ts";
import { partitionSetId, rangesFromPivots } from "../couchdb/pivots.ts";
import { packageNameProblem } from "../npm/package_name.ts";
import { planPass } from "../jobs/partition_pass.ts";
import { refreshRange } from "../jobs/refresh_range.ts";
import { changedPackuments } from "../jobs/changed_packuments.ts";
import { indexRows } from "../jobs/create_index.ts";
import { followChanges, FollowStartError } from "../jobs/follow_changes.ts";
import { dropPackuments } from "../jobs/follow_packuments.ts";
import type { PartitionEdit } from "../couchdb/partition_patch.ts";
import {
  fetchPackuments,
  type PackumentResult,
  type RegistryTarget,
} from "../jobs/fetch_packuments.ts";
import {
  type ChangesPayload,
  itemId,
  MAX_BATCH_NAMES,
  narrowPackuments,
  type NewItem,
  originKeyOfPayload,
  type PackumentKind,
  type PackumentPayload,
  type PartitionPayload,
  type PartitionSetPayload,
  type WorkItem,
  type WorkItemType,
} from "./items.ts";
import { type Handler, type HandlerContext, PartialFailure } from "./worker.ts";
import { classifyFailure, DEFAULT_RETRY_POLICY, PermanentError } from "./retry.ts";

/** Options of {@linkcode workerHandlers}. */
export interface WorkerHandlerOptions {
  /** The HTTP client for the origins and registries (its `retries` retry each request). */
  client: HttpClient;
  /** The cache; its driver also holds the partition checkpoints. */
  cache: Cache;
  /** The worker's default registry: packuments of items that name none come from it. */
  registry: RegistryTarget;
  /** The target (with its credential) for a payload's `registry` URL other than the default.
   * @default {the URL and its derived origin key, without a credential} */
  registryFor?: (url: string) => RegistryTarget;
  /** Names per `packument` item a `partition` item queues, 1 to 1,000.
   * @default {100} */
  batchSize?: number;
  /** `_all_docs` rows per page, 2 to 10,000.
   * @default {10000} */
  limit?: number;
  /** The worker's `maxAttempts` (its retry policy), so a partition's checkpoint says `failed`
   * on its last attempt and a batch buries its failing names then.
   * @default {5} */
  maxAttempts?: number;
  /** A partition in progress whose heartbeat is older than this is taken over, in ms.
   * @default {60000} */
  leaseMs?: number;
  /** The clock for checkpoint times and leases, and the pause before a bad page is asked for
   * again.
   * @default {systemClock} */
  clock?: Clock;
  /** This worker's name in the checkpoints.
   * @default {a random id} */
  workerId?: string;
}

/** How many items a `partition` item queues per call to the engine. */
const ENQUEUE_CHUNK = 100;
/** How many failing names a failure message spells out. */
const NAMES_SHOWN = 5;

function integerIn(name: string, value: number, least: number, most: number): number {
  if (!Number.isInteger(value) || value < least || value > most) {
    throw new RangeError(
      `Cannot create worker handlers: '${name}' must be an integer from ${least} to ${most}, received ${value}`,
    );
  }
  return value;
}

function slash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

function representationOf(kind: PackumentKind | undefined): Representation {
  return kind === "corgi" ? "abbreviated" : "full";
}

/** `N of M names failed: a: error; b: error ...`, the names spelt out up to a few. */
function failureMessage(failed: readonly PackumentResult[], total: number): string {
  const shown = failed.slice(0, NAMES_SHOWN).map((r) => `${r.name}: ${r.error ?? "failed"}`);
  const more = failed.length > NAMES_SHOWN ? `; and ${failed.length - NAMES_SHOWN} more` : "";
  return `${failed.length} of ${total} names failed: ${shown.join("; ")}${more}`;
}

/**
 * The handlers of the item types, for {@linkcode Worker}: see the module documentation.
 *
 * @param options The client, the cache, the default registry and settings.
 * @returns A handler per item type.
 * @throws {RangeError} When a setting is out of range.
 * @throws {TypeError} When `registry` is not a registry target.
 *
 * @example Fetch a batch of packuments through a worker
 * ```ts
 * import { workerHandlers } from "./handlers.ts";
 * import { Worker } from "./worker.ts";
 * import { MemoryQueue } from "../../queues/memory.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { HttpClient } from "../http/client.ts";
 * import { packumentKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const client = new HttpClient({
 *   fetch: () => Promise.resolve(Response.json({ _id: "ms", _rev: "1-a" })),
 * });
 * const cache = await Cache.open(new MemoryDriver());
 * const registry = { url: "http://registry.test/", originKey: "registry" };
 * const worker = new Worker(new MemoryQueue(), {
 *   handlers: workerHandlers({ client, cache, registry }),
 * });
 * await worker.enqueue([{ type: "packument", payload: { registry: registry.url, names: ["ms"] } }]);
 * await worker.runUntilIdle();
 * console.assert((await cache.info(packumentKey("registry", "ms")))?.rev === "1-a");
 * ```
 */
export function workerHandlers(options: WorkerHandlerOptions): Record<WorkItemType, Handler> {
  const { client, cache } = options;
  const registry = options.registry;
  if (
    typeof registry !== "object" || registry === null || typeof registry.url !== "string" ||
    typeof registry.originKey !== "string"
  ) {
    throw new TypeError(
      "Cannot create worker handlers: 'registry' must be a registry target with 'url' and 'originKey'",
    );
  }
  const batchSize = integerIn("batchSize", options.batchSize ?? 100, 1, MAX_BATCH_NAMES);
  const limit = integerIn("limit", options.limit ?? MAX_PAGE_LIMIT, 2, MAX_PAGE_LIMIT);
  const maxAttempts = integerIn(
    "maxAttempts",
    options.maxAttempts ?? DEFAULT_RETRY_POLICY.maxAttempts,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  const leaseMs = integerIn("leaseMs", options.leaseMs ?? 60_000, 1, Number.MAX_SAFE_INTEGER);
  const clock = options.clock ?? systemClock;
  const me = options.workerId ?? crypto.randomUUID();

  const targets = new Map<string, RegistryTarget>([[slash(registry.url), registry]]);
  /** The target for a payload's registry URL: the default one, else `registryFor`'s. */
  function targetFor(url: string): RegistryTarget {
    let target = targets.get(slash(url));
    if (!target) {
      target = options.registryFor?.(url) ?? { url: slash(url), originKey: originKeyOfUrl(url) };
      targets.set(slash(url), target);
    }
    return target;
  }

  async function partitionSet(item: WorkItem, context: HandlerContext): Promise<void> {
    const payload = item.payload as PartitionSetPayload;
    const originKey = originKeyOfPayload(payload);
    const setId = partitionSetId(originKey, payload.pivots);
    const ranges = rangesFromPivots(payload.pivots, originKey);
    const checkpoint = new Checkpoint(cache.driver, originKey, setId);
    const { pass, pending } = await planPass(cache, checkpoint, {
      id: setId,
      originKey,
      origin: payload.origin,
      pivots: payload.pivots,
      createdAt: clock.now(),
    }, ranges);
    // The origin's update_seq, recorded before any range of the pass is read, so that a
    // `changes` item can start from it (as `partition refresh` does); a failure only leaves
    // the pass without a start for the follower.
    if (pending.length > 0 && !(await checkpoint.passRecord(pass))) {
      try {
        const updateSeq = await readUpdateSeq(client, payload.origin, {
          clock,
          signal: context.signal,
        });
        await checkpoint.recordPass({ pass, updateSeq, at: clock.now() });
      } catch (error) {
        if (context.signal.aborted) throw error;
      }
    }
    const items: NewItem[] = pending.map((range) => {
      const partition: PartitionPayload = {
        origin: payload.origin,
        originKey,
        setId,
        pass,
        index: range.index,
        startKey: range.startKey,
        endKey: range.endKey,
        ...(payload.packuments ? { packuments: payload.packuments } : {}),
        ...(payload.registry ? { registry: payload.registry } : {}),
      };
      return {
        type: "partition",
        id: itemId("partition", partition),
        payload: partition,
        priority: item.priority,
      };
    });
    for (let i = 0; i < items.length; i += ENQUEUE_CHUNK) {
      await context.enqueue(items.slice(i, i + ENQUEUE_CHUNK));
    }
  }

  /** The partition is held by another worker: try again once its lease would run out. */
  function heldBy(item: WorkItem, state: PartitionState): PartialFailure {
    const payload = item.payload as PartitionPayload;
    const left = Math.max(1, leaseMs - (clock.now() - state.updatedAt));
    return new PartialFailure(
      `Partition ${payload.index} of set ${payload.setId} is held by worker ${
        state.owner ?? "?"
      } (pass ${state.pass}); trying again when its lease runs out`,
      { retryPayload: payload, retryAfterMs: left },
    );
  }

  async function partition(item: WorkItem, context: HandlerContext): Promise<void> {
    const payload = item.payload as PartitionPayload;
    const { setId, pass, index, startKey, endKey } = payload;
    const originKey = originKeyOfPayload(payload);
    const checkpoint = new Checkpoint(cache.driver, originKey, setId);
    const set = await checkpoint.set();
    if (!set) {
      throw new PermanentError(
        `Partition set ${setId} of origin '${originKey}' has no checkpoint: enqueue its partition-set item`,
      );
    }
    const bounds = ["", ...set.pivots, ""];
    if (index >= bounds.length - 1 || bounds[index] !== startKey || bounds[index + 1] !== endKey) {
      throw new PermanentError(
        `Partition ${index} of set ${setId} is not the range ${JSON.stringify(startKey)} to ${
          JSON.stringify(endKey)
        }`,
      );
    }
    const range = { index, startKey, endKey, key: partitionKey(originKey, startKey, endKey) };
    const attempts = item.attempts + 1;

    const { state, raw } = await checkpoint.read(index);
    // The set has moved on to a later pass: this item's work is done or superseded.
    if (state && state.pass > pass) return;
    const done = (s: PartitionState | undefined) => s?.pass === pass && s.status === "done";
    if (done(state) && await cache.get(range.key, { verify: "while" })) return;
    const heldByOther = (s: PartitionState | undefined): s is PartitionState =>
      s?.pass === pass && s.status === "in-progress" && s.owner !== me &&
      clock.now() - s.updatedAt < leaseMs;
    if (heldByOther(state)) throw heldBy(item, state);
    const startedAt = clock.now();
    const working: PartitionState = {
      status: "in-progress",
      attempts,
      rows: 0,
      startedAt,
      updatedAt: startedAt,
      owner: me,
      pass,
    };
    const stale = (claim: { at: number }) => clock.now() - claim.at >= leaseMs;
    if (!(await checkpoint.claim(index, raw, working, stale))) {
      // Another worker claimed it from the same state first.
      const after = (await checkpoint.read(index)).state;
      if (after && (after.pass > pass || done(after))) return;
      throw heldBy(item, after ?? working);
    }

    let chain: Promise<void> = Promise.resolve();
    const write = (next: PartitionState) =>
      chain = chain.catch(() => {}).then(() => checkpoint.put(index, next));
    const heartbeat = setInterval(() => {
      write({ ...working, updatedAt: clock.now() }).catch(() => {});
    }, Math.max(10, Math.floor(leaseMs / 3)));
    try {
      const { rows } = await refreshRange(client, cache, range, {
        origin: payload.origin,
        limit,
        clock,
        signal: context.signal,
      });
      if (payload.packuments) await queueChanged(item, range.key, context);
      clearInterval(heartbeat);
      const finishedAt = clock.now();
      await write({
        status: "done",
        attempts,
        rows,
        startedAt,
        updatedAt: finishedAt,
        finishedAt,
        pass,
      });
    } catch (error) {
      clearInterval(heartbeat);
      const base = { rows: 0, startedAt, updatedAt: clock.now(), pass };
      if (context.signal.aborted) {
        // The worker is stopping and releases the item: leave the partition free for the next.
        await write({ status: "pending", attempts: item.attempts, ...base }).catch(() => {});
        throw error;
      }
      const failure = classifyFailure(error);
      const failed = attempts >= maxAttempts || !failure.transient;
      await write({
        status: failed ? "failed" : "pending",
        attempts,
        lastError: failure.message,
        ...base,
      }).catch(() => {});
      throw error;
    }
  }

  /** Queues `packument` items for the rows of a cached range whose `_rev` changed. */
  async function queueChanged(item: WorkItem, key: string, context: HandlerContext) {
    const payload = item.payload as PartitionPayload;
    const url = payload.registry ?? registry.url;
    const target = targetFor(url);
    const kind = payload.packuments!;
    const rows = changedPackuments(cache, indexRows(cache, originKeyOfPayload(payload), [key]), {
      registryFor: () => target,
      representation: representationOf(kind),
    });
    let items: NewItem[] = [];
    let names: string[] = [];
    // An abbreviated document has no _rev of its own: the listed one is recorded with it.
    let revs: string[] = [];
    const batch = () => {
      const packument: PackumentPayload = { registry: url, names, representation: kind };
      if (kind === "corgi") packument.revs = revs;
      items.push({
        type: "packument",
        id: itemId("packument", packument),
        payload: packument,
        priority: item.priority,
      });
      names = [];
      revs = [];
    };
    for await (const row of rows) {
      // Not a package name (a design document, say): no packument to fetch.
      if (packageNameProblem(row.id) !== undefined) continue;
      names.push(row.id);
      revs.push(row.rev);
      if (names.length < batchSize) continue;
      batch();
      if (items.length >= ENQUEUE_CHUNK) {
        await context.enqueue(items);
        items = [];
      }
    }
    if (names.length > 0) batch();
    if (items.length > 0) await context.enqueue(items);
  }

  async function packument(item: WorkItem, context: HandlerContext): Promise<void> {
    const payload = item.payload as PackumentPayload;
    const target = targetFor(payload.registry);
    const listed = payload.revs &&
      new Map(payload.names.map((name, i) => [name, payload.revs![i]!]));
    const summary = await fetchPackuments(client, cache, payload.names, {
      registryFor: () => target,
      ...(listed ? { revFor: (name: string) => listed.get(name) } : {}),
      representation: representationOf(payload.representation),
      // A batch is queued because its names changed: a fresh entry is asked for again too.
      refresh: true,
      signal: context.signal,
    });
    if (summary.failed.length === 0) return;
    // In the batch's order, whatever order the names finished in.
    const byName = new Map(summary.failed.map((r) => [r.name, r]));
    const unique = [...new Set(payload.names)];
    const failed = unique.flatMap((name) => byName.get(name) ?? []);
    const total = unique.length;
    const message = failureMessage(failed, total);
    const permanent = failed.filter((r) => r.transient === false);
    const transient = failed.filter((r) => r.transient !== false);
    const retryAfterMs = transient.reduce<number | undefined>(
      (most, r) => r.retryAfter === undefined ? most : Math.max(most ?? 0, r.retryAfter),
      undefined,
    );
    const allFailed = failed.length === total;
    const last = item.attempts + 1 >= maxAttempts;
    if (allFailed && transient.length === 0) throw new PermanentError(message);
    // Every name failed: the item itself is retried, or goes dead on its last attempt.
    if (allFailed && last) throw new PartialFailure(message, { retryPayload: payload });
    const buried: { item: WorkItem; error: string }[] = [];
    const bury = (results: readonly PackumentResult[]) => {
      const part = narrowPackuments(payload, results.map((r) => r.name));
      buried.push({
        item: {
          type: "packument",
          id: itemId("packument", part),
          payload: part,
          priority: item.priority,
          attempts: item.attempts + 1,
        },
        error: failureMessage(results, results.length),
      });
    };
    if (permanent.length > 0) bury(permanent);
    if (transient.length > 0 && last) bury(transient);
    if (transient.length === 0 || last) throw new PartialFailure(message, { buried });
    const retryPayload = narrowPackuments(payload, transient.map((r) => r.name));
    throw new PartialFailure(message, {
      buried,
      retryPayload,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }

  /** Queues `packument` items for `names` (with their `revs`), `batchSize` at a time. */
  async function queueNames(
    item: WorkItem,
    url: string,
    kind: PackumentKind,
    rows: readonly { id: string; rev: string }[],
    context: HandlerContext,
  ): Promise<void> {
    let items: NewItem[] = [];
    for (let i = 0; i < rows.length; i += batchSize) {
      const part = rows.slice(i, i + batchSize);
      const packument: PackumentPayload = {
        registry: url,
        names: part.map((row) => row.id),
        representation: kind,
      };
      // An abbreviated document has no _rev of its own: the announced one is recorded with it.
      if (kind === "corgi") packument.revs = part.map((row) => row.rev);
      items.push({
        type: "packument",
        id: itemId("packument", packument),
        payload: packument,
        priority: item.priority,
      });
      if (items.length >= ENQUEUE_CHUNK) {
        await context.enqueue(items);
        items = [];
      }
    }
    if (items.length > 0) await context.enqueue(items);
  }

  async function changes(item: WorkItem, context: HandlerContext): Promise<void> {
    const payload = item.payload as ChangesPayload;
    const url = payload.registry ?? registry.url;
    const target = targetFor(url);
    const kind = payload.packuments;
    const onApplied = kind === undefined ? undefined : async (edits: readonly PartitionEdit[]) => {
      const changed: PartitionEdit[] = [];
      for (const edit of edits) {
        if (packageNameProblem(edit.id) !== undefined) continue;
        if (edit.deleted) await dropPackuments(cache, edit.id, () => target);
        else changed.push(edit);
      }
      await queueNames(item, url, kind, changed, context);
    };
    let summary;
    try {
      summary = await followChanges(client, cache, {
        origin: payload.origin,
        originKey: originKeyOfPayload(payload),
        once: true,
        limit: payload.limit ?? MAX_PAGE_LIMIT,
        ...(payload.window !== undefined ? { window: payload.window } : {}),
        clock,
        signal: context.signal,
        ...(onApplied ? { onApplied } : {}),
      });
    } catch (error) {
      if (error instanceof FollowStartError) throw new PermanentError(error.message);
      throw error;
    }
    // The worker is stopping: what was read is applied; the item is released for the next run.
    if (summary.stopped) throw context.signal.reason;
  }

  return { "partition-set": partitionSet, partition, changes, packument };
}
