/**
 * The `_changes` client: the origin's head (`GET {origin}/`, its `update_seq`) and one page of
 * the replication feed (`GET {origin}/_changes?since=S&limit=L`), read the way npm's endpoint
 * allows.
 *
 * - Sequences are numbers on npm and PouchDB and opaque strings on CouchDB 2 and later: a
 *   {@linkcode Seq} is either, passed back to the origin exactly as it came.
 * - Only the normal feed exists: no `feed=continuous|longpoll|eventsource`, no `heartbeat`, no
 *   `since=now` (npm answers them 400). `limit` is at most 10,000.
 * - A page that is not JSON, is cut short, has another content type or lacks `results` or
 *   `last_seq` is a failed attempt and is asked for again (as `_all_docs` pages are); HTTP
 *   failures (429 with `Retry-After` included) are retried by the client.
 *
 * @module
 */

import type { HttpClient } from "../http/client.ts";
import { BadResponseError, HttpError } from "../http/errors.ts";
import { type Clock, systemClock } from "../clock.ts";
import { MAX_PAGE_LIMIT } from "./rows.ts";

/** A `_changes` sequence: a number (npm, PouchDB) or an opaque string (CouchDB 2+). */
export type Seq = number | string;

/** One entry of the feed: a document's current revision, or its deletion. */
export interface Change {
  /** Where the entry sits in the feed. */
  seq: Seq;
  /** The document id (the package name). */
  id: string;
  /** The revision the entry announces (the tombstone's for a deletion). */
  rev: string;
  /** The document was deleted. */
  deleted: boolean;
}

/** One page of the feed. */
export interface ChangesPage {
  /** The entries, in feed order. */
  results: Change[];
  /** The sequence to ask from next. */
  lastSeq: Seq;
}

const HEADERS = { accept: "application/json", "npm-replication-opt-in": "true" };

function base(origin: string): string {
  return origin.endsWith("/") ? origin : `${origin}/`;
}

function isSeq(value: unknown): value is Seq {
  return (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) ||
    (typeof value === "string" && value !== "");
}

/**
 * The number a sequence counts, when it has one: a number itself, or the leading digits of a
 * string (`"42"`, CouchDB's `"42-g1AAAA..."`). Sequences with numbers can be compared and
 * subtracted; others only passed back.
 *
 * @param seq A sequence.
 * @returns Its number, or `undefined` for an opaque string without leading digits.
 *
 * @example
 * ```ts
 * import { seqNumber } from "./changes.ts";
 * console.assert(seqNumber(12) === 12 && seqNumber("12-g1AAAA") === 12);
 * console.assert(seqNumber("g1AAAA") === undefined);
 * ```
 */
export function seqNumber(seq: Seq): number | undefined {
  if (typeof seq === "number") return seq;
  const digits = /^\d+/.exec(seq)?.[0];
  return digits === undefined ? undefined : Number(digits);
}

/**
 * The URL of one `_changes` page.
 *
 * @param origin The replication endpoint.
 * @param since The sequence to read after.
 * @param limit Entries per page, 1 to 10,000.
 * @returns The URL.
 *
 * @example
 * ```ts
 * import { changesUrl } from "./changes.ts";
 * const url = changesUrl("http://127.0.0.1:5984/registry", 42, 500);
 * console.assert(url === "http://127.0.0.1:5984/registry/_changes?since=42&limit=500");
 * ```
 */
export function changesUrl(origin: string, since: Seq, limit: number): string {
  return `${base(origin)}_changes?since=${encodeURIComponent(String(since))}&limit=${limit}`;
}

/** Options for {@linkcode readUpdateSeq} and {@linkcode readChanges}. */
export interface ChangesReadOptions {
  /** Attempts for bad answers (not JSON, cut short, wrong shape); HTTP retries happen inside
   * the client on top of this.
   * @default {4} */
  pageAttempts?: number;
  /** The clock for the pause between attempts.
   * @default {systemClock} */
  clock?: Clock;
  /** Aborts the read.
   * @default {undefined} */
  signal?: AbortSignal | undefined;
  /** Called with the text of each answer that came whole, before it is parsed, and awaited:
   * the follower asks for the next page from there ({@linkcode peekChanges}) while this one is
   * parsed.
   * @default {undefined} */
  beforeParse?: ((text: string) => void | Promise<void>) | undefined;
}

/** GETs `url` as JSON, asking again after a bad answer; `check` turns the value into `T`. */
async function getJson<T>(
  client: HttpClient,
  url: string,
  what: string,
  check: (value: Record<string, unknown>) => T,
  options: ChangesReadOptions,
): Promise<T> {
  const pageAttempts = options.pageAttempts ?? 4;
  if (!Number.isInteger(pageAttempts) || pageAttempts < 1) {
    throw new RangeError(
      `Cannot read ${what}: 'pageAttempts' must be a positive integer, received ${pageAttempts}`,
    );
  }
  const clock = options.clock ?? systemClock;
  for (let attempt = 1;; attempt++) {
    try {
      const response = await client.request(url, { headers: HEADERS, signal: options.signal });
      if (response.status !== 200) {
        const text = await response.text().catch(() => "");
        throw new HttpError(`GET ${url} answered ${response.status}: ${text.slice(0, 200)}`, url, {
          status: response.status,
        });
      }
      const type = response.headers.get("content-type") ?? "";
      if (!/^application\/json\b/i.test(type)) {
        await response.body?.cancel();
        throw new BadResponseError(`Bad ${what}: content type '${type}'`);
      }
      let text: string;
      try {
        text = await response.text();
      } catch (cause) {
        throw new BadResponseError(`Bad ${what}: the body was cut short`, { cause });
      }
      if (options.beforeParse) await options.beforeParse(text);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (cause) {
        throw new BadResponseError(`Bad ${what}: not JSON`, { cause });
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new BadResponseError(`Bad ${what}: not a JSON object`);
      }
      return check(value as Record<string, unknown>);
    } catch (error) {
      if (!(error instanceof BadResponseError) || attempt >= pageAttempts) throw error;
      await clock.sleep(Math.min(30_000, 250 * 2 ** (attempt - 1)), options.signal);
    }
  }
}

/**
 * The origin's current head: `update_seq` of `GET {origin}/`.
 *
 * @param client The HTTP client.
 * @param origin The replication endpoint.
 * @param options Attempts, clock and signal.
 * @returns The sequence.
 * @throws {HttpError} When the request fails for good.
 * @throws {BadResponseError} When the answer stays unusable (no `update_seq`).
 *
 * @example
 * ```ts
 * import { readUpdateSeq } from "./changes.ts";
 * import { HttpClient } from "../http/client.ts";
 * const client = new HttpClient({
 *   fetch: () => Promise.resolve(Response.json({ db_name: "registry", update_seq: 42 })),
 * });
 * console.assert((await readUpdateSeq(client, "http://couch.test/")) === 42);
 * ```
 */
export function readUpdateSeq(
  client: HttpClient,
  origin: string,
  options: ChangesReadOptions = {},
): Promise<Seq> {
  return getJson(client, base(origin), "database info", (value) => {
    const seq = value["update_seq"];
    if (!isSeq(seq)) throw new BadResponseError("Bad database info: no update_seq");
    return seq;
  }, options);
}

/**
 * Where a page of at least `limit` entries ends, read off its text without parsing it: the
 * `last_seq` at its end, once `limit` `"seq":` keys are counted, unless the `pending` after it
 * (CouchDB's count of the entries after the page) is 0. A guess (the page is parsed and checked
 * after), cheap enough to ask for the next page before parsing this one.
 *
 * @param text A `_changes` page, unparsed.
 * @param limit The entries a full page holds.
 * @returns Its `last_seq`, or `undefined` when the page looks short or has none at its end.
 *
 * @example
 * ```ts
 * import { peekChanges } from "./changes.ts";
 * const page = '{"results":[\n{"seq":7,"id":"ms","changes":[{"rev":"3-a"}]}\n],\n"last_seq":7}';
 * console.assert(peekChanges(page, 1) === 7);
 * console.assert(peekChanges(page, 2) === undefined);
 * ```
 */
export function peekChanges(text: string, limit: number): Seq | undefined {
  const at = text.lastIndexOf(LAST_SEQ_KEY);
  if (at === -1) return undefined;
  const seq = valueAfter(text, at + LAST_SEQ_KEY.length);
  if (!isSeq(seq)) return undefined;
  // CouchDB tells after `last_seq` how many entries follow it: none, and this page is the last
  // (however full). More does not make the page full (an origin may cap its pages lower).
  const pendingAt = text.indexOf(PENDING_KEY, at);
  if (pendingAt !== -1 && valueAfter(text, pendingAt + PENDING_KEY.length) === 0) return undefined;
  let count = 0;
  for (let i = text.indexOf(SEQ_KEY); i !== -1; i = text.indexOf(SEQ_KEY, i + SEQ_KEY.length)) {
    if (++count >= limit) return seq;
  }
  return undefined;
}

/** The number or string at `at` in `text`, when whatever may follow it comes next (a body cut
 * short inside the number gives nothing). */
function valueAfter(text: string, at: number): unknown {
  const value = /^\s*(\d+|"(?:[^"\\]|\\.)*")\s*[,}]/.exec(text.slice(at, at + 4096));
  if (value === null) return undefined;
  try {
    return JSON.parse(value[1]!);
  } catch {
    return undefined;
  }
}

const SEQ_KEY = '"seq":';
const LAST_SEQ_KEY = '"last_seq":';
const PENDING_KEY = '"pending":';

/** Reads one entry of a page; `undefined` when it is malformed. */
function changeOf(value: unknown): Change | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const entry = value as Record<string, unknown>;
  const { seq, id, changes } = entry;
  if (!isSeq(seq) || typeof id !== "string" || id === "" || !Array.isArray(changes)) {
    return undefined;
  }
  const rev = (changes[0] as { rev?: unknown } | undefined)?.rev;
  if (typeof rev !== "string" || rev === "") return undefined;
  return { seq, id, rev, deleted: entry["deleted"] === true };
}

/**
 * Reads one page of the feed: the entries after `since`, at most `limit` of them.
 *
 * @param client The HTTP client.
 * @param origin The replication endpoint.
 * @param since The sequence to read after (`0` for the start).
 * @param limit Entries per page, 1 to 10,000.
 * @param options Attempts, clock and signal.
 * @returns The entries and the sequence to go on from.
 * @throws {RangeError} When `limit` is out of range.
 * @throws {HttpError} When the request fails for good.
 * @throws {BadResponseError} When the page stays unusable.
 *
 * @example
 * ```ts
 * import { readChanges } from "./changes.ts";
 * import { HttpClient } from "../http/client.ts";
 * const page = {
 *   results: [{ seq: 7, id: "ms", changes: [{ rev: "3-a" }] }],
 *   last_seq: 7,
 * };
 * const client = new HttpClient({ fetch: () => Promise.resolve(Response.json(page)) });
 * const read = await readChanges(client, "http://couch.test/", 6, 100);
 * console.assert(read.lastSeq === 7 && read.results[0]!.rev === "3-a");
 * console.assert(!read.results[0]!.deleted);
 * ```
 */
export function readChanges(
  client: HttpClient,
  origin: string,
  since: Seq,
  limit: number,
  options: ChangesReadOptions = {},
): Promise<ChangesPage> {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new RangeError(
      `Cannot read changes: 'limit' must be an integer from 1 to ${MAX_PAGE_LIMIT}, received ${limit}`,
    );
  }
  return getJson(client, changesUrl(origin, since, limit), "_changes page", (value) => {
    const { results, last_seq: lastSeq } = value;
    if (!Array.isArray(results)) throw new BadResponseError("Bad _changes page: no results");
    if (!isSeq(lastSeq)) throw new BadResponseError("Bad _changes page: no last_seq");
    if (results.length > limit) {
      throw new BadResponseError(`Bad _changes page: ${results.length} entries, limit ${limit}`);
    }
    const changes: Change[] = new Array(results.length);
    for (let i = 0; i < results.length; i++) {
      const change = changeOf(results[i]);
      if (change === undefined) {
        throw new BadResponseError(`Bad _changes page: entry ${i} is malformed`);
      }
      changes[i] = change;
    }
    return { results: changes, lastSeq };
  }, options);
}
