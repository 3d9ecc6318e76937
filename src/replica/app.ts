/**
 * A read replica of the registry built from the cache alone: one Hono app that answers the
 * requests npm clients and CouchDB-style replicators send, and never contacts an origin.
 *
 * Routes (GET and HEAD; HEAD answers the same status and headers without a body; every other
 * method answers 405 with `Allow: GET, HEAD`):
 *
 * - `GET /{name}`, `GET /@scope%2fname` (or `%2F`, or a literal `/@scope/name`): the cached
 *   package document. The name is percent-decoded once and must pass
 *   {@linkcode packageNameProblem} (400 otherwise); it only ever becomes a cache key, never a
 *   file path. A name that is not cached, or was recorded as not found, answers 404
 *   `{"error":"Not found"}`.
 *   - Representation by `Accept`: one naming `application/vnd.npm.install-v1+json`, or
 *     containing `*\/*` (npm's own CLI sends `application/vnd.npm.install-v1+json; q=1.0,
 *     application/json; q=0.8, *\/*`), gets the abbreviated ("corgi") document, as npm's
 *     registry does; `application/json` alone, or no `Accept`, gets the full document.
 *   - An abbreviated request is answered from the cached corgi entry, or, when only the full
 *     document is cached (or the full one was fetched more recently), from an abbreviated form
 *     derived from it (`src/npm/corgi_stream.ts`): `name`, `modified`, `dist-tags`, and per
 *     version only the install fields. The derivation streams, in memory bounded by the largest
 *     version, not the document (a 100 MB document costs a few MB a request): the first request
 *     reads the full document twice (a plan, then the derived bytes for their ETag and length),
 *     later ones once; a derived body up to 8 MB is kept in memory (32 MB in all). A full
 *     request is never answered from a corgi entry: when only the corgi is cached it answers
 *     404.
 *   - Stored bodies stream from storage, verified against their sha256 integrity. A corrupt
 *     entry found before answering (its header, an inline body, a missing body, or the full
 *     document an abbreviated one is derived from) answers 500 `{"error":
 *     "internal_server_error","reason":"Cache entry '...' is corrupt: ..."}`, never 200; a body
 *     stored apart is checked as it streams and, when wrong, the response is aborted before its
 *     last chunk, so the client sees a failed transfer (the cache's `onCorrupt` logs it). HEAD
 *     checks such a body before answering, so it answers 500 where GET would fail. `Content-Type` is the one
 *     stored (else the representation's type), `ETag` is the strong `"sha256-..."` integrity of
 *     the bytes sent (of the derived body for a derived document), `Cache-Control: public,
 *     max-age=300`, `Vary: Accept, Accept-Encoding`; a matching `If-None-Match` answers 304
 *     without a body.
 *   - Encoding: a body stored gzip goes as stored, with `Content-Encoding: gzip`, to a client
 *     whose `Accept-Encoding` takes gzip (npm's CLI and pacote do): nothing is decoded or
 *     encoded again. A client that does not take gzip gets it decoded, under the ETag
 *     `"sha256-....identity"` (another representation, so another strong ETag). A body stored
 *     identity goes as it is to every client.
 *   - Tarballs are out of scope: `dist.tarball` still points at the origin the document came
 *     from, so installs fetch tarballs there (or from whatever the client maps them to). npm
 *     rewrites tarball URLs onto the registry it is configured with, so a tarball path
 *     (`/NAME/-/FILE`, `/@scope/NAME/-/FILE`) answers 404 `{"error":"Not found","reason":...}`
 *     saying that tarballs are not served here (npm reports it as a failed fetch of that URL).
 * - `GET /_all_docs`: the cached partitions as CouchDB's `_all_docs`
 *   (`{"total_rows":N,"offset":K,"rows":[{"id","key","value":{"rev"}}]}`), ids in code-point
 *   order, with `startkey`, `endkey`, `key`, `keys` (JSON strings), `inclusive_end`,
 *   `descending`, `limit` (default 1000, at most 10000) and `include_docs=false`, and the
 *   strictness of npm's endpoint: 400 `{"error":"bad_request","reason":...}` for a limit above
 *   10000, `include_docs=true`, `skip` or any unknown or repeated parameter, a key that is not a
 *   JSON string, a range whose start lies past its end, and any `..` in the raw query.
 *   Partitions are grouped into disjoint clusters by their key ranges (overlapping partition
 *   sets merge, the most recently fetched partition deciding each point of the key space; see
 *   {@linkcode PartitionIndex}); a page
 *   reads only the clusters its range touches, so a seek into millions of rows costs at most
 *   the partitions around it.
 *   `total_rows` counts every row; `offset` counts the rows before the first one returned (from
 *   the top when descending).
 * - `GET /`: `{"db_name":"registry","engine":"_all_docs replica","doc_count":N,"update_seq":0}`.
 * - `GET /-/ping`: `{}` (what `npm ping` expects). Other `/-/...` paths answer 404.
 *
 * Requests are logged by {@linkcode requestLog} when a `log` is given.
 *
 * @module
 */

import type { Context, Hono } from "hono";
import { honoApp } from "../_util/hono.ts";
import { createSha256, sha256Integrity } from "../storage/integrity.ts";
import { Lru } from "../_util/lru.ts";
import type { Cache, CacheEntry, CacheEntryInfo } from "../storage/cache.ts";
import { decodedSizeOf } from "../storage/entry.ts";
import type { Clock } from "../clock.ts";
import { packumentKey } from "../storage/keys.ts";
import { type AllDocsQuery, AllDocsQueryError, parseAllDocsQuery } from "../couchdb/query.ts";
import { packageNameProblem } from "../npm/package_name.ts";
import { abbreviatedStream, type AbbreviationPlan, planAbbreviation } from "../npm/corgi_stream.ts";
import { SingleFlight } from "../_util/single_flight.ts";
import { concatBytes } from "../_util/bytes.ts";
import { acceptsAbbreviated, CORGI_MEDIA_TYPE, FULL_MEDIA_TYPE } from "../npm/media_types.ts";
import { PartitionIndex } from "./partition_index.ts";
import { rawPath, rawQuery, requestLog } from "./request_log.ts";

/** Options of {@linkcode createReplicaApp}. */
export interface ReplicaAppOptions {
  /** The cache to answer from. */
  cache: Cache;
  /** The origin key under which the packuments of a package name are cached. */
  packumentOrigin: (name: string) => string;
  /** The origin key of the partitions `_all_docs` serves; every cached partition when absent. */
  partitionsOrigin?: string;
  /** Receives one JSON line per request: method, path, status, bytes and ms. */
  log?: (line: string) => void;
  /** The clock for request durations.
   * @default {Date} */
  clock?: Pick<Clock, "now">;
}

const CACHE_CONTROL = "public, max-age=300";
/**
 * Derived abbreviated documents remembered (their plan, ETag and length), the bound on the
 * bodies kept with them, and the largest body kept: a larger one is derived again, as a
 * stream, for each request.
 */
const DERIVED_ENTRIES = 256;
const DERIVED_BYTES = 32 * 1024 * 1024;
const DERIVED_MAX_BYTES = DERIVED_BYTES / 4;

// ---------------------------------------------------------------------------------------------
// Responses

function json(status: number, value: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function badRequest(reason: string): Response {
  return json(400, { error: "bad_request", reason });
}

function notFound(): Response {
  return json(404, { error: "Not found" });
}

/** A tarball path: `/NAME/-/FILE`, `/@scope/NAME/-/FILE` or `/@scope%2fNAME/-/FILE`. */
const TARBALL_PATH = /^\/(?:@[^/]+(?:\/|%2[fF]))?[^/@][^/]*\/-\/[^/]/;

function tarballNotServed(): Response {
  return json(404, {
    error: "Not found",
    reason: "Tarballs are not served by this replica, only package documents: " +
      "fetch tarballs from the registry the documents came from",
  });
}

function rowJson(id: string, rev: string): string {
  const key = JSON.stringify(id);
  return `{"id":${key},"key":${key},"value":{"rev":${JSON.stringify(rev)}}}`;
}

function pageJson(total: number, offset: number, rows: string[]): string {
  const head = `{"total_rows":${total},"offset":${offset},"rows":[`;
  return rows.length === 0 ? `${head}]}\n` : `${head}\r\n${rows.join(",\r\n")}\r\n]}\n`;
}

// ---------------------------------------------------------------------------------------------
// Package documents

/** A derived abbreviated document: how to make it, its ETag and length, its body if small. */
interface Derived {
  plan: AbbreviationPlan;
  etag: string;
  length: number;
  body: Uint8Array | undefined;
}

/**
 * Derives the abbreviated form of a full document in bounded memory (`src/npm/corgi_stream.ts`),
 * reading it twice: once for the plan, once to hash and measure the result (kept when small).
 */
async function derive(full: CacheEntry): Promise<Derived> {
  const plan = await planAbbreviation(full.stream());
  const hash = createSha256();
  let length = 0;
  let pieces: Uint8Array[] | undefined = [];
  for await (const piece of abbreviatedStream(full.stream(), plan)) {
    hash.update(piece);
    length += piece.length;
    if (pieces && length <= DERIVED_MAX_BYTES) pieces.push(piece);
    else pieces = undefined;
  }
  const body = pieces && concatBytes(pieces);
  return { plan, etag: `"${sha256Integrity(hash.digest())}"`, length, body };
}

function packumentHeaders(
  etag: string,
  contentType: string,
  info?: CacheEntryInfo,
): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": contentType,
    etag,
    "cache-control": CACHE_CONTROL,
    vary: "Accept, Accept-Encoding",
  };
  if (info?.lastModified) headers["last-modified"] = info.lastModified;
  return headers;
}

/**
 * Whether an `Accept-Encoding` header accepts gzip: `gzip` or `*` with a non-zero `q` (and no
 * `gzip;q=0` when `*` is what accepts it).
 *
 * @param header The header value, if any.
 * @returns `true` when a gzip body may be sent.
 *
 * @example
 * ```ts
 * import { acceptsGzip } from "./app.ts";
 * console.assert(acceptsGzip("gzip,deflate") && !acceptsGzip("gzip;q=0, *"));
 * ```
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.split(",")) {
    const [coding = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith("q="));
    const accepted = q === undefined || Number(q.slice(2)) > 0;
    if (coding === "gzip" || coding === "x-gzip") return accepted;
    if (coding === "*") star = accepted;
  }
  return star;
}

/** Which stored entry answers an abbreviated request: the more recently fetched one. */
function pickAbbreviated(
  corgi: CacheEntry | undefined,
  full: CacheEntryInfo | undefined,
): "corgi" | "full" | "none" {
  if (corgi && (!full || corgi.info.fetchedAt >= full.fetchedAt)) {
    return corgi.info.status === 200 ? "corgi" : "none";
  }
  if (full) return full.status === 200 ? "full" : "none";
  return "none";
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = etag.replace(/^W\//, "");
  return header.split(",").some((candidate) => {
    const tag = candidate.trim();
    return tag === "*" || tag.replace(/^W\//, "") === bare;
  });
}

/**
 * Answers a package document conditionally: 304 with its headers when `If-None-Match` names
 * its ETag, else 200 with `Content-Length` and the body (none for `HEAD`). `hono/etag` is not
 * used because it decides after the handler has made the body: for a stored document that
 * means opening the body (on Workers KV, reading the whole value) only to cancel it, on every
 * revalidation npm sends.
 */
function conditional(
  c: Context,
  headers: Record<string, string>,
  size: number | undefined,
  body: () => BodyInit,
): Response {
  if (etagMatches(c.req.header("if-none-match"), headers.etag!)) {
    return new Response(null, { status: 304, headers });
  }
  if (size !== undefined) headers["content-length"] = String(size);
  // A body already encoded: Cloudflare Workers would encode it again without `encodeBody:
  // "manual"` (other runtimes ignore the field).
  const init = headers["content-encoding"]
    ? { status: 200, headers, encodeBody: "manual" }
    : { status: 200, headers };
  return new Response(c.req.method === "HEAD" ? null : body(), init);
}

// ---------------------------------------------------------------------------------------------
// The app

/**
 * Creates the replica app: see the module documentation for what it serves. It reads the cache
 * only; hand `app.fetch` to any `fetch`-style HTTP server, or call
 * `app.request(...)` directly.
 *
 * @param options The cache and how its keys are named.
 * @returns The Hono app.
 * @throws {TypeError} When `partitionsOrigin` is not a valid origin key.
 *
 * @example Serve a cached document
 * ```ts
 * import { createReplicaApp } from "./app.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { packumentKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver(), { bloom: false });
 * const doc = { name: "ms", "dist-tags": { latest: "1.0.0" }, versions: { "1.0.0": {} } };
 * await cache.put(packumentKey("npm", "ms"), new TextEncoder().encode(JSON.stringify(doc)), {
 *   status: 200,
 *   contentType: "application/json",
 * });
 * const app = createReplicaApp({ cache, packumentOrigin: () => "npm" });
 * const full = await app.request("/ms", { headers: { accept: "application/json" } });
 * console.assert(full.status === 200);
 * console.assert((await full.json()).name === "ms");
 * const corgi = await app.request("/ms", { headers: { accept: "*\/*" } });
 * console.assert(corgi.headers.get("content-type") === "application/vnd.npm.install-v1+json");
 * await corgi.body?.cancel();
 * const again = await app.request("/ms", {
 *   headers: { accept: "application/json", "if-none-match": full.headers.get("etag")! },
 * });
 * console.assert(again.status === 304);
 * console.assert((await app.request("/nope")).status === 404);
 * console.assert((await app.request("/ms", { method: "DELETE" })).status === 405);
 * ```
 */
export function createReplicaApp(options: ReplicaAppOptions): Hono {
  const { cache, packumentOrigin, log } = options;
  const partitionsOrigin = options.partitionsOrigin;
  if (partitionsOrigin !== undefined && !/^[A-Za-z0-9._-]+$/.test(partitionsOrigin)) {
    throw new TypeError(
      `Cannot create replica: 'partitionsOrigin' must be characters of [A-Za-z0-9._-], received '${partitionsOrigin}'`,
    );
  }
  const index = new PartitionIndex(cache, partitionsOrigin);
  const derived = new Lru<string, Derived>({
    maxEntries: DERIVED_ENTRIES,
    maxBytes: DERIVED_BYTES,
    maxEntryBytes: DERIVED_MAX_BYTES,
    sizeOf: (item) => (item.body?.length ?? 0) + 1024,
  });
  const deriving = new SingleFlight();
  // Hono answers HEAD from the GET routes, dropping the body.
  const app = honoApp(rawPath);

  if (log) app.use(requestLog(log, { now: () => (options.clock ?? Date).now() }));

  app.onError((error) => {
    return json(500, {
      error: "internal_server_error",
      reason: error instanceof Error ? error.message : "The cache could not be read",
    });
  });

  app.get("/", async () => {
    const clusters = await index.clusters();
    const count = clusters.reduce((sum, c) => sum + c.rows, 0);
    return json(200, {
      db_name: "registry",
      engine: "_all_docs replica",
      doc_count: count,
      update_seq: 0,
    });
  });

  app.get("/-/ping", () => json(200, {}));

  app.get("/_all_docs", (c) => allDocs(rawQuery(c.req.raw)));

  // npm's own namespace: nothing else of it is served.
  app.get("/-/:rest{.*}", () => notFound());

  // Tarballs: npm rewrites `dist.tarball` onto the registry it is configured with.
  app.get("*", (c, next) => TARBALL_PATH.test(c.req.path) ? tarballNotServed() : next());

  app.get("*", (c) => {
    if (rawQuery(c.req.raw).includes("..")) return badRequest("path traversal is not allowed");
    return packument(c, c.req.path.slice(1));
  });

  app.all("*", () => {
    return json(405, { error: "method_not_allowed", reason: "Only GET,HEAD allowed" }, {
      allow: "GET, HEAD",
    });
  });

  async function allDocs(rawQuery: string): Promise<Response> {
    let query: AllDocsQuery;
    try {
      query = parseAllDocsQuery(rawQuery);
    } catch (error) {
      if (error instanceof AllDocsQueryError) return badRequest(error.message);
      throw error;
    }
    const clusters = await index.clusters();
    const total = clusters.reduce((sum, c) => sum + c.rows, 0);
    let body: string;
    if (query.keys !== undefined) {
      const keys = (query.descending ? query.keys.slice().reverse() : query.keys).slice(
        0,
        query.limit,
      );
      const found = await index.lookup(clusters, keys);
      body = pageJson(
        total,
        0,
        keys.map((k) => {
          const rev = found.get(k);
          return rev === undefined
            ? `{"key":${JSON.stringify(k)},"error":"not_found"}`
            : rowJson(k, rev);
        }),
      );
    } else {
      const page = query.descending
        ? await index.descending(clusters, query)
        : await index.ascending(clusters, query);
      body = pageJson(total, page.offset, page.rows.map((r) => rowJson(r.id, r.rev)));
    }
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  }

  async function packument(c: Context, encoded: string): Promise<Response> {
    let name: string;
    try {
      name = decodeURIComponent(encoded);
    } catch {
      return badRequest("Invalid package name: bad percent-encoding");
    }
    const problem = packageNameProblem(name);
    if (problem) return badRequest(`Invalid package name: ${problem}`);
    const origin = packumentOrigin(name);
    const fullKey = packumentKey(origin, name, "full");
    // A corrupt entry throws (500 from onError). A body stored apart streams as it is checked
    // and errors the response at its end when wrong; HEAD, which sends no body, checks it
    // before answering 200 (see stored()).
    // A client that takes gzip gets a gzip body as stored (no decoding); the others the decoded
    // document.
    const decode = !acceptsGzip(c.req.header("accept-encoding"));
    const read = { verify: "while", corrupt: "throw", decode } as const;
    if (!acceptsAbbreviated(c.req.header("accept"))) {
      const entry = await cache.get(fullKey, read);
      if (!entry || entry.info.status !== 200) return notFound();
      return await stored(c, fullKey, entry, FULL_MEDIA_TYPE, decode);
    }
    const [corgi, fullInfo] = await Promise.all([
      cache.get(packumentKey(origin, name, "abbreviated"), read),
      cache.info(fullKey),
    ]);
    const pick = pickAbbreviated(corgi, fullInfo);
    if (pick === "corgi") {
      const corgiKey = packumentKey(origin, name, "abbreviated");
      return await stored(c, corgiKey, corgi!, CORGI_MEDIA_TYPE, decode);
    }
    if (pick === "none") return notFound();
    const full = await cache.get(fullKey, { ...read, decode: true });
    if (!full || full.info.status !== 200) return notFound();
    const integrity = full.info.integrity;
    let item = derived.get(integrity);
    if (!item) {
      item = await deriving.run(integrity, () => derive(full));
      derived.set(integrity, item);
    }
    const { body, plan } = item;
    return conditional(
      c,
      packumentHeaders(item.etag, CORGI_MEDIA_TYPE),
      item.length,
      () => body ? body.slice() : abbreviatedStream(full.stream(), plan),
    );
  }

  async function stored(
    c: Context,
    key: string,
    entry: CacheEntry,
    fallbackType: string,
    decoding: boolean,
  ): Promise<Response> {
    const { info } = entry;
    // The entry was read decoded unless the client takes gzip: a gzip body then goes as stored.
    const gzipped = info.encoding === "gzip" && !decoding;
    // The stored bytes' integrity; a gzip body sent decoded is another representation.
    const etag = info.encoding === "gzip" && !gzipped
      ? `"${info.integrity}.identity"`
      : `"${info.integrity}"`;
    const headers = packumentHeaders(etag, info.contentType ?? fallbackType, info);
    if (gzipped) headers["content-encoding"] = "gzip";
    if (c.req.method === "HEAD" && !etagMatches(c.req.header("if-none-match"), etag)) {
      // No body to abort: check it now, so that HEAD fails where GET would.
      const checked = await cache.get(key, { verify: "before", corrupt: "throw" });
      if (!checked) return notFound();
    }
    const size = gzipped ? info.size : decodedSizeOf(info);
    return conditional(c, headers, size, () => entry.stream());
  }

  return app;
}
