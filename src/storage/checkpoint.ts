/**
 * The checkpoint of a partition set: one record per partition, so workers that update
 * different partitions never overwrite each other (each write replaces one small key; there is
 * no read-modify-write of a shared document).
 *
 * Keys: `v1:checkpoint:{originKey}:{setId}` holds the set (origin URL and pivots);
 * `v1:checkpoint:{originKey}:{setId}:{index}` (index as 6 decimal digits) holds a partition's
 * state; `...:{index}:claim:{hash}` is a claim being made on it (see {@linkcode Checkpoint.claim});
 * `v1:checkpoint:{originKey}:{setId}:pass:{pass}` (pass as 6 decimal digits) holds where a pass
 * started in the origin's feed (see {@linkcode PassRecord}). Checkpoints written before pass
 * records existed read as passes without one.
 *
 * Claims: a worker takes a partition over from the state it read. Where the driver has
 * `putIfAbsent`, the claim is atomic: the claimer first creates the claim key named after a
 * hash of the state it read, then reads the state again and writes its own only when it is
 * unchanged, then removes the claim key. Of workers claiming from one state, exactly one
 * succeeds. A claim key left by a worker killed midway is taken over once `isStale` says so.
 * Drivers without `putIfAbsent` claim by writing (read-then-write), so racing workers may both
 * win.
 *
 * @module
 */

import type { StorageDriver } from "./driver.ts";
import { CHECKPOINT_PREFIX } from "./keys.ts";
import { bytesToHex } from "../_util/hex.ts";

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

/** Where a pass of a set started: the origin's `update_seq` read before any of its ranges, so
 * every range of the pass holds at least the changes up to it. */
export interface PassRecord {
  /** The pass. */
  pass: number;
  /** The origin's `update_seq` (a number, or an opaque string on CouchDB 2+). */
  updateSeq: number | string;
  /** When it was read (ms since the epoch). */
  at: number;
}

/** What a claim key holds: who claimed and when. */
export interface ClaimRecord {
  /** The claiming worker. */
  owner: string;
  /** When the claim was made (ms since the epoch). */
  at: number;
}

/** A partition's state together with the bytes it was read from. */
export interface ReadState {
  /** The state, or `undefined` when never written (or damaged). */
  state: PartitionState | undefined;
  /** The stored bytes, or `undefined` when absent. */
  raw: Uint8Array | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The claim key's name for a state: `0` for none, else 32 hex digits of its sha256. */
async function stateHash(raw: Uint8Array | undefined): Promise<string> {
  if (raw === undefined) return "0";
  const digest = await crypto.subtle.digest("SHA-256", raw as Uint8Array<ArrayBuffer>);
  return bytesToHex(digest).slice(0, 32);
}

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
    return (await this.read(index)).state;
  }

  /**
   * One partition's state and the bytes it was read from, to claim it from.
   *
   * @param index The partition index.
   * @returns The state (`undefined` when never written or damaged) and the stored bytes.
   */
  async read(index: number): Promise<ReadState> {
    const raw = await this.driver.get(this.#partitionKey(index));
    if (!raw) return { state: undefined, raw: undefined };
    try {
      return { state: JSON.parse(decoder.decode(raw)), raw };
    } catch {
      // A damaged record counts as never written: the partition is redone.
      return { state: undefined, raw };
    }
  }

  /**
   * Takes a partition over from the state it was read in (`seen`, from
   * {@linkcode Checkpoint.read}) by writing `next`. Atomic where the driver has `putIfAbsent`
   * (see the module doc): of workers claiming from one state, exactly one gets `true`, and the
   * others must read the state again. Without it, `next` is written and the claim succeeds.
   *
   * @param index The partition index.
   * @param seen The bytes the state was read from (`undefined`: it was absent).
   * @param next The state to write, naming its owner.
   * @param isStale Whether a claim left in place (by a worker killed while claiming) may be
   *   taken over.
   * @returns Whether this worker now holds the partition.
   */
  async claim(
    index: number,
    seen: Uint8Array | undefined,
    next: PartitionState,
    isStale: (claim: ClaimRecord) => boolean,
  ): Promise<boolean> {
    const driver = this.driver;
    if (driver.putIfAbsent === undefined) {
      await this.put(index, next);
      return true;
    }
    const key = `${this.#partitionKey(index)}:claim:${await stateHash(seen)}`;
    const record: ClaimRecord = { owner: next.owner ?? "", at: next.updatedAt };
    const value = encoder.encode(JSON.stringify(record));
    if (!(await driver.putIfAbsent(key, value))) {
      const left = await driver.get(key);
      let claim: ClaimRecord | undefined;
      try {
        claim = left && JSON.parse(decoder.decode(left));
      } catch {
        claim = undefined;
      }
      if (left === undefined || (claim !== undefined && !isStale(claim))) return false;
      await driver.delete(key);
      if (!(await driver.putIfAbsent(key, value))) return false;
    }
    try {
      if (!sameBytes(await driver.get(this.#partitionKey(index)), seen)) return false;
      await this.put(index, next);
      return true;
    } finally {
      await driver.delete(key);
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
   * Where a pass started, when recorded.
   *
   * @param pass The pass.
   * @returns The record, or `undefined` when none was written (or it is damaged).
   */
  async passRecord(pass: number): Promise<PassRecord | undefined> {
    const raw = await this.driver.get(this.#passKey(pass));
    if (!raw) return undefined;
    try {
      return JSON.parse(decoder.decode(raw));
    } catch {
      return undefined;
    }
  }

  /**
   * Records where a pass started, unless a record of it is there already: the first one stays
   * (atomically where the driver has `putIfAbsent`), since it is the earliest start.
   *
   * @param record The record.
   * @returns Whether this record was written.
   */
  async recordPass(record: PassRecord): Promise<boolean> {
    const key = this.#passKey(record.pass);
    const value = encoder.encode(JSON.stringify(record));
    if (this.driver.putIfAbsent) return await this.driver.putIfAbsent(key, value);
    if (await this.driver.has(key)) return false;
    await this.driver.put(key, value);
    return true;
  }

  #passKey(pass: number): string {
    return `${this.key}:pass:${String(pass).padStart(6, "0")}`;
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
      const rest = key.slice(prefix.length);
      if (!/^\d+$/.test(rest)) continue; // A claim key.
      const index = Number(rest);
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
