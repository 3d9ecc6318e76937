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
 *     derived from it by {@linkcode abbreviatePackument}: `name`, `modified` (`time.modified`,
 *     else the latest date in `time`), `dist-tags`, and per version only the install fields of
 *     {@linkcode ABBREVIATED_VERSION_FIELDS}. A full request is never answered from a corgi
 *     entry: when only the corgi is cached it answers 404.
 *   - Stored bodies stream from storage (verified against their sha256 integrity as they go;
 *     a corrupt body errors the response instead of being served). `Content-Type` is the one
 *     stored (else the representation's type), `ETag` is the strong `"sha256-..."` integrity of
 *     the bytes sent (of the derived body for a derived document), `Cache-Control: public,
 *     max-age=300`, `Vary: Accept`; a matching `If-None-Match` answers 304 without a body.
 *   - Tarballs are out of scope: `dist.tarball` still points at the origin the document came
 *     from, so installs fetch tarballs there (or from whatever the client maps them to).
 * - `GET /_all_docs`: the cached partitions as CouchDB's `_all_docs`
 *   (`{"total_rows":N,"offset":K,"rows":[{"id","key","value":{"rev"}}]}`), ids in code-point
 *   order, with `startkey`, `endkey`, `key`, `keys` (JSON strings), `inclusive_end`,
 *   `descending`, `limit` (default 1000, at most 10000) and `include_docs=false`, and the
 *   strictness of npm's endpoint: 400 `{"error":"bad_request","reason":...}` for a limit above
 *   10000, `include_docs=true`, `skip` or any unknown or repeated parameter, a key that is not a
 *   JSON string, a range whose start lies past its end, and any `..` in the raw query.
 *   Partitions are grouped into disjoint clusters by their key ranges (overlapping partition
 *   sets merge, the most recently fetched row winning); a page reads only the clusters its
 *   range touches, so a seek into millions of rows costs at most the partitions around it.
 *   `total_rows` counts every row; `offset` counts the rows before the first one returned (from
 *   the top when descending).
 * - `GET /`: `{"db_name":"registry","engine":"_all_docs replica","doc_count":N,"update_seq":0}`.
 * - `GET /-/ping`: `{}` (what `npm ping` expects). Other `/-/...` paths answer 404.
 *
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { compareKeys } from "../storage/driver.ts";
import { sha256 } from "@noble/hashes/sha2";
import { sha256Integrity } from "../storage/integrity.ts";
import type { AllDocsRow } from "../couchdb/rows.ts";
import type { Cache, CacheEntry, CacheEntryInfo } from "../storage/cache.ts";
import type { Clock } from "../clock.ts";
import { keyPrefix, packumentKey, parseKey } from "../storage/keys.ts";
import { partitionRows } from "../couchdb/partition_lines.ts";
import { packageNameProblem } from "../npm/package_name.ts";
import { type AllDocsQuery, AllDocsQueryError, parseAllDocsQuery } from "../couchdb/query.ts";

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

/** The media type of abbreviated ("corgi") package documents. */
export const CORGI_MEDIA_TYPE = "application/vnd.npm.install-v1+json";

/**
 * The per-version fields an abbreviated document keeps, in the order they are written.
 *
 * @example
 * ```ts
 * import { ABBREVIATED_VERSION_FIELDS } from "./app.ts";
 * console.assert(ABBREVIATED_VERSION_FIELDS.includes("dist"));
 * console.assert(!ABBREVIATED_VERSION_FIELDS.includes("readme"));
 * ```
 */
export const ABBREVIATED_VERSION_FIELDS: readonly string[] = [
  "name",
  "version",
  "deprecated",
  "dependencies",
  "optionalDependencies",
  "devDependencies",
  "bundleDependencies",
  "peerDependencies",
  "peerDependenciesMeta",
  "bin",
  "directories",
  "dist",
  "engines",
  "os",
  "cpu",
  "_hasShrinkwrap",
  "hasInstallScript",
  "funding",
  "acceptDependencies",
  "libc",
];

const CACHE_CONTROL = "public, max-age=300";
/** Derived abbreviated bodies kept in memory, and their total size bound. */
const DERIVED_ENTRIES = 64;
const DERIVED_BYTES = 32 * 1024 * 1024;

const encoder = new TextEncoder();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * When a package document was last modified: `time.modified`, else the latest date in `time`.
 *
 * @param full A full package document.
 * @returns The date as written in the document, or `undefined` when it has none.
 */
export function modifiedOf(full: unknown): string | undefined {
  if (!isRecord(full) || !isRecord(full.time)) return undefined;
  const time = full.time;
  if (typeof time.modified === "string") return time.modified;
  let best: string | undefined;
  let bestMs = -Infinity;
  for (const value of Object.values(time)) {
    if (typeof value !== "string") continue;
    const ms = Date.parse(value);
    if (Number.isFinite(ms) && ms > bestMs) {
      bestMs = ms;
      best = value;
    }
  }
  return best;
}

/**
 * Derives the abbreviated ("corgi") document from a full package document: `name`,
 * `dist-tags`, `versions` with only the fields of {@linkcode ABBREVIATED_VERSION_FIELDS} that
 * are present, and `modified` (`time.modified`, else the latest date in `time`; left out when
 * there is none).
 *
 * @param full The parsed full document.
 * @returns The abbreviated document.
 * @throws {TypeError} When `full` is not an object with a string `name`.
 *
 * @example
 * ```ts
 * import { abbreviatePackument } from "./app.ts";
 * const corgi = abbreviatePackument({
 *   name: "ms",
 *   readme: "long text",
 *   time: { modified: "2024-01-01T00:00:00.000Z" },
 *   "dist-tags": { latest: "1.0.0" },
 *   versions: { "1.0.0": { name: "ms", version: "1.0.0", scripts: {}, dist: { shasum: "0" } } },
 * });
 * console.assert(JSON.stringify(corgi) === JSON.stringify({
 *   name: "ms",
 *   "dist-tags": { latest: "1.0.0" },
 *   versions: { "1.0.0": { name: "ms", version: "1.0.0", dist: { shasum: "0" } } },
 *   modified: "2024-01-01T00:00:00.000Z",
 * }));
 * ```
 */
export function abbreviatePackument(full: unknown): Record<string, unknown> {
  if (!isRecord(full) || typeof full.name !== "string") {
    throw new TypeError("Cannot abbreviate: expected a package document with a string name");
  }
  const versions: Record<string, Record<string, unknown>> = {};
  if (isRecord(full.versions)) {
    for (const [version, manifest] of Object.entries(full.versions)) {
      if (!isRecord(manifest)) continue;
      const slim: Record<string, unknown> = {};
      for (const field of ABBREVIATED_VERSION_FIELDS) {
        if (Object.hasOwn(manifest, field) && manifest[field] !== undefined) {
          slim[field] = manifest[field];
        }
      }
      versions[version] = slim;
    }
  }
  const out: Record<string, unknown> = {
    name: full.name,
    "dist-tags": isRecord(full["dist-tags"]) ? full["dist-tags"] : {},
    versions,
  };
  const modified = modifiedOf(full);
  if (modified !== undefined) out.modified = modified;
  return out;
}

/**
 * Whether an `Accept` header gets the abbreviated document: it names
 * `application/vnd.npm.install-v1+json` or contains `*\/*`, as npm's registry decides.
 *
 * @param accept The header value, or `null`/`undefined` when absent.
 * @returns `true` for the abbreviated document, `false` for the full one.
 *
 * @example
 * ```ts
 * import { acceptsAbbreviated } from "./app.ts";
 * console.assert(acceptsAbbreviated("application/vnd.npm.install-v1+json; q=1.0, *\/*"));
 * console.assert(!acceptsAbbreviated("application/json"));
 * console.assert(!acceptsAbbreviated(undefined));
 * ```
 */
export function acceptsAbbreviated(accept: string | null | undefined): boolean {
  if (!accept) return false;
  const lower = accept.toLowerCase();
  return lower.includes(CORGI_MEDIA_TYPE) || lower.includes("*/*");
}

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

/** The request target as sent (path and query), from the raw request URL. */
function rawTarget(url: string): string {
  const scheme = url.indexOf("://");
  const start = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  return start < 0 ? "/" : url.slice(start);
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = etag.replace(/^W\//, "");
  return header.split(",").some((candidate) => {
    const tag = candidate.trim();
    return tag === "*" || tag.replace(/^W\//, "") === bare;
  });
}

// ---------------------------------------------------------------------------------------------
// Partitions

interface PartitionSource {
  key: string;
  startKey: string;
  endKey: string;
  fetchedAt: number;
  count: number | undefined;
  integrity: string;
}

/** Partitions whose ranges overlap, merged; clusters are disjoint and in key order. */
interface Cluster {
  startKey: string;
  /** Exclusive; `""` is open. */
  endKey: string;
  sources: PartitionSource[];
  rows: number;
}

interface Cursor {
  row: AllDocsRow;
  fetchedAt: number;
  rest: AsyncGenerator<AllDocsRow>;
}

async function* cachedRows(cache: Cache, key: string): AsyncGenerator<AllDocsRow> {
  const entry = await cache.get(key, { verify: "while" });
  if (entry && entry.info.status === 200) yield* partitionRows(entry.stream());
}

/** The rows of a cluster in id order, one per id, the most recently fetched winning. */
async function* clusterRows(cache: Cache, cluster: Cluster): AsyncGenerator<AllDocsRow> {
  const sources = cluster.sources;
  if (sources.length === 1) {
    yield* cachedRows(cache, sources[0]!.key);
    return;
  }
  const cursors: Cursor[] = [];
  let next = 0;
  try {
    while (true) {
      // Open every partition that could hold a row at or before the current smallest id.
      while (next < sources.length) {
        const smallest = cursors.reduce<string | undefined>(
          (min, c) => min === undefined || compareKeys(c.row.id, min) < 0 ? c.row.id : min,
          undefined,
        );
        if (smallest !== undefined && compareKeys(sources[next]!.startKey, smallest) > 0) break;
        const source = sources[next++]!;
        const rest = cachedRows(cache, source.key);
        const first = await rest.next();
        if (!first.done) cursors.push({ row: first.value, fetchedAt: source.fetchedAt, rest });
      }
      if (cursors.length === 0) return;
      let best = cursors[0]!;
      for (const cursor of cursors) {
        const order = compareKeys(cursor.row.id, best.row.id);
        if (order < 0 || (order === 0 && cursor.fetchedAt > best.fetchedAt)) best = cursor;
      }
      const id = best.row.id;
      yield best.row;
      for (let i = cursors.length - 1; i >= 0; i--) {
        const cursor = cursors[i]!;
        if (cursor.row.id !== id) continue;
        const step = await cursor.rest.next();
        if (step.done) cursors.splice(i, 1);
        else cursor.row = step.value;
      }
    }
  } finally {
    await Promise.all(cursors.map((c) => c.rest.return(undefined)));
  }
}

function endOfBoth(a: string, b: string): string {
  if (a === "" || b === "") return "";
  return compareKeys(a, b) >= 0 ? a : b;
}

/** Reads the cached partitions as pages of `_all_docs`. */
class PartitionIndex {
  #cache: Cache;
  #prefix: string;
  /** Row counts of multi-partition clusters, by the identity of their partitions. */
  #counts = new Map<string, number>();

  constructor(cache: Cache, origin: string | undefined) {
    this.#cache = cache;
    this.#prefix = keyPrefix("partition", origin);
  }

  /** The clusters of the partitions cached now, with their row counts. */
  async clusters(): Promise<Cluster[]> {
    const sources: PartitionSource[] = [];
    for await (const key of this.#cache.keys(this.#prefix)) {
      let parts;
      try {
        parts = parseKey(key);
      } catch {
        continue;
      }
      if (parts.type !== "partition") continue;
      const info = await this.#cache.info(key);
      if (!info || info.status !== 200) continue;
      sources.push({
        key,
        startKey: parts.startKey,
        endKey: parts.endKey,
        fetchedAt: info.fetchedAt,
        count: info.count,
        integrity: info.integrity,
      });
    }
    sources.sort((a, b) => compareKeys(a.startKey, b.startKey) || compareKeys(a.key, b.key));
    const clusters: Cluster[] = [];
    for (const source of sources) {
      const last = clusters.at(-1);
      if (last && (last.endKey === "" || compareKeys(source.startKey, last.endKey) < 0)) {
        last.sources.push(source);
        last.endKey = endOfBoth(last.endKey, source.endKey);
      } else {
        clusters.push({
          startKey: source.startKey,
          endKey: source.endKey,
          sources: [source],
          rows: 0,
        });
      }
    }
    for (const cluster of clusters) cluster.rows = await this.#count(cluster);
    return clusters;
  }

  async #count(cluster: Cluster): Promise<number> {
    const only = cluster.sources[0]!;
    if (cluster.sources.length === 1 && only.count !== undefined) return only.count;
    const id = cluster.sources.map((s) => `${s.key} ${s.integrity} ${s.fetchedAt}`).join("\n");
    const known = this.#counts.get(id);
    if (known !== undefined) return known;
    let rows = 0;
    for await (const _ of clusterRows(this.#cache, cluster)) rows++;
    if (this.#counts.size >= 1024) this.#counts.clear();
    this.#counts.set(id, rows);
    return rows;
  }

  /** Rows from `start` upward; `offset` counts the rows before `start`. */
  async ascending(
    clusters: Cluster[],
    query: AllDocsQuery,
  ): Promise<{ offset: number; rows: AllDocsRow[] }> {
    const { start, end, inclusiveEnd, limit } = query;
    let i = 0;
    let offset = 0;
    if (start !== undefined) {
      // Clusters that end at or before `start` hold only rows before it.
      while (
        i < clusters.length && clusters[i]!.endKey !== "" &&
        compareKeys(clusters[i]!.endKey, start) <= 0
      ) {
        offset += clusters[i++]!.rows;
      }
    }
    const rows: AllDocsRow[] = [];
    scan: for (; i < clusters.length; i++) {
      const cluster = clusters[i]!;
      if (end !== undefined) {
        const order = compareKeys(cluster.startKey, end);
        if (order > 0 || (order === 0 && !inclusiveEnd)) break;
      }
      for await (const row of clusterRows(this.#cache, cluster)) {
        if (start !== undefined && compareKeys(row.id, start) < 0) {
          offset++;
          continue;
        }
        if (end !== undefined) {
          const order = compareKeys(row.id, end);
          if (order > 0 || (order === 0 && !inclusiveEnd)) break scan;
        }
        if (rows.length >= limit) break scan;
        rows.push(row);
      }
    }
    return { offset, rows };
  }

  /** Rows from `start` downward; `offset` counts the rows after `start`. */
  async descending(
    clusters: Cluster[],
    query: AllDocsQuery,
  ): Promise<{ offset: number; rows: AllDocsRow[] }> {
    const { start, end, inclusiveEnd, limit } = query;
    let i = clusters.length - 1;
    let offset = 0;
    if (start !== undefined) {
      // Clusters that begin after `start` hold only rows after it.
      while (i >= 0 && compareKeys(clusters[i]!.startKey, start) > 0) offset += clusters[i--]!.rows;
    }
    const rows: AllDocsRow[] = [];
    for (let first = true; i >= 0; i--, first = false) {
      const cluster = clusters[i]!;
      if (!first && rows.length >= limit) break;
      if (end !== undefined && cluster.endKey !== "" && compareKeys(cluster.endKey, end) <= 0) {
        break;
      }
      // Keep the last `want` rows of the cluster that fall in the range (bounded memory).
      const want = limit - rows.length;
      if (want === 0 && start === undefined) break;
      let kept: AllDocsRow[] = [];
      let seen = 0;
      for await (const row of clusterRows(this.#cache, cluster)) {
        if (start !== undefined && compareKeys(row.id, start) > 0) {
          offset += cluster.rows - seen;
          break;
        }
        seen++;
        if (end !== undefined) {
          const order = compareKeys(row.id, end);
          if (order < 0 || (order === 0 && !inclusiveEnd)) continue;
        }
        if (want === 0) continue;
        kept.push(row);
        if (kept.length >= 2 * want) kept = kept.slice(-want);
      }
      if (want > 0) rows.push(...kept.slice(-want).reverse());
    }
    return { offset, rows };
  }

  /** The revisions of those of `ids` that are cached, by id. */
  async lookup(clusters: Cluster[], ids: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const wanted = new Map<Cluster, Set<string>>();
    for (const id of ids) {
      const cluster = clusters.find((c) =>
        compareKeys(c.startKey, id) <= 0 && (c.endKey === "" || compareKeys(id, c.endKey) < 0)
      );
      if (!cluster) continue;
      let set = wanted.get(cluster);
      if (!set) wanted.set(cluster, set = new Set());
      set.add(id);
    }
    for (const [cluster, set] of wanted) {
      const last = [...set].reduce((a, b) => compareKeys(a, b) >= 0 ? a : b);
      for await (const row of clusterRows(this.#cache, cluster)) {
        if (set.has(row.id)) found.set(row.id, row.rev);
        if (compareKeys(row.id, last) >= 0) break;
      }
    }
    return found;
  }
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

interface Derived {
  body: Uint8Array;
  etag: string;
}

/** A small LRU of derived abbreviated bodies, keyed by the full document's integrity. */
class DerivedCache {
  #items = new Map<string, Derived>();
  #bytes = 0;

  get(key: string): Derived | undefined {
    const item = this.#items.get(key);
    if (item) {
      this.#items.delete(key);
      this.#items.set(key, item);
    }
    return item;
  }

  set(key: string, item: Derived): void {
    if (item.body.length > DERIVED_BYTES / 4) return;
    this.#items.set(key, item);
    this.#bytes += item.body.length;
    for (const [oldKey, old] of this.#items) {
      if (this.#items.size <= DERIVED_ENTRIES && this.#bytes <= DERIVED_BYTES) break;
      this.#items.delete(oldKey);
      this.#bytes -= old.body.length;
    }
  }
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
    vary: "Accept",
  };
  if (info?.lastModified) headers["last-modified"] = info.lastModified;
  return headers;
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
  const now = (): number => (options.clock ?? Date).now();
  const index = new PartitionIndex(cache, partitionsOrigin);
  const derived = new DerivedCache();
  const app = new Hono();

  function logged(response: Response, method: string, target: string, started: number): Response {
    if (!log) return response;
    const status = response.status;
    let written = false;
    const write = (bytes: number, error?: string): void => {
      if (written) return;
      written = true;
      const line: Record<string, unknown> = {
        method,
        path: target.length > 2048 ? `${target.slice(0, 2048)}...` : target,
        status,
        bytes,
        ms: Math.round((now() - started) * 10) / 10,
      };
      if (error !== undefined) line.error = error;
      log(JSON.stringify(line));
    };
    if (!response.body || method === "HEAD") {
      write(0);
      return response;
    }
    const reader = response.body.getReader();
    let bytes = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) {
            controller.close();
            write(bytes);
          } else {
            bytes += value.byteLength;
            controller.enqueue(value);
          }
        } catch (error) {
          write(bytes, error instanceof Error ? error.message : String(error));
          controller.error(error);
        }
      },
      cancel(reason) {
        write(bytes, "cancelled");
        return reader.cancel(reason);
      },
    });
    return new Response(body, response);
  }

  app.use(async (c, next) => {
    const started = now();
    const method = c.req.method;
    const target = rawTarget(c.req.url);
    if (method !== "GET" && method !== "HEAD") {
      return logged(
        json(405, { error: "method_not_allowed", reason: "Only GET,HEAD allowed" }, {
          allow: "GET, HEAD",
        }),
        method,
        target,
        started,
      );
    }
    await next();
    c.res = logged(c.res, method, target, started);
    return c.res;
  });

  app.onError((error) => {
    return json(500, {
      error: "internal_server_error",
      reason: error instanceof Error ? error.message : "The cache could not be read",
    });
  });

  app.get("*", async (c) => {
    const target = rawTarget(c.req.url);
    const cut = target.search(/[?#]/);
    const path = cut < 0 ? target : target.slice(0, cut);
    const query = cut < 0 || target[cut] === "#" ? "" : target.slice(cut + 1).replace(/#.*$/, "");
    const head = c.req.method === "HEAD";
    let response: Response;
    if (path === "/") response = await dbInfo();
    else if (path === "/-/ping") response = json(200, {});
    else if (path === "/_all_docs") response = await allDocs(query);
    else if (path.startsWith("/-/")) response = notFound();
    else if (query.includes("..")) response = badRequest("path traversal is not allowed");
    else response = await packument(c, path.slice(1), head);
    if (head && response.body) {
      await response.body.cancel();
      return new Response(null, response);
    }
    return response;
  });

  async function dbInfo(): Promise<Response> {
    const clusters = await index.clusters();
    const count = clusters.reduce((sum, c) => sum + c.rows, 0);
    return json(200, {
      db_name: "registry",
      engine: "_all_docs replica",
      doc_count: count,
      update_seq: 0,
    });
  }

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

  async function packument(c: Context, encoded: string, head: boolean): Promise<Response> {
    let name: string;
    try {
      name = decodeURIComponent(encoded);
    } catch {
      return badRequest("Invalid package name: bad percent-encoding");
    }
    const problem = packageNameProblem(name);
    if (problem) return badRequest(`Invalid package name: ${problem}`);
    const origin = packumentOrigin(name);
    const ifNoneMatch = c.req.header("if-none-match");
    const fullKey = packumentKey(origin, name, "full");
    if (!acceptsAbbreviated(c.req.header("accept"))) {
      const entry = await cache.get(fullKey, { verify: "while" });
      if (!entry || entry.info.status !== 200) return notFound();
      return stored(entry, "application/json", ifNoneMatch, head);
    }
    const [corgi, fullInfo] = await Promise.all([
      cache.get(packumentKey(origin, name, "abbreviated"), { verify: "while" }),
      cache.info(fullKey),
    ]);
    const pick = pickAbbreviated(corgi, fullInfo);
    if (pick === "corgi") return stored(corgi!, CORGI_MEDIA_TYPE, ifNoneMatch, head);
    if (pick === "none") return notFound();
    const full = await cache.get(fullKey, { verify: "while" });
    if (!full || full.info.status !== 200) return notFound();
    let item = derived.get(full.info.integrity);
    if (!item) {
      const body = encoder.encode(JSON.stringify(abbreviatePackument(await full.json())));
      item = { body, etag: `"${sha256Integrity(sha256(body))}"` };
      derived.set(full.info.integrity, item);
    }
    const headers = packumentHeaders(item.etag, CORGI_MEDIA_TYPE);
    if (etagMatches(ifNoneMatch, item.etag)) return new Response(null, { status: 304, headers });
    headers["content-length"] = String(item.body.length);
    return new Response(head ? null : item.body.slice(), { status: 200, headers });
  }

  function stored(
    entry: CacheEntry,
    fallbackType: string,
    ifNoneMatch: string | undefined,
    head: boolean,
  ): Response {
    const etag = `"${entry.info.integrity}"`;
    const headers = packumentHeaders(etag, entry.info.contentType ?? fallbackType, entry.info);
    if (etagMatches(ifNoneMatch, etag)) return new Response(null, { status: 304, headers });
    headers["content-length"] = String(entry.info.size);
    return new Response(head ? null : entry.stream(), { status: 200, headers });
  }

  return app;
}
