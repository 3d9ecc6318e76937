/**
 * A strict stand-in for an npm registry's package-document endpoint, for tests and benchmarks.
 * It listens on 127.0.0.1 only and speaks HTTP/1.1 itself over `Deno.listen`, like
 * {@linkcode startAllDocsFixture}, so its faults ({@linkcode Fault}, the same shapes and plan
 * helpers) are real at the TCP level: a reset closes the socket without a response, a
 * truncated body stops short of its `Content-Length` and closes.
 *
 * What it serves, as strictly as the registry:
 *
 * - `GET /{name}` (and `HEAD`), scoped names as `/@scope%2fname`, `/@scope%2Fname`,
 *   `/%40scope%2fname` or a literal `/@scope/name`. Unknown names answer 404 with
 *   `{"error":"Not found"}`. Version paths (`/name/1.0.0`) are not served (404). `GET /-/ping`
 *   answers `{}` (never needs a token). Methods other than GET and HEAD answer 405.
 * - The representation follows `Accept`: one naming `application/vnd.npm.install-v1+json` or
 *   containing `*\/*` gets the abbreviated ("corgi") document, with that content type; any other
 *   `Accept`, or none, gets the full document as `application/json`. Both are byte-stable: the
 *   full one is exactly the bytes given, the corgi one is derived once per document version
 *   (see {@linkcode abbreviate}) and cached.
 * - 200s carry `ETag` (a strong hash of the body, so different for full and corgi),
 *   `Last-Modified` (from `time.modified`, else the latest date in `time`), `Cache-Control:
 *   public, max-age=300` (see `maxAge`), `Vary: Accept` and `Content-Length`. `If-None-Match`
 *   with the current ETag (weak comparison, lists and `*` allowed) answers 304 with no body.
 * - With `etags: false`, like a server that keeps only dates: no `ETag` is sent and
 *   `If-None-Match` is ignored; `If-Modified-Since` with a date at or after the document's
 *   `Last-Modified` answers 304 with no body (a date that does not parse is ignored, as HTTP
 *   says). With ETags on (the default), `If-Modified-Since` is not looked at.
 * - With `token`, every request but `/-/ping` needs `Authorization: Bearer <token>`; others get
 *   401 `{"error":"Unauthorized"}` with `WWW-Authenticate: Bearer realm="registry"`.
 * - Every request is logged ({@linkcode RegistryFixture.requests}); the `Authorization` value is
 *   kept only with `recordHeaders`, which logs every request header as sent.
 * - Faults (see {@linkcode RegistryFaultPlan}; {@linkcode onlyName} aims one at a package) are
 *   applied before everything else. `out-of-order` has no meaning for a document: the request is
 *   served normally. `bad-json` answers 200 with the representation's content type and a cut-off
 *   document.
 * - Big documents given as a chunk generator are streamed (with `Content-Length`, measured and
 *   hashed by one pass over the chunks on first use), never held whole unless a corgi body or
 *   {@linkcode RegistryFixture.expectedBody} is asked of them.
 *
 * Standalone (for benchmarks): `deno run -A tests/_support/registry_fixture.ts --port 0
 * --names FILE [--big N]` serves a generated packument for every name in FILE (a JSON array or
 * one name a line): a few KB each, deterministic per name; with `--big N`, N of them (spread
 * evenly over the list) are 2 to 8 MB. It prints `listening http://127.0.0.1:PORT/` when ready.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { parseArgs } from "node:util";
import type { Fault, FaultRequest } from "./all_docs_fixture.ts";
import { abbreviate, generatePackumentChunks } from "./packuments.ts";
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

export { failEvery, failNth, onlyPath } from "./all_docs_fixture.ts";
export type { Fault, FaultPlan, FaultRequest } from "./all_docs_fixture.ts";

/** The media type of abbreviated ("corgi") documents. */
export const CORGI_TYPE = "application/vnd.npm.install-v1+json";

/** Which document a request gets. */
export type Representation = "full" | "corgi";

/**
 * A full document: its exact bytes or JSON text, or a function returning its JSON text in
 * pieces (called again for every pass: it must give the same text each time).
 */
export type PackumentSource = Uint8Array | string | (() => Iterable<string>);

/** What a {@linkcode RegistryFaultPlan} is told about each request. */
export interface RegistryFaultRequest extends FaultRequest {
  /** The package the path names, or `null` for other paths. */
  name: string | null;
  /** The representation the request would get. */
  representation: Representation;
}

/**
 * Decides per request whether to inject a fault; `undefined` serves it normally. Every
 * {@linkcode FaultPlan} of the all_docs fixture (`failNth`, `failEvery`, `onlyPath`) is one.
 */
export type RegistryFaultPlan = (request: RegistryFaultRequest) => Fault | undefined;

/**
 * Applies `plan` to requests for package `name` only (however its path is spelt), numbering them
 * 0, 1, ... among themselves; other requests get no fault.
 */
export function onlyName(name: string, plan: RegistryFaultPlan): RegistryFaultPlan {
  let n = 0;
  return (request) => request.name === name ? plan({ ...request, n: n++ }) : undefined;
}

/** One entry of {@linkcode RegistryFixture.requests}. */
export interface RegistryRequestRecord {
  /** The request counter, as given to the fault plan. */
  n: number;
  /** The request method. */
  method: string;
  /** The path as sent (percent-encoding untouched), without any query. */
  path: string;
  /** The package the path names, or `null`. */
  name: string | null;
  /** The `Accept` header, or `null` when there was none. */
  accept: string | null;
  /** The representation chosen from `Accept`. */
  representation: Representation;
  /** The status sent; 0 when the connection was reset without a status. */
  status: number;
  /** The `If-None-Match` header, when sent. */
  ifNoneMatch?: string;
  /** The `If-Modified-Since` header, when sent. */
  ifModifiedSince?: string;
  /** Whether an `Authorization` header was sent (its value only in `headers`). */
  authorization: boolean;
  /**
   * Every request header by lower-case name (repeats joined with `, `), `Authorization` value
   * included; only with {@linkcode RegistryFixtureOptions.recordHeaders}.
   */
  headers?: Readonly<Record<string, string>>;
  /** The fault injected into this request, if any. */
  fault?: Fault;
  /** Whether the body was sent gzipped (see {@linkcode RegistryFixtureOptions.gzip}). */
  gzip?: boolean;
}

/** Options of {@linkcode startRegistryFixture}. */
export interface RegistryFixtureOptions {
  /** Full documents by package name. */
  packuments?: ReadonlyMap<string, PackumentSource>;
  /** Faults to inject. */
  faults?: RegistryFaultPlan;
  /** Require `Authorization: Bearer <token>` (401 without it). */
  token?: string;
  /** `max-age` of `Cache-Control` in seconds (default 300). */
  maxAge?: number;
  /**
   * Send `ETag` and answer `If-None-Match` (default true). With false, documents carry only
   * `Last-Modified` and `If-Modified-Since` is answered instead.
   */
  etags?: boolean;
  /** Send documents held as bytes gzipped (`Content-Encoding: gzip`) to requests whose
   * `Accept-Encoding` names gzip, as npm's registry does (default false). */
  gzip?: boolean;
  /** Log every request header, `Authorization` value included, in `requests` (default false). */
  recordHeaders?: boolean;
  /** Address to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Port to listen on (default 0: any free port). */
  port?: number;
}

/** A running fixture; see {@linkcode startRegistryFixture}. */
export interface RegistryFixture {
  /** The registry URL with a trailing slash, e.g. `http://127.0.0.1:4711/`. */
  readonly url: string;
  /** Every request so far, in arrival order. Tests may clear it with `length = 0`. */
  readonly requests: RegistryRequestRecord[];
  /** Adds or replaces a document; the next request gets the new body (and a new ETag). */
  set(name: string, body: PackumentSource): void;
  /** Removes a document; returns false if it was not there. */
  remove(name: string): boolean;
  /**
   * The exact bytes served for `name` in `representation` (a generated document is built whole
   * for this).
   *
   * @throws {RangeError} If `name` is not served.
   */
  expectedBody(name: string, representation: Representation): Uint8Array;
  /**
   * The `ETag` header served for `name` in `representation`, quotes included.
   *
   * @throws {RangeError} If `name` is not served.
   */
  etag(name: string, representation: Representation): string;
  /**
   * The `Last-Modified` header served for `name` (the same for both representations), or
   * `undefined` when its document has no dates.
   *
   * @throws {RangeError} If `name` is not served.
   */
  lastModified(name: string): string | undefined;
  /** Closes the listener and every open connection, and waits for all of them. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Names, paths and representations

/**
 * The package a request path names (`/left-pad`, `/@scope%2fname`, `/@scope%2Fname`,
 * `/%40scope%2fname`, `/@scope/name`), or `null` for any other path (`/`, `/-/ping`,
 * `/name/1.0.0`, bad percent-encoding).
 */
export function nameFromPath(path: string): string | null {
  if (!path.startsWith("/") || path.length < 2) return null;
  let name: string;
  try {
    name = decodeURIComponent(path.slice(1));
  } catch {
    return null;
  }
  if (name.startsWith("@")) {
    const slash = name.indexOf("/");
    if (slash < 2 || slash === name.length - 1 || name.indexOf("/", slash + 1) >= 0) return null;
    return name;
  }
  if (name.includes("/") || name.startsWith("-") || name.startsWith("_")) return null;
  return name;
}

/** The path of a package as npm clients send it: `/left-pad`, `/@scope%2fname`. */
export function packumentPath(name: string): string {
  return name.startsWith("@") ? `/${name.replace("/", "%2f")}` : `/${encodeURIComponent(name)}`;
}

/** The representation an `Accept` header gets (see the module documentation). */
export function representationFor(accept: string | null): Representation {
  if (accept === null) return "full";
  const lower = accept.toLowerCase();
  return lower.includes(CORGI_TYPE) || lower.includes("*/*") ? "corgi" : "full";
}

// ---------------------------------------------------------------------------------------------
// Documents

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Generated documents up to this size are kept as bytes once measured. */
const KEEP_BYTES = 1 << 20;
/** Writes of streamed bodies are batched up to this size. */
const WRITE_BATCH = 64 * 1024;

function sha256(): { update(text: string | Uint8Array): void; etag(): string } {
  const hash = createHash("sha256");
  return {
    update(data) {
      hash.update(data);
    },
    etag() {
      return `"${hash.digest("hex").slice(0, 40)}"`;
    },
  };
}

/** The characters that end a run of plain string content. */
const SPECIAL = /["\\]/g;

/**
 * Finds the top-level `time.modified` string of a JSON text fed in pieces, and the latest date
 * among the `time` values as a fallback, without parsing the document. Strings other than keys
 * and `time` values are skipped with a regular expression, so a 110 MB readme costs little.
 */
class ModifiedScanner {
  #stack: number[] = [];
  #inString = false;
  #pendingEscape = false;
  #collect = false;
  #buf = "";
  #overflow = false;
  #expectKey = false;
  #topKey: string | null = null;
  #inTime = false;
  #timeKey: string | null = null;
  modified: string | undefined;
  latest: string | undefined;
  #latestMs = -Infinity;

  feed(text: string): void {
    let i = 0;
    const n = text.length;
    while (i < n) {
      if (this.#inString) {
        if (this.#pendingEscape) {
          // The character after a backslash; a string with escapes is never one we look for.
          this.#pendingEscape = false;
          this.#overflow = true;
          i++;
          continue;
        }
        if (!this.#collect) {
          SPECIAL.lastIndex = i;
          const found = SPECIAL.exec(text);
          if (found === null) {
            i = n;
          } else if (found[0] === "\\") {
            this.#pendingEscape = true;
            i = found.index + 1;
          } else {
            i = found.index + 1;
            this.#inString = false;
            this.#onString(null);
          }
          continue;
        }
        const c = text[i]!;
        i++;
        if (c === "\\") {
          this.#pendingEscape = true;
        } else if (c === '"') {
          this.#inString = false;
          this.#onString(this.#overflow ? null : this.#buf);
        } else if (this.#buf.length < 64) {
          this.#buf += c;
        } else {
          this.#overflow = true;
        }
        continue;
      }
      const c = text.charCodeAt(i);
      i++;
      switch (c) {
        case 0x22: { // "
          this.#inString = true;
          const depth = this.#stack.length;
          this.#collect = depth === 1 || (depth === 2 && this.#inTime);
          this.#buf = "";
          this.#overflow = false;
          break;
        }
        case 0x7b: // {
          this.#stack.push(c);
          if (this.#stack.length === 2 && this.#stack[0] === 0x7b && this.#topKey === "time") {
            this.#inTime = true;
            this.#timeKey = null;
          }
          this.#expectKey = true;
          break;
        case 0x5b: // [
          this.#stack.push(c);
          this.#expectKey = false;
          break;
        case 0x7d: // }
        case 0x5d: // ]
          this.#stack.pop();
          if (this.#stack.length < 2) this.#inTime = false;
          this.#expectKey = false;
          break;
        case 0x3a: // :
          this.#expectKey = false;
          break;
        case 0x2c: // ,
          this.#expectKey = this.#stack.at(-1) === 0x7b;
          break;
      }
    }
  }

  #onString(value: string | null): void {
    const depth = this.#stack.length;
    if (depth === 1 && this.#stack[0] === 0x7b && this.#expectKey) {
      this.#topKey = value;
    } else if (depth === 2 && this.#inTime) {
      if (this.#expectKey) {
        this.#timeKey = value;
      } else if (value !== null) {
        if (this.#timeKey === "modified" && this.modified === undefined) this.modified = value;
        const ms = Date.parse(value);
        if (Number.isFinite(ms) && ms > this.#latestMs) {
          this.#latestMs = ms;
          this.latest = value;
        }
      }
    }
  }
}

interface Body {
  /** The bytes, when held. */
  bytes?: Uint8Array;
  /** Otherwise, how to produce them again. */
  chunks?: () => Iterable<string>;
  length: number;
  etag: string;
}

interface Doc {
  source: Uint8Array | (() => Iterable<string>);
  full?: Body & { lastModified: string | undefined };
  corgi?: Body;
}

function httpDate(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? new Date(ms).toUTCString() : undefined;
}

function fullBody(doc: Doc): NonNullable<Doc["full"]> {
  if (doc.full !== undefined) return doc.full;
  const scanner = new ModifiedScanner();
  const hash = sha256();
  let length = 0;
  let bytes: Uint8Array | undefined;
  const source = doc.source;
  if (source instanceof Uint8Array) {
    hash.update(source);
    scanner.feed(decoder.decode(source));
    length = source.length;
    bytes = source;
  } else {
    let kept: Uint8Array[] | undefined = [];
    for (const chunk of source()) {
      const piece = encoder.encode(chunk);
      hash.update(piece);
      scanner.feed(chunk);
      length += piece.length;
      if (kept !== undefined) {
        if (length <= KEEP_BYTES) kept.push(piece);
        else kept = undefined;
      }
    }
    if (kept !== undefined) bytes = concat(kept, length);
  }
  const full: NonNullable<Doc["full"]> = {
    length,
    etag: hash.etag(),
    lastModified: httpDate(scanner.modified ?? scanner.latest),
  };
  if (bytes !== undefined) full.bytes = bytes;
  else full.chunks = source as () => Iterable<string>;
  doc.full = full;
  return full;
}

function wholeText(doc: Doc): string {
  const source = doc.source;
  if (source instanceof Uint8Array) return decoder.decode(source);
  const full = fullBody(doc);
  if (full.bytes !== undefined) return decoder.decode(full.bytes);
  return Array.from(source()).join("");
}

function corgiBody(doc: Doc): Body {
  if (doc.corgi !== undefined) return doc.corgi;
  const bytes = encoder.encode(JSON.stringify(abbreviate(JSON.parse(wholeText(doc)))));
  const hash = sha256();
  hash.update(bytes);
  doc.corgi = { bytes, length: bytes.length, etag: hash.etag() };
  return doc.corgi;
}

function bodyOf(doc: Doc, representation: Representation): Body {
  return representation === "full" ? fullBody(doc) : corgiBody(doc);
}

function toSource(body: PackumentSource): Doc["source"] {
  return typeof body === "string" ? encoder.encode(body) : body;
}

/** Weak comparison of an `If-None-Match` header with an entity tag. */
function matches(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  const strip = (tag: string): string => tag.trim().replace(/^W\//, "");
  const want = strip(etag);
  return header.split(",").some((tag) => strip(tag) === want);
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** Reason phrases: the shared ones, 401 and 403. */
const REASONS: Readonly<Record<number, string>> = {
  ...STATUS_TEXT,
  401: "Unauthorized",
  403: "Forbidden",
};

/** What to send: a status, headers, and a body held or streamed (none for 304). */
interface Reply {
  status: number;
  headers: [string, string][];
  body?: Body;
}

function textBody(text: string): Body {
  const bytes = encoder.encode(text);
  return { bytes, length: bytes.length, etag: "" };
}

function jsonReply(status: number, value: unknown, extra: [string, string][] = []): Reply {
  return {
    status,
    headers: [["content-type", "application/json"], ...extra],
    body: textBody(JSON.stringify(value)),
  };
}

/**
 * Starts a fixture server. See the module documentation for what it serves.
 *
 * @example
 * ```ts ignore
 * const registry = await startRegistryFixture({ packuments: await loadFixturePackuments() });
 * const doc = await (await fetch(`${registry.url}ms`, {
 *   headers: { accept: "application/vnd.npm.install-v1+json" },
 * })).json();
 * await registry.close();
 * ```
 */
export function startRegistryFixture(
  options: RegistryFixtureOptions = {},
): Promise<RegistryFixture> {
  try {
    return Promise.resolve(listen(options));
  } catch (error) {
    return Promise.reject(error);
  }
}

function listen(options: RegistryFixtureOptions): RegistryFixture {
  const docs = new Map<string, Doc>();
  for (const [name, body] of options.packuments ?? []) docs.set(name, { source: toSource(body) });
  const faults = options.faults;
  const token = options.token;
  const maxAge = options.maxAge ?? 300;
  if (!Number.isSafeInteger(maxAge) || maxAge < 0) throw new RangeError(`bad maxAge ${maxAge}`);
  const etags = options.etags ?? true;
  const recordHeaders = options.recordHeaders ?? false;
  const gzip = options.gzip ?? false;
  const requests: RegistryRequestRecord[] = [];

  const server = serveRawHttp({
    handler: answer,
    repeatedHeaders: "join",
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const origin = server.origin;

  function route(
    req: ParsedRequest,
    path: string,
    name: string | null,
    representation: Representation,
  ): Reply {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return jsonReply(405, { error: "Method not allowed" }, [["allow", "GET, HEAD"]]);
    }
    if (path === "/-/ping") return jsonReply(200, {});
    if (token !== undefined) {
      const auth = req.headers.get("authorization");
      const match = auth === undefined ? null : /^bearer\s+(.+)$/i.exec(auth);
      if (match === null || match[1] !== token) {
        return jsonReply(401, { error: "Unauthorized" }, [
          ["www-authenticate", 'Bearer realm="registry"'],
        ]);
      }
    }
    const doc = name === null ? undefined : docs.get(name);
    if (doc === undefined) return jsonReply(404, { error: "Not found" });
    const body = bodyOf(doc, representation);
    const headers: [string, string][] = [
      ["content-type", representation === "full" ? "application/json" : CORGI_TYPE],
    ];
    if (etags) headers.push(["etag", body.etag]);
    const lastModified = fullBody(doc).lastModified;
    if (lastModified !== undefined) headers.push(["last-modified", lastModified]);
    headers.push(["cache-control", `public, max-age=${maxAge}`], ["vary", "Accept"]);
    if (etags) {
      const ifNoneMatch = req.headers.get("if-none-match");
      if (ifNoneMatch !== undefined && matches(ifNoneMatch, body.etag)) {
        return { status: 304, headers };
      }
    } else {
      const since = Date.parse(req.headers.get("if-modified-since") ?? "");
      if (
        lastModified !== undefined && Number.isFinite(since) && Date.parse(lastModified) <= since
      ) {
        return { status: 304, headers };
      }
    }
    return { status: 200, headers, body };
  }

  /** Sends `body`, or only its first `limit` bytes; throws if a generator changed its length. */
  async function sendBody(conn: Deno.Conn, body: Body, limit: number): Promise<void> {
    if (body.bytes !== undefined) {
      await writeAll(conn, body.bytes.subarray(0, limit));
      return;
    }
    let sent = 0;
    let batch: Uint8Array[] = [];
    let batched = 0;
    for (const chunk of body.chunks!()) {
      if (sent + batched >= limit || server.closing) break;
      let piece = encoder.encode(chunk);
      if (sent + batched + piece.length > limit) piece = piece.subarray(0, limit - sent - batched);
      batch.push(piece);
      batched += piece.length;
      if (batched >= WRITE_BATCH) {
        await writeAll(conn, concat(batch, batched));
        sent += batched;
        batch = [];
        batched = 0;
      }
    }
    if (batched > 0) await writeAll(conn, concat(batch, batched));
    sent += batched;
    if (sent !== Math.min(limit, body.length)) {
      throw new Error(`a generated document changed length: ${sent} of ${body.length} bytes`);
    }
  }

  /** Answers one request; returns whether the connection stays open. */
  async function answer(conn: Deno.Conn, req: ParsedRequest, n: number): Promise<boolean> {
    const path = targetPath(req.target);
    const url = new URL(req.target.startsWith("/") ? origin + req.target : `${origin}/`);
    const name = nameFromPath(path);
    const accept = req.headers.get("accept") ?? null;
    const representation = representationFor(accept);
    const fault = faults?.({ n, url, path, name, representation });
    const record: RegistryRequestRecord = {
      n,
      method: req.method,
      path,
      name,
      accept,
      representation,
      status: 0,
      authorization: req.headers.has("authorization"),
    };
    const ifNoneMatch = req.headers.get("if-none-match");
    if (ifNoneMatch !== undefined) record.ifNoneMatch = ifNoneMatch;
    const ifModifiedSince = req.headers.get("if-modified-since");
    if (ifModifiedSince !== undefined) record.ifModifiedSince = ifModifiedSince;
    if (recordHeaders) record.headers = Object.fromEntries(req.headers);
    if (fault !== undefined) record.fault = fault;
    requests.push(record);
    const keepAlive = keepAliveOf(req);

    if (!(await beforeReply(server, conn, fault))) return false;
    let reply: Reply;
    if (fault?.kind === "status") {
      reply = jsonReply(
        fault.status,
        { error: `injected status ${fault.status}` },
        fault.retryAfter === undefined ? [] : [["retry-after", fault.retryAfter]],
      );
    } else if (fault?.kind === "bad-json") {
      reply = {
        status: 200,
        headers: [["content-type", representation === "full" ? "application/json" : CORGI_TYPE]],
        body: textBody(`{"name":${JSON.stringify(name ?? "x")},"versions":{"1.0.0":{"name":`),
      };
    } else if (fault?.kind === "content-type") {
      reply = {
        status: 200,
        headers: [["content-type", "text/html; charset=utf-8"]],
        body: textBody("<!DOCTYPE html>\n<html><body><h1>Please wait</h1></body></html>\n"),
      };
    } else {
      reply = route(req, path, name, representation);
    }
    const headers = reply.headers.slice();
    if (!keepAlive) headers.push(["connection", "close"]);
    record.status = reply.status;
    let body = reply.body;
    if (
      gzip && reply.status === 200 && body?.bytes !== undefined &&
      /\bgzip\b/.test(req.headers.get("accept-encoding") ?? "")
    ) {
      const bytes = new Uint8Array(gzipSync(body.bytes));
      body = { ...body, bytes, length: bytes.length };
      headers.push(["content-encoding", "gzip"]);
      record.gzip = true;
    }
    if (body === undefined) {
      await writeAll(conn, headBytes(reply.status, headers, undefined, REASONS));
      return keepAlive;
    }
    const head = headBytes(reply.status, headers, body.length, REASONS);
    if (req.method === "HEAD") {
      await writeAll(conn, head);
      return keepAlive;
    }
    if (fault?.kind === "truncate") {
      const keep = Math.max(
        0,
        Math.min(fault.bytes ?? Math.floor(body.length / 2), body.length - 1),
      );
      await writeAll(conn, head);
      await sendBody(conn, body, keep);
      return false;
    }
    if (body.bytes !== undefined && body.length < 16 * 1024) {
      await writeAll(conn, concat([head, body.bytes]));
    } else {
      await writeAll(conn, head);
      await sendBody(conn, body, body.length);
    }
    return keepAlive;
  }

  function docOf(name: string): Doc {
    const doc = docs.get(name);
    if (doc === undefined) throw new RangeError(`no such package: ${name}`);
    return doc;
  }

  return {
    url: `${origin}/`,
    requests,
    set(name: string, body: PackumentSource): void {
      docs.set(name, { source: toSource(body) });
    },
    remove(name: string): boolean {
      return docs.delete(name);
    },
    expectedBody(name: string, representation: Representation): Uint8Array {
      const doc = docOf(name);
      const body = bodyOf(doc, representation);
      return body.bytes ?? encoder.encode(wholeText(doc));
    },
    etag(name: string, representation: Representation): string {
      return bodyOf(docOf(name), representation).etag;
    },
    lastModified(name: string): string | undefined {
      return fullBody(docOf(name)).lastModified;
    },
    close(): Promise<void> {
      return server.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Standalone

/** Reads a JSON array of names, or one name a line (blank lines skipped, CRLF allowed). */
async function readNames(file: string): Promise<string[]> {
  const text = await Deno.readTextFile(file);
  if (text.trimStart().startsWith("[")) {
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw new TypeError(`${file}: expected a JSON array of strings`);
    }
    return value as string[];
  }
  return text.split("\n").map((line) => line.replace(/\r$/, "")).filter((line) => line !== "");
}

/** A small deterministic hash of a name, for picking sizes. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * The generated documents of the standalone mode: for each name a lazily generated packument,
 * 1 to 8 versions (a few KB); `big` of them, spread evenly over `names`, with 150 to 499
 * versions padded to 2 to 8 MB.
 */
export function standalonePackuments(
  names: readonly string[],
  big = 0,
): Map<string, () => Iterable<string>> {
  const bigOnes = new Set<number>();
  const count = Math.min(big, names.length);
  for (let i = 0; i < count; i++) bigOnes.add(Math.floor((i * names.length) / count));
  const out = new Map<string, () => Iterable<string>>();
  names.forEach((name, i) => {
    const h = nameHash(name);
    const options = bigOnes.has(i)
      ? { versions: 150 + (h % 350), targetBytes: (2 + (h % 7)) * 1_000_000 }
      : { versions: 1 + (h % 8) };
    out.set(name, () => generatePackumentChunks(name, options));
  });
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "0" },
      hostname: { type: "string", default: "127.0.0.1" },
      names: { type: "string" },
      big: { type: "string", default: "0" },
      token: { type: "string" },
    },
    strict: true,
  });
  if (values.names === undefined) throw new TypeError("--names FILE is required");
  const names = await readNames(values.names);
  const options: RegistryFixtureOptions = {
    port: Number(values.port),
    hostname: values.hostname,
    packuments: standalonePackuments(names, Number(values.big)),
  };
  if (values.token !== undefined) options.token = values.token;
  const fixture = await startRegistryFixture(options);
  console.error(`serving ${names.length} packuments`);
  console.log(`listening ${fixture.url}`);
  const stop = (): void => {
    fixture.close().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
