/**
 * The `_changes` feed of the strict replication fixture ({@linkcode startAllDocsFixture}): a log
 * over the fixture's own document store, so `_all_docs` and `_changes` always agree. The
 * fixture routes `GET /_changes` here and records every mutation (create, update, delete) in
 * the log; `GET /` reports the log's head as `update_seq`.
 *
 * What it serves, with npm's quirks (`../shared/docs/DOMAIN.md`):
 *
 * - The documents the fixture started with have sequences 1 to N in id order; each mutation
 *   appends the next sequence. As in CouchDB, a document appears once, at its latest sequence
 *   (an entry superseded by a later change of its document is gone from the feed).
 * - `GET /_changes?since=S&limit=L` answers `{"results":[{"seq":..,"id":..,"changes":[{"rev":..}],
 *   "deleted":true?}],"last_seq":..,"pending":..}`: entries after `S`, at most `L` (default 1000).
 *   `last_seq` is the last entry's sequence on a full page, else the head.
 * - Sequences are numbers, or with `seqs: "opaque"` CouchDB 2-style strings (`"12-g1AAAAB..."`);
 *   `since` must be `0`, a number, or a string this fixture issued.
 * - 400 for what npm refuses: `limit` above 10,000 (or not an integer from 0), any `feed` but
 *   `normal`, `heartbeat`, `since=now`, a malformed `since`, `include_docs`, unknown or repeated
 *   parameters.
 * - Late entries (`lateRate`, npm's measured rate is {@linkcode NPM_LATE_RATE}): an entry picked
 *   by a hash of its sequence is left out of the first response that reaches past it while it is
 *   within `lateWithin` sequences of the head, although that response's `last_seq` passes it; it
 *   appears in every later read of that window. Reads of older history see it at once (it is
 *   late in time, not forever).
 *
 * @module
 */

/** About 4 entries in 1,024 appear late on npm's feed. */
export const NPM_LATE_RATE: number = 4 / 1024;

/** The `_changes` behaviour of the fixture. */
export interface ChangesOptions {
  /** `number` (npm, PouchDB) or `opaque` strings (CouchDB 2+).
   * @default {"number"} */
  seqs?: "number" | "opaque";
  /** The share of entries that appear late, 0 to 1.
   * @default {0} */
  lateRate?: number;
  /** A late entry is held back only while it is within this many sequences of the head.
   * @default {1024} */
  lateWithin?: number;
}

/** One entry of the log. */
export interface ChangeEntry {
  /** Its sequence number. */
  seq: number;
  /** The document id. */
  id: string;
  /** The revision it announces. */
  rev: string;
  /** A deletion. */
  deleted: boolean;
}

/** What the fixture serves for one `_changes` request. */
export type ChangesAnswer =
  | { status: 200; head: string; rows: string[]; tail: string }
  | { status: 400; reason: string };

/** The default limit of a `_changes` page. */
export const CHANGES_DEFAULT_LIMIT = 1000;
/** The largest limit npm accepts. */
export const CHANGES_MAX_LIMIT = 10_000;

/** A cheap 32-bit hash of a number (for the late pick and opaque suffixes). */
function mix(n: number, salt: number): number {
  let h = Math.imul(n ^ salt, 0x9e3779b1) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The generation of a revision (`12-abc` is 12). */
export function revGeneration(rev: string): number {
  return parseInt(rev, 10) || 0;
}

/** The next revision of a document whose revision is `rev`: one generation up, a hash of the
 * id and the generation as its 32 hex digits. */
export function nextRev(id: string, rev: string): string {
  const generation = revGeneration(rev) + 1;
  let h = 2166136261 ^ generation;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619) >>> 0;
  const hex = [1, 2, 3, 4].map((salt) => mix(h, salt).toString(16).padStart(8, "0")).join("");
  return `${generation}-${hex}`;
}

/** The `_changes` log of a fixture; see the module documentation. */
export class ChangesLog {
  readonly #seqs: "number" | "opaque";
  readonly #lateRate: number;
  readonly #lateWithin: number;
  readonly #revFor: (id: string) => string;
  /** The documents at start, in id order (seq i + 1); a copy is taken at the first mutation. */
  #initial: readonly string[];
  #copied = false;
  readonly #initialCount: number;
  /** Entries after the initial ones: `#log[k].seq === #initialCount + 1 + k`. */
  readonly #log: ChangeEntry[] = [];
  /** The latest sequence of each document changed since the start. */
  readonly #latest = new Map<string, number>();
  /** Late entries already held back once: every later read shows them. */
  readonly #revealed = new Set<number>();
  /** Sequences of the late entries held back, in the order it happened. */
  readonly withheld: number[] = [];

  /**
   * @param initial The sorted ids at start (not copied until the first mutation: it must not
   *   change before then).
   * @param revFor The revision of an initial document.
   * @param options The feed's behaviour.
   */
  constructor(
    initial: readonly string[],
    revFor: (id: string) => string,
    options: ChangesOptions = {},
  ) {
    const lateRate = options.lateRate ?? 0;
    if (!(lateRate >= 0 && lateRate <= 1)) throw new RangeError(`bad lateRate ${lateRate}`);
    this.#seqs = options.seqs ?? "number";
    this.#lateRate = lateRate;
    this.#lateWithin = options.lateWithin ?? 1024;
    this.#revFor = revFor;
    this.#initial = initial;
    this.#initialCount = initial.length;
  }

  /** The head: the latest sequence number. */
  get head(): number {
    return this.#initialCount + this.#log.length;
  }

  /** The head as the feed writes it (a number, or an opaque string). */
  get headSeq(): number | string {
    return this.encode(this.head);
  }

  /** Whether the entry at `seq` is one that appears late. */
  isLate(seq: number): boolean {
    return this.#lateRate > 0 && mix(seq, 0x5eed) / 2 ** 32 < this.#lateRate;
  }

  /** A sequence number as the feed writes it. */
  encode(seq: number): number | string {
    if (this.#seqs === "number") return seq;
    return `${seq}-g1AAAAB${mix(seq, 1).toString(16).padStart(8, "0")}${
      mix(seq, 2).toString(16).padStart(8, "0")
    }`;
  }

  /** Parses a `since` value; `undefined` when it is malformed. */
  #decode(raw: string): number | undefined {
    if (/^(0|[1-9]\d{0,15})$/.test(raw)) return Number(raw);
    if (this.#seqs !== "opaque") return undefined;
    const seq = Number(/^([1-9]\d{0,15})-/.exec(raw)?.[1]);
    return Number.isSafeInteger(seq) && this.encode(seq) === raw ? seq : undefined;
  }

  /**
   * Records a mutation, before the fixture applies it to its store.
   *
   * @param id The document.
   * @param rev Its new revision (the tombstone's for a deletion).
   * @param deleted Whether it is a deletion.
   * @returns The new entry's sequence.
   */
  record(id: string, rev: string, deleted: boolean): number {
    if (!this.#copied) {
      this.#initial = this.#initial.slice();
      this.#copied = true;
    }
    const seq = this.head + 1;
    this.#log.push({ seq, id, rev, deleted });
    this.#latest.set(id, seq);
    return seq;
  }

  /** The live entry at `seq`, or `undefined` when a later change superseded it. */
  entryAt(seq: number): ChangeEntry | undefined {
    if (seq <= this.#initialCount) {
      const id = this.#initial[seq - 1]!;
      if (this.#latest.has(id)) return undefined;
      return { seq, id, rev: this.#revFor(id), deleted: false };
    }
    const entry = this.#log[seq - this.#initialCount - 1];
    return entry && this.#latest.get(entry.id) === seq ? entry : undefined;
  }

  /** Every live entry in sequence order, as a reader that never misses one would see them. */
  *entries(): Generator<ChangeEntry> {
    for (let seq = 1; seq <= this.head; seq++) {
      const entry = this.entryAt(seq);
      if (entry) yield entry;
    }
  }

  /** Answers `GET /_changes?{rawQuery}`. */
  answer(rawQuery: string): ChangesAnswer {
    const bad = (reason: string): ChangesAnswer => ({ status: 400, reason });
    const params = new Map<string, string>();
    for (const part of rawQuery === "" ? [] : rawQuery.split("&")) {
      const eq = part.indexOf("=");
      let name: string;
      let value: string;
      try {
        name = decodeURIComponent(eq === -1 ? part : part.slice(0, eq));
        value = decodeURIComponent(eq === -1 ? "" : part.slice(eq + 1).replaceAll("+", " "));
      } catch {
        return bad("malformed query");
      }
      if (params.has(name)) return bad(`repeated parameter ${name}`);
      params.set(name, value);
    }
    for (const name of params.keys()) {
      if (name === "heartbeat") return bad("heartbeat is not supported");
      if (name === "include_docs") return bad("include_docs is not supported");
      if (name !== "since" && name !== "limit" && name !== "feed") {
        return bad(`unknown parameter ${name}`);
      }
    }
    const feed = params.get("feed");
    if (feed !== undefined && feed !== "normal") return bad(`feed=${feed} is not supported`);
    const rawLimit = params.get("limit");
    let limit = CHANGES_DEFAULT_LIMIT;
    if (rawLimit !== undefined) {
      if (!/^\d{1,6}$/.test(rawLimit)) return bad("limit must be a non-negative integer");
      limit = Number(rawLimit);
      if (limit > CHANGES_MAX_LIMIT) return bad(`limit must be at most ${CHANGES_MAX_LIMIT}`);
    }
    const rawSince = params.get("since") ?? "0";
    if (rawSince === "now") return bad("since=now is not supported");
    const since = this.#decode(rawSince);
    if (since === undefined) return bad("Malformed sequence supplied in 'since' parameter");

    const head = this.head;
    const rows: string[] = [];
    const held: number[] = [];
    let last = head;
    for (let seq = since + 1; seq <= head && limit > 0; seq++) {
      const entry = this.entryAt(seq);
      if (!entry) continue;
      if (this.isLate(seq) && !this.#revealed.has(seq) && head - seq < this.#lateWithin) {
        held.push(seq);
        continue;
      }
      rows.push(this.#row(entry));
      if (rows.length === limit) {
        last = seq;
        break;
      }
    }
    // Held back once, behind a last_seq that passed them: later reads show them.
    for (const seq of held) {
      this.#revealed.add(seq);
      this.withheld.push(seq);
    }
    const lastSeq = JSON.stringify(this.encode(Math.max(last, since)));
    return {
      status: 200,
      head: '{"results":[',
      rows,
      tail: `],\n"last_seq":${lastSeq},"pending":${Math.max(0, head - last)}}\n`,
    };
  }

  #row(entry: ChangeEntry): string {
    const deleted = entry.deleted ? ',"deleted":true' : "";
    return `{"seq":${JSON.stringify(this.encode(entry.seq))},"id":${
      JSON.stringify(entry.id)
    },"changes":[{"rev":${JSON.stringify(entry.rev)}}]${deleted}}`;
  }
}
