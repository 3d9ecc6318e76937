/**
 * The checkpoint of a partition set: one record per partition, so workers that update
 * different partitions never overwrite each other (each write replaces one small key; there is
 * no read-modify-write of a shared document).
 *
 * Keys: `v1:checkpoint:{originKey}:{setId}` holds the set (origin URL and pivots);
 * `v1:checkpoint:{originKey}:{setId}:{index}` (index as 6 decimal digits) holds a partition's
 * state.
 *
 * @module
 */

import type { StorageDriver } from "./driver.ts";
import { CHECKPOINT_PREFIX } from "./keys.ts";

/** Where a partition stands. */
export type PartitionStatus = "pending" | "in-progress" | "done" | "failed";

/** The recorded state of one partition. */
export interface PartitionState {
  /** Where it stands. */
  status: PartitionStatus;
  /** Attempts made in the current pass. */
  attempts: number;
  /** Rows in the cached range (when done). */
  rows: number;
  /** The last error, when an attempt failed. */
  lastError?: string;
  /** When the current attempt started (ms since the epoch). */
  startedAt?: number;
  /** When this record was last written; an in-progress worker renews it as a heartbeat. */
  updatedAt: number;
  /** When the partition was last completed. */
  finishedAt?: number;
  /** The worker holding the partition while in progress. */
  owner?: string;
  /** The pass the state belongs to; a refresh of a completed set starts a new pass. */
  pass: number;
}

/** The set record. */
export interface PartitionSetRecord {
  /** The set id. */
  id: string;
  /** The origin key. */
  originKey: string;
  /** The origin URL. */
  origin: string;
  /** The pivots. */
  pivots: string[];
  /** When the set was first recorded. */
  createdAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A partition set's checkpoint over a storage driver. */
export class Checkpoint {
  /** The driver underneath. */
  readonly driver: StorageDriver;
  /** The set record's key. */
  readonly key: string;

  /**
   * Opens the checkpoint of one set.
   *
   * @param driver Where the records live.
   * @param originKey The origin key.
   * @param setId The set id.
   */
  constructor(driver: StorageDriver, originKey: string, setId: string) {
    this.driver = driver;
    this.key = `${CHECKPOINT_PREFIX}${originKey}:${setId}`;
  }

  #partitionKey(index: number): string {
    return `${this.key}:${String(index).padStart(6, "0")}`;
  }

  /**
   * The set record, or `undefined` before the first run.
   *
   * @returns The record.
   */
  async set(): Promise<PartitionSetRecord | undefined> {
    const raw = await this.driver.get(this.key);
    return raw && JSON.parse(decoder.decode(raw));
  }

  /**
   * Writes the set record.
   *
   * @param record The record.
   */
  async writeSet(record: PartitionSetRecord): Promise<void> {
    await this.driver.put(this.key, encoder.encode(JSON.stringify(record)));
  }

  /**
   * One partition's state.
   *
   * @param index The partition index.
   * @returns The state, or `undefined` when never written.
   */
  async get(index: number): Promise<PartitionState | undefined> {
    const raw = await this.driver.get(this.#partitionKey(index));
    if (!raw) return undefined;
    try {
      return JSON.parse(decoder.decode(raw));
    } catch {
      return undefined; // A damaged record counts as never written: the partition is redone.
    }
  }

  /**
   * Replaces one partition's state.
   *
   * @param index The partition index.
   * @param state The state.
   */
  async put(index: number, state: PartitionState): Promise<void> {
    await this.driver.put(this.#partitionKey(index), encoder.encode(JSON.stringify(state)));
  }

  /**
   * Every recorded partition state.
   *
   * @returns States by index.
   */
  async all(): Promise<Map<number, PartitionState>> {
    const out = new Map<number, PartitionState>();
    const prefix = `${this.key}:`;
    for await (const key of this.driver.list({ prefix })) {
      const index = Number(key.slice(prefix.length));
      const state = await this.get(index);
      if (state) out.set(index, state);
    }
    return out;
  }

  /** Removes the set record and every partition state. */
  async clear(): Promise<void> {
    const keys: string[] = [];
    for await (const key of this.driver.list({ prefix: `${this.key}:` })) keys.push(key);
    await Promise.all(keys.map((key) => this.driver.delete(key)));
    await this.driver.delete(this.key);
  }
}

/**
 * Every partition set recorded in a driver.
 *
 * @param driver The driver.
 * @returns The set records in key order.
 */
export async function listPartitionSets(driver: StorageDriver): Promise<PartitionSetRecord[]> {
  const out: PartitionSetRecord[] = [];
  for await (const key of driver.list({ prefix: CHECKPOINT_PREFIX })) {
    if (key.split(":").length !== 4) continue;
    const raw = await driver.get(key);
    if (raw) out.push(JSON.parse(decoder.decode(raw)));
  }
  return out;
}
