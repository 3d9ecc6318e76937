/**
 * A strict stand-in for a CouchDB-style replication endpoint that serves `_all_docs`, for tests
 * and benchmarks. It listens on 127.0.0.1 only and speaks HTTP/1.1 itself over `Deno.listen`,
 * so faults are real at the TCP level: a reset closes the socket without a response (or after
 * half a status line), a truncated body stops short of its `Content-Length` and closes.
 *
 * What it serves, as strictly as the real endpoint:
 *
 * - `GET /` answers `{"db_name":"registry","engine":"npm-replicate","doc_count":N,"update_seq":S}`.
 * - `GET /_all_docs` answers `{"total_rows":N,"offset":K,"rows":[...]}` (CouchDB's layout, one
 *   row per line) with `content-type: application/json`. Parameters: `startkey`, `endkey`,
 *   `key` (JSON strings), `keys` (a JSON array of strings), `inclusive_end` and `descending`
 *   (`true`/`false`), `limit` (0 to 10000, default 1000). Everything else answers 400:
 *   `include_docs=true`, `skip`, an unknown parameter (`start_key` too), a repeated parameter, a
 *   key that is not a JSON string (`startkey=express`), `limit` above 10000, a range whose start
 *   lies past its end (as CouchDB does), and any request whose raw target contains `..` (the
 *   CDN's path-traversal filter; clients write `.` as `%2E`).
 * - Ids are sorted in code-point order (UTF-8 byte order), not UTF-16 order: an astral character
 *   sorts after U+FFFD. `offset` is the index of the first row returned (counted from the top for
 *   `descending=true`), or where it would be when no row is returned.
 * - `GET /_changes?since=S&limit=L` serves the feed of the same documents, with npm's quirks
 *   (numeric or opaque sequences, the 10,000 cap, no streaming feeds, entries that appear late):
 *   see `changes_fixture.ts`. Every mutation (`add`, `setRev`, `update`, `remove`) appends an
 *   entry, and `update_seq` is the feed's head.
 *
 * @module
 */

import { compareKeys } from "../../src/storage/driver.ts";
import { AllDocsQueryError, parseAllDocsQuery } from "../../src/couchdb/query.ts";
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from "../../src/couchdb/rows.ts";
import { parseArgs } from "node:util";
import { ChangesLog, type ChangesOptions, nextRev } from "./changes_fixture.ts";
import {
  beforeReply,
  concat,
  headBytes,
  keepAliveOf,
  type ParsedRequest,
  serveRawHttp,
  STATUS_TEXT,
  targetPath,
  writeAll,
} from "./_raw_http.ts";

/** One row of the expected listing. */
export interface AllDocsRow {
  /** The document id (package name). */
  id: string;
  /** Its current revision, `N-<32 hex>` by default. */
  rev: string;
}

/** What a {@linkcode FaultPlan} is told about each request. */
export interface FaultRequest {
  /** 0-based counter of requests across the whole server, in arrival order. */
  n: number;
  /** The request URL (the fixture origin plus the raw request target). */
  url: URL;
  /** The path of the request target as sent, without the query, e.g. `/_all_docs`. */
  path: string;
}

/**
 * One injected fault:
 *
 * - `status`: answer with that status (a JSON error body), with `Retry-After` when given.
 * - `reset`: close the TCP connection without any response; with `partialHeaders`, after half a
 *   status line and header. Deno's `fetch` may resend the request once by itself when this
 *   happens on a reused keep-alive connection, so such a reset can cost two requests (two log
 *   entries, two plan calls) and still succeed; on a new connection it rejects at once.
 * - `truncate`: the real status and headers, `Content-Length` of the whole body, then only
 *   `bytes` of the body (default: half of it, at least one byte short), then close.
 * - `bad-json`: 200, `application/json`, a body that is not JSON.
 * - `content-type`: 200 with a `text/html` page, like a CDN error page.
 * - `out-of-order`: the real page with its rows in a shuffled order (never the sorted order when
 *   the page has two or more distinct rows).
 * - `delay`: wait `ms` milliseconds, then answer normally.
 */
export type Fault =
  | { kind: "status"; status: number; retryAfter?: string }
  | { kind: "reset"; partialHeaders?: boolean }
  | { kind: "truncate"; bytes?: number }
  | { kind: "bad-json" }
  | { kind: "content-type" }
  | { kind: "out-of-order" }
  | { kind: "delay"; ms: number };

/** Decides per request whether to inject a fault; `undefined` serves it normally. */
export type FaultPlan = (request: FaultRequest) => Fault | undefined;

/** One entry of {@linkcode AllDocsFixture.requests}. */
export interface RequestRecord {
  /** The request counter, as given to the fault plan. */
  n: number;
  /** The request method. */
  method: string;
  /** The full URL as requested (origin plus raw request target, percent-encoding untouched). */
  url: string;
  /** The request headers as received, by lower-case name (a repeated header keeps its last
   * value). */
  headers: Record<string, string>;
  /** The status sent; 0 when the connection was reset without a status. */
  status: number;
  /** The fault injected into this request, if any. */
  fault?: Fault;
}

/** Options of {@linkcode startAllDocsFixture}. */
export interface AllDocsFixtureOptions {
  /** The ids to serve, in any order; sorted by code point and deduplicated. */
  ids?: readonly string[];
  /** Instead of `ids`: serve this many generated names (see {@linkcode generateNames}). */
  count?: number;
  /** The revision of an id (default: {@linkcode defaultRev}). Must be a pure function. */
  revFor?: (id: string) => string;
  /** Faults to inject. */
  faults?: FaultPlan;
  /** Send `ETag` and answer `If-None-Match` with 304 (default false). */
  etags?: boolean;
  /** How `_changes` behaves: sequence format, late entries (default: numbers, none late). */
  changes?: ChangesOptions;
  /** Address to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Port to listen on (default 0: any free port). */
  port?: number;
}

/** A running fixture; see {@linkcode startAllDocsFixture}. */
export interface AllDocsFixture {
  /** The replication endpoint root, e.g. `http://127.0.0.1:4711`; `_all_docs` is below it. */
  readonly origin: string;
  /** The sorted ids being served (no copy: do not mutate). */
  readonly ids: readonly string[];
  /** The full expected listing in code-point order (built on first access after a change). */
  readonly rows: readonly AllDocsRow[];
  /** Every request so far, in arrival order. Tests may clear it with `length = 0`. */
  readonly requests: RequestRecord[];
  /** The `_changes` log (its head is `update_seq`; `withheld` lists late entries held back). */
  readonly changes: ChangesLog;
  /** The current revision of a served id, or `undefined`. */
  revOf(id: string): string | undefined;
  /** Sets the revision of an existing id; throws if the id is not served. */
  setRev(id: string, rev: string): void;
  /** Gives an existing id its next revision and returns it; throws if the id is not served. */
  update(id: string): string;
  /** Adds an id (with `rev`, else the default, or the generation after its tombstone's when it
   * was deleted); returns false if it was already there. */
  add(id: string, rev?: string): boolean;
  /** Removes an id (its tombstone is the next revision); returns false if it was not there. */
  remove(id: string): boolean;
  /** Closes the listener and every open connection, and waits for all of them. */
  close(): Promise<void>;
}

/** The largest `limit` the endpoint accepts. */
export const MAX_LIMIT: number = MAX_PAGE_LIMIT;
/** The `limit` used when a request has none. */
export const DEFAULT_LIMIT: number = DEFAULT_PAGE_LIMIT;

/** Compares two strings in code-point order (the order of their UTF-8 bytes), as npm sorts ids. */
export const compareCodePoints: (a: string, b: string) => number = compareKeys;

/** Sorts by code point and removes duplicates; returns `ids` itself when already strictly sorted. */
export function sortIds(ids: string[]): string[] {
  let sorted = true;
  for (let i = 1; i < ids.length; i++) {
    if (compareCodePoints(ids[i - 1]!, ids[i]!) >= 0) {
      sorted = false;
      break;
    }
  }
  if (sorted) return ids;
  // The native sort (UTF-16 order) is several times faster than a comparator. Its order differs
  // from code-point order only where surrogates meet U+E000..U+FFFF, so a second, comparator
  // sort of the almost sorted result (TimSort: long runs, few moves) fixes it cheaply.
  const copy = ids.slice().sort();
  if (copy.some((id) => /[\ud800-\udfff]/.test(id))) copy.sort(compareCodePoints);
  const out: string[] = [];
  for (const id of copy) {
    if (out.length === 0 || out[out.length - 1] !== id) out.push(id);
  }
  return out;
}

/** 128 bits of a cheap, deterministic string hash (cyrb128), as four unsigned 32-bit words. */
function hash128(text: string): [number, number, number, number] {
  let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex8(w: number): string {
  return HEX_BYTES[w >>> 24]! + HEX_BYTES[(w >>> 16) & 255]! + HEX_BYTES[(w >>> 8) & 255]! +
    HEX_BYTES[w & 255]!;
}

function hex32(words: readonly [number, number, number, number]): string {
  return hex8(words[0]) + hex8(words[1]) + hex8(words[2]) + hex8(words[3]);
}

/** The default revision of an id: `N-<32 hex>`, N from 1 to 12, both derived from the id. */
export function defaultRev(id: string): string {
  const h = hash128(id);
  return `${1 + (h[0] % 12)}-${hex32(h)}`;
}

// ---------------------------------------------------------------------------------------------
// Generated names

/** Words below each head; every character sorts after `-`, the separator. */
const WORDS = [
  "api",
  "async",
  "babel",
  "cli",
  "config",
  "core",
  "dom",
  "es6",
  "eslint",
  "express",
  "fs",
  "http",
  "js",
  "js.utils",
  "json",
  "kit",
  "lib",
  "loader",
  "lodash",
  "lodash.merge",
  "node",
  "parser",
  "plugin",
  "react",
  "router",
  "sdk",
  "server",
  "test",
  "types",
  "ui",
  "util",
  "utils",
  "v2",
  "vue",
  "web",
  "x..y",
  "xml",
  "yaml",
].sort(compareCodePoints);

/** Heads: [prefix, weight]; a prefix ending in `/` is a scope and never a name on its own. */
const HEADS: [string, number][] = ([
  ["0x", 0.5],
  ["12.15rk..", 0.5],
  ["2d", 0.5],
  ["3d", 0.5],
  ["4chan", 0.5],
  ["7zip", 0.5],
  ["@angular/", 4],
  ["@aws-sdk/", 4],
  ["@babel/", 4],
  ["@mui/", 4],
  ["@scope/", 4],
  ["@types/", 4],
  ["@vue/", 4],
  ["@x/", 4],
  ["Base64", 0.5],
  ["JSON", 0.5],
  ["JSONStream", 0.5],
  ["React", 0.5],
  ["XML", 0.5],
  ...WORDS.map((w): [string, number] => [w, 1.5]),
  ["café", 0.25],
  ["é", 0.25],
  ["ñandu", 0.25],
  ["中文", 0.25],
  ["\ue000pua", 0.25],
  ["\ufffd", 0.25],
  ["😀", 0.25],
  ["𝒳js", 0.25],
  ["\u{10ffff}", 0.25],
] as [string, number][]).sort((a, b) => compareCodePoints(a[0], b[0]));

/** Nodes in a complete tree of WORDS with `depth` levels below the head, the head included. */
function treeSize(depth: number): number {
  let size = 1;
  for (let d = 0; d < depth; d++) size = 1 + WORDS.length * size;
  return size;
}

/** The name of node `index` (preorder) in the tree of `depth` levels below `head`. */
function treeName(head: string, depth: number, index: number): string {
  const scoped = head.endsWith("/");
  let name = head;
  let first = true;
  let rest = index;
  let level = depth;
  while (rest > 0) {
    rest -= 1;
    const sub = treeSize(level - 1);
    const child = Math.floor(rest / sub);
    rest -= child * sub;
    name += (first && scoped ? "" : "-") + WORDS[child]!;
    first = false;
    level -= 1;
  }
  return name;
}

/**
 * Deterministic, realistic package names, already in code-point order: digits first
 * (`12.15rk..`), scopes (`@babel/core-dom`), legacy upper case (`JSONStream`), plain names with
 * dots and `..` (`lodash.merge-x..y`), then non-ASCII and astral ones (`中文`, `😀-api`,
 * `U+10FFFF`). The same `count` always gives the same list; names are unique.
 */
export function generateNames(count: number): string[] {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`bad count ${count}`);
  const total = HEADS.reduce((sum, [, w]) => sum + w, 0);
  const out = new Array<string>(count);
  let at = 0;
  let cumulative = 0;
  for (const [head, weight] of HEADS) {
    const from = Math.floor((count * cumulative) / total);
    cumulative += weight;
    const to = Math.floor((count * cumulative) / total);
    const share = to - from;
    if (share === 0) continue;
    const scoped = head.endsWith("/");
    let depth = 1;
    while (treeSize(depth) - (scoped ? 1 : 0) < share) depth++;
    const capacity = treeSize(depth) - (scoped ? 1 : 0);
    for (let j = 0; j < share; j++) {
      const node = Math.floor((j * capacity) / share) + (scoped ? 1 : 0);
      out[at++] = treeName(head, depth, node);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Faults

/** A plan that injects `fault` into the requests numbered `ns` (0-based, server-wide). */
export function failNth(ns: readonly number[], fault: Fault): FaultPlan {
  const set = new Set(ns);
  return (request) => set.has(request.n) ? fault : undefined;
}

/** A plan that injects `fault` into every `k`-th request: n = k-1, 2k-1, ... (k >= 1). */
export function failEvery(k: number, fault: Fault): FaultPlan {
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`bad k ${k}`);
  return (request) => (request.n + 1) % k === 0 ? fault : undefined;
}

/**
 * Applies `plan` to requests for `path` only (e.g. `/_all_docs`), numbering them 0, 1, ... among
 * themselves; other requests get no fault.
 */
export function onlyPath(path: string, plan: FaultPlan): FaultPlan {
  let n = 0;
  return (request) => request.path === path ? plan({ ...request, n: n++ }) : undefined;
}

// ---------------------------------------------------------------------------------------------
// The server

const encoder = new TextEncoder();
/** Reason phrases: the shared ones and 408. */
const REASONS: Readonly<Record<number, string>> = { ...STATUS_TEXT, 408: "Request Timeout" };

interface Reply {
  status: number;
  headers: [string, string][];
  body: string;
  /** The page, for out-of-order faults. */
  page?: { head: string; rows: string[]; tail: string };
}

function jsonReply(status: number, value: unknown, extra: [string, string][] = []): Reply {
  return {
    status,
    headers: [["content-type", "application/json"], ...extra],
    body: JSON.stringify(value) + "\n",
  };
}

function badRequest(reason: string): Reply {
  return jsonReply(400, { error: "bad_request", reason });
}

/** Index of the first id >= key (or > key when `after`). */
function bound(ids: readonly string[], key: string, after: boolean): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareCodePoints(ids[mid]!, key);
    if (c < 0 || (after && c === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  let state = (seed * 2654435761 + 1) >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  if (out.length > 1 && out.every((item, i) => item === items[i])) out.push(out.shift()!);
  return out;
}

/**
 * Starts a fixture server. See the module documentation for what it serves.
 *
 * @example
 * ```ts ignore
 * const fixture = await startAllDocsFixture({ ids: ["b", "a", "@x/y"] });
 * const page = await (await fetch(`${fixture.origin}/_all_docs?limit=2`)).json();
 * await fixture.close();
 * ```
 */
export function startAllDocsFixture(options: AllDocsFixtureOptions = {}): Promise<AllDocsFixture> {
  try {
    return Promise.resolve(listen(options));
  } catch (error) {
    return Promise.reject(error);
  }
}

function listen(options: AllDocsFixtureOptions): AllDocsFixture {
  if (options.ids !== undefined && options.count !== undefined) {
    throw new TypeError("give ids or count, not both");
  }
  const ids = sortIds(
    options.ids !== undefined ? options.ids.slice() : generateNames(options.count ?? 0),
  );
  const revFor = options.revFor ?? defaultRev;
  const overrides = new Map<string, string>();
  const etags = options.etags ?? false;
  const faults = options.faults;
  const log = new ChangesLog(ids, revFor, options.changes);
  /** The tombstone revisions of removed ids, so that a new document continues them. */
  const tombstones = new Map<string, string>();
  let rowsCache: AllDocsRow[] | undefined;
  const requests: RequestRecord[] = [];

  function revOf(id: string): string {
    return overrides.get(id) ?? revFor(id);
  }

  function changed(): void {
    rowsCache = undefined;
  }

  const server = serveRawHttp({
    handler: answer,
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const origin = server.origin;

  function allDocs(rawQuery: string): Reply {
    // The same rules as the replica: one parser for what npm's endpoint accepts.
    const { start, end, keys, limit, descending, inclusiveEnd } = parseAllDocsQuery(rawQuery);
    const head = (offset: number): string =>
      `{"total_rows":${ids.length},"offset":${offset},"rows":[`;
    const rowJson = (id: string): string => {
      const key = JSON.stringify(id);
      return `{"id":${key},"key":${key},"value":{"rev":${JSON.stringify(revOf(id))}}}`;
    };
    let rows: string[];
    let offset: number;
    if (keys !== undefined) {
      const list = (descending ? keys.slice().reverse() : keys).slice(0, limit);
      rows = list.map((k) => {
        const i = bound(ids, k, false);
        return ids[i] === k ? rowJson(k) : `{"key":${JSON.stringify(k)},"error":"not_found"}`;
      });
      offset = 0;
    } else {
      rows = [];
      if (!descending) {
        const from = start === undefined ? 0 : bound(ids, start, false);
        const stop = end === undefined ? ids.length : bound(ids, end, inclusiveEnd);
        const to = Math.min(stop, from + limit);
        for (let i = from; i < to; i++) rows.push(rowJson(ids[i]!));
        offset = from;
      } else {
        const from = start === undefined ? ids.length - 1 : bound(ids, start, true) - 1;
        const stop = end === undefined ? 0 : bound(ids, end, !inclusiveEnd);
        const to = Math.max(stop, from - limit + 1);
        for (let i = from; i >= to; i--) rows.push(rowJson(ids[i]!));
        offset = ids.length - 1 - from;
      }
    }
    const pageHead = head(offset);
    const tail = "]}\n";
    return {
      status: 200,
      headers: [["content-type", "application/json"]],
      body: rows.length === 0 ? pageHead + tail : `${pageHead}\r\n${rows.join(",\r\n")}\r\n${tail}`,
      page: { head: pageHead, rows, tail },
    };
  }

  function route(req: ParsedRequest, url: URL): Reply {
    if (req.target.includes("..")) return badRequest("path traversal is not allowed");
    if (req.method !== "GET" && req.method !== "HEAD") {
      return jsonReply(405, { error: "method_not_allowed", reason: "Only GET,HEAD allowed" }, [
        ["allow", "GET, HEAD"],
      ]);
    }
    if (url.pathname === "/") {
      return jsonReply(200, {
        db_name: "registry",
        engine: "npm-replicate",
        doc_count: ids.length,
        update_seq: log.headSeq,
      });
    }
    if (url.pathname === "/_changes") {
      const answer = log.answer(url.search.slice(1));
      if (answer.status === 400) return badRequest(answer.reason);
      const { head, rows, tail } = answer;
      return {
        status: 200,
        headers: [["content-type", "application/json"]],
        body: rows.length === 0 ? head + tail : `${head}\n${rows.join(",\n")}\n${tail}`,
        page: { head, rows, tail },
      };
    }
    if (url.pathname === "/_all_docs") {
      try {
        return allDocs(url.search.slice(1));
      } catch (error) {
        if (error instanceof AllDocsQueryError) return badRequest(error.message);
        throw error;
      }
    }
    return jsonReply(404, { error: "not_found", reason: "missing" });
  }

  /** Answers one request; returns whether the connection stays open. */
  async function answer(conn: Deno.Conn, req: ParsedRequest, n: number): Promise<boolean> {
    const url = new URL(
      req.target.startsWith("/") ? origin + req.target : `${origin}/${req.target}`,
    );
    const path = targetPath(req.target);
    const fault = faults?.({ n, url, path });
    const record: RequestRecord = {
      n,
      method: req.method,
      url: origin + req.target,
      headers: Object.fromEntries(req.headers),
      status: 0,
    };
    if (fault !== undefined) record.fault = fault;
    requests.push(record);
    const keepAlive = keepAliveOf(req);

    if (!(await beforeReply(server, conn, fault))) return false;
    let reply: Reply;
    if (fault?.kind === "status") {
      const extra: [string, string][] = fault.retryAfter === undefined
        ? []
        : [["retry-after", fault.retryAfter]];
      reply = jsonReply(
        fault.status,
        { error: "injected", reason: `status ${fault.status}` },
        extra,
      );
    } else if (fault?.kind === "bad-json") {
      reply = {
        status: 200,
        headers: [["content-type", "application/json"]],
        body: `{"total_rows":${ids.length},"offset":0,"rows":[{"id":"a","key":"a",`,
      };
    } else if (fault?.kind === "content-type") {
      reply = {
        status: 200,
        headers: [["content-type", "text/html; charset=utf-8"]],
        body: "<!DOCTYPE html>\n<html><body><h1>Please wait</h1></body></html>\n",
      };
    } else {
      reply = route(req, url);
      if (fault?.kind === "out-of-order" && reply.page !== undefined) {
        const { head, rows, tail } = reply.page;
        reply.body = rows.length === 0
          ? head + tail
          : `${head}\r\n${shuffled(rows, n).join(",\r\n")}\r\n${tail}`;
      }
    }
    let body = encoder.encode(reply.body);
    const headers = reply.headers.slice();
    if (etags && reply.status === 200 && fault === undefined) {
      const tag = `"${hex32(hash128(reply.body))}"`;
      headers.push(["etag", tag]);
      const match = req.headers.get("if-none-match");
      if (
        match !== undefined &&
        (match.trim() === "*" || match.split(",").some((t) => t.trim() === tag))
      ) {
        record.status = 304;
        await writeAll(conn, headBytes(304, [["etag", tag]], undefined, REASONS));
        return keepAlive;
      }
    }
    if (!keepAlive) headers.push(["connection", "close"]);
    record.status = reply.status;
    const fullLength = body.length;
    if (req.method === "HEAD") body = new Uint8Array(0);
    if (fault?.kind === "truncate") {
      const keep = Math.max(0, Math.min(fault.bytes ?? Math.floor(fullLength / 2), fullLength - 1));
      await writeAll(conn, headBytes(reply.status, headers, fullLength, REASONS));
      await writeAll(conn, body.subarray(0, keep));
      return false;
    }
    const head = headBytes(reply.status, headers, fullLength, REASONS);
    await writeAll(conn, body.length < 16 * 1024 ? concat([head, body]) : head);
    if (body.length >= 16 * 1024) await writeAll(conn, body);
    return keepAlive;
  }

  return {
    origin,
    get ids(): readonly string[] {
      return ids;
    },
    get rows(): readonly AllDocsRow[] {
      rowsCache ??= ids.map((id) => ({ id, rev: revOf(id) }));
      return rowsCache;
    },
    requests,
    changes: log,
    revOf(id: string): string | undefined {
      return ids[bound(ids, id, false)] === id ? revOf(id) : undefined;
    },
    setRev(id: string, rev: string): void {
      const i = bound(ids, id, false);
      if (ids[i] !== id) throw new RangeError(`no such id: ${id}`);
      log.record(id, rev, false);
      overrides.set(id, rev);
      changed();
    },
    update(id: string): string {
      const i = bound(ids, id, false);
      if (ids[i] !== id) throw new RangeError(`no such id: ${id}`);
      const rev = nextRev(id, revOf(id));
      log.record(id, rev, false);
      overrides.set(id, rev);
      changed();
      return rev;
    },
    add(id: string, rev?: string): boolean {
      const i = bound(ids, id, false);
      if (ids[i] === id) return false;
      const tombstone = tombstones.get(id);
      const created = rev ?? (tombstone !== undefined ? nextRev(id, tombstone) : revFor(id));
      log.record(id, created, false);
      ids.splice(i, 0, id);
      tombstones.delete(id);
      overrides.set(id, created);
      changed();
      return true;
    },
    remove(id: string): boolean {
      const i = bound(ids, id, false);
      if (ids[i] !== id) return false;
      const tombstone = nextRev(id, revOf(id));
      log.record(id, tombstone, true);
      ids.splice(i, 1);
      overrides.delete(id);
      tombstones.set(id, tombstone);
      changed();
      return true;
    },
    close(): Promise<void> {
      return server.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Changes

/** The mix of {@linkcode applyRandomChanges}: shares of creations and deletions (the rest are
 * updates), and the seed. */
export interface RandomChangesOptions {
  /** Share of changes that create a new document (default 0.01). */
  creates?: number;
  /** Share of changes that delete one (default 0.01). */
  deletes?: number;
  /** The seed (default 1). */
  seed?: number;
}

/**
 * Applies `count` deterministic changes to a fixture, spread over its key space: updates of
 * existing documents (a new revision), creations of new ids (an existing id plus a suffix) and
 * deletions. The same fixture, count and options always give the same changes.
 *
 * @returns How many of each were applied.
 */
export function applyRandomChanges(
  fixture: AllDocsFixture,
  count: number,
  options: RandomChangesOptions = {},
): { updated: number; created: number; deleted: number } {
  const creates = options.creates ?? 0.01;
  const deletes = options.deletes ?? 0.01;
  let state = ((options.seed ?? 1) * 2654435761) >>> 0;
  const next = () => {
    state = (Math.imul(state ^ (state >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
    state = (state ^ (state >>> 13)) >>> 0;
    return state / 2 ** 32;
  };
  const done = { updated: 0, created: 0, deleted: 0 };
  for (let k = 0; k < count; k++) {
    const ids = fixture.ids;
    if (ids.length === 0) break;
    const id = ids[Math.floor(next() * ids.length)]!;
    const roll = next();
    if (roll < creates && fixture.add(`${id}-new${k.toString(36)}`)) done.created++;
    else if (roll < creates + deletes && ids.length > 1 && fixture.remove(id)) done.deleted++;
    else {
      fixture.update(id);
      done.updated++;
    }
  }
  return done;
}

// ---------------------------------------------------------------------------------------------
// Standalone

/** Reads a JSON array of names, or one name a line (blank lines skipped, CRLF allowed). */
async function readIds(file: string): Promise<string[]> {
  const bytes = await Deno.readFile(file);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let first = 0;
  while (first < bytes.length && /\s/.test(String.fromCharCode(bytes[first]!))) first++;
  if (bytes[first] === 0x5b) {
    const value: unknown = JSON.parse(decoder.decode(bytes));
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw new TypeError(`${file}: expected a JSON array of strings`);
    }
    return value as string[];
  }
  // Decoding 1 MiB at a time keeps ASCII chunks in V8's compact one-byte strings.
  const ids: string[] = [];
  for (let from = 0; from < bytes.length;) {
    let to = Math.min(from + (1 << 20), bytes.length);
    const newline = bytes.indexOf(10, to);
    to = to === bytes.length || newline < 0 ? bytes.length : newline + 1;
    for (const line of decoder.decode(bytes.subarray(from, to)).split("\n")) {
      const id = line.endsWith("\r") ? line.slice(0, -1) : line;
      if (id !== "") ids.push(id);
    }
    from = to;
  }
  return ids;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "0" },
      hostname: { type: "string", default: "127.0.0.1" },
      ids: { type: "string" },
      count: { type: "string" },
      etags: { type: "boolean", default: false },
      changes: { type: "string", default: "0" },
      "late-rate": { type: "string", default: "0" },
      seqs: { type: "string", default: "number" },
    },
    strict: true,
  });
  const started = performance.now();
  const options: AllDocsFixtureOptions = {
    port: Number(values.port),
    hostname: values.hostname,
    etags: values.etags,
    changes: {
      lateRate: Number(values["late-rate"]),
      seqs: values.seqs === "opaque" ? "opaque" : "number",
    },
  };
  if (values.ids !== undefined) options.ids = await readIds(values.ids);
  else if (values.count !== undefined) options.count = Number(values.count);
  const fixture = await startAllDocsFixture(options);
  const initial = fixture.ids.length;
  // Changes made at start-up follow the initial documents (sequences 1 to N) in the feed.
  const applied = applyRandomChanges(fixture, Number(values.changes), {
    creates: 0.005,
    deletes: 0.005,
  });
  const detail = fixture.changes.head === initial ? "" : ` (${initial} at seq 1..${initial}, ` +
    `then ${applied.updated} updated, ${applied.created} created, ${applied.deleted} deleted)`;
  console.error(
    `serving ${fixture.ids.length} ids${detail}, ready in ` +
      `${Math.round(performance.now() - started)} ms`,
  );
  console.log(`listening ${fixture.origin}`);
  const stop = (): void => {
    fixture.close().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
