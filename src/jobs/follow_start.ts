/**
 * Where a `_changes` follower starts, so that no change between a refresh and the follow is
 * lost:
 *
 * 1. an explicit `since` (`0` replays the whole feed);
 * 2. else the follower's checkpoint: the last sequence it applied, lowered to the `update_seq`
 *    of any complete partition-set pass it has not accounted for yet (a refresh that completed
 *    after the follower's last run replaced partitions the follower had edited; replaying from
 *    where that pass started puts the later changes back);
 * 3. else the lowest `update_seq` recorded by the origin's complete partition sets (each pass of
 *    `partition refresh` records it before reading its ranges, so every range holds at least
 *    the changes up to it);
 * 4. else there is no safe start: {@linkcode FollowStartError}.
 *
 * Sequences are compared by their numbers ({@linkcode seqNumber}); an opaque sequence that
 * cannot be compared is taken as the lower one, which only replays more.
 *
 * @module
 */

import type { StorageDriver } from "../storage/driver.ts";
import { Checkpoint, listPartitionSets, type PartitionState } from "../storage/checkpoint.ts";
import { runPool } from "../_util/pool.ts";
import type { FollowerState } from "../storage/follower_checkpoint.ts";
import { type Seq, seqNumber } from "../couchdb/changes.ts";

/**
 * No start can be found: no explicit `since`, no follower checkpoint, and no complete
 * partition set of the origin with a recorded `update_seq`. Nothing was read or written.
 *
 * @example
 * ```ts
 * import { FollowStartError } from "./follow_start.ts";
 * const error = new FollowStartError("no start");
 * console.assert(error.name === "FollowStartError" && error instanceof Error);
 * ```
 */
export class FollowStartError extends Error {
  /** Always `FollowStartError`. */
  override name: string = "FollowStartError";
}

/** A complete partition set of the origin: its current pass and where that pass started. */
export interface CompleteSet {
  /** The set id. */
  setId: string;
  /** Its current pass, complete. */
  pass: number;
  /** The `update_seq` recorded for that pass, when one was. */
  updateSeq: Seq | undefined;
}

/** Where a follower starts. */
export interface FollowStart {
  /** The sequence to read after. */
  since: Seq;
  /** What decided it. */
  from: "since" | "checkpoint" | "partitions";
  /** The checkpoint's sequence when the start is below it (an explicit `since`, or a new
   * pass): entries up to it are applied again, not counted as late. */
  replayUntil: Seq | undefined;
  /** The complete passes accounted for from now on, by set id. */
  passes: Record<string, number>;
}

/**
 * Compares two sequences by their numbers.
 *
 * @param a A sequence.
 * @param b Another.
 * @returns Negative, zero or positive; `undefined` when either has no number.
 *
 * @example
 * ```ts
 * import { compareSeqs } from "./follow_start.ts";
 * console.assert(compareSeqs(3, "12-g1AA")! < 0 && compareSeqs("x", 3) === undefined);
 * ```
 */
export function compareSeqs(a: Seq, b: Seq): number | undefined {
  const x = seqNumber(a);
  const y = seqNumber(b);
  return x === undefined || y === undefined ? undefined : x - y;
}

/**
 * The origin's complete partition sets: every partition done in the set's current pass.
 *
 * @param driver The storage holding the checkpoints.
 * @param originKey The origin key.
 * @returns The sets in key order.
 */
export async function completeSets(
  driver: StorageDriver,
  originKey: string,
): Promise<CompleteSet[]> {
  const out: CompleteSet[] = [];
  for (const set of await listPartitionSets(driver)) {
    if (set.originKey !== originKey) continue;
    const checkpoint = new Checkpoint(driver, originKey, set.id);
    // Every partition's state, read a few at a time (a large set has hundreds).
    const states: (PartitionState | undefined)[] = new Array(set.pivots.length + 1);
    await runPool(states.keys(), async (i) => {
      states[i] = await checkpoint.get(i);
    }, { concurrency: 16 });
    const pass = Math.max(1, ...states.map((s) => s?.pass ?? 1));
    const complete = states.every((state) => state?.pass === pass && state.status === "done");
    if (!complete) continue;
    out.push({ setId: set.id, pass, updateSeq: (await checkpoint.passRecord(pass))?.updateSeq });
  }
  return out;
}

/**
 * Decides where a follower starts (see the module documentation).
 *
 * @param driver The storage holding the checkpoints.
 * @param originKey The origin key.
 * @param state The follower's checkpoint, when it has one.
 * @param since An explicit start.
 * @returns The start.
 * @throws {FollowStartError} When there is no safe start.
 */
export async function resolveStart(
  driver: StorageDriver,
  originKey: string,
  state: FollowerState | undefined,
  since: Seq | undefined,
): Promise<FollowStart> {
  const sets = await completeSets(driver, originKey);
  const passes: Record<string, number> = {};
  for (const set of sets) if (set.updateSeq !== undefined) passes[set.setId] = set.pass;
  if (since !== undefined) {
    const below = state !== undefined && (compareSeqs(since, state.seq) ?? -1) < 0;
    return { since, from: "since", replayUntil: below ? state.seq : undefined, passes };
  }
  if (state !== undefined) {
    let start: Seq = state.seq;
    for (const set of sets) {
      if (set.updateSeq === undefined || state.passes[set.setId] === set.pass) continue;
      if ((compareSeqs(set.updateSeq, start) ?? -1) < 0) start = set.updateSeq;
    }
    const replayUntil = start === state.seq ? undefined : state.seq;
    return { since: start, from: "checkpoint", replayUntil, passes };
  }
  let lowest: Seq | undefined;
  for (const set of sets) {
    if (set.updateSeq === undefined) continue;
    if (lowest === undefined || (compareSeqs(set.updateSeq, lowest) ?? -1) < 0) {
      lowest = set.updateSeq;
    }
  }
  if (lowest === undefined) {
    throw new FollowStartError(
      `Cannot follow changes of '${originKey}': no follower checkpoint and no complete ` +
        "partition set with a recorded update_seq; run 'partition refresh' first, or give " +
        "--since SEQ (0 reads the whole feed)",
    );
  }
  return { since: lowest, from: "partitions", replayUntil: undefined, passes };
}
