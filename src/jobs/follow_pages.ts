/**
 * The pages of one follower round, read ahead: the next page is asked for as soon as a page's
 * text is in and looks full (`peekChanges`: its `last_seq` read off its end), before it is
 * parsed, so that the origin makes it while this one is parsed and applied. Never more than
 * one page ahead of the one waited for (a page read early has its next asked for once it is
 * waited for), and a guess the parsed page does not bear out is aborted with the round, as is
 * every page not read whole when the round stops.
 *
 * @module
 */

import type { HttpClient } from "../http/client.ts";
import type { Clock } from "../clock.ts";
import { type ChangesPage, peekChanges, readChanges, type Seq } from "../couchdb/changes.ts";
import { withStop } from "../_util/signals.ts";

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
  /** The sequence the page waited for starts after. */
  #awaiting: Seq | undefined;
  /** The aborts of pages handed out and not yet read whole. */
  #taken: AbortController[] = [];

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
   * already (by a round started early: then kept, with the page asked for off its text).
   *
   * @param since Where the round starts.
   */
  start(since: Seq): void {
    const key = String(since);
    const kept = this.#ahead.get(key);
    const to = kept === undefined ? undefined : this.#ends.get(key);
    const keptNext = to === undefined ? undefined : this.#ahead.get(String(to));
    this.#ahead.delete(key);
    if (to !== undefined) this.#ahead.delete(String(to));
    this.stop();
    this.#awaiting = since;
    if (kept === undefined) {
      this.#askAhead(since);
      return;
    }
    this.#ahead.set(key, kept);
    if (to !== undefined) {
      this.#ends.set(key, to);
      if (keptNext !== undefined) this.#ahead.set(String(to), keptNext);
    }
  }

  /**
   * The page after `from`: asked for ahead, else asked for now (`sent` then resolves once a
   * turn of the event loop has sent the request).
   *
   * @param from Where the page starts.
   * @returns The page, and when its request is out.
   */
  next(from: Seq): { page: Promise<ChangesPage>; sent: Promise<void> } {
    const key = String(from);
    const asked = this.#ahead.get(key);
    this.#ahead.delete(key);
    if (asked !== undefined) {
      this.#taken.push(asked.stop);
      return { page: asked.page, sent: Promise.resolve() };
    }
    const stop = new AbortController();
    this.#taken.push(stop);
    return { page: this.#read(from, stop), sent: nextTurn() };
  }

  /**
   * Marks the page after `from` as the one waited for: the page after it is asked for as soon
   * as its text shows it full (now, when it already has).
   *
   * @param from Where the page waited for starts.
   */
  waitFor(from: Seq): void {
    this.#awaiting = from;
    const to = this.#ends.get(String(from));
    if (to !== undefined) this.#askAhead(to);
  }

  /** Aborts every page asked for and not yet read whole; none asks for another after. */
  stop(): void {
    for (const { stop } of this.#ahead.values()) stop.abort();
    for (const stop of this.#taken) stop.abort();
    this.#ahead = new Map();
    this.#ends = new Map();
    this.#taken = [];
    this.#awaiting = undefined;
  }

  /** Asks for the page after `from` ahead of its turn. */
  #askAhead(from: Seq): void {
    if (this.#ahead.has(String(from))) return;
    const stop = new AbortController();
    this.#ahead.set(String(from), { page: this.#read(from, stop), stop });
  }

  #read(from: Seq, stop: AbortController): Promise<ChangesPage> {
    const signal = this.#signal;
    const page = readChanges(this.#client, this.#origin, from, this.#limit, {
      clock: this.#clock,
      signal: withStop(signal, stop),
      beforeParse: (text) => {
        // (Each attempt: a later one may tell another end, whose guess replaces the earlier.)
        const to = peekChanges(text, this.#limit);
        if (stop.signal.aborted || to === undefined || String(to) === String(from)) return;
        const guessed = this.#ends.get(String(from));
        if (guessed !== undefined && String(guessed) !== String(to)) {
          this.#ahead.get(String(guessed))?.stop.abort();
          this.#ahead.delete(String(guessed));
        }
        this.#ends.set(String(from), to);
        if (String(from) !== String(this.#awaiting) || this.#ahead.has(String(to))) return;
        this.#askAhead(to);
        return nextTurn();
      },
    });
    // (A failure is met where the page is awaited; until then it must not count as unhandled.)
    page.catch(() => {});
    page.then(() => this.#taken = this.#taken.filter((s) => s !== stop), () => {});
    return page;
  }
}

/**
 * Whether a `MessageChannel` message is a task of its own on the runtime `globals` belong to: on
 * Deno and Node it is, and a request made on an open connection is sent during it. On Cloudflare
 * Workers (workerd) it arrives as a microtask, and nothing is sent: a timer it is, there and on
 * any runtime not known.
 *
 * @param globals The global object of the runtime.
 * @returns Whether {@linkcode nextTurn} may take a channel's turn there.
 *
 * @example
 * ```ts
 * import { channelTurns } from "./follow_pages.ts";
 * console.assert(channelTurns({ Deno: {}, MessageChannel }));
 * console.assert(!channelTurns({ navigator: { userAgent: "Cloudflare-Workers" }, MessageChannel }));
 * ```
 */
export function channelTurns(globals: Record<string, unknown>): boolean {
  if (typeof globals["MessageChannel"] !== "function") return false;
  if (globals["Deno"] !== undefined) return true;
  const agent = (globals["navigator"] as { userAgent?: unknown } | undefined)?.userAgent;
  const node = (globals["process"] as { versions?: { node?: unknown } } | undefined)?.versions
    ?.node;
  // (workerd with Node compatibility has a `process` too.)
  return node !== undefined && agent !== "Cloudflare-Workers";
}

/** {@linkcode channelTurns} here. */
const CHANNEL_TURNS = channelTurns(globalThis as unknown as Record<string, unknown>);

/**
 * Lets the event loop run once: a request just made on an open connection is sent then, not once
 * the code running now next waits. On Deno and Node a message through a `MessageChannel` is such a
 * turn with no timer's minimum delay: 0.07 ms against 1 to 2.3 ms for `setTimeout(0)` here, paid
 * on every page the follower reads. Elsewhere ({@linkcode channelTurns}) it is a timer's turn.
 *
 * @returns Resolves on the next turn.
 */
export function nextTurn(): Promise<void> {
  if (!CHANNEL_TURNS) return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      // Both ends: on Deno an open one stays a resource for good, on Node it keeps the event
      // loop alive.
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(undefined);
  });
}
