/**
 * Package names npm could have served. New names follow stricter rules, but legacy names with
 * upper-case letters or dots (even `..` inside a name) were published and stay valid; what is
 * rejected here could never have been served.
 *
 * @module
 */

import { parseLineList, stripBom } from "../_util/line_list.ts";

/**
 * Tells what is wrong with a package name, if anything.
 *
 * Rejected: empty or longer than 214 characters; a leading `.` or `_`; a `.` leading the name
 * after a scope; whitespace or control characters; a `/` that is not the separator of
 * `@scope/name`; characters that do not survive URL encoding (anything `encodeURIComponent`
 * would change, in the scope or the name). A `_` leading the name after a scope
 * (`@ng-toolkit/_utils`) and a leading `-` (`-`, `-lodash`) are accepted: npm served such
 * names.
 *
 * @param name The candidate.
 * @returns The problem in a few words, or `undefined` when the name is acceptable.
 *
 * @example
 * ```ts
 * import { packageNameProblem } from "./package_name.ts";
 * console.assert(packageNameProblem("JSONStream") === undefined);
 * console.assert(packageNameProblem("12.15rk..") === undefined);
 * console.assert(packageNameProblem("@ng-toolkit/_utils") === undefined);
 * console.assert(packageNameProblem("@scope/.hidden") !== undefined);
 * console.assert(packageNameProblem("a b") !== undefined);
 * ```
 */
export function packageNameProblem(name: string): string | undefined {
  if (name.length === 0) return "empty name";
  if (name.length > 214) return `longer than 214 characters (${name.length})`;
  // deno-lint-ignore no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(name)) return "contains whitespace or control characters";
  if (name.startsWith(".") || name.startsWith("_")) return "starts with '.' or '_'";
  let parts: string[];
  if (name.startsWith("@")) {
    const match = /^@([^/]+)\/([^/]+)$/.exec(name);
    if (!match) return "a scoped name must be @scope/name with exactly one '/'";
    parts = [match[1]!, match[2]!];
    if (parts[1]!.startsWith(".")) return "the name after the scope starts with '.'";
  } else {
    if (name.includes("/")) return "contains '/' outside a scope";
    parts = [name];
  }
  for (const part of parts) {
    if (encodeURIComponent(part) !== part) {
      return "contains characters that do not survive URL encoding";
    }
  }
  return undefined;
}

/**
 * The path segment of a packument URL: scoped names as `@scope%2fname`.
 *
 * @param name A valid package name.
 * @returns The encoded name.
 *
 * @example
 * ```ts
 * import { encodePackageName } from "./package_name.ts";
 * console.assert(encodePackageName("@babel/core") === "@babel%2fcore");
 * ```
 */
export function encodePackageName(name: string): string {
  return name.startsWith("@")
    ? `@${encodeURIComponent(name.slice(1)).replace("%2F", "%2f")}`
    : encodeURIComponent(name);
}

/** A problem found in a list of names, with where it was. */
export interface NameListProblem {
  /** 1-based line (text lists) or 0-based index (JSON arrays). */
  at: number;
  /** `line` or `index`. */
  kind: "line" | "index";
  /** The entry as written. */
  value: string;
  /** What is wrong. */
  problem: string;
}

/** Parsed names in order, de-duplicated. */
export interface NameList {
  /** Unique names, first occurrence order. */
  names: string[];
  /** Entries that repeated an earlier name. */
  duplicates: number;
}

/**
 * Parses a list of names: a JSON array of names, or text with one `name` or `name@range` per
 * line, read as every line list is (see `parseLineList`: each line trimmed, blank
 * lines and `#` comments ignored, `name  # why` keeps `name`); the range is dropped, since a
 * packument holds every version. A leading byte order mark is ignored in both forms.
 *
 * @param text The file contents.
 * @param format `json` or `txt`.
 * @returns The names, or the problems found (every one of them).
 */
export function parseNameList(
  text: string,
  format: "json" | "txt",
): NameList | { problems: NameListProblem[] } {
  const problems: NameListProblem[] = [];
  const entries: { at: number; value: string; name: string }[] = [];
  if (format === "json") {
    let value: unknown;
    try {
      value = JSON.parse(stripBom(text));
    } catch (cause) {
      return {
        problems: [{
          at: 0,
          kind: "index",
          value: "",
          problem: `not JSON (${(cause as Error).message})`,
        }],
      };
    }
    if (!Array.isArray(value)) {
      return {
        problems: [{ at: 0, kind: "index", value: "", problem: "expected a JSON array of names" }],
      };
    }
    value.forEach((item: unknown, i) => {
      if (typeof item !== "string") {
        problems.push({
          at: i,
          kind: "index",
          value: JSON.stringify(item),
          problem: "not a string",
        });
      } else entries.push({ at: i, value: item, name: item });
    });
  } else {
    for (const { line, value } of parseLineList(text)) {
      const at = value.indexOf("@", 1);
      entries.push({ at: line, value, name: at === -1 ? value : value.slice(0, at) });
    }
  }
  const seen = new Set<string>();
  let duplicates = 0;
  for (const entry of entries) {
    const problem = packageNameProblem(entry.name);
    if (problem) {
      problems.push({
        at: entry.at,
        kind: format === "json" ? "index" : "line",
        value: entry.value,
        problem,
      });
    } else if (seen.has(entry.name)) duplicates++;
    else seen.add(entry.name);
  }
  if (problems.length > 0) return { problems };
  return { names: [...seen], duplicates };
}
