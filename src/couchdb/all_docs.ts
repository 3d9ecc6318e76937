/**
 * The `_all_docs` client: reads one key range completely, page by page, from a CouchDB-style
 * replication endpoint that behaves like npm's.
 *
 * - Keys are JSON-encoded, then URL-encoded, with every `.` written as `%2E` (npm rejects URLs
 *   that contain `..`, and real package names contain it).
 * - Ranges exclude their end (`inclusive_end=false`).
 * - Pages hold at most `limit` rows (at most 10,000). A page with exactly `limit` rows means
 *   there may be more: the next page starts at the last id seen, and that repeated first row is
 *   dropped. A range is complete only when a short page arrives.
 * - A page that is not JSON, is cut short, has another content type, or has rows out of order
 *   or outside the range is a failed attempt and is asked for again.
 * - Memory is bounded by one page, not by the range.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import type { ConditionalRequest, HttpClient } from "../http/client.ts";
import { BadResponseError, HttpError } from "../http/errors.ts";
import { type ParsedPage, parsePage, scanPage } from "./all_docs_page.ts";
import { type KeyRange, MAX_PAGE_LIMIT } from "./rows.ts";

/** One page of a range. */
export interface AllDocsPage {
  /** Rows on the page (a follow-on page's repeated first row is not one of them). */
  count: number;
  /** The rows in the body format of a cached partition: one `["id","rev"]` line each. */
  lines: Uint8Array;
}

/** Options for {@linkcode readRange}. */
export interface ReadRangeOptions {
  /** Rows per page, 2 to 10,000 (a follow-on page repeats the previous page's last row).
   * @default {10000} */
  limit?: number;
  /** Attempts per page for bad responses (bad JSON, truncated bodies, wrong content type, rows
   * out of order); HTTP-level retries happen inside the client on top of this.
   * @default {4} */
  pageAttempts?: number;
  /** Validators for the first page: a 304 ends the read with `notModified`.
   * @default {undefined} */
  conditional?: ConditionalRequest | undefined;
  /** Aborts the read.
   * @default {undefined} */
  signal?: AbortSignal | undefined;
  /** The clock for the pause between page attempts.
   * @default {systemClock} */
  clock?: Clock;
  /** Called after each page request with what it brought. */
  onPage?: (page: { rows: number; attempt: number; url: string }) => void;
  /** Called when a page is asked for again after a bad response. */
  onRetry?: (error: Error, attempt: number) => void;
}

/** The first page of a range, read eagerly so a 304 can be told apart from new rows. */
export interface RangeRead {
  /** The origin answered 304 to the conditional first page. */
  notModified: boolean;
  /** The first page's validators, to keep for the next refresh. */
  etag: string | undefined;
  /** The range's rows, page by page; empty when not modified. Rows come in key order. */
  pages: AsyncGenerator<AllDocsPage>;
}

function encodeKey(key: string): string {
  return encodeURIComponent(JSON.stringify(key)).replace(/\./g, "%2E");
}

/**
 * The URL of one `_all_docs` page.
 *
 * @param origin The replication endpoint (its `_all_docs` is below it).
 * @param range The key range; `startKey` is the page's first key.
 * @param limit Rows per page.
 * @returns The URL.
 *
 * @example
 * ```ts
 * import { allDocsUrl } from "./all_docs.ts";
 * const url = allDocsUrl("http://127.0.0.1:5984/", { startKey: "a.b", endKey: "" }, 10);
 * console.assert(url === "http://127.0.0.1:5984/_all_docs?startkey=%22a%2Eb%22&limit=10");
 * ```
 */
export function allDocsUrl(origin: string, range: KeyRange, limit: number): string {
  const base = origin.endsWith("/") ? origin : `${origin}/`;
  const params = [];
  if (range.startKey !== "") params.push(`startkey=${encodeKey(range.startKey)}`);
  if (range.endKey !== "") {
    params.push(`endkey=${encodeKey(range.endKey)}`, "inclusive_end=false");
  }
  params.push(`limit=${limit}`);
  return `${base}_all_docs?${params.join("&")}`;
}

/** Reads a page body into partition lines, checking its rows' order and range. */
function readPage(bytes: Uint8Array, range: KeyRange, after: string | undefined): ParsedPage {
  const page = scanPage(bytes, after) ?? parsePage(bytes, after);
  for (const id of [page.firstId, page.lastId]) {
    if (
      id !== undefined &&
      ((range.startKey !== "" && compareKeys(id, range.startKey) < 0) ||
        (range.endKey !== "" && compareKeys(id, range.endKey) >= 0))
    ) {
      throw new BadResponseError(
        `Bad _all_docs page: row ${JSON.stringify(id)} is outside the range`,
      );
    }
  }
  return page;
}

/**
 * Reads a key range completely. The first page is fetched before this resolves; the rest are
 * fetched as `pages` is consumed.
 *
 * @param client The HTTP client (retries, rate limit, timeouts).
 * @param origin The replication endpoint.
 * @param range The key range.
 * @param options Paging options.
 * @returns The first page's outcome and the pages.
 * @throws {HttpError} When a page fails for good.
 * @throws {BadResponseError} When a page stays unusable after its attempts.
 */
export async function readRange(
  client: HttpClient,
  origin: string,
  range: KeyRange,
  options: ReadRangeOptions = {},
): Promise<RangeRead> {
  const limit = options.limit ?? MAX_PAGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 2 || limit > MAX_PAGE_LIMIT) {
    throw new RangeError(
      `Cannot read range: 'limit' must be an integer from 2 to ${MAX_PAGE_LIMIT}, received ${limit}`,
    );
  }
  const pageAttempts = options.pageAttempts ?? 4;
  if (!Number.isInteger(pageAttempts) || pageAttempts < 1) {
    throw new RangeError(
      `Cannot read range: 'pageAttempts' must be a positive integer, received ${pageAttempts}`,
    );
  }
  const clock = options.clock ?? systemClock;

  async function page(
    startKey: string,
    after: string | undefined,
    conditional: ConditionalRequest | undefined,
  ): Promise<ParsedPage & { notModified: boolean; etag: string | undefined }> {
    const url = allDocsUrl(origin, { startKey, endKey: range.endKey }, limit);
    for (let attempt = 1;; attempt++) {
      try {
        const response = await client.request(url, {
          headers: { accept: "application/json", "npm-replication-opt-in": "true" },
          signal: options.signal,
          conditional,
        });
        if (response.status === 304) {
          await response.body?.cancel();
          return {
            lines: new Uint8Array(),
            count: 0,
            raw: 0,
            firstId: undefined,
            lastId: undefined,
            notModified: true,
            etag: conditional?.etag,
          };
        }
        if (response.status !== 200) {
          const text = await response.text().catch(() => "");
          throw new HttpError(
            `GET ${url} answered ${response.status}: ${text.slice(0, 200)}`,
            url,
            { status: response.status },
          );
        }
        const type = response.headers.get("content-type") ?? "";
        if (!/^application\/json\b/i.test(type)) {
          await response.body?.cancel();
          throw new BadResponseError(`Bad _all_docs page: content type '${type}'`);
        }
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(await response.arrayBuffer());
        } catch (cause) {
          throw new BadResponseError("Bad _all_docs page: the body was cut short", { cause });
        }
        const parsed = readPage(bytes, { startKey, endKey: range.endKey }, after);
        options.onPage?.({ rows: parsed.count, attempt, url });
        return { ...parsed, notModified: false, etag: response.headers.get("etag") ?? undefined };
      } catch (error) {
        if (!(error instanceof BadResponseError) || attempt >= pageAttempts) throw error;
        options.onRetry?.(error as Error, attempt);
        await clock.sleep(Math.min(30_000, 250 * 2 ** (attempt - 1)), options.signal);
      }
    }
  }

  const first = await page(range.startKey, undefined, options.conditional);
  async function* pages(): AsyncGenerator<AllDocsPage> {
    if (first.notModified) return;
    let current = first;
    while (true) {
      if (current.count > 0) yield { count: current.count, lines: current.lines };
      if (current.raw < limit) return;
      const last = current.lastId;
      if (last === undefined) {
        throw new BadResponseError("Bad _all_docs page: a full page brought no new rows");
      }
      current = await page(last, last, undefined);
    }
  }
  return { notModified: first.notModified, etag: first.etag, pages: pages() };
}
