/**
 * Fetching packuments into the cache: one representation per call (full by default, or the
 * abbreviated "corgi" document), with freshness, conditional revalidation, 404s recorded as
 * results, and bodies streamed to storage byte for byte.
 *
 * For each name:
 * - a cached entry within its `max-age` is used without a request (`cached`);
 * - an expired one is revalidated with `If-None-Match` / `If-Modified-Since`; a 304 renews its
 *   freshness without rewriting the body (`revalidated`);
 * - otherwise the body is streamed into the cache (`fetched`), its `_rev` noted for syncing;
 * - a 404 is stored with a short freshness and reported (`not-found`);
 * - a 200 whose body is not a JSON object (a login page, a captive portal: a content type other
 *   than a JSON one, or a body that does not start with `{` and end with `}`) is a failure of
 *   that name (`failed`), not retried and never cached; the check runs while the body streams;
 * - transient failures are retried by the HTTP client; a body cut short is fetched again up
 *   to the client's `retries`, after its backoff (or `Retry-After`), counted as retries; what
 *   still fails is reported (`failed`) and the previous entry, if any, is kept;
 * - every failure says whether asking again later may pass (`transient`: no answer, 408, 429,
 *   5xx, a body cut short; not another 4xx or a body that is not a JSON object), with the
 *   answer's `status` and `Retry-After`, for callers that retry later (the worker);
 * - a storage failure (a {@linkcode StorageError}: a full or read-only disk, denied access) is
 *   never taken for a body cut short: it rejects, and {@linkcode fetchPackuments} stops the run
 *   at once, aborting the requests in flight.
 *
 * `refresh` revalidates every entry now; `offline` uses the cache only (`missing` otherwise).
 *
 * @module
 */

import type { Cache, CacheEntryInfo } from "../storage/cache.ts";
import { decodedSizeOf } from "../storage/entry.ts";
import { ageSeconds } from "../storage/freshness.ts";
import { StorageError } from "../storage/driver.ts";
import { type HttpClient, HttpError } from "../http/client.ts";
import { packumentKey, type Representation } from "../storage/keys.ts";
import { encodePackageName } from "../npm/package_name.ts";
import { ACCEPT } from "../npm/media_types.ts";
import { parseContentLength, WHOLE_BODY_MAX } from "../http/headers.ts";
import { readRev, revScanner } from "../npm/rev.ts";
import { runPool } from "../_util/pool.ts";
import { withStop } from "../_util/signals.ts";
import {
  assertJsonObject,
  contentTypeProblem,
  jsonObjectGuard,
  NotJsonObjectError,
  objectBytesProblem,
} from "./_json_object.ts";

/** What a 404 is recorded with when its body is not a JSON object (npm's own 404 body). */
const NOT_FOUND_BODY = new TextEncoder().encode('{"error":"Not found"}');

/** Where a name's packument comes from. */
export interface RegistryTarget {
  /** The registry URL (ending in `/`). */
  url: string;
  /** The origin key used in cache keys for this registry. */
  originKey: string;
  /** A credential for this registry only, sent as `Authorization: <scheme> <token>`; never
   * logged. */
  token?: string | undefined;
  /** How {@linkcode RegistryTarget.token} is sent: `Bearer` (an npm token) or `Basic` (base64
   * of `user:password`, from `.npmrc` `_auth` or `username` + `_password`).
   * @default {"Bearer"} */
  scheme?: "Bearer" | "Basic" | undefined;
}

/** What happened to one name. */
export type PackumentOutcome =
  | "fetched"
  | "revalidated"
  | "cached"
  | "not-found"
  | "missing"
  | "failed";

/** The result for one name. */
export interface PackumentResult {
  /** The package name. */
  name: string;
  /** What happened. */
  outcome: PackumentOutcome;
  /** Body bytes downloaded (0 unless fetched). */
  bytes: number;
  /** Why it failed. */
  error?: string;
  /** For a failure: the HTTP status of the answer that failed (a body cut short or not a JSON
   * object keeps its 200); absent when no answer arrived. */
  status?: number;
  /** For a failure: whether asking again later may succeed (no answer, a timeout, 408, 429, a
   * 5xx, a body cut short) or not (another 4xx, a body that is not a JSON object). */
  transient?: boolean;
  /** For a failure: the wait the last answer asked for with `Retry-After`, in ms. */
  retryAfter?: number;
}

/** Whether a failure with this status may pass on a retry: no answer, 408, 429, a 5xx, or a
 * status below 400 (the answer itself was fine). */
function transientStatus(status: number | undefined): boolean {
  return status === undefined || status < 400 || status === 408 || status === 429 ||
    status >= 500;
}

/** A failed result from what failed. */
function failure(
  name: string,
  error: string,
  status: number | undefined,
  transient: boolean,
  retryAfter?: number,
): PackumentResult {
  return {
    name,
    outcome: "failed",
    bytes: 0,
    error,
    ...(status === undefined ? {} : { status }),
    transient,
    ...(retryAfter === undefined ? {} : { retryAfter }),
  };
}

/** Options for {@linkcode fetchPackument} and {@linkcode fetchPackuments}. */
export interface FetchPackumentOptions {
  /** Which registry serves a name (per-scope registries differ). */
  registryFor: (name: string) => RegistryTarget;
  /** Which document to fetch.
   * @default {"full"} */
  representation?: Representation;
  /** Revalidate every cached entry now, fresh or not.
   * @default {false} */
  refresh?: boolean;
  /** Use only the cache; never send a request.
   * @default {false} */
  offline?: boolean;
  /** How long a recorded 404 stays fresh, in seconds.
   * @default {300} */
  notFoundMaxAge?: number;
  /** Aborts the work.
   * @default {undefined} */
  signal?: AbortSignal;
  /** The `_rev` to record for a fetched body that names none (the abbreviated document), such
   * as the revision a partition row lists. A body's own `_rev` always wins.
   * @default {undefined} */
  revFor?: (name: string) => string | undefined;
}

function cachedOutcome(info: CacheEntryInfo): PackumentOutcome {
  return info.status === 404 ? "not-found" : "cached";
}

/**
 * Brings one packument into the cache.
 *
 * @param client The HTTP client.
 * @param cache The cache.
 * @param name A valid package name.
 * @param options Where and how.
 * @returns What happened.
 * @throws {StorageError} When the cache cannot be read or written.
 */
export function fetchPackument(
  client: HttpClient,
  cache: Cache,
  name: string,
  options: FetchPackumentOptions,
): Promise<PackumentResult> {
  const representation = options.representation ?? "full";
  const target = options.registryFor(name);
  const key = packumentKey(target.originKey, name, representation);
  return cache.load(key, async () => {
    // A name this run has not seen is most often new: the bloom filter, where the cache has
    // one, answers without a read.
    const info = await cache.info(key, { absentIfUnseen: true });
    if (options.offline) {
      return { name, outcome: info ? cachedOutcome(info) : "missing", bytes: 0 };
    }
    if (info && !options.refresh && cache.freshness(info).fresh) {
      return { name, outcome: cachedOutcome(info), bytes: 0 };
    }
    const url = `${target.url}${encodePackageName(name)}`;
    // gzip asked for: fewer bytes on the wire. `fetch` decodes it (Deno and Node alike, even
    // when the caller sets Accept-Encoding itself), so the body is compressed again to store.
    const headers: Record<string, string> = {
      accept: ACCEPT[representation],
      "accept-encoding": "gzip",
    };
    if (target.token) {
      headers["authorization"] = `${target.scheme ?? "Bearer"} ${target.token}`;
    }
    for (let failures = 1;; failures++) {
      let response: Response;
      try {
        response = await client.request(url, {
          headers,
          signal: options.signal,
          conditional: info && info.status === 200 ? info : undefined,
        });
      } catch (error) {
        // The client has already retried what was worth retrying.
        if (options.signal?.aborted) throw error;
        const status = error instanceof HttpError ? error.status : undefined;
        const retryAfter = error instanceof HttpError ? error.retryAfter : undefined;
        return failure(name, (error as Error).message, status, transientStatus(status), retryAfter);
      }
      try {
        return await store(response);
      } catch (error) {
        if (options.signal?.aborted) throw error;
        // The disk or storage service failed (full, read only, denied): downloading again
        // would fail the same way, so the run stops.
        if (error instanceof StorageError) throw error;
        // An answer that is not a packument: asking again would get the same page.
        if (error instanceof NotJsonObjectError) {
          return failure(name, error.message, response.status, false);
        }
        // The body broke off while streaming: ask again after the client's backoff, as long
        // as its retries allow.
        const retryAfter = response.headers.get("retry-after");
        if (
          !(error instanceof HttpError) ||
          !(await client.retryBody(url, failures, { signal: options.signal, retryAfter }))
        ) {
          return failure(name, (error as Error).message, response.status, true);
        }
      }
    }

    async function store(response: Response): Promise<PackumentResult> {
      const meta = {
        etag: response.headers.get("etag") ?? undefined,
        lastModified: response.headers.get("last-modified") ?? undefined,
        cacheControl: response.headers.get("cache-control") ?? undefined,
        age: ageSeconds(response.headers.get("age")),
      };
      if (response.status === 304 && info) {
        await response.body?.cancel();
        await cache.refresh(key, {
          ...(meta.cacheControl ? { cacheControl: meta.cacheControl } : {}),
          ...(meta.etag ? { etag: meta.etag } : {}),
          ...(meta.age ? { age: meta.age } : {}),
        });
        return { name, outcome: "revalidated", bytes: 0 };
      }
      if (response.status === 404) {
        const body = new Uint8Array(await response.arrayBuffer());
        // Only a JSON object is kept as the record of a 404, so that every cached body is one.
        const json = contentTypeProblem(response.headers.get("content-type")) === undefined &&
          objectBytesProblem(body) === undefined;
        await cache.put(key, json ? body : NOT_FOUND_BODY, {
          status: 404,
          cacheControl: `max-age=${options.notFoundMaxAge ?? 300}`,
          contentType: (json ? response.headers.get("content-type") : null) ?? "application/json",
          representation,
        }, { absent: info === undefined, encoding: cache.storeEncoding });
        return { name, outcome: "not-found", bytes: body.length };
      }
      if (response.status !== 200 || !response.body) {
        const text = await response.text().catch(() => "");
        const error = `GET ${url} answered ${response.status} ${text.slice(0, 120)}`.trim();
        return failure(name, error, response.status, transientStatus(response.status));
      }
      const typeProblem = contentTypeProblem(response.headers.get("content-type"));
      if (typeProblem) {
        await response.body.cancel();
        throw new NotJsonObjectError(`GET ${url}: ${typeProblem}`);
      }
      const length = parseContentLength(response.headers.get("content-length"));
      let body: Uint8Array | ReadableStream<Uint8Array>;
      let revFound: () => string | undefined;
      // A declared length counts the bytes on the wire: only without a Content-Encoding is it
      // the size of the body read.
      if (
        length !== undefined && length <= WHOLE_BODY_MAX &&
        !response.headers.has("content-encoding")
      ) {
        // A small body costs less read whole than piped through streams.
        const bytes = new Uint8Array(await response.arrayBuffer());
        assertJsonObject(url, bytes);
        body = bytes;
        revFound = () => readRev(bytes);
      } else {
        const scan = revScanner();
        body = response.body.pipeThrough(jsonObjectGuard(url)).pipeThrough(scan.stream);
        revFound = scan.rev;
      }
      const stored = await cache.put(key, body, () => {
        const rev = revFound() ?? options.revFor?.(name);
        return {
          status: 200,
          ...(meta.etag ? { etag: meta.etag } : {}),
          ...(meta.lastModified ? { lastModified: meta.lastModified } : {}),
          ...(meta.cacheControl ? { cacheControl: meta.cacheControl } : {}),
          ...(meta.age ? { age: meta.age } : {}),
          contentType: response.headers.get("content-type") ?? ACCEPT[representation],
          representation,
          ...(rev ? { rev } : {}),
        };
      }, { absent: info === undefined, encoding: cache.storeEncoding });
      return { name, outcome: "fetched", bytes: decodedSizeOf(stored) ?? stored.size };
    }
  });
}

/** Totals of a {@linkcode fetchPackuments} run. */
export interface FetchSummary {
  /** Names asked for (repeats not counted). */
  total: number;
  /** Repeats of a name already handled in this run, skipped. */
  duplicates: number;
  /** Count per outcome. */
  outcomes: Record<PackumentOutcome, number>;
  /** Body bytes downloaded. */
  bytes: number;
  /** Names that failed, with their errors. */
  failed: PackumentResult[];
}

/**
 * Brings many packuments into the cache, `parallel` at a time, reporting each result.
 *
 * @param client The HTTP client (its own cap limits requests in flight).
 * @param cache The cache.
 * @param names Valid package names (an async iterable is read lazily); repeats are skipped.
 * @param options Where and how, plus `parallel` and `onResult`.
 * @returns The totals.
 * @throws {StorageError} When the cache cannot be read or written: the run stops at once.
 */
export async function fetchPackuments(
  client: HttpClient,
  cache: Cache,
  names: Iterable<string> | AsyncIterable<string>,
  options: FetchPackumentOptions & {
    /** Names in progress at once.
     * @default {16} */
    parallel?: number;
    /** Called with each result as it arrives. */
    onResult?: (result: PackumentResult) => void;
  },
): Promise<FetchSummary> {
  const parallel = options.parallel ?? 16;
  if (!Number.isInteger(parallel) || parallel < 1) {
    throw new RangeError(
      `Cannot fetch packuments: 'parallel' must be a positive integer, received ${parallel}`,
    );
  }
  const summary: FetchSummary = {
    total: 0,
    duplicates: 0,
    outcomes: { fetched: 0, revalidated: 0, cached: 0, "not-found": 0, missing: 0, failed: 0 },
    bytes: 0,
    failed: [],
  };
  const seen = new Set<string>();
  // A storage failure stops the run: no new name is taken, and those in flight are aborted.
  const stop = new AbortController();
  const signal = withStop(options.signal, stop);
  await runPool(names, async (name) => {
    if (seen.has(name)) {
      summary.duplicates++;
      return;
    }
    seen.add(name);
    summary.total++;
    let result: PackumentResult;
    try {
      result = await fetchPackument(client, cache, name, { ...options, signal });
    } catch (error) {
      if (error instanceof StorageError) stop.abort(error);
      throw error;
    }
    summary.outcomes[result.outcome]++;
    summary.bytes += result.bytes;
    if (result.outcome === "failed") summary.failed.push(result);
    options.onResult?.(result);
  }, { concurrency: parallel });
  return summary;
}
