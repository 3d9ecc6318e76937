/**
 * Refreshes a partition set: fetches every range of `_all_docs` completely into the cache,
 * recording progress in a checkpoint so a killed run resumes where it stopped.
 *
 * - Completed partitions are skipped on resume; partitions left in progress by a dead worker
 *   (no heartbeat for `leaseMs`) are redone; failed ones get a new set of attempts.
 * - A range is cached only when it was read completely; the cache keeps the previous version
 *   until then, so it never holds a half-written range.
 * - Re-running a completed set starts a new pass that refreshes every range, conditionally
 *   where the origin gave a validator.
 * - Several workers may run one set at once: each partition's state is its own record, and a
 *   partition held by a live worker is left to it. Where the driver has `putIfAbsent`, a worker
 *   claims a partition atomically, so no two workers fetch it in one pass; otherwise two may,
 *   and `duplicated` in the summary counts it.
 *
 * - With `recordUpdateSeq`, before a pass reads its first range, the origin's `update_seq`
 *   (`GET {origin}/`) is recorded for the pass (once: a resumed pass keeps the first record), so a `_changes`
 *   follower started later knows from where the ranges are exact. An origin that does not
 *   answer it leaves the pass without a record (an `update-seq-failed` event), and the ranges
 *   are refreshed all the same.
 *
 * A cached range is NDJSON: one `["id","rev"]` line per document, in key order.
 *
 * @module
 */

import { MAX_PAGE_LIMIT } from "../couchdb/rows.ts";
import type { Cache } from "../storage/cache.ts";
import { Checkpoint, type ClaimRecord, type PartitionState } from "../storage/checkpoint.ts";
import { type Clock, systemClock } from "../clock.ts";
import type { HttpClient } from "../http/client.ts";
import { runPool } from "../_util/pool.ts";
import {
  type PartitionRange,
  partitionSetId,
  rangesFromPivots,
  validatePivots,
} from "../couchdb/pivots.ts";
import { readUpdateSeq, type Seq } from "../couchdb/changes.ts";
import { refreshRange } from "./refresh_range.ts";
import { planPass } from "./partition_pass.ts";

/** Progress events of a refresh. */
export type RefreshEvent =
  | { type: "start"; setId: string; partitions: number; pending: number; pass: number }
  | { type: "update-seq"; pass: number; seq: Seq }
  | { type: "update-seq-failed"; pass: number; error: string }
  | { type: "partition-start"; index: number; key: string; attempt: number }
  | { type: "page"; index: number; rows: number }
  | { type: "partition-done"; index: number; rows: number; unchanged: boolean }
  | { type: "partition-retry"; index: number; attempt: number; error: string }
  | { type: "partition-failed"; index: number; attempts: number; error: string }
  | { type: "partition-wait"; index: number; owner: string };

/** A partition that failed after its attempts. */
export interface FailedPartition {
  /** The partition index. */
  index: number;
  /** The cache key. */
  key: string;
  /** The range start. */
  startKey: string;
  /** The range end. */
  endKey: string;
  /** The last error. */
  error: string;
}

/** The outcome of {@linkcode refreshPartitions}. */
export interface RefreshSummary {
  /** The set id. */
  setId: string;
  /** The pass this run worked on. */
  pass: number;
  /** Partitions in the set. */
  partitions: number;
  /** The origin's `update_seq` the pass started from, when recorded. */
  updateSeq: Seq | undefined;
  /** Partitions this run completed (fetched or revalidated). */
  fetched: number;
  /** Of those, partitions the origin said were unchanged (304). */
  unchanged: number;
  /** Partitions already complete in this pass, skipped. */
  skipped: number;
  /** Rows in the partitions this run completed. */
  rows: number;
  /** Partitions that failed after their attempts. */
  failed: FailedPartition[];
  /** Of the partitions this run completed, those another worker had completed first in this
   * pass: work done twice (0 where the driver claims atomically). */
  duplicated: number;
}

/** Options for {@linkcode refreshPartitions}. */
export interface RefreshPartitionsOptions {
  /** The origin URL (the replication endpoint). */
  origin: string;
  /** The origin key for cache keys. */
  originKey: string;
  /** The pivots. */
  pivots: readonly string[];
  /** Partitions fetched at once.
   * @default {4} */
  parallel?: number;
  /** Attempts per partition before it is marked failed.
   * @default {3} */
  maxAttempts?: number;
  /** Start the set over, forgetting its checkpoint.
   * @default {false} */
  fresh?: boolean;
  /** Rows per page.
   * @default {10000} */
  limit?: number;
  /** Record the origin's `update_seq` for a pass that has none before reading its ranges (one
   * `GET {origin}/` per pass; `partition refresh` turns it on, so `changes follow` can start
   * from the set).
   * @default {false} */
  recordUpdateSeq?: boolean;
  /** This worker's name in the checkpoint.
   * @default {a random id} */
  workerId?: string;
  /** A partition in progress whose heartbeat is older than this is taken over, in ms.
   * @default {60000} */
  leaseMs?: number;
  /** Tells whether the worker named in an in-progress record still runs; `false` lets this run
   * take the partition over at once instead of waiting for its lease to run out (the CLI checks
   * the process id of workers on the same host).
   * @default {() => true} */
  isOwnerAlive?: (owner: string) => boolean;
  /** The clock.
   * @default {systemClock} */
  clock?: Clock;
  /** Aborts the refresh.
   * @default {undefined} */
  signal?: AbortSignal;
  /** Receives progress events. */
  onEvent?: (event: RefreshEvent) => void;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot refresh partitions: '${name}' must be a positive integer, received ${value}`,
    );
  }
  return value;
}

/**
 * Fetches every range of a partition set into the cache.
 *
 * @param client The HTTP client.
 * @param cache The cache (its driver also holds the checkpoint).
 * @param options The set and how to run it.
 * @returns What the run did; `failed` lists partitions that ran out of attempts.
 * @throws {PivotError} When the pivots are bad, before any request.
 */
export async function refreshPartitions(
  client: HttpClient,
  cache: Cache,
  options: RefreshPartitionsOptions,
): Promise<RefreshSummary> {
  const pivots = validatePivots([...options.pivots]);
  const parallel = positiveInteger("parallel", options.parallel ?? 4);
  const maxAttempts = positiveInteger("maxAttempts", options.maxAttempts ?? 3);
  const leaseMs = positiveInteger("leaseMs", options.leaseMs ?? 60_000);
  const limit = options.limit ?? MAX_PAGE_LIMIT;
  const clock = options.clock ?? systemClock;
  const me = options.workerId ?? crypto.randomUUID();
  const emit = options.onEvent ?? (() => {});
  const setId = partitionSetId(options.originKey, pivots);
  const ranges = rangesFromPivots(pivots, options.originKey);
  const checkpoint = new Checkpoint(cache.driver, options.originKey, setId);

  if (options.fresh) await checkpoint.clear();
  // A completed set starts a new pass; a partition completed in this pass whose cache entry is
  // gone (dropped as corrupt, say) is fetched again.
  const { pass, pending: queue, lost } = await planPass(cache, checkpoint, {
    id: setId,
    originKey: options.originKey,
    origin: options.origin,
    pivots,
    createdAt: clock.now(),
  }, ranges);
  const complete = (s: PartitionState | undefined) => s?.pass === pass && s.status === "done";
  const summary: RefreshSummary = {
    setId,
    pass,
    updateSeq: undefined,
    partitions: ranges.length,
    fetched: 0,
    unchanged: 0,
    skipped: 0,
    rows: 0,
    failed: [],
    duplicated: 0,
  };
  summary.skipped = ranges.length - queue.length;
  emit({ type: "start", setId, partitions: ranges.length, pending: queue.length, pass });
  if (options.recordUpdateSeq ?? false) {
    summary.updateSeq = await recordPassStart(client, checkpoint, pass, {
      origin: options.origin,
      clock,
      signal: options.signal,
      emit,
    });
  }

  /** Attempts already made on a partition in this pass, by its state. */
  const attemptsOf = (s: PartitionState | undefined) =>
    s?.pass === pass && s.status === "in-progress" ? s.attempts : 0;

  /** Runs a partition whose first in-progress state `claimed` is written already. */
  async function runPartition(range: PartitionRange, claimed: PartitionState) {
    let attempts = claimed.attempts - 1;
    let first: PartitionState | undefined = claimed;
    while (true) {
      attempts++;
      const startedAt = first?.startedAt ?? clock.now();
      let chain: Promise<void> = Promise.resolve();
      const write = (state: PartitionState) =>
        chain = chain.then(() => checkpoint.put(range.index, state));
      const working: PartitionState = {
        status: "in-progress",
        attempts,
        rows: 0,
        startedAt,
        updatedAt: startedAt,
        owner: me,
        pass,
      };
      if (first === undefined) await write(working);
      first = undefined;
      const heartbeat = setInterval(() => {
        write({ ...working, updatedAt: clock.now() }).catch(() => {});
      }, Math.max(10, Math.floor(leaseMs / 3)));
      emit({ type: "partition-start", index: range.index, key: range.key, attempt: attempts });
      try {
        const { rows, unchanged } = await refreshRange(client, cache, range, {
          origin: options.origin,
          limit,
          clock,
          signal: options.signal,
          onPage: (rows) => emit({ type: "page", index: range.index, rows }),
        });
        clearInterval(heartbeat);
        const before = await checkpoint.get(range.index);
        if (before?.pass === pass && before.status === "done") summary.duplicated++;
        await write({
          status: "done",
          attempts,
          rows,
          startedAt,
          updatedAt: clock.now(),
          finishedAt: clock.now(),
          pass,
        });
        summary.fetched++;
        if (unchanged) summary.unchanged++;
        summary.rows += rows;
        emit({ type: "partition-done", index: range.index, rows, unchanged });
        return;
      } catch (error) {
        clearInterval(heartbeat);
        if (options.signal?.aborted) throw error;
        const message = error instanceof Error ? error.message : String(error);
        const failed = attempts >= maxAttempts;
        await write({
          status: failed ? "failed" : "pending",
          attempts,
          rows: 0,
          lastError: message,
          startedAt,
          updatedAt: clock.now(),
          pass,
        });
        if (failed) {
          emit({ type: "partition-failed", index: range.index, attempts, error: message });
          summary.failed.push({
            index: range.index,
            key: range.key,
            startKey: range.startKey,
            endKey: range.endKey,
            error: message,
          });
          return;
        }
        emit({ type: "partition-retry", index: range.index, attempt: attempts, error: message });
        await clock.sleep(Math.min(30_000, 1000 * 2 ** (attempts - 1)), options.signal);
      }
    }
  }

  const deferred: PartitionRange[] = [];
  const ownerAlive = (owner: string) => options.isOwnerAlive?.(owner) ?? true;
  async function take(range: PartitionRange, waitForOthers: boolean): Promise<boolean> {
    const { state, raw } = await checkpoint.read(range.index);
    if (complete(state) && !lost.has(range.index)) {
      summary.skipped++;
      return true;
    }
    const heldByOther = state?.pass === pass && state.status === "in-progress" &&
      state.owner !== me && clock.now() - state.updatedAt < leaseMs &&
      ownerAlive(state.owner ?? "");
    if (heldByOther) {
      if (waitForOthers) {
        emit({ type: "partition-wait", index: range.index, owner: state.owner ?? "" });
      }
      return false;
    }
    const now = clock.now();
    const working: PartitionState = {
      status: "in-progress",
      attempts: attemptsOf(state) + 1,
      rows: 0,
      startedAt: now,
      updatedAt: now,
      owner: me,
      pass,
    };
    const stale = (claim: ClaimRecord) => now - claim.at >= leaseMs || !ownerAlive(claim.owner);
    // Another worker may claim it first: then look again later.
    if (!(await checkpoint.claim(range.index, raw, working, stale))) return false;
    await runPartition(range, working);
    return true;
  }

  await runPool(queue, async (range) => {
    if (!(await take(range, false))) deferred.push(range);
  }, { concurrency: parallel });
  // Partitions another worker holds: wait until they finish or their heartbeat stops.
  while (deferred.length > 0) {
    const range = deferred[0]!;
    if (await take(range, true)) deferred.shift();
    else await clock.sleep(Math.min(1000, Math.floor(leaseMs / 4)), options.signal);
  }
  return summary;
}

/** The pass's recorded `update_seq`, read from the origin and recorded first when it has none. */
async function recordPassStart(
  client: HttpClient,
  checkpoint: Checkpoint,
  pass: number,
  options: {
    origin: string;
    clock: Clock;
    signal: AbortSignal | undefined;
    emit: (event: RefreshEvent) => void;
  },
): Promise<Seq | undefined> {
  const known = await checkpoint.passRecord(pass);
  if (known) return known.updateSeq;
  let seq: Seq;
  try {
    seq = await readUpdateSeq(client, options.origin, {
      clock: options.clock,
      signal: options.signal,
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    const message = error instanceof Error ? error.message : String(error);
    options.emit({ type: "update-seq-failed", pass, error: message });
    return undefined;
  }
  const record = { pass, updateSeq: seq, at: options.clock.now() };
  // Another worker starting the pass at once may have recorded first: its record stays.
  if (!(await checkpoint.recordPass(record))) {
    return (await checkpoint.passRecord(pass))?.updateSeq ?? seq;
  }
  options.emit({ type: "update-seq", pass, seq });
  return seq;
}
