/**
 * The lexer of view expressions: text to tokens, each with its offset.
 *
 * Identifiers are `[A-Za-z_$][A-Za-z0-9_$-]*` (so `dist-tags` is one name); strings are quoted
 * with `"` or `'` and take JSON's escapes (plus `\'`); numbers are JSON numbers. Keywords (`as`,
 * `null`, `true`, `false`) are identifiers the parser gives a meaning to.
 *
 * @module
 */

import { ViewExpressionError } from "./expression_error.ts";

/** What a token is. */
export type TokenKind =
  | "ident"
  | "string"
  | "number"
  | "."
  | ","
  | "["
  | "]"
  | "("
  | ")"
  | "|"
  | "||"
  | "&&"
  | "!"
  | "="
  | "!="
  | "<"
  | "<="
  | ">"
  | ">="
  | "end";

/** A token: its kind, its text or value, and where it starts and ends. */
export interface Token {
  /** The kind. */
  kind: TokenKind;
  /** The identifier, the decoded string, or the source text of anything else. */
  text: string;
  /** The value of a number. */
  value: number;
  /** The offset of its first character. */
  start: number;
  /** The offset just past its last character. */
  end: number;
}

const IDENT_START = /[A-Za-z_$]/;
const IDENT_PART = /[A-Za-z0-9_$-]/;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  "'": "'",
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};
/** Two-character operators first, so `<=` is not read as `<` then `=`. */
const OPERATORS: readonly TokenKind[] = [
  "||",
  "&&",
  "!=",
  "<=",
  ">=",
  ".",
  ",",
  "[",
  "]",
  "(",
  ")",
  "|",
  "!",
  "=",
  "<",
  ">",
];

/**
 * Splits an expression into tokens, ending with an `end` token.
 *
 * @param source The expression.
 * @returns The tokens.
 * @throws {ViewExpressionError} At an unexpected character or an unterminated string.
 */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fail = (at: number, problem: string): never => {
    throw new ViewExpressionError(source, at, problem);
  };
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      i++;
      continue;
    }
    const start = i;
    if (IDENT_START.test(ch)) {
      while (i < source.length && IDENT_PART.test(source[i]!)) i++;
      tokens.push({ kind: "ident", text: source.slice(start, i), value: 0, start, end: i });
      continue;
    }
    if (ch === '"' || ch === "'") {
      let text = "";
      i++;
      while (true) {
        if (i >= source.length) fail(start, "Unterminated string");
        const c = source[i]!;
        if (c === ch) break;
        if (c === "\\") {
          const e = source[i + 1];
          if (e === "u" && /^[0-9a-fA-F]{4}$/.test(source.slice(i + 2, i + 6))) {
            text += String.fromCharCode(parseInt(source.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          const decoded = e === undefined ? undefined : ESCAPES[e];
          if (decoded === undefined) fail(i, "Invalid escape in string");
          text += decoded;
          i += 2;
          continue;
        }
        text += c;
        i++;
      }
      i++;
      tokens.push({ kind: "string", text, value: 0, start, end: i });
      continue;
    }
    if (ch === "-" || (ch >= "0" && ch <= "9")) {
      NUMBER.lastIndex = i;
      const match = NUMBER.exec(source);
      if (!match) fail(start, "Invalid number");
      i += match![0].length;
      if (i < source.length && IDENT_PART.test(source[i]!)) fail(start, "Invalid number");
      tokens.push({ kind: "number", text: match![0], value: Number(match![0]), start, end: i });
      continue;
    }
    if (ch === "=" && source[i + 1] === "=") {
      // `==` is accepted as `=`, as the upstream tool wrote its filters.
      i += 2;
      tokens.push({ kind: "=", text: "==", value: 0, start, end: i });
      continue;
    }
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    if (op === undefined) fail(start, `Unexpected character '${ch}'`);
    i += op!.length;
    tokens.push({ kind: op!, text: op!, value: 0, start, end: i });
  }
  tokens.push({ kind: "end", text: "", value: 0, start: source.length, end: source.length });
  return tokens;
}
