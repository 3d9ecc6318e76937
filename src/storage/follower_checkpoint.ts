/**
 * The checkpoint of a `_changes` follower: one small JSON record per origin, under
 * `v1:checkpoint:{originKey}:changes:follower`, written after each batch of pages whose changes
 * are applied to the cached partitions. A follower killed at any point resumes from it: what
 * it read after the last write is read again (applying a change twice changes nothing).
 *
 * It holds the last sequence applied, which complete partition-set passes the follower has
 * accounted for (a newer pass makes it replay from that pass's `update_seq`), the sequences of
 * the entries read last (to tell a late entry from one seen before when the trailing window is
 * read again), and the packuments still to fetch at the `_rev` the feed announced.
 *
 * @module
 */

import type { StorageDriver } from "./driver.ts";
import { CHECKPOINT_PREFIX } from "./keys.ts";

/** What a follower has done, as stored. */
export interface FollowerState {
  /** The record's format. */
  version: 1;
  /** The origin URL followed. */
  origin: string;
  /** The last sequence whose changes are applied (a number, or an opaque string). */
  seq: number | string;
  /** The pass of each complete partition set the follower has accounted for, by set id. */
  passes: Record<string, number>;
  /** The sequences of the entries read last, oldest first (at most twice the window). */
  recent: (number | string)[];
  /** The sequence before `recent[0]`: where a window of opaque sequences may start. */
  recentFloor: number | string;
  /** Packuments to fetch: the `_rev` the feed announced and how many rounds tried it. */
  pending: Record<string, { rev: string; tries: number }>;
  /** When the record was written (ms since the epoch). */
  updatedAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The key of an origin's follower checkpoint. It sits among the checkpoints (never listed as a
 * cache entry), and its five parts keep it apart from partition-set records (four parts).
 *
 * @param originKey The origin key.
 * @returns `v1:checkpoint:{originKey}:changes:follower`.
 *
 * @example
 * ```ts
 * import { followerKey } from "./follower_checkpoint.ts";
 * console.assert(followerKey("npm") === "v1:checkpoint:npm:changes:follower");
 * ```
 */
export function followerKey(originKey: string): string {
  return `${CHECKPOINT_PREFIX}${originKey}:changes:follower`;
}

/**
 * Reads an origin's follower checkpoint.
 *
 * @param driver Where it is stored.
 * @param originKey The origin key.
 * @returns The state, or `undefined` when none was written (or it is damaged).
 */
export async function readFollowerState(
  driver: StorageDriver,
  originKey: string,
): Promise<FollowerState | undefined> {
  const raw = await driver.get(followerKey(originKey));
  if (raw === undefined) return undefined;
  try {
    const state = JSON.parse(decoder.decode(raw)) as FollowerState;
    if (state.version !== 1 || (typeof state.seq !== "number" && typeof state.seq !== "string")) {
      return undefined;
    }
    return state;
  } catch {
    return undefined;
  }
}

/**
 * Writes an origin's follower checkpoint (one put: the record is replaced whole).
 *
 * @param driver Where it is stored.
 * @param originKey The origin key.
 * @param state The state.
 */
export async function writeFollowerState(
  driver: StorageDriver,
  originKey: string,
  state: FollowerState,
): Promise<void> {
  await driver.put(followerKey(originKey), encoder.encode(JSON.stringify(state)));
}
