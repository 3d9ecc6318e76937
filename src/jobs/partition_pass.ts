/**
 * Which pass of a partition set a run works on, and which of its ranges are still to do: the
 * decision `partition refresh` ({@linkcode refreshPartitions}) and the worker's `partition-set`
 * items share, so both record their progress in one checkpoint the same way.
 *
 * - The set record is written on first use.
 * - The current pass is the highest pass any partition recorded (1 for a new set).
 * - A partition completed in this pass whose cache entry is gone (dropped as corrupt, say) is
 *   lost: it counts as not done and is fetched again.
 * - When every partition is done in the current pass, the set is complete and a new pass
 *   starts, in which every range is to do; otherwise the pass continues with the ranges not
 *   done in it.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { Checkpoint, PartitionSetRecord, PartitionState } from "../storage/checkpoint.ts";
import type { PartitionRange } from "../couchdb/pivots.ts";

/** What {@linkcode planPass} decided. */
export interface PassPlan {
  /** The pass to work on (from 1). */
  pass: number;
  /** The ranges not done in that pass, in order. */
  pending: PartitionRange[];
  /** Indexes recorded as done in that pass whose cache entry is gone: to fetch again. */
  lost: Set<number>;
}

/**
 * Records the set when it is new and decides the pass (see the module documentation).
 *
 * @param cache The cache holding the ranges.
 * @param checkpoint The set's checkpoint.
 * @param set The set record, written when the checkpoint has none.
 * @param ranges The set's ranges.
 * @returns The pass, the ranges to do in it and the lost ones.
 *
 * @example A new set starts at pass 1 with every range to do
 * ```ts
 * import { planPass } from "./partition_pass.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { Checkpoint } from "../storage/checkpoint.ts";
 * import { partitionSetId, rangesFromPivots } from "../couchdb/pivots.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const pivots = ["m"];
 * const id = partitionSetId("couch", pivots);
 * const checkpoint = new Checkpoint(cache.driver, "couch", id);
 * const set = { id, originKey: "couch", origin: "http://couch.test/", pivots, createdAt: 0 };
 * const plan = await planPass(cache, checkpoint, set, rangesFromPivots(pivots, "couch"));
 * console.assert(plan.pass === 1 && plan.pending.length === 2);
 * console.assert((await checkpoint.set())?.id === id);
 * ```
 */
export async function planPass(
  cache: Cache,
  checkpoint: Checkpoint,
  set: PartitionSetRecord,
  ranges: readonly PartitionRange[],
): Promise<PassPlan> {
  if (!(await checkpoint.set())) await checkpoint.writeSet(set);
  const states = await checkpoint.all();
  let pass = Math.max(1, ...[...states.values()].map((s) => s.pass ?? 1));
  const lost = new Set<number>();
  for (const range of ranges) {
    const state = states.get(range.index);
    if (state?.status === "done" && !(await cache.get(range.key, { verify: "while" }))) {
      states.delete(range.index);
      lost.add(range.index);
    }
  }
  const complete = (s: PartitionState | undefined) => s?.pass === pass && s.status === "done";
  if (ranges.every((r) => complete(states.get(r.index)))) pass++;
  const pending = ranges.filter((r) => !complete(states.get(r.index)));
  return { pass, pending, lost };
}
