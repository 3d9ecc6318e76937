/**
 * The worker HTTP API: one Hono app that feeds and watches a {@linkcode Worker}'s queue, and,
 * given a cache, also serves the read replica from it, so one deployment is both the mirror and
 * its refresher. Every entry point (the CLI's `worker start`, the Deno Deploy worker, ...)
 * mounts this app.
 *
 * Routes live under npm's own namespace `/-/`, so no path can clash with a package name.
 * Every answer is JSON (`Content-Type: application/json`, `Cache-Control: no-store`); errors
 * are `{"error": CODE, "reason": TEXT}`.
 *
 * | route | answer |
 * |---|---|
 * | `GET /-/worker/health` | 200 `{"status":"ok","engine":NAME}`, without auth; it does not touch the engine |
 * | `POST /-/worker/items` | 202 `{"accepted":[ids],"duplicates":[ids]}` |
 * | `GET /-/worker/items/{id}` | 200 the item's status record, 404 when unknown |
 * | `GET /-/worker/stats` | 200 `{"queued","running","done","dead","engine"}` |
 * | `GET /-/worker/dead?limit=N` | 200 `{"items":[status records]}`, oldest first; N from 1 to 1000, default 100 |
 * | `POST /-/worker/dead/{id}/retry` | 202 `{"id"}`, 404 when the item is not dead |
 * | `POST /-/worker/push/cloud-tasks` | one item pushed by Cloud Tasks, run at once: see {@linkcode runPushed} |
 * | `POST /-/worker/push/pubsub` | one item in a Pub/Sub push envelope, run at once: see {@linkcode runPushed} |
 *
 * - **Enqueue**: the body is `{"items":[{"type","payload","priority"?,"id"?}, ...]}` with 1 to
 *   {@linkcode MAX_ENQUEUE_ITEMS} items, sent as `Content-Type: application/json` (or any
 *   `application/*+json`), else 415 `unsupported_media_type`. Items are validated all or
 *   nothing ({@linkcode Worker.enqueue}): when any is invalid the answer is 400 `bad_request`
 *   whose reason names its index and the problem (`items[3]: 'names[0]' is not a package name:
 *   ...`), and nothing is queued. A body that is not UTF-8 JSON, not an object, has other fields
 *   than `items`, or whose `items` is not an array of 1 to 10,000 answers 400 `bad_request`. A
 *   body over {@linkcode MAX_ENQUEUE_BYTES} (8 MiB) answers 413 `payload_too_large`: by its
 *   `Content-Length` before anything is read, else as soon as the bytes read pass the cap, so
 *   no more than that is ever held.
 * - **Ids** contain `:` and, when given by the user, any printable ASCII: send an id
 *   percent-encoded (`encodeURIComponent`) as one path segment; it is decoded exactly once. A
 *   bad percent-encoding answers 400; an id that cannot exist (empty, not 1 to 200 printable
 *   ASCII characters) answers 404.
 * - **Auth**: with a `token`, every route under `/-/worker/` but `health` (unknown paths
 *   included) needs `Authorization: Bearer TOKEN`, else 401 `{"error":"unauthorized"}` with
 *   `WWW-Authenticate: Bearer`. Tokens are compared in constant time (the SHA-256 digests of
 *   both, compared byte by byte without an early exit); a token never appears in a log line or
 *   an error message. Without a token there is no auth (the CLI allows that only on loopback
 *   with `--no-auth`). Send the token only in the header: the request log records the path and
 *   query.
 * - **Push auth**: the push routes take the token too, or, with `push.oidc`, an OIDC identity
 *   token (`Authorization: Bearer JWT`, as Cloud Tasks and Pub/Sub send it for a service
 *   account) that {@linkcode OidcVerifier} accepts; with `push.oidc` and no token they need
 *   the OIDC token. A refused one answers 401 `unauthorized` with
 *   `WWW-Authenticate: Bearer error="invalid_token"` and the check that failed; when the keys
 *   to check it cannot be fetched, 503 `oidc_keys_unavailable` (so the service delivers again).
 * - **Push bodies** are read up to {@linkcode MAX_PUSH_BYTES} whatever their `Content-Type`;
 *   a larger one can never be an item and is acknowledged as `rejected`. With `log`, each
 *   rejected push also gets a line `{"type":"push-rejected","route","source","reason"}`.
 * - **Methods**: `GET` routes also answer `HEAD`; another method answers 405 with `Allow`.
 *   Unknown paths under `/-/worker/` (and `/-/worker` itself) answer 404 `not_found`.
 * - **Replica**: with `replica`, every other path is answered by
 *   {@linkcode createReplicaApp} exactly as it answers it alone (`/`, `/-/ping`,
 *   `/_all_docs`, `/NAME`, `/@scope%2fNAME`, its raw-path handling of package names); so a
 *   package named `-` or `worker` is still a package. Without it, other paths answer 404.
 * - **Log**: with `log`, one JSON line per request ({@linkcode requestLog}: method, path and
 *   query as sent, status, bytes, ms), the replica's requests included; headers are never
 *   logged.
 *
 * @module
 */

import type { Context, Hono, MiddlewareHandler } from "hono";
import { honoApp } from "../_util/hono.ts";
import { sha256 } from "../_util/sha256.ts";
import type { Clock } from "../clock.ts";
import { createReplicaApp, type ReplicaAppOptions } from "../replica/app.ts";
import { rawPath, rawQuery, requestLog } from "../replica/request_log.ts";
import { concatBytes } from "../_util/bytes.ts";
import { WorkItemError } from "./items.ts";
import type { Worker } from "./worker.ts";
import { OidcError, type OidcOptions, OidcVerifier } from "./oidc.ts";
import {
  cloudTasksDelivery,
  MAX_PUSH_BYTES,
  pubSubDelivery,
  type PushDelivery,
  runPushed,
} from "./push.ts";

export type { OidcOptions } from "./oidc.ts";

/** Options of {@linkcode createWorkerApp}. */
export interface WorkerAppOptions {
  /** The worker: items are queued through {@linkcode Worker.enqueue}, read from its engine. */
  worker: Worker;
  /**
   * The bearer token every route but `health` needs; `undefined` for no auth (the CLI allows
   * that only on loopback with `--no-auth`). 1 to 4096 visible ASCII characters.
   */
  token: string | undefined;
  /** When given, the app also serves the read replica from this cache (its `log` and `clock`
   * are used only when the app's own are absent). */
  replica?: ReplicaAppOptions;
  /** Receives one JSON line per request (see {@linkcode requestLog}). */
  log?: (line: string) => void;
  /** The clock for request durations.
   * @default {Date} */
  clock?: Pick<Clock, "now">;
  /** Settings of the push routes (which always exist, behind the token). */
  push?: {
    /** Also accept OIDC identity tokens with these settings on the push routes. */
    oidc?: OidcOptions;
  };
}

/** The most items one `POST /-/worker/items` may carry. */
export const MAX_ENQUEUE_ITEMS = 10_000;

/** The largest body `POST /-/worker/items` reads, in bytes (8 MiB). */
export const MAX_ENQUEUE_BYTES: number = 8 * 1024 * 1024;

/** The most dead letters one `GET /-/worker/dead` lists, and how many it lists by default. */
const MAX_DEAD_LIMIT = 1000;
const DEFAULT_DEAD_LIMIT = 100;

const PREFIX = "/-/worker";
/** What an item id can be (as `toWorkItem` checks it): anything else cannot be found. */
const ITEM_ID = /^[\x21-\x7e]{1,200}$/;
const TOKEN = /^[\x21-\x7e]{1,4096}$/;
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Responses

function json(status: number, value: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value) + "\n", {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}

function problem(status: number, error: string, reason: string): Response {
  return json(status, { error, reason });
}

function badRequest(reason: string): Response {
  return problem(400, "bad_request", reason);
}

function notFound(reason = "No such route"): Response {
  return problem(404, "not_found", reason);
}

function methodNotAllowed(allow: string): Response {
  return json(405, { error: "method_not_allowed", reason: `Only ${allow} allowed` }, { allow });
}

function tooLarge(): Response {
  return problem(
    413,
    "payload_too_large",
    `The body must be at most ${MAX_ENQUEUE_BYTES} bytes: send fewer items per request`,
  );
}

// ---------------------------------------------------------------------------------------------
// Requests

/** The credentials of a `Bearer` `Authorization` header, or `undefined`. */
function bearerOf(header: string | undefined): string | undefined {
  return /^Bearer +([\x21-\x7e]+) *$/i.exec(header ?? "")?.[1];
}

/** Whether an `Authorization` header carries the token whose SHA-256 digest is `expected`. */
function bearerMatches(header: string | undefined, expected: Uint8Array): boolean {
  const sent = bearerOf(header);
  // Hash whatever was sent (the empty string when nothing usable was), so that the work done
  // depends neither on the token's length nor on where it first differs.
  const given = sha256(encoder.encode(sent ?? ""));
  let difference = sent === undefined ? 1 : 0;
  for (let i = 0; i < expected.length; i++) difference |= expected[i]! ^ given[i]!;
  return difference === 0;
}

/** The `{id}` segment of a path: percent-decoded once; a Response when it is not usable. */
function itemIdOf(segment: string): string | Response {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    return badRequest("The item id is not valid percent-encoding");
  }
  return ITEM_ID.test(id) ? id : notFound(`No item ${JSON.stringify(id)}`);
}

/** Whether a `Content-Type` names JSON: `application/json` or `application/*+json`. */
function isJsonType(header: string | undefined): boolean {
  const type = (header ?? "").split(";")[0]!.trim().toLowerCase();
  return type === "application/json" || /^application\/[!#$&^_.+\w-]+\+json$/.test(type);
}

/**
 * Reads a body of at most `cap` bytes: refused by its `Content-Length`, else cut off (the
 * stream cancelled) as soon as more arrives than the cap.
 */
async function readCapped(request: Request, cap: number): Promise<Uint8Array | Response> {
  const length = request.headers.get("content-length");
  if (length !== null) {
    if (!/^\d{1,16}$/.test(length.trim())) return badRequest("Invalid Content-Length");
    if (Number(length) > cap) return tooLarge();
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel().catch(() => {});
      return tooLarge();
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : concatBytes(chunks);
}

/** The `items` of an enqueue body, or a 400 saying what is wrong with it. */
function itemsOf(bytes: Uint8Array): unknown[] | Response {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return badRequest("The body must be JSON in UTF-8");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return badRequest('The body must be an object: {"items": [...]}');
  }
  for (const key of Object.keys(body)) {
    if (key !== "items") return badRequest(`Unknown body field ${JSON.stringify(key)}`);
  }
  const items = (body as { items?: unknown }).items;
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_ENQUEUE_ITEMS) {
    return badRequest(`'items' must be an array of 1 to ${MAX_ENQUEUE_ITEMS} items`);
  }
  return items;
}

/** The `limit` of `GET /-/worker/dead`, or a 400. */
function deadLimitOf(query: string): number | Response {
  const params = new URLSearchParams(query);
  let limit = DEFAULT_DEAD_LIMIT;
  let seen = false;
  for (const [key, value] of params) {
    if (key !== "limit") return badRequest(`Unknown query parameter ${JSON.stringify(key)}`);
    if (seen) return badRequest("'limit' is given more than once");
    seen = true;
    if (!/^[1-9]\d{0,3}$/.test(value) || Number(value) > MAX_DEAD_LIMIT) {
      return badRequest(
        `'limit' must be an integer from 1 to ${MAX_DEAD_LIMIT}, received ${JSON.stringify(value)}`,
      );
    }
    limit = Number(value);
  }
  return limit;
}

// ---------------------------------------------------------------------------------------------
// The app

/**
 * Creates the worker API app (see the module documentation for its routes). Hand `app.fetch`
 * to any `fetch`-style HTTP server, or call `app.request(...)` directly.
 *
 * @param options The worker, the token, and the replica's cache when it should be served too.
 * @returns The Hono app.
 * @throws {TypeError} When `worker` is missing or `token` is empty or not 1 to 4096 visible
 * ASCII characters (the message never contains the token), or the replica or OIDC options are
 * invalid.
 *
 * @example Queue an item, then watch it
 * ```ts
 * import { createWorkerApp } from "./api.ts";
 * import { Worker } from "./worker.ts";
 * import { MemoryQueue } from "../../queues/memory.ts";
 *
 * const worker = new Worker(new MemoryQueue(), { handlers: { packument: () => Promise.resolve() } });
 * const app = createWorkerApp({ worker, token: "s3cret-token" });
 * const auth = { authorization: "Bearer s3cret-token" };
 * const item = { type: "packument", payload: { registry: "http://127.0.0.1:4873/", names: ["ms"] } };
 * const posted = await app.request("/-/worker/items", {
 *   method: "POST",
 *   headers: { ...auth, "content-type": "application/json" },
 *   body: JSON.stringify({ items: [item] }),
 * });
 * console.assert(posted.status === 202);
 * const { accepted } = await posted.json();
 * await worker.runUntilIdle();
 * const status = await app.request(`/-/worker/items/${encodeURIComponent(accepted[0])}`, {
 *   headers: auth,
 * });
 * console.assert((await status.json()).state === "done");
 * console.assert((await app.request("/-/worker/stats")).status === 401);
 * console.assert((await app.request("/-/worker/health")).status === 200);
 * ```
 */
export function createWorkerApp(options: WorkerAppOptions): Hono {
  const { worker, token } = options;
  if (typeof worker !== "object" || worker === null || typeof worker.enqueue !== "function") {
    throw new TypeError("Cannot create worker app: 'worker' must be a Worker");
  }
  if (token !== undefined && (typeof token !== "string" || !TOKEN.test(token))) {
    // Never echo the token, not even a bad one.
    throw new TypeError(
      "Cannot create worker app: 'token' must be 1 to 4096 visible ASCII characters (no spaces)",
    );
  }
  const expected = token === undefined ? undefined : sha256(encoder.encode(token));
  const oidc = options.push?.oidc && new OidcVerifier(options.push.oidc);
  const engine = worker.engine;
  const log = options.log ?? options.replica?.log;
  const clock = options.clock ?? options.replica?.clock ?? Date;
  // The app logs every request itself, so the replica it delegates to logs nothing.
  const replica = options.replica && createReplicaApp(withoutLog(options.replica));

  const app = honoApp(rawPath);
  if (log) app.use(requestLog(log, { now: () => clock.now() }));

  app.onError((error) => {
    return problem(
      500,
      "internal_server_error",
      error instanceof Error ? error.message : "The queue could not be read",
    );
  });

  // Hono answers HEAD from the GET routes, dropping the body.
  app.get(`${PREFIX}/health`, () => json(200, { status: "ok", engine: engine.name }));
  app.all(`${PREFIX}/health`, () => methodNotAllowed("GET, HEAD"));

  const authenticate: MiddlewareHandler = async (c, next) => {
    const header = c.req.header("authorization");
    if (oidc && c.req.path.startsWith(`${PREFIX}/push/`)) {
      if (!expected || !bearerMatches(header, expected)) {
        const refused = await oidcRefusal(oidc, header);
        if (refused) return refused;
      }
    } else if (expected && !bearerMatches(header, expected)) {
      return json(401, {
        error: "unauthorized",
        reason: "This route needs 'Authorization: Bearer TOKEN'",
      }, { "www-authenticate": "Bearer" });
    }
    await next();
    return undefined;
  };
  // `/-/worker/*` also matches `/-/worker` itself.
  app.use(`${PREFIX}/*`, authenticate);

  app.post(`${PREFIX}/items`, (c) => enqueue(c));
  app.all(`${PREFIX}/items`, () => methodNotAllowed("POST"));

  app.get(`${PREFIX}/items/:id`, async (c) => {
    const id = itemIdOf(c.req.path.slice(`${PREFIX}/items/`.length));
    if (id instanceof Response) return id;
    const status = await engine.status(id);
    return status ? json(200, status) : notFound(`No item ${JSON.stringify(id)}`);
  });
  app.all(`${PREFIX}/items/:id`, () => methodNotAllowed("GET, HEAD"));

  app.get(`${PREFIX}/stats`, async () => {
    const { queued, running, done, dead } = await engine.stats();
    return json(200, { queued, running, done, dead, engine: engine.name });
  });
  app.all(`${PREFIX}/stats`, () => methodNotAllowed("GET, HEAD"));

  app.get(`${PREFIX}/dead`, async (c) => {
    const limit = deadLimitOf(rawQuery(c.req.raw));
    if (limit instanceof Response) return limit;
    return json(200, { items: await engine.dead(limit) });
  });
  app.all(`${PREFIX}/dead`, () => methodNotAllowed("GET, HEAD"));

  app.post(`${PREFIX}/dead/:id/retry`, async (c) => {
    const segment = c.req.path.slice(`${PREFIX}/dead/`.length, -"/retry".length);
    const id = itemIdOf(segment);
    if (id instanceof Response) return id;
    if (!(await engine.retryDead(id))) return notFound(`No dead item ${JSON.stringify(id)}`);
    return json(202, { id });
  });
  app.all(`${PREFIX}/dead/:id/retry`, () => methodNotAllowed("POST"));

  app.post(
    `${PREFIX}/push/cloud-tasks`,
    (c) => push(c, "cloud-tasks", (bytes) => cloudTasksDelivery(bytes, c.req.raw.headers)),
  );
  app.all(`${PREFIX}/push/cloud-tasks`, () => methodNotAllowed("POST"));
  app.post(`${PREFIX}/push/pubsub`, (c) => push(c, "pubsub", pubSubDelivery));
  app.all(`${PREFIX}/push/pubsub`, () => methodNotAllowed("POST"));

  app.all(`${PREFIX}/*`, () => notFound());

  app.all("*", (c) => replica ? replica.fetch(c.req.raw) : notFound());

  async function enqueue(c: Context): Promise<Response> {
    if (!isJsonType(c.req.header("content-type"))) {
      return problem(
        415,
        "unsupported_media_type",
        "The body must be sent as 'Content-Type: application/json'",
      );
    }
    const bytes = await readCapped(c.req.raw, MAX_ENQUEUE_BYTES);
    if (bytes instanceof Response) return bytes;
    const items = itemsOf(bytes);
    if (items instanceof Response) return items;
    try {
      const { accepted, duplicates } = await worker.enqueue(items);
      return json(202, { accepted, duplicates });
    } catch (error) {
      if (error instanceof WorkItemError) return badRequest(error.message);
      throw error;
    }
  }

  async function push(
    c: Context,
    route: string,
    read: (bytes: Uint8Array) => PushDelivery,
  ): Promise<Response> {
    const bytes = await readCapped(c.req.raw, MAX_PUSH_BYTES);
    let delivery: PushDelivery;
    if (bytes instanceof Response) {
      if (bytes.status !== 413) return bytes;
      const reason = `The body is over ${MAX_PUSH_BYTES} bytes: it cannot be an item`;
      delivery = { kind: "rejected", reason, source: route };
    } else {
      delivery = read(bytes);
    }
    if (delivery.kind === "rejected" && log) {
      const { source, reason } = delivery;
      log(JSON.stringify({ type: "push-rejected", route, source, reason }));
    }
    const answer = await runPushed(worker, delivery, c.req.raw.signal);
    return json(answer.status, answer.body, answer.headers);
  }

  return app;
}

/** A 401 or 503 when `header` carries no OIDC token `verifier` accepts, else `undefined`. */
async function oidcRefusal(
  verifier: OidcVerifier,
  header: string | undefined,
): Promise<Response | undefined> {
  const credentials = bearerOf(header);
  let reason = "This route needs 'Authorization: Bearer TOKEN' or an OIDC identity token";
  if (credentials !== undefined) {
    try {
      await verifier.verify(credentials);
      return undefined;
    } catch (error) {
      if (!(error instanceof OidcError)) throw error;
      if (error.unavailable) {
        const body = { error: "oidc_keys_unavailable", reason: error.message };
        return json(503, body, { "retry-after": "10" });
      }
      reason = `The bearer is not the worker token, nor an accepted OIDC token: ${error.message}`;
    }
  }
  return json(401, { error: "unauthorized", reason }, {
    "www-authenticate": credentials === undefined ? "Bearer" : 'Bearer error="invalid_token"',
  });
}

/** The replica's options without `log` and `clock`: the worker app logs its requests. */
function withoutLog(options: ReplicaAppOptions): ReplicaAppOptions {
  const { log: _log, clock: _clock, ...rest } = options;
  return rest;
}
