/**
 * The corgi derivation in bounded memory: the same bytes as
 * `JSON.stringify(abbreviatePackument(JSON.parse(full)))` (`./corgi.ts`), made from the full
 * document as a stream, never holding it whole. A 100 MB document costs the memory of its
 * largest single version, its `dist-tags` and its `time`, not of the document.
 *
 * It takes two reads of the full document: {@linkcode planAbbreviation} reads the small parts
 * that come first in the output (`name`, `dist-tags`) or that decide it (`time`, repeated keys),
 * then {@linkcode abbreviatedStream} reads it again and writes the versions as they pass. Where
 * a key is repeated, the last one counts, as in `JSON.parse`.
 *
 * @module
 */

import { abbreviateVersion, modifiedOf } from "./corgi.ts";
import { JsonWalker, parseWalked, type WalkVisitor } from "./_json_walk.ts";

/** What {@linkcode abbreviatedStream} needs to know before it writes: see the module docs. */
export interface AbbreviationPlan {
  /** The document's `name`. */
  readonly name: string;
  /** The document's `dist-tags`, or `{}` when it is not an object. */
  readonly distTags: unknown;
  /** `time.modified`, else the latest date in `time`. */
  readonly modified: string | undefined;
  /** How many top-level `versions` keys there are (only the last one counts). */
  readonly versionsKeys: number;
  /**
   * Versions of the last `versions` that are not written where they pass, with the last one's
   * abbreviated form: those named more than once (written where the first one was), and those
   * named like an array index (`"1"`), which a JavaScript object puts first, in numeric order.
   */
  readonly held: ReadonlyMap<string, Record<string, unknown> | undefined>;
}

/** Whether a key is an array index, which JavaScript objects order first, numerically. */
function isIndex(key: string): boolean {
  return /^(?:0|[1-9][0-9]{0,9})$/.test(key) && Number(key) < 2 ** 32 - 1;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function walk(body: ReadableStream<Uint8Array>, walker: JsonWalker): Promise<void> {
  for await (const chunk of body) walker.push(chunk);
  walker.end();
}

/**
 * Reads a full document once and returns what its abbreviated form starts with.
 *
 * @param body The full document's JSON text.
 * @returns The plan for {@linkcode abbreviatedStream}.
 * @throws {TypeError} When the text is not an object with a string `name`.
 *
 * @example
 * ```ts
 * import { planAbbreviation } from "./corgi_stream.ts";
 * const doc = { name: "ms", time: { modified: "2024-01-01T00:00:00.000Z" }, versions: {} };
 * const plan = await planAbbreviation(new Blob([JSON.stringify(doc)]).stream());
 * console.assert(plan.name === "ms" && plan.modified === "2024-01-01T00:00:00.000Z");
 * ```
 */
export async function planAbbreviation(
  body: ReadableStream<Uint8Array>,
): Promise<AbbreviationPlan> {
  let name: unknown;
  let distTags: unknown;
  let time: unknown;
  let versionsKeys = 0;
  let seen = new Set<string>();
  let held = new Map<string, Record<string, unknown> | undefined>();
  const visitor: WalkVisitor = {
    key(depth, key) {
      if (depth === 2) {
        if (!seen.has(key) && !isIndex(key)) {
          seen.add(key);
          return "skip";
        }
        return "capture";
      }
      if (key === "versions") {
        versionsKeys++;
        seen = new Set();
        held = new Map();
        return "enter";
      }
      return key === "name" || key === "dist-tags" || key === "time" ? "capture" : "skip";
    },
    value(depth, key, raw) {
      const value = parseWalked(raw);
      if (depth === 2) held.set(key, abbreviateVersion(value));
      else if (key === "name") name = value;
      else if (key === "dist-tags") distTags = value;
      else time = value;
    },
    enter() {},
    leave() {},
  };
  try {
    await walk(body, new JsonWalker(visitor));
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new TypeError(`Cannot abbreviate: the document is not JSON (${error.message})`);
    }
    throw error;
  }
  if (typeof name !== "string") {
    throw new TypeError("Cannot abbreviate: expected a package document with a string name");
  }
  return {
    name,
    distTags: isRecord(distTags) ? distTags : {},
    modified: modifiedOf({ time }),
    versionsKeys,
    held,
  };
}

/** Output is handed on in pieces of about this many characters. */
const PIECE = 64 * 1024;

/**
 * Reads a full document again and streams its abbreviated form, byte for byte what
 * `JSON.stringify(abbreviatePackument(doc))` gives.
 *
 * @param body The full document's JSON text: the same document the plan was made from.
 * @param plan From {@linkcode planAbbreviation}.
 * @returns The abbreviated document's JSON text.
 *
 * @example
 * ```ts
 * import { abbreviatedStream, planAbbreviation } from "./corgi_stream.ts";
 * import { abbreviatePackument } from "./corgi.ts";
 * const doc = {
 *   name: "ms",
 *   "dist-tags": { latest: "1.0.0" },
 *   versions: { "1.0.0": { name: "ms", version: "1.0.0", readme: "long", dist: {} } },
 * };
 * const text = JSON.stringify(doc);
 * const plan = await planAbbreviation(new Blob([text]).stream());
 * const out = await new Response(abbreviatedStream(new Blob([text]).stream(), plan)).text();
 * console.assert(out === JSON.stringify(abbreviatePackument(doc)));
 * ```
 */
export function abbreviatedStream(
  body: ReadableStream<Uint8Array>,
  plan: AbbreviationPlan,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let pending = `{"name":${JSON.stringify(plan.name)},"dist-tags":${
    JSON.stringify(plan.distTags)
  },"versions":{`;
  let written = 0;
  let versionsKeys = 0;
  let inLast = false;
  const done = new Set<string>();
  const write = (key: string, slim: Record<string, unknown> | undefined) => {
    if (slim === undefined) return;
    pending += `${written++ === 0 ? "" : ","}${JSON.stringify(key)}:${JSON.stringify(slim)}`;
  };
  const indexes = [...plan.held.keys()].filter(isIndex).sort((a, b) => Number(a) - Number(b));
  for (const key of indexes) {
    done.add(key);
    write(key, plan.held.get(key));
  }
  const walker = new JsonWalker({
    key(depth, key) {
      if (depth === 1) {
        if (key !== "versions") return "skip";
        inLast = ++versionsKeys === plan.versionsKeys;
        return inLast ? "enter" : "skip";
      }
      if (!plan.held.has(key)) return "capture";
      if (!done.has(key)) {
        done.add(key);
        write(key, plan.held.get(key));
      }
      return "skip";
    },
    value(_depth, key, raw) {
      write(key, abbreviateVersion(parseWalked(raw)));
    },
    enter() {},
    leave() {},
  });
  const reader = body.getReader();
  let finished = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (pending.length < PIECE && !finished) {
        const { done, value } = await reader.read();
        if (done) {
          walker.end();
          finished = true;
          pending += "}";
          if (plan.modified !== undefined) {
            pending += `,"modified":${JSON.stringify(plan.modified)}`;
          }
          pending += "}";
        } else {
          walker.push(value);
        }
      }
      controller.enqueue(encoder.encode(pending));
      pending = "";
      if (finished) controller.close();
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
