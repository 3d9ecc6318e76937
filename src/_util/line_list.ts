/**
 * Line lists: text files with one entry per line, blank lines and `#` comments ignored. The one
 * reader behind the package-name lists and the pivot files, so both follow one rule.
 *
 * @module
 */

/** One entry of a line list. */
export interface LineListEntry {
  /** The 1-based line number. */
  line: number;
  /** The entry: the line without its comment, trimmed. */
  value: string;
}

/**
 * Removes a leading UTF-8 byte order mark (U+FEFF), which some editors write at the start of a
 * file and which `JSON.parse` and name checks would otherwise take as part of the text.
 *
 * @param text The file contents.
 * @returns The text without its byte order mark.
 *
 * @example
 * ```ts
 * import { stripBom } from "./line_list.ts";
 * console.assert(stripBom("\ufeff[]") === "[]");
 * ```
 */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** A comment: `#` at the start of a line or after whitespace, to the end of the line. */
const COMMENT = /(^|\s)#.*$/;

/**
 * Splits a line list into its entries. A leading byte order mark is dropped; lines end at `\n`
 * or `\r\n`; a `#` at the start of a line or after whitespace starts a comment that runs to the
 * end of the line (`left-pad  # why`); then each line is trimmed, and lines left empty are
 * skipped. A `#` right after other characters (`a#b`) is part of the entry.
 *
 * @param text The file contents.
 * @returns The entries in file order, with their line numbers.
 *
 * @example
 * ```ts
 * import { parseLineList } from "./line_list.ts";
 * const text = "# names\r\nms\n\n  left-pad  # pads\n";
 * const entries = parseLineList(text);
 * console.assert(JSON.stringify(entries) === '[{"line":2,"value":"ms"},{"line":4,"value":"left-pad"}]');
 * ```
 */
export function parseLineList(text: string): LineListEntry[] {
  const entries: LineListEntry[] = [];
  const lines = stripBom(text).split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const value = lines[i]!.replace(COMMENT, "").trim();
    if (value !== "") entries.push({ line: i + 1, value });
  }
  return entries;
}
