/**
 * Work items: what flows through a queue engine. An item is
 * `{ type, id, payload, priority, attempts }`; this module defines the three types, checks a
 * payload before anything is enqueued, and gives each item its deterministic id.
 *
 * - `partition-set` `{ origin, originKey?, pivots, packuments?, registry? }` starts a pass of
 *   the set: one `partition` item per range. Id `partition-set:{setId}`.
 * - `partition` `{ origin, originKey?, setId, pass, index, startKey, endKey, packuments?,
 *   registry? }` reads one range completely into the cache, recorded in the set's checkpoint;
 *   with `packuments`, enqueues `packument` items for the ids whose `_rev` changed. Id
 *   `partition:{setId}:{pass}:{index}`.
 * - `changes` `{ origin, originKey?, packuments?, registry?, window?, limit? }` follows the
 *   origin's `_changes` feed once (`changes follow --once`) into its cached partitions; with
 *   `packuments`, enqueues `packument` items for the documents whose `_rev` changed. Id
 *   `changes:{originKey}`: one follower per origin is queued or running at a time, so a
 *   schedule that enqueues it every few minutes never runs two.
 * - `packument` `{ registry, names (1 to 1,000), representation?, revs? }` fetches a batch of
 *   packuments; `revs`, when given, holds the `_rev` the partition listed for each name, recorded
 *   with a document that has none of its own (the abbreviated one), so that the next pass sees
 *   it unchanged. Id `packument:{first 16 bytes of the sha256 of the registry, representation
 *   and sorted names, in hex}`.
 *
 * An id carries its generation (the pass; the batch itself), so re-enqueueing work that is
 * queued or running is reported as a duplicate, while a new pass gets new ids. Engines with
 * restrictions on ids (BullMQ refuses `:`) encode them themselves.
 *
 * @module
 */

import { sha256 } from "../_util/sha256.ts";
import { bytesToHex } from "../_util/hex.ts";
import { describe } from "../_util/describe.ts";
import { packageNameProblem } from "../npm/package_name.ts";
import { partitionSetId, PivotError, validatePivots } from "../couchdb/pivots.ts";
import { originKey as originKeyOfUrl, validateOriginKey } from "../storage/keys.ts";

/** The kinds of work. */
export type WorkItemType = "partition-set" | "partition" | "changes" | "packument";

/** The work item types, in the order they are documented. */
export const WORK_ITEM_TYPES: readonly WorkItemType[] = [
  "partition-set",
  "partition",
  "changes",
  "packument",
];

/** Which packument representation to fetch: the full document or the abbreviated one. */
export type PackumentKind = "full" | "corgi";

/** Payload of a `partition-set` item. */
export interface PartitionSetPayload {
  /** The replication endpoint (`_all_docs`). */
  origin: string;
  /** The origin's name in cache keys (default: derived from `origin`). */
  originKey?: string;
  /** The sorted pivots that split the key space. */
  pivots: string[];
  /** Also fetch the packuments whose `_rev` changed, in this representation. */
  packuments?: PackumentKind;
  /** The registry to fetch packuments from (default: the worker's). */
  registry?: string;
}

/** Payload of a `partition` item. */
export interface PartitionPayload {
  /** The replication endpoint (`_all_docs`). */
  origin: string;
  /** The origin's name in cache keys (default: derived from `origin`). */
  originKey?: string;
  /** The partition set's id. */
  setId: string;
  /** The pass of the set this item belongs to (from 1). */
  pass: number;
  /** The range's index in its set. */
  index: number;
  /** The first key (inclusive), `""` for the open start. */
  startKey: string;
  /** The end key (exclusive), `""` for the open end. */
  endKey: string;
  /** Also fetch the packuments whose `_rev` changed, in this representation. */
  packuments?: PackumentKind;
  /** The registry to fetch packuments from (default: the worker's). */
  registry?: string;
}

/** Payload of a `changes` item. */
export interface ChangesPayload {
  /** The replication endpoint (`_changes`). */
  origin: string;
  /** The origin's name in cache keys (default: derived from `origin`). */
  originKey?: string;
  /** Also fetch the packuments whose `_rev` changed, in this representation. */
  packuments?: PackumentKind;
  /** The registry to fetch packuments from (default: the worker's). */
  registry?: string;
  /** The trailing window re-read, in sequences (default: the follower's). */
  window?: number;
  /** Entries per page, 1 to 10,000 (default 10,000). */
  limit?: number;
}

/** Payload of a `packument` item. */
export interface PackumentPayload {
  /** The registry to fetch from. */
  registry: string;
  /** The package names: 1 to {@linkcode MAX_BATCH_NAMES}. */
  names: string[];
  /** Which representation.
   * @default {"full"} */
  representation?: PackumentKind;
  /** The `_rev` listed for each name, in the order of `names` (see the module docs). */
  revs?: string[];
}

/**
 * A `packument` payload narrowed to some of its names, their `revs` kept alongside.
 *
 * @param payload The payload.
 * @param names Names of `payload`.
 * @returns The narrowed payload.
 *
 * @example
 * ```ts
 * import { narrowPackuments } from "./items.ts";
 * const payload = { registry: "http://127.0.0.1/", names: ["a", "b"], revs: ["1-x", "2-y"] };
 * console.assert(narrowPackuments(payload, ["b"]).revs?.[0] === "2-y");
 * ```
 */
export function narrowPackuments(
  payload: PackumentPayload,
  names: readonly string[],
): PackumentPayload {
  const narrowed: PackumentPayload = { ...payload, names: [...names] };
  if (payload.revs) {
    const revOf = new Map(payload.names.map((name, i) => [name, payload.revs![i]!]));
    narrowed.revs = names.map((name) => revOf.get(name)!);
  }
  return narrowed;
}

/** The payload of each item type. */
export interface PayloadOf {
  /** A set. */
  "partition-set": PartitionSetPayload;
  /** A range. */
  "partition": PartitionPayload;
  /** A follow of the feed. */
  "changes": ChangesPayload;
  /** A batch of names. */
  "packument": PackumentPayload;
}

/** A unit of work as engines carry it. */
export interface WorkItem<T extends WorkItemType = WorkItemType> {
  /** The kind of work. */
  type: T;
  /** The deterministic id: see the module documentation. */
  id: string;
  /** What to do. */
  payload: PayloadOf[T];
  /** Of waiting items, a higher priority runs first. */
  priority: number;
  /** Attempts made before this delivery (0 on the first). */
  attempts: number;
}

/** An item as submitted: the id is derived when not given, the priority defaults to 0. */
export interface NewItem {
  /** The kind of work. */
  type: string;
  /** What to do. */
  payload: unknown;
  /** Of waiting items, a higher priority runs first.
   * @default {0} */
  priority?: number;
  /** An id of your own (1 to 200 printable ASCII characters).
   * @default {derived from the payload} */
  id?: string;
}

/** The most names one `packument` item carries. */
export const MAX_BATCH_NAMES: number = 1000;

/** Priorities are integers in this range (BullMQ's range, centred on 0). */
export const MIN_PRIORITY: number = -1_000_000;
/** See {@linkcode MIN_PRIORITY}. */
export const MAX_PRIORITY: number = 1_000_000;

/** A payload or item that cannot be enqueued: `message` names the field and the problem. */
export class WorkItemError extends TypeError {
  /** Always `WorkItemError`. */
  override name: string = "WorkItemError";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fail(message: string): never {
  throw new WorkItemError(message);
}

function httpUrl(field: string, value: unknown): string {
  if (typeof value !== "string" || !URL.canParse(value)) {
    fail(`'${field}' must be an absolute http(s) URL, received ${describe(value)}`);
  }
  const url = new URL(value);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    fail(`'${field}' must be an absolute http(s) URL, received ${describe(value)}`);
  }
  if (url.username !== "" || url.password !== "") {
    fail(`'${field}' must not carry credentials (the worker's configuration holds them)`);
  }
  if (url.search !== "" || url.hash !== "") {
    fail(`'${field}' must not have a query or fragment`);
  }
  return value;
}

function kind(field: string, value: unknown): PackumentKind | undefined {
  if (value === undefined) return undefined;
  if (value !== "full" && value !== "corgi") {
    fail(`'${field}' must be "full" or "corgi", received ${describe(value)}`);
  }
  return value;
}

function nonNegativeInteger(field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(`'${field}' must be a non-negative integer, received ${describe(value)}`);
  }
  return value;
}

function checkOriginKey(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") fail(`'originKey' must be a string, received ${describe(value)}`);
  try {
    return validateOriginKey(value);
  } catch (error) {
    fail(`'originKey': ${(error as Error).message}`);
  }
}

function onlyKeys(payload: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(payload)) {
    if (!allowed.includes(key)) fail(`unknown payload field '${key}'`);
  }
}

function optional<T>(key: string, value: T | undefined): Record<string, T> {
  return value === undefined ? {} : { [key]: value };
}

/**
 * Checks a payload for an item type and returns it normalized (known fields only, in a fixed
 * order).
 *
 * @param type The item type.
 * @param payload The payload as submitted.
 * @returns The payload.
 * @throws {WorkItemError} Naming the field and the problem.
 *
 * @example
 * ```ts
 * import { validatePayload } from "./items.ts";
 * const payload = validatePayload("packument", { registry: "http://127.0.0.1:4873/", names: ["ms"] });
 * console.assert(payload.names[0] === "ms");
 * ```
 */
export function validatePayload<T extends WorkItemType>(type: T, payload: unknown): PayloadOf[T] {
  if (!isRecord(payload)) fail(`'payload' must be an object, received ${describe(payload)}`);
  if (type === "packument") {
    onlyKeys(payload, ["registry", "names", "representation", "revs"]);
    const registry = httpUrl("registry", payload.registry);
    const names = payload.names;
    if (!Array.isArray(names) || names.length === 0 || names.length > MAX_BATCH_NAMES) {
      fail(`'names' must be an array of 1 to ${MAX_BATCH_NAMES} package names`);
    }
    names.forEach((name, i) => {
      const problem = typeof name === "string" ? packageNameProblem(name) : "not a string";
      if (problem) fail(`'names[${i}]' is not a package name: ${problem}`);
    });
    const revs = payload.revs;
    if (revs !== undefined) {
      if (!Array.isArray(revs) || revs.length !== names.length) {
        fail("'revs' must be an array with one revision per name");
      }
      revs.forEach((rev, i) => {
        if (typeof rev !== "string" || !/^\d+-[0-9A-Za-z]{1,64}$/.test(rev)) {
          fail(`'revs[${i}]' must be a revision like 3-abc, received ${describe(rev)}`);
        }
      });
    }
    return {
      registry,
      names: [...names] as string[],
      ...optional("representation", kind("representation", payload.representation)),
      ...optional("revs", revs === undefined ? undefined : [...revs] as string[]),
    } as PayloadOf[T];
  }
  const common = ["origin", "originKey", "packuments", "registry"];
  const origin = httpUrl("origin", payload.origin);
  const originKey = checkOriginKey(payload.originKey);
  const packuments = kind("packuments", payload.packuments);
  const registry = payload.registry === undefined
    ? undefined
    : httpUrl("registry", payload.registry);
  const tail = { ...optional("packuments", packuments), ...optional("registry", registry) };
  if (type === "changes") {
    onlyKeys(payload, [...common, "window", "limit"]);
    const window = payload.window === undefined
      ? undefined
      : nonNegativeInteger("window", payload.window);
    const limit = payload.limit === undefined
      ? undefined
      : nonNegativeInteger("limit", payload.limit);
    if (limit !== undefined && (limit < 1 || limit > 10_000)) {
      fail(`'limit' must be from 1 to 10000, received ${limit}`);
    }
    return {
      origin,
      ...optional("originKey", originKey),
      ...tail,
      ...optional("window", window),
      ...optional("limit", limit),
    } as PayloadOf[T];
  }
  if (type === "partition-set") {
    onlyKeys(payload, [...common, "pivots"]);
    if (!Array.isArray(payload.pivots)) {
      fail(`'pivots' must be an array of strings, received ${describe(payload.pivots)}`);
    }
    let pivots: string[];
    try {
      pivots = validatePivots([...payload.pivots]);
    } catch (error) {
      if (error instanceof PivotError) fail(`'pivots': ${error.message}`);
      throw error;
    }
    return { origin, ...optional("originKey", originKey), pivots, ...tail } as PayloadOf[T];
  }
  if (type === "partition") {
    onlyKeys(payload, [...common, "setId", "pass", "index", "startKey", "endKey"]);
    if (typeof payload.setId !== "string" || !/^[0-9a-f]{16}$/.test(payload.setId)) {
      fail(`'setId' must be 16 hex digits, received ${describe(payload.setId)}`);
    }
    const pass = nonNegativeInteger("pass", payload.pass);
    if (pass < 1) fail("'pass' must be at least 1");
    const index = nonNegativeInteger("index", payload.index);
    for (const field of ["startKey", "endKey"]) {
      if (typeof payload[field] !== "string") {
        fail(`'${field}' must be a string, received ${describe(payload[field])}`);
      }
    }
    return {
      origin,
      ...optional("originKey", originKey),
      setId: payload.setId,
      pass,
      index,
      startKey: payload.startKey,
      endKey: payload.endKey,
      ...tail,
    } as PayloadOf[T];
  }
  return fail(`unknown item type ${describe(type)}`);
}

/**
 * The origin key a `partition-set`, `partition` or `changes` payload caches under: its
 * `originKey`, else
 * the one derived from its `origin`.
 *
 * @param payload The payload.
 * @returns The origin key.
 */
export function originKeyOfPayload(
  payload: PartitionSetPayload | PartitionPayload | ChangesPayload,
): string {
  return payload.originKey ?? originKeyOfUrl(payload.origin);
}

/**
 * The deterministic id of an item: see the module documentation.
 *
 * @param type The item type.
 * @param payload A validated payload.
 * @returns The id.
 *
 * @example
 * ```ts
 * import { itemId } from "./items.ts";
 * const a = itemId("packument", { registry: "http://127.0.0.1/", names: ["b", "a"] });
 * const b = itemId("packument", { registry: "http://127.0.0.1/", names: ["a", "b"] });
 * console.assert(a === b && a.startsWith("packument:"));
 * ```
 */
export function itemId<T extends WorkItemType>(type: T, payload: PayloadOf[T]): string {
  if (type === "packument") {
    const p = payload as PackumentPayload;
    const names = [...p.names].sort();
    const text = JSON.stringify([p.registry, p.representation ?? "full", names]);
    return `packument:${bytesToHex(sha256(new TextEncoder().encode(text)).subarray(0, 16))}`;
  }
  if (type === "partition") {
    const p = payload as PartitionPayload;
    return `partition:${p.setId}:${p.pass}:${p.index}`;
  }
  if (type === "changes") return `changes:${originKeyOfPayload(payload as ChangesPayload)}`;
  const p = payload as PartitionSetPayload;
  return `partition-set:${partitionSetId(originKeyOfPayload(p), p.pivots)}`;
}

const ID = /^[\x21-\x7e]{1,200}$/;

/**
 * Checks a submitted item and makes it a {@linkcode WorkItem} (attempts 0).
 *
 * @param input The item as submitted.
 * @returns The item.
 * @throws {WorkItemError} Naming the field and the problem.
 *
 * @example
 * ```ts
 * import { toWorkItem } from "./items.ts";
 * const item = toWorkItem({ type: "packument", payload: { registry: "http://127.0.0.1/", names: ["ms"] } });
 * console.assert(item.priority === 0 && item.attempts === 0 && item.id.startsWith("packument:"));
 * ```
 */
export function toWorkItem(input: unknown): WorkItem {
  if (!isRecord(input)) fail(`an item must be an object, received ${describe(input)}`);
  for (const key of Object.keys(input)) {
    if (!["type", "payload", "priority", "id"].includes(key)) fail(`unknown item field '${key}'`);
  }
  const type = input.type;
  if (typeof type !== "string" || !(WORK_ITEM_TYPES as readonly string[]).includes(type)) {
    fail(`'type' must be one of ${WORK_ITEM_TYPES.join(", ")}, received ${describe(type)}`);
  }
  const priority = input.priority ?? 0;
  if (
    typeof priority !== "number" || !Number.isInteger(priority) || priority < MIN_PRIORITY ||
    priority > MAX_PRIORITY
  ) {
    fail(
      `'priority' must be an integer from ${MIN_PRIORITY} to ${MAX_PRIORITY}, received ${
        describe(priority)
      }`,
    );
  }
  const payload = validatePayload(type as WorkItemType, input.payload);
  if (input.id !== undefined && (typeof input.id !== "string" || !ID.test(input.id))) {
    fail(`'id' must be 1 to 200 printable ASCII characters, received ${describe(input.id)}`);
  }
  const id = (input.id as string | undefined) ?? itemId(type as WorkItemType, payload);
  return { type: type as WorkItemType, id, payload, priority, attempts: 0 };
}
