/**
 * How the records of a view are written: NDJSON, a JSON array, bare lines of one field, or CSV.
 *
 * Each record is formatted on its own (in whichever worker read it), so the output is the same
 * bytes whatever the number of workers; {@linkcode outputFraming} gives what goes before, between
 * and after them.
 *
 * @module
 */

/** An output format of `view query`. */
export type RecordFormat = "ndjson" | "json" | "lines" | "csv";

/** The output formats. */
export const RECORD_FORMATS: readonly RecordFormat[] = ["ndjson", "json", "lines", "csv"];

const NEEDS_QUOTES = /[",\r\n]/;
const LINE_BREAK = /[\r\n]/;

/**
 * A CSV cell (RFC 4180): `null` is empty; strings, numbers and booleans as text; arrays and
 * objects as JSON; quoted when the text holds `"`, `,` or a line break.
 *
 * @param value A JSON value.
 * @returns The cell.
 *
 * @example
 * ```ts
 * import { csvCell } from "./format.ts";
 * console.assert(csvCell('say "hi", then go') === '"say ""hi"", then go"');
 * console.assert(csvCell(["a", "b"]) === '"[""a"",""b""]"');
 * console.assert(csvCell(null) === "");
 * ```
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string"
    ? value
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * One field's value as a bare line: a string as it is (JSON-encoded when it holds a line break,
 * so one value stays one line), anything else as JSON.
 *
 * @param value A JSON value.
 * @returns The line, without its line break.
 */
export function bareLine(value: unknown): string {
  if (typeof value === "string" && !LINE_BREAK.test(value)) return value;
  return JSON.stringify(value ?? null);
}

/**
 * A formatter of records: the text of one record, without a line break.
 *
 * @param format The output format.
 * @param names The output names of the view's select list (`undefined`: whole documents).
 * @returns The formatter.
 * @throws {TypeError} When the format needs a select list the view does not have (`csv` needs
 *   one; `lines` needs one of exactly one field).
 */
export function recordFormatter(
  format: RecordFormat,
  names: readonly string[] | undefined,
): (record: unknown) => string {
  switch (format) {
    case "ndjson":
    case "json":
      return (record) => JSON.stringify(record);
    case "lines": {
      if (names?.length !== 1) {
        throw new TypeError(
          "The lines format prints one field: the view must select exactly one field",
        );
      }
      const name = names[0]!;
      return (record) => bareLine((record as Record<string, unknown>)[name]);
    }
    case "csv": {
      if (names === undefined) {
        throw new TypeError(
          "The csv format needs a view with a select list: its fields are the columns",
        );
      }
      const list = [...names];
      return (record) => list.map((n) => csvCell((record as Record<string, unknown>)[n])).join(",");
    }
  }
}

/** What goes around the formatted records. */
export interface OutputFraming {
  /** Before the first record. */
  head: string;
  /** Before each record but the first. */
  separator: string;
  /** After each record. */
  after: string;
  /** After the last record. */
  tail: string;
  /** The whole output when there is no record. */
  empty: string;
}

/**
 * The text around the records of a format: a JSON array is `[` and `]` with `,` between its
 * records (one a line); CSV starts with a header row of the output names.
 *
 * @param format The output format.
 * @param names The output names (`undefined`: whole documents).
 * @returns The framing.
 *
 * @example
 * ```ts
 * import { outputFraming } from "./format.ts";
 * const f = outputFraming("json", ["name"]);
 * const text = f.head + ["{}", "{}"].map((r, i) => (i ? f.separator : "") + r + f.after).join("") + f.tail;
 * console.assert(JSON.parse(text).length === 2);
 * ```
 */
export function outputFraming(
  format: RecordFormat,
  names: readonly string[] | undefined,
): OutputFraming {
  switch (format) {
    case "json":
      return { head: "[\n", separator: ",\n", after: "", tail: "\n]\n", empty: "[]\n" };
    case "csv": {
      const header = `${(names ?? []).map(csvCell).join(",")}\n`;
      return { head: header, separator: "", after: "\n", tail: "", empty: header };
    }
    default:
      return { head: "", separator: "", after: "\n", tail: "", empty: "" };
  }
}
