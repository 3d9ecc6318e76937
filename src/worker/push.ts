/**
 * Push delivery: work items that Cloud Tasks or Pub/Sub push to the worker over HTTP, run by
 * the same handlers and under the same retry policy as queued items
 * ({@linkcode Worker.process}), the outcome carried out by the HTTP answer. The worker API
 * serves these as `POST /-/worker/push/cloud-tasks` and `POST /-/worker/push/pubsub`.
 *
 * | outcome | answer |
 * |---|---|
 * | ack | 200 `{"outcome":"ack","id"}` |
 * | retry | 503 `{"error":"retry","reason","id","attempts","delayMs"}` with `Retry-After` (seconds, at least 1) |
 * | dead | the dead letter is recorded on the worker's engine, then 200 `{"outcome":"dead","id","error"}` |
 * | released (the request was aborted) | 503 `{"error":"released",...}` with `Retry-After: 1` |
 * | not an item | 200 `{"outcome":"rejected","reason"}`: nothing runs, nothing is recorded |
 *
 * - **Cloud Tasks**: the body is one item as `POST /-/worker/items` takes it
 *   (`{"type","payload","priority"?,"id"?}`), whatever its `Content-Type` (Cloud Tasks sends
 *   `application/octet-stream` unless the task sets one). The attempt is
 *   `X-CloudTasks-TaskRetryCount` (0 on the first delivery; it counts the 503s too, unlike
 *   `X-CloudTasks-TaskExecutionCount`); without it (not Cloud Tasks) the attempt is 0.
 * - **Pub/Sub**: the body is the (wrapped) push envelope
 *   `{"message":{"data","attributes"?,"messageId"},"subscription","deliveryAttempt"?}`; `data`
 *   is the item as JSON, base64-encoded. The attempt is `deliveryAttempt - 1`, and 0 when it is
 *   absent: Pub/Sub sends it only when the subscription has a dead-letter policy, so without
 *   one the worker cannot tell a redelivery from the first delivery, never reaches its last
 *   attempt, and Pub/Sub redelivers a failing item until the message expires. Configure a
 *   dead-letter topic with `max_delivery_attempts` equal to the worker's `maxAttempts`
 *   (`--retries` + 1; Pub/Sub allows 5 to 100), so the worker records the dead letter on the
 *   last delivery (a lower one sends the message to the topic first). Pub/Sub counts
 *   deliveries on a best-effort basis. Attributes are ignored. A body that is not a push
 *   envelope at all answers 400: it is no Pub/Sub delivery.
 * - Likewise the Cloud Tasks queue's `maxAttempts` should be at least the worker's (or -1,
 *   unlimited): the worker answers 2xx on its own last attempt.
 * - **Dead letters**: neither service has a dead-letter list the worker can read, so a dead
 *   item is recorded as a dead letter on the worker's own queue engine
 *   (`QueueEngine.bury`), with `attempts` counting this delivery, and acknowledged (2xx) so it
 *   is not delivered again; `GET /-/worker/dead` lists it and `POST /-/worker/dead/{id}/retry`
 *   queues it again on the worker's engine (not on Cloud Tasks or Pub/Sub). The buried pieces
 *   of a `PartialFailure` are recorded the same way.
 * - **Narrowed retries**: a `PartialFailure` that retries part of an item (the names of a
 *   batch that failed) cannot narrow the task or message: the whole item is delivered again
 *   and the names already fetched are revalidated (a 304 when unchanged).
 * - **Not an item**: a body (or `data`) that is not UTF-8 JSON or not a valid item can never
 *   succeed, so it is acknowledged with `rejected` and its reason rather than redelivered
 *   until the service gives up. It is not recorded as a dead letter: the engine holds only
 *   items that validate, since `retry` would run a handler on its payload.
 * - **Follow-up items** a handler queues (the partitions of a set, the packument batches of a
 *   partition) go to the worker's own engine, consumed by `worker start` as usual.
 * - `Retry-After` is the worker's backoff: Cloud Tasks takes it into account; Pub/Sub uses its
 *   subscription's retry policy (`minimum_backoff`, `maximum_backoff`) instead.
 *
 * @module
 */

import { toWorkItem, type WorkItem, WorkItemError } from "./items.ts";
import type { Worker } from "./worker.ts";

/** The largest push body read, in bytes (4 MiB; a Cloud Task is at most 1 MB). */
export const MAX_PUSH_BYTES: number = 4 * 1024 * 1024;

/** What a push request carries: an item to run, one that can never run, or no delivery. */
export type PushDelivery =
  | {
    kind: "item";
    /** The item, `attempts` from the service's headers or envelope. */
    item: WorkItem;
    /** The task name or message id, for logs. */
    source: string;
  }
  | {
    kind: "rejected";
    /** Why it is not an item. */
    reason: string;
    /** The task name or message id, for logs. */
    source: string;
  }
  | {
    kind: "malformed";
    /** Why the request is not a delivery of its service. */
    reason: string;
  };

/** The HTTP answer to a push: a status, a JSON body and extra headers. */
export interface PushAnswer {
  /** The status: 2xx acknowledges, anything else asks for a redelivery. */
  status: number;
  /** The JSON body. */
  body: Record<string, unknown>;
  /** Extra headers (`Retry-After`). */
  headers: Record<string, string>;
}

const MAX_ATTEMPT = 1_000_000;
const SOURCE = /^[\x21-\x7e]{1,500}$/;

function itemFrom(text: string, attempts: number, source: string): PushDelivery {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    return { kind: "rejected", reason: "The item is not JSON", source };
  }
  try {
    return { kind: "item", item: { ...toWorkItem(input), attempts }, source };
  } catch (error) {
    if (error instanceof WorkItemError) return { kind: "rejected", reason: error.message, source };
    throw error;
  }
}

function utf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Reads a Cloud Tasks push: the body is one item, the attempt `X-CloudTasks-TaskRetryCount`.
 *
 * @param bytes The body.
 * @param headers The request headers.
 * @returns The delivery.
 *
 * @example
 * ```ts
 * import { cloudTasksDelivery } from "./push.ts";
 * const item = { type: "packument", payload: { registry: "http://127.0.0.1:4873/", names: ["ms"] } };
 * const delivery = cloudTasksDelivery(
 *   new TextEncoder().encode(JSON.stringify(item)),
 *   new Headers({ "x-cloudtasks-taskname": "t1", "x-cloudtasks-taskretrycount": "2" }),
 * );
 * console.assert(delivery.kind === "item" && delivery.item.attempts === 2);
 * ```
 */
export function cloudTasksDelivery(bytes: Uint8Array, headers: Headers): PushDelivery {
  const retries = headers.get("x-cloudtasks-taskretrycount");
  if (retries !== null && (!/^\d{1,7}$/.test(retries) || Number(retries) > MAX_ATTEMPT)) {
    return {
      kind: "malformed",
      reason: "X-CloudTasks-TaskRetryCount must be a non-negative integer",
    };
  }
  const name = headers.get("x-cloudtasks-taskname") ?? "";
  const source = SOURCE.test(name) ? `task ${name}` : "task";
  const text = utf8(bytes);
  if (text === undefined) return { kind: "rejected", reason: "The item is not UTF-8", source };
  return itemFrom(text, retries === null ? 0 : Number(retries), source);
}

/**
 * Reads a Pub/Sub push envelope: the item is `message.data` (base64 JSON), the attempt
 * `deliveryAttempt - 1` (0 without it).
 *
 * @param bytes The body.
 * @returns The delivery.
 *
 * @example
 * ```ts
 * import { pubSubDelivery } from "./push.ts";
 * const item = { type: "packument", payload: { registry: "http://127.0.0.1:4873/", names: ["ms"] } };
 * const envelope = {
 *   message: { data: btoa(JSON.stringify(item)), messageId: "1" },
 *   subscription: "projects/p/subscriptions/s",
 *   deliveryAttempt: 3,
 * };
 * const delivery = pubSubDelivery(new TextEncoder().encode(JSON.stringify(envelope)));
 * console.assert(delivery.kind === "item" && delivery.item.attempts === 2);
 * ```
 */
export function pubSubDelivery(bytes: Uint8Array): PushDelivery {
  const malformed = (reason: string): PushDelivery => ({ kind: "malformed", reason });
  const text = utf8(bytes);
  let envelope: unknown;
  try {
    envelope = text === undefined ? undefined : JSON.parse(text);
  } catch {
    envelope = undefined;
  }
  if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope)) {
    return malformed('The body must be a Pub/Sub push envelope: {"message": {...}, ...}');
  }
  const { message, deliveryAttempt } = envelope as Record<string, unknown>;
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    return malformed("'message' must be an object");
  }
  const { data, messageId, message_id } = message as Record<string, unknown>;
  const id = messageId ?? message_id;
  if (typeof id !== "string" || id === "") {
    return malformed("'message.messageId' must be a non-empty string");
  }
  if (
    deliveryAttempt !== undefined && deliveryAttempt !== null &&
    (typeof deliveryAttempt !== "number" || !Number.isInteger(deliveryAttempt) ||
      deliveryAttempt < 1 || deliveryAttempt > MAX_ATTEMPT)
  ) {
    return malformed("'deliveryAttempt' must be a positive integer");
  }
  const source = SOURCE.test(id) ? `message ${id}` : "message";
  if (data === undefined || data === null || data === "") {
    return { kind: "rejected", reason: "The message has no data", source };
  }
  if (typeof data !== "string" || data.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) {
    return { kind: "rejected", reason: "'message.data' is not base64", source };
  }
  const binary = atob(data);
  const decoded = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) decoded[i] = binary.charCodeAt(i);
  const json = utf8(decoded);
  if (json === undefined) return { kind: "rejected", reason: "The item is not UTF-8", source };
  const attempts = typeof deliveryAttempt === "number" ? deliveryAttempt - 1 : 0;
  return itemFrom(json, attempts, source);
}

/**
 * Runs a pushed item through {@linkcode Worker.process} and turns its outcome into the
 * answer (see the module documentation); a dead item is buried on the worker's engine first.
 *
 * @param worker The worker.
 * @param delivery An `item` or `rejected` delivery (a `malformed` one answers 400).
 * @param signal Aborts the handler (the request was cancelled).
 * @returns The answer.
 *
 * @example A dead item is recorded and acknowledged
 * ```ts
 * import { cloudTasksDelivery, runPushed } from "./push.ts";
 * import { Worker } from "./worker.ts";
 * import { PermanentError } from "./retry.ts";
 * import { MemoryQueue } from "../../queues/memory.ts";
 *
 * const worker = new Worker(new MemoryQueue(), {
 *   handlers: { packument: () => Promise.reject(new PermanentError("gone")) },
 * });
 * const item = { type: "packument", payload: { registry: "http://127.0.0.1:4873/", names: ["ms"] } };
 * const delivery = cloudTasksDelivery(new TextEncoder().encode(JSON.stringify(item)), new Headers());
 * const answer = await runPushed(worker, delivery, new AbortController().signal);
 * console.assert(answer.status === 200 && answer.body.outcome === "dead");
 * console.assert((await worker.engine.dead()).length === 1);
 * ```
 */
export async function runPushed(
  worker: Worker,
  delivery: PushDelivery,
  signal: AbortSignal,
): Promise<PushAnswer> {
  if (delivery.kind === "malformed") {
    return { status: 400, body: { error: "bad_request", reason: delivery.reason }, headers: {} };
  }
  if (delivery.kind === "rejected") {
    return { status: 200, body: { outcome: "rejected", reason: delivery.reason }, headers: {} };
  }
  const { item } = delivery;
  const outcome = await worker.process(item, signal);
  switch (outcome.kind) {
    case "ack":
      return { status: 200, body: { outcome: "ack", id: item.id }, headers: {} };
    case "dead":
      await worker.engine.bury({ ...item, attempts: item.attempts + 1 }, outcome.error);
      return {
        status: 200,
        body: { outcome: "dead", id: item.id, error: outcome.error },
        headers: {},
      };
    case "retry":
      return {
        status: 503,
        body: {
          error: "retry",
          reason: outcome.error,
          id: item.id,
          attempts: item.attempts + 1,
          delayMs: outcome.delayMs,
        },
        headers: { "retry-after": String(Math.max(1, Math.ceil(outcome.delayMs / 1000))) },
      };
    case "release":
      return {
        status: 503,
        body: {
          error: "released",
          reason: "The delivery was cancelled before the item was done",
          id: item.id,
        },
        headers: { "retry-after": "1" },
      };
  }
}
