/**
 * The pages of one follower round, read ahead: the next page is asked for as soon as a page's
 * text is in and looks full (`peekChanges`: its `last_seq` read off its end), before it is
 * parsed, so that the origin makes it while this one is parsed and applied. Never more than
 * one page ahead of the one waited for (a page read early has its next asked for when its turn
 * comes), and a guess the parsed page does not bear out is aborted with the round.
 *
 * @module
 */

import type { HttpClient } from "../http/client.ts";
import type { Clock } from "../clock.ts";
import { type ChangesPage, peekChanges, readChanges, type Seq } from "../couchdb/changes.ts";

/** Reads a round's pages, one ahead (see the module documentation). */
export class PageReader {
  readonly #client: HttpClient;
  readonly #origin: string;
  readonly #limit: number;
  readonly #clock: Clock;
  readonly #signal: AbortSignal | undefined;
  /** Pages asked for ahead, by the sequence they start after, with their aborts. */
  #ahead = new Map<string, { page: Promise<ChangesPage>; stop: AbortController }>();
  /** Where each page read ends, as its text told, when it looked full. */
  #ends = new Map<string, Seq>();
  /** The sequence the page waited for (or being applied) starts after. */
  #awaiting: Seq | undefined;

  /**
   * @param client The HTTP client for the origin.
   * @param origin The replication endpoint.
   * @param limit Entries per page.
   * @param clock The clock for the pauses between attempts.
   * @param signal Aborts every read.
   */
  constructor(
    client: HttpClient,
    origin: string,
    limit: number,
    clock: Clock,
    signal: AbortSignal | undefined,
  ) {
    this.#client = client;
    this.#origin = origin;
    this.#limit = limit;
    this.#clock = clock;
    this.#signal = signal;
  }

  /**
   * Starts a round: drops what the last one asked for, and asks for the page after `since`
   * (with the round's head, which may yet move where the round starts) unless it was asked for
   * already.
   *
   * @param since Where the round starts.
   */
  start(since: Seq): void {
    // (Already asked for, by a round started early: kept.)
    const asked = this.#ahead.get(String(since));
    this.#ahead.delete(String(since));
    this.stop();
    this.#ends = new Map();
    this.#awaiting = since;
    if (asked !== undefined) this.#ahead.set(String(since), asked);
    else this.#askAhead(since);
  }

  /**
   * The page after `from`, which becomes the one waited for: asked for ahead, else asked for
   * now (`sent` then resolves once a turn of the event loop has sent the request).
   *
   * @param from Where the page starts.
   * @returns The page, and when its request is out.
   */
  next(from: Seq): { page: Promise<ChangesPage>; sent: Promise<void> } {
    const key = String(from);
    const asked = this.#ahead.get(key);
    this.#ahead.delete(key);
    this.#awaiting = from;
    if (asked !== undefined) {
      const to = this.#ends.get(key);
      if (to !== undefined) this.#askAhead(to);
      return { page: asked.page, sent: Promise.resolve() };
    }
    return { page: this.#read(from, undefined), sent: nextTurn() };
  }

  /** Aborts every page asked for ahead and not taken. */
  stop(): void {
    for (const { stop } of this.#ahead.values()) stop.abort();
    this.#ahead = new Map();
  }

  /** Asks for the page after `from` ahead of its turn. */
  #askAhead(from: Seq): void {
    if (this.#ahead.has(String(from))) return;
    const stop = new AbortController();
    this.#ahead.set(String(from), { page: this.#read(from, stop), stop });
  }

  #read(from: Seq, stop: AbortController | undefined): Promise<ChangesPage> {
    const signal = this.#signal;
    const page = readChanges(this.#client, this.#origin, from, this.#limit, {
      clock: this.#clock,
      signal: stop === undefined
        ? signal
        : signal === undefined
        ? stop.signal
        : AbortSignal.any([signal, stop.signal]),
      beforeParse: (text) => {
        const to = peekChanges(text, this.#limit);
        if (to === undefined || String(to) === String(from)) return;
        this.#ends.set(String(from), to);
        if (String(from) !== String(this.#awaiting) || this.#ahead.has(String(to))) return;
        this.#askAhead(to);
        return nextTurn();
      },
    });
    // (A failure is met where the page is awaited; until then it must not count as unhandled.)
    page.catch(() => {});
    return page;
  }
}

/**
 * Lets the event loop run once: a request just made is sent then, not once the code running
 * now next waits.
 *
 * @returns Resolves on the next turn.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
