/**
 * Joins of two views: `{"key","left","right"}` records of the records of both that share a
 * key.
 *
 * Joined on the package name (`--on name`, when neither view makes its `name` field of
 * anything but the document's `name`), the other side is looked up by its cache key, never
 * scanned: `left`, `inner` and `diff` read the left view's documents and, for each, the right
 * view's document of the same name; `right` the other way round; `full` reads the names of
 * both. Each document is read and parsed once, in parallel (see `./query.ts`), in name order.
 *
 * Joined on another field, the side that is looked up (the right one, or the left one for a
 * `right` join) is read first and its records held in memory by key; then the other side
 * streams past it. Records whose key is `null` or missing never match.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import { type ViewDefinition, viewDocumentPrefix } from "./definition.ts";
import { compileSelect } from "./expressions.ts";
import { listSuffixes, mergeSuffixes, type ScanOptions, scanView, viewSide } from "./query.ts";
import type { BatchResult, JoinMode, ScanTask } from "./scan.ts";

export type { JoinMode };

/** The join modes. */
export const JOIN_MODES: readonly JoinMode[] = ["left", "inner", "right", "full", "diff"];

/** Options of {@linkcode joinViews}. */
export interface JoinOptions {
  /** Which records come out: `left` (every left record, with its matches or `null`), `inner`
   * (pairs that match), `right` (every right record), `full` (every record of both), `diff`
   * (left records without a match).
   * @default {"left"} */
  mode?: JoinMode;
  /** The field both sides are joined on (their output name).
   * @default {"name"} */
  on?: string;
  /** How the scans run (workers, corruption reports, hash). */
  scan?: Omit<ScanOptions, "task" | "suffixes">;
}

/** The output names of a view (`undefined`: whole documents). */
function outputNames(view: ViewDefinition): readonly string[] | undefined {
  return view.select === undefined ? undefined : compileSelect(view.select).names;
}

/**
 * Whether two views join on `on` by package name, looking documents up by key: `on` is
 * `name`, and neither view makes a `name` field of anything but the document's `name`.
 *
 * @param left A view.
 * @param right Another view.
 * @param on The join field.
 * @returns Whether the join looks up by name.
 */
export function joinsByName(left: ViewDefinition, right: ViewDefinition, on: string): boolean {
  if (on !== "name") return false;
  return [left, right].every((view) => {
    if (view.select === undefined) return true;
    const field = compileSelect(view.select).fields.find((f) => f.name === "name");
    return field === undefined ||
      (field.plain && field.keys?.length === 1 && field.keys[0] === "name");
  });
}

/**
 * The problem with joining on `on`, when there is one: a view with a select list that has no
 * field of that name (a join by package name needs none).
 *
 * @param left A view.
 * @param right Another view.
 * @param on The join field.
 * @returns What is wrong, or `undefined`.
 */
export function joinProblem(
  left: ViewDefinition,
  right: ViewDefinition,
  on: string,
): string | undefined {
  if (joinsByName(left, right, on)) return undefined;
  for (const view of [left, right]) {
    const names = outputNames(view);
    if (names !== undefined && !names.includes(on)) {
      return `View '${view.name}' has no field '${on}' to join on (its fields: ${
        names.join(", ")
      })`;
    }
  }
  return undefined;
}

function line(key: string, left: string, right: string): string {
  return `{"key":${key},"left":${left},"right":${right}}`;
}

/** Splits a keyed line (`canonical key`, a tab, the record). */
function split(text: string): [string, string] {
  const tab = text.indexOf("\t");
  return [text.slice(0, tab), text.slice(tab + 1)];
}

async function* byField(
  cache: Cache,
  left: ViewDefinition,
  right: ViewDefinition,
  mode: JoinMode,
  on: string,
  scan: JoinOptions["scan"],
): AsyncGenerator<BatchResult> {
  const lookupView = mode === "right" ? left : right;
  const driveView = mode === "right" ? right : left;
  const keyed = (view: ViewDefinition): ScanTask => ({
    kind: "records",
    view: viewSide(view),
    format: "ndjson",
    keyField: on,
  });
  const index = new Map<string, string[]>();
  const everyLookup: [string, string][] = [];
  for await (
    const result of scanView(cache, {
      ...scan,
      task: keyed(lookupView),
      suffixes: listSuffixes(cache, viewDocumentPrefix(lookupView)),
    })
  ) {
    for (const text of result.lines) {
      const [key, record] = split(text);
      if (key !== "null") {
        const list = index.get(key);
        if (list) list.push(record);
        else index.set(key, [record]);
      }
      if (mode === "full") everyLookup.push([key, record]);
    }
    if (result.skipped.length > 0) yield { lines: [], count: 0, skipped: result.skipped };
  }
  const matched = new Set<string>();
  for await (
    const result of scanView(cache, {
      ...scan,
      task: keyed(driveView),
      suffixes: listSuffixes(cache, viewDocumentPrefix(driveView)),
    })
  ) {
    const lines: string[] = [];
    for (const text of result.lines) {
      const [key, record] = split(text);
      const matches = key === "null" ? undefined : index.get(key);
      if (matches && mode === "full") matched.add(key);
      if (mode === "right") {
        if (matches) { for (const other of matches) lines.push(line(key, other, record)); }
        else lines.push(line(key, "null", record));
      } else if (mode === "diff") {
        if (!matches) lines.push(line(key, record, "null"));
      } else if (matches) {
        for (const other of matches) lines.push(line(key, record, other));
      } else if (mode !== "inner") lines.push(line(key, record, "null"));
    }
    yield { lines, count: lines.length, skipped: result.skipped };
  }
  if (mode === "full") {
    let lines: string[] = [];
    for (const [key, record] of everyLookup) {
      if (key !== "null" && matched.has(key)) continue;
      lines.push(line(key, "null", record));
      if (lines.length >= 1000) {
        yield { lines, count: lines.length, skipped: [] };
        lines = [];
      }
    }
    if (lines.length > 0) yield { lines, count: lines.length, skipped: [] };
  }
}

/**
 * Joins two views, streaming `{"key","left","right"}` lines (JSON texts without a line break):
 * by package name in name order; on another field in the order of the side that streams (the
 * left one, or the right one for a `right` join), a `full` join's unmatched right records
 * last.
 *
 * @param cache The cache.
 * @param left The left view.
 * @param right The right view.
 * @param options The mode, the field and how the scans run.
 * @returns Batches of joined lines, in order.
 * @throws {TypeError} When a view has no field to join on.
 *
 * @example Packages of one registry that another one lacks
 * ```ts
 * import { Cache } from "../storage/cache.ts";
 * import { packumentKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 * import { joinViews } from "./join.ts";
 * const cache = await Cache.open(new MemoryDriver());
 * const put = (origin: string, name: string) =>
 *   cache.put(packumentKey(origin, name), new TextEncoder().encode(JSON.stringify({ name })), {
 *     status: 200,
 *   });
 * await put("public", "a");
 * await put("public", "b");
 * await put("private", "a");
 * const createdAt = new Date(0).toISOString();
 * const pub = { name: "pub", origin: "public", type: "packument", select: "name", createdAt } as const;
 * const priv = { ...pub, name: "priv", origin: "private" };
 * const lines: string[] = [];
 * for await (const r of joinViews(cache, pub, priv, { mode: "diff" })) lines.push(...r.lines);
 * console.assert(lines.join() === '{"key":"b","left":{"name":"b"},"right":null}');
 * ```
 */
export async function* joinViews(
  cache: Cache,
  left: ViewDefinition,
  right: ViewDefinition,
  options: JoinOptions = {},
): AsyncGenerator<BatchResult> {
  const mode = options.mode ?? "left";
  const on = options.on ?? "name";
  if (!JOIN_MODES.includes(mode)) {
    throw new TypeError(`Cannot join views: unknown mode '${mode}'`);
  }
  const problem = joinProblem(left, right, on);
  if (problem !== undefined) throw new TypeError(`Cannot join views: ${problem}`);
  if (!joinsByName(left, right, on)) {
    yield* byField(cache, left, right, mode, on, options.scan);
    return;
  }
  const l = viewSide(left);
  const r = viewSide(right);
  const suffixes = mode === "right"
    ? listSuffixes(cache, r.prefix)
    : mode === "full"
    ? mergeSuffixes(listSuffixes(cache, l.prefix), listSuffixes(cache, r.prefix))
    : listSuffixes(cache, l.prefix);
  const task: ScanTask = { kind: "join", left: l, right: r, mode };
  yield* scanView(cache, { ...options.scan, task, suffixes });
}
