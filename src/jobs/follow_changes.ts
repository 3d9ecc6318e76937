/**
 * The `_changes` follower: keeps an origin's cached partitions (and, if asked, its packuments)
 * current by reading the replication feed, correct against the feed's known faults.
 *
 * - **Start.** An explicit `since`, else the follower's checkpoint, else the lowest
 *   `update_seq` of the origin's complete partition sets; neither: {@linkcode FollowStartError}
 *   (see `follow_start.ts`).
 * - **Rounds.** Each round reads `GET {origin}/` (the head), then pages through
 *   `_changes?since=S&limit=L` up to the head. Every round but a first one with an explicit
 *   start begins `window` sequences back (a trailing window): entries that appeared late,
 *   behind a `last_seq` already passed (about 4 in 1,024 on npm), are found there and counted
 *   as `late`; entries seen before are skipped. A round's first page is asked for with its
 *   head, and each next one as soon as a page's text is in and looks full, before it is parsed
 *   (`follow_pages.ts`): the origin makes it while this one is parsed and applied.
 * - **Applying.** Changes are held in memory and applied in batches of `batchChanges` (pages
 *   are taken whole, so a batch may pass it by a page) and at the end of each round ({@linkcode applyChanges}): each touched partition gets them
 *   as pending edits (its patch, which every reader applies as the partition streams), and is
 *   rewritten with them once it holds more than `compactEdits`. Rewriting every touched partition per batch would read and
 *   write the whole cache for each batch of changes spread over the key space: 100,000 changes
 *   over npm's 4.5 million names touch all 256 partitions of a set (about 270 MB) and took 5.3 s
 *   where reading their pages takes 0.3 s; as patches they write a few MB. The origin's
 *   partitions are listed while a round's first page is on its way, and each page's entries
 *   are put with their partitions while the next is (a `ChangeBatch`): applying a batch then
 *   appends each partition's edits to its patch as they came, and a reader of a partition
 *   sorts its few hundred edits (of an id's edits, the newest revision wins).
 * - **Checkpoint.** After each applied batch, the last sequence applied is written (with the
 *   recent sequences and the pending packuments) under `v1:checkpoint:{originKey}:changes:
 *   follower`. A follower killed at any point re-reads from there; applying a change twice
 *   changes nothing (a revision never goes back: see `partition_patch.ts`).
 * - **Packuments.** With `packuments`, each changed document is fetched at the end of the
 *   round and counted done only once the cache holds it at the announced `_rev` or newer (the
 *   registry may lag the feed: it stays pending, stored in the checkpoint, and is asked again
 *   next round); a deleted document's cached packuments are dropped.
 * - **A head that moved backwards** (a new feed after a migration: `update_seq` more than a
 *   window below the checkpoint) is reported, and the follower re-reads a window behind the new
 *   head.
 * - **Lost events** cannot be seen in the feed: a later `partition refresh` of the set puts
 *   them right, and the follower then replays from that pass's start.
 * - `once` stops after a round that caught up and a second one that re-read the window (its
 *   head and first page asked for while the first round's changes are applied); else rounds
 *   repeat every `intervalMs` until `signal` aborts. An abort stops cleanly: the pages
 *   read are applied and checkpointed first.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { HttpClient } from "../http/client.ts";
import { type Clock, systemClock } from "../clock.ts";
import { MAX_PAGE_LIMIT } from "../couchdb/rows.ts";
import { type Change, readUpdateSeq, type Seq, seqNumber } from "../couchdb/changes.ts";
import {
  emptyPatchCounts,
  type PartitionEdit,
  type PatchCounts,
  sortEditRuns,
} from "../couchdb/partition_patch.ts";
import { packageNameProblem } from "../npm/package_name.ts";
import {
  type FollowerState,
  readFollowerState,
  writeFollowerState,
} from "../storage/follower_checkpoint.ts";
import {
  applyChanges,
  type ApplySummary,
  ChangeBatch,
  DEFAULT_COMPACT_EDITS,
  type EditablePartition,
  listEditablePartitions,
} from "./apply_changes.ts";
import { compareSeqs, type FollowStart, resolveStart } from "./follow_start.ts";
import { nextTurn, PageReader } from "./follow_pages.ts";
import { withStop } from "../_util/signals.ts";
import {
  dropPackuments,
  fetchPending,
  type FollowPackumentOptions,
  type PendingPackuments,
} from "./follow_packuments.ts";
import type { PackumentResult } from "./fetch_packuments.ts";

export { FollowStartError } from "./follow_start.ts";
export type { FollowPackumentOptions } from "./follow_packuments.ts";

/**
 * The default trailing window, in sequences. npm's feed shows about 4 late entries in 1,024,
 * and they come late in time, right behind the head. Re-reading the last 2,048 sequences on
 * every round covers twice the span over which that rate was measured (about 8 late entries
 * expected in it), costs one request of at most 10,000 entries, and at npm's rate of about one
 * publish a second looks back over half an hour.
 */
export const DEFAULT_WINDOW = 2048;

/** The default number of changes held before the touched partitions are rewritten. */
export const DEFAULT_BATCH_CHANGES = 100_000;

/** Progress events of a follower. */
export type FollowEvent =
  | { type: "start"; since: Seq; from: FollowStart["from"]; replayUntil: Seq | undefined }
  | { type: "round"; round: number; since: Seq; head: Seq | undefined }
  | { type: "head-failed"; round: number; error: string }
  | { type: "head-backwards"; seq: Seq; head: Seq }
  | {
    type: "page";
    round: number;
    since: Seq;
    lastSeq: Seq;
    entries: number;
    fresh: number;
    late: number;
    repeated: number;
  }
  | ({ type: "applied"; seq: Seq; changes: number } & Omit<ApplySummary, "corrupt">)
  | {
    type: "packument";
    name: string;
    outcome: PackumentResult["outcome"];
    rev: string;
    cachedRev: string | undefined;
    done: boolean;
  }
  | { type: "round-failed"; round: number; error: string }
  | { type: "caught-up"; round: number; seq: Seq };

/** Options for {@linkcode followChanges}. */
export interface FollowChangesOptions {
  /** The origin URL (the replication endpoint). */
  origin: string;
  /** The origin key of its cached partitions. */
  originKey: string;
  /** Start after this sequence (`0`: the whole feed) instead of the checkpoint.
   * @default {undefined} */
  since?: Seq | undefined;
  /** Stop once caught up (after one more round over the window).
   * @default {false} */
  once?: boolean;
  /** The trailing window re-read on each round, in sequences (entries, for opaque sequences).
   * @default {DEFAULT_WINDOW} */
  window?: number;
  /** Entries per page, 1 to 10,000.
   * @default {10000} */
  limit?: number;
  /** New changes held in memory before they are applied to the partitions' patches and the
   * checkpoint is written (a page is taken whole: a batch may pass this by a page; 1 applies and
   * checkpoints after every page that brings new changes).
   * @default {DEFAULT_BATCH_CHANGES} */
  batchChanges?: number;
  /** A partition whose pending edits would pass this many is rewritten with them (0: every
   * touched partition is rewritten at once).
   * @default {DEFAULT_COMPACT_EDITS} */
  compactEdits?: number;
  /** Rewrite every partition with pending edits at each batch, leaving none pending.
   * @default {false} */
  compact?: boolean;
  /** The pause between rounds when not `once`, in milliseconds.
   * @default {60000} */
  intervalMs?: number;
  /** Fetch the packuments of changed documents, and drop those of deleted ones.
   * @default {undefined} */
  packuments?: FollowPackumentOptions | undefined;
  /** Called with the changes of each batch once they are applied, before the checkpoint moves
   * past them (so a crash in between calls it again for them): a worker enqueues `packument`
   * items here instead of fetching. One change per id, in key order.
   * @default {undefined} */
  onApplied?: (changes: readonly PartitionEdit[]) => Promise<void>;
  /** The clock.
   * @default {systemClock} */
  clock?: Clock;
  /** Stops the follower cleanly.
   * @default {undefined} */
  signal?: AbortSignal | undefined;
  /** Receives progress events. */
  onEvent?: (event: FollowEvent) => void;
}

/** What {@linkcode followChanges} did. */
export interface FollowSummary {
  /** Where it started, and what decided it. */
  start: FollowStart;
  /** The last sequence applied and checkpointed. */
  seq: Seq;
  /** Rounds run. */
  rounds: number;
  /** Pages read. */
  pages: number;
  /** Feed entries read, repeats of the window not counted. */
  seen: number;
  /** Changes applied to a partition (as pending edits, or by rewriting it): new ids or newer
   * revisions than the partition's pending ones. */
  applied: number;
  /** Of those, deletions. */
  deleted: number;
  /** Changes older than the pending edit of their id, left out. */
  stale: number;
  /** Partition patches written (pending edits: see `apply_changes.ts`). */
  patched: number;
  /** Partitions rewritten with their pending edits. */
  rewritten: number;
  /** What the rewrites did to rows (added, replaced, removed; `stale`: edits older than the
   * row they met). */
  rows: PatchCounts;
  /** Changes no cached partition covers, left out. */
  uncovered: number;
  /** Entries found behind a sequence already passed (late entries caught). */
  late: number;
  /** Entries applied again below the checkpoint (an explicit `since`, or a new pass). */
  replayed: number;
  /** Times the head was found below the checkpoint. */
  headBackwards: number;
  /** Packuments cached at their announced `_rev`. */
  packumentsFetched: number;
  /** Cached packuments removed for deleted documents. */
  packumentsDropped: number;
  /** Packuments still older than announced (or failed): fetched again next round. */
  packumentsPending: number;
  /** Packuments given up after their tries. */
  packumentsAbandoned: string[];
  /** Partitions found corrupt, left out (refresh their set). */
  corrupt: string[];
  /** Whether the signal stopped it. */
  stopped: boolean;
}

function positiveInteger(name: string, value: number, min = 1, max = Infinity): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity
      ? `an integer of at least ${min}`
      : `an integer from ${min} to ${max}`;
    throw new RangeError(
      `Cannot follow changes: '${name}' must be ${range}, received ${value}`,
    );
  }
  return value;
}

/**
 * Follows an origin's `_changes` feed into its cached partitions (see the module
 * documentation).
 *
 * @param client The HTTP client for the origin.
 * @param cache The cache holding the origin's partitions; the checkpoint is stored in it.
 * @param options The origin and how to follow.
 * @returns What was done.
 * @throws {FollowStartError} When there is no safe start, before any request.
 * @throws {RangeError} When an option is out of range, before any request.
 * @throws {HttpError} With `once`, when the feed fails for good (what was read is applied).
 *
 * @example Follow a feed once
 * ```ts
 * import { followChanges } from "./follow_changes.ts";
 * import { indexRows } from "./create_index.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { HttpClient } from "../http/client.ts";
 * import { partitionKey } from "../storage/keys.ts";
 * import { encodePartitionLines } from "../couchdb/partition_lines.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const feed = {
 *   results: [
 *     { seq: 3, id: "debug", changes: [{ rev: "1-d" }] },
 *     { seq: 4, id: "left-pad", changes: [{ rev: "2-l" }], deleted: true },
 *   ],
 *   last_seq: 4,
 * };
 * const client = new HttpClient({
 *   fetch: (url) =>
 *     Promise.resolve(Response.json(url.includes("_changes") ? feed : { update_seq: 4 })),
 * });
 * const cache = await Cache.open(new MemoryDriver());
 * const rows = [{ id: "left-pad", rev: "1-l" }, { id: "ms", rev: "1-m" }];
 * await cache.put(partitionKey("couch", "", ""), encodePartitionLines(rows), { status: 200 });
 * const summary = await followChanges(client, cache, {
 *   origin: "http://couch.test/",
 *   originKey: "couch",
 *   since: 2,
 *   once: true,
 * });
 * console.assert(summary.seq === 4 && summary.applied === 2 && summary.deleted === 1);
 * const ids = [];
 * for await (const row of indexRows(cache, "couch")) ids.push(row.id);
 * console.assert(ids.join() === "debug,ms");
 * ```
 */
export async function followChanges(
  client: HttpClient,
  cache: Cache,
  options: FollowChangesOptions,
): Promise<FollowSummary> {
  const { origin, originKey, signal } = options;
  const window = positiveInteger("window", options.window ?? DEFAULT_WINDOW, 0);
  const limit = positiveInteger("limit", options.limit ?? MAX_PAGE_LIMIT, 1, MAX_PAGE_LIMIT);
  const batchChanges = positiveInteger(
    "batchChanges",
    options.batchChanges ?? DEFAULT_BATCH_CHANGES,
  );
  const intervalMs = positiveInteger("intervalMs", options.intervalMs ?? 60_000, 0);
  const compactEdits = positiveInteger(
    "compactEdits",
    options.compactEdits ?? DEFAULT_COMPACT_EDITS,
    0,
  );
  const clock = options.clock ?? systemClock;
  const emit = options.onEvent ?? (() => {});
  const packuments = options.packuments;
  const driver = cache.driver;

  const stored = await readFollowerState(driver, originKey);
  const start = await resolveStart(driver, originKey, stored, options.since);
  emit({ type: "start", since: start.since, from: start.from, replayUntil: start.replayUntil });

  /** The last sequence applied and checkpointed. */
  let seq: Seq = start.since;
  // The entries read last: a repeat in the window is skipped, an unseen one behind is late.
  // Replaying below the checkpoint forgets them, so that every entry is applied again.
  const keepRecent = start.from === "checkpoint" && start.replayUntil === undefined;
  let recent: Seq[] = keepRecent && stored ? stored.recent.slice() : [];
  let recentFloor: Seq = keepRecent && stored ? stored.recentFloor : start.since;
  /** `recent` as a set, made when an entry must be looked up (most never are: see below). */
  let recentSet: Set<Seq> | undefined;
  /** The highest number among `recent`: a numbered entry above it was never seen. */
  let recentTop = Math.max(-1, ...recent.map((s) => seqNumber(s) ?? -1));
  const pending: PendingPackuments = stored?.pending ?? {};

  const summary: FollowSummary = {
    start,
    seq,
    rounds: 0,
    pages: 0,
    seen: 0,
    applied: 0,
    deleted: 0,
    stale: 0,
    patched: 0,
    rewritten: 0,
    rows: emptyPatchCounts(),
    uncovered: 0,
    late: 0,
    replayed: 0,
    headBackwards: 0,
    packumentsFetched: 0,
    packumentsDropped: 0,
    packumentsPending: Object.keys(pending).length,
    packumentsAbandoned: [],
    corrupt: [],
    stopped: false,
  };

  function remember(entrySeq: Seq, n: number | undefined): void {
    recent.push(entrySeq);
    recentSet?.add(entrySeq);
    if (n !== undefined && n > recentTop) recentTop = n;
    if (recent.length > 3 * Math.max(window, 1)) {
      const drop = recent.length - 2 * Math.max(window, 1);
      recentFloor = recent[drop - 1]!;
      recent = recent.slice(drop);
      recentSet = undefined;
    }
  }

  /** Whether an entry was read before (and is still remembered). */
  function seenBefore(entrySeq: Seq): boolean {
    return (recentSet ??= new Set(recent)).has(entrySeq);
  }

  /** Where a round re-reading the window starts. */
  function windowStart(at: Seq = seq): Seq {
    if (typeof at === "number") return Math.max(0, at - window);
    return recent.length > window ? recent[recent.length - window - 1]! : recentFloor;
  }

  async function save(): Promise<void> {
    const state: FollowerState = {
      version: 1,
      origin,
      seq,
      passes: start.passes,
      recent,
      recentFloor,
      pending,
      updatedAt: clock.now(),
    };
    await writeFollowerState(driver, originKey, state);
    summary.seq = seq;
    summary.packumentsPending = Object.keys(pending).length;
  }

  /** The next round's head, when asked for early, and its abort (should the follower return). */
  let headAhead: Promise<Seq> | undefined;
  const stopHead = new AbortController();
  /** Each round's pages, read one ahead. */
  const reader = new PageReader(client, origin, limit, clock, signal);
  /** The origin's partitions, listed (while a page is on its way) for the next batch. */
  let listing: Promise<EditablePartition[]> | undefined;
  /** Entries read since the last flush (an id may repeat: the newer revision wins). */
  let batch: ChangeBatch | undefined;
  /** The changes of a flush that failed (one per id, in key order), to apply again. */
  let unapplied: readonly PartitionEdit[] | undefined;
  let compactFirst = options.compact ?? false;
  /** The `last_seq` of the last page read into the batch, once it is to be checkpointed. */
  let batchSeq: Seq | undefined;

  /** The origin's partitions for the next batch: listed once, ahead of its first page. */
  function listAhead(): Promise<EditablePartition[]> {
    if (listing === undefined) {
      const listed = listEditablePartitions(cache, originKey);
      listing = listed;
      // A failure is met where it is awaited; the next call lists again.
      listed.catch(() => {
        if (listing === listed) listing = undefined;
      });
    }
    return listing;
  }

  async function flush(): Promise<void> {
    if (batchSeq === undefined) return;
    const gathered = batch;
    batch = undefined;
    // The partitions change as the batch is applied (a rewrite): the next batch lists them again.
    listing = undefined;
    // A flush that failed left its changes: they go again, with these, against partitions
    // listed afresh (the failed one may have rewritten some).
    const input: ChangeBatch | readonly PartitionEdit[] | undefined = unapplied === undefined
      ? gathered
      : sortEditRuns([unapplied, gathered?.edits() ?? []]);
    // With `compact`, the first batch rewrites every patched partition, changes or none.
    if (input !== undefined || compactFirst) {
      const compacting = compactFirst;
      compactFirst = false;
      try {
        await apply(input);
      } catch (error) {
        // Nothing of it counts as done: the checkpoint stays where it was, and the next flush
        // (the round's, on its way out) applies these changes again.
        unapplied = input instanceof ChangeBatch ? input.edits() : input;
        compactFirst = compacting;
        throw error;
      }
      unapplied = undefined;
    } else if (String(batchSeq) !== String(seq)) {
      seq = batchSeq;
      await save();
    }
    batchSeq = undefined;
  }

  /** Applies a batch's changes, queues or drops their packuments, then checkpoints. */
  async function apply(input: ChangeBatch | readonly PartitionEdit[] | undefined): Promise<void> {
    const done = await applyChanges(cache, originKey, input ?? [], {
      compactEdits,
      compact: options.compact ?? false,
    });
    summary.applied += done.applied;
    summary.deleted += done.deletions;
    summary.stale += done.stale;
    summary.uncovered += done.uncovered;
    summary.patched += done.patched;
    summary.rewritten += done.rewritten;
    for (const name of Object.keys(done.rows) as (keyof PatchCounts)[]) {
      summary.rows[name] += done.rows[name];
    }
    summary.corrupt.push(...done.corrupt);
    const { corrupt: _corrupt, ...counts } = done;
    // One per id, in key order: only asked for when someone takes them.
    const edits = input instanceof ChangeBatch
      ? (options.onApplied || packuments ? input.edits() : [])
      : input ?? [];
    await options.onApplied?.(edits);
    if (packuments) {
      for (const edit of edits) {
        if (edit.deleted) {
          delete pending[edit.id];
          summary.packumentsDropped += await dropPackuments(
            cache,
            edit.id,
            packuments.registryFor,
          );
        } else if (packageNameProblem(edit.id) === undefined) {
          pending[edit.id] = { rev: edit.rev, tries: 0 };
        }
      }
    }
    seq = batchSeq!;
    await save();
    // Each change is one of these (a change of a partition found corrupt counts as uncovered).
    const changes = done.applied + done.unchanged + done.stale + done.uncovered;
    emit({ type: "applied", seq, changes, ...counts });
  }

  async function fetchPackuments(): Promise<void> {
    if (!packuments || Object.keys(pending).length === 0) return;
    const round = await fetchPending(client, cache, pending, packuments, signal, (r, done, rev) => {
      emit({
        type: "packument",
        name: r.name,
        outcome: r.outcome,
        rev: pending[r.name]?.rev ?? "",
        cachedRev: rev,
        done,
      });
    });
    summary.packumentsFetched += round.done;
    summary.packumentsAbandoned.push(...round.abandoned);
    await save();
  }

  /**
   * Reads one round from `since` to the head. An unseen entry at or below `highWater` is late,
   * unless it is at or below `replayUntil` (applied again on purpose).
   */
  async function round(
    number: number,
    since: Seq,
    highWater: number | undefined,
    replayUntil: number | undefined,
    listNew: boolean,
  ): Promise<void> {
    let next = reader.next(since).page;
    // The request goes out before the partitions are listed (which holds the thread).
    await nextTurn();
    if (listNew) listAhead();
    while (true) {
      reader.waitFor(since);
      const page = await next;
      summary.pages++;
      // A full page means more: the next one is asked for while this one is applied.
      const more = page.results.length >= limit && String(page.lastSeq) !== String(since);
      if (more) {
        const asked = reader.next(page.lastSeq);
        next = asked.page;
        await asked.sent;
      }
      let fresh = 0;
      let late = 0;
      let repeated = 0;
      // Entries at or below the floor were there before this follower's first read (the
      // partitions it started from hold them) or were seen and forgotten: not applied again.
      const floor = seqNumber(recentFloor);
      const taken: Change[] = [];
      /** The highest number taken from this page, and (once an entry is not above it, or has
       * no number) the sequences taken: a feed may repeat one within a page. */
      let pageTop = -1;
      let inPage: Set<Seq> | undefined;
      for (const entry of page.results) {
        const n = seqNumber(entry.seq);
        // (A numbered entry above every remembered one needs no look-up: the usual case.)
        const seen = (n !== undefined && n > recentTop ? false : seenBefore(entry.seq)) ||
          ((n === undefined || n <= pageTop) &&
            (inPage ??= new Set(taken.map((e) => e.seq))).has(entry.seq));
        if (seen || (n !== undefined && floor !== undefined && n <= floor)) {
          repeated++;
          continue;
        }
        inPage?.add(entry.seq);
        if (n !== undefined && n > pageTop) pageTop = n;
        taken.push(entry);
      }
      if (taken.length > 0) {
        // The partitions first: should listing them fail, no entry of the page counts as seen,
        // and the round that reads them again takes them.
        batch ??= new ChangeBatch(await listAhead());
        for (const entry of taken) {
          const n = seqNumber(entry.seq);
          remember(entry.seq, n);
          summary.seen++;
          if (n !== undefined && replayUntil !== undefined && n <= replayUntil) {
            summary.replayed++;
          } else if (n !== undefined && highWater !== undefined && n <= highWater) late++;
          else fresh++;
        }
        // Each change goes to its partition now, while the next page is on its way.
        batch.add(taken);
      }
      summary.late += late;
      batchSeq = page.lastSeq;
      emit({
        type: "page",
        round: number,
        since,
        lastSeq: page.lastSeq,
        entries: page.results.length,
        fresh,
        late,
        repeated,
      });
      if (batch !== undefined && batch.size >= batchChanges) {
        await flush();
        if (more) listAhead();
      }
      if (!more) return;
      since = page.lastSeq;
    }
  }

  try {
    for (let number = 1;; number++) {
      summary.rounds = number;
      const firstExplicit = number === 1 && start.from !== "checkpoint";
      const replaying = number === 1 && start.replayUntil !== undefined;
      const since = firstExplicit || replaying ? start.since : windowStart();
      try {
        await oneRound(number, since, replaying);
      } finally {
        // (Unless the next round was asked for already.)
        if (headAhead === undefined) reader.stop();
      }
      if (options.once && number >= 2) break;
      if (!options.once) await clock.sleep(intervalMs, signal);
    }
  } catch (error) {
    if (!signal?.aborted) throw error;
    // Stopped: what was read is applied and checkpointed.
    await flush();
    summary.stopped = true;
  } finally {
    reader.stop();
    stopHead.abort();
  }
  summary.seq = seq;
  summary.packumentsPending = Object.keys(pending).length;
  return summary;

  /** A round: the head, then the pages from `since` (or behind a head that moved back). */
  async function oneRound(
    number: number,
    since: Seq,
    replaying: boolean,
  ): Promise<void> {
    let head: Seq | undefined;
    const asked = headAhead;
    headAhead = undefined;
    const reading = asked ?? readUpdateSeq(client, origin, { clock, signal });
    // The round's first page is asked for right after the head, which moves where the round
    // starts only when it is far behind what was applied (that page is then dropped). After:
    // the origin answers the head first, and the partitions are listed (holding the thread)
    // while it makes the page.
    reader.start(since);
    try {
      head = await reading;
    } catch (error) {
      if (signal?.aborted) throw error;
      emit({ type: "head-failed", round: number, error: message(error) });
    }
    let highWater = seqNumber(seq);
    const replayUntil = replaying ? seqNumber(start.replayUntil!) : undefined;
    // An update_seq a little behind may be a cached answer; a migration moves it far back.
    if (head !== undefined && (compareSeqs(head, seq) ?? 0) < -window) {
      // A new feed numbered below what was applied: re-read a window behind its head.
      emit({ type: "head-backwards", seq, head });
      summary.headBackwards++;
      const top = seqNumber(head) ?? 0;
      since = typeof head === "number" ? Math.max(0, top - window) : 0;
      highWater = top;
      seq = head;
      recent = [];
      recentSet = undefined;
      recentTop = -1;
      recentFloor = since;
      // (What was asked for at the old start is dropped.)
      reader.start(since);
    }
    emit({ type: "round", round: number, since, head });
    // Listed for this round, not before it (a refresh may have run during the pause).
    if (number > 1) listing = undefined;
    // New entries ahead (as far as the head tells): the partitions they go to are listed
    // while the first page is on its way. Not before the head is in: a listing on the fs
    // driver holds the thread, and the requests made just before it (the head, the first page)
    // would wait for it, since a runtime sends and reads them only between tasks. Once the
    // head's answer is in, the first page's request is out too, and the origin makes the page
    // during the listing. A round with
    // nothing new (a follower run on a schedule, often idle) lists nothing: on remote storage a
    // listing reads every partition's header. (A re-read of the window lists them only once it
    // meets an entry not seen.)
    const listNew = head === undefined || (compareSeqs(head, seq) ?? 1) > 0;
    try {
      await round(number, since, highWater, replayUntil, listNew);
      if (options.once && number === 1) {
        // The second round (the window again) is asked for while this one's changes are applied.
        headAhead = readUpdateSeq(client, origin, { clock, signal: withStop(signal, stopHead) });
        headAhead.catch(() => {});
        reader.start(windowStart(batchSeq ?? seq));
      }
      await flush();
      await fetchPackuments();
      emit({ type: "caught-up", round: number, seq });
    } catch (error) {
      if (signal?.aborted) throw error;
      await flush();
      if (options.once) throw error;
      emit({ type: "round-failed", round: number, error: message(error) });
    }
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
