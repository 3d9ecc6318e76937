/**
 * A streaming walk over the first two levels of a JSON object, in bounded memory: it reads the
 * text in chunks of bytes, reports each top-level key, and hands over the raw bytes of only the
 * values its visitor asks for. A value it is asked to enter (an object) has its own keys
 * reported the same way. Everything else is skipped without being kept, so a 100 MB document
 * costs the largest value kept, not the document.
 *
 * It checks structure (quotes, nesting, separators), not every scalar: values it hands over are
 * checked by `JSON.parse`, values it skips only have to be well nested. It is meant for text
 * already known to be JSON (the cache stores only verified JSON objects).
 *
 * @module
 */

/** What to do with a value: keep its raw bytes, skip it, or walk into it (objects only). */
export type WalkAction = "capture" | "skip" | "enter";

/** Receives what {@linkcode JsonWalker} finds. `depth` is 1 for top-level keys, 2 inside. */
export interface WalkVisitor {
  /** A key was read; the answer decides what happens to its value ("enter" only at depth 1). */
  key(depth: 1 | 2, key: string): WalkAction;
  /** The raw bytes of a value asked for with "capture" (in pieces; parse them together). */
  value(depth: 1 | 2, key: string, raw: Uint8Array[]): void;
  /** A value asked for with "enter" starts: `isObject` false means it was skipped instead. */
  enter(key: string, isObject: boolean): void;
  /** The entered object ended. */
  leave(key: string): void;
}

import { concatBytes } from "../_util/bytes.ts";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

const enum State {
  Start,
  /** After `{`: a key's opening quote or `}`. */
  KeyOrEnd,
  /** After `,`: a key's opening quote. */
  Key,
  InKey,
  Colon,
  Value,
  InValue,
  CommaOrEnd,
  Done,
}

const enum Kind {
  String,
  Container,
  Scalar,
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function parseRaw(raw: Uint8Array[]): unknown {
  return JSON.parse(decoder.decode(raw.length === 1 ? raw[0] : concatBytes(raw)));
}

/**
 * Parses the raw pieces of one JSON value, as handed to {@linkcode WalkVisitor.value}.
 *
 * @param raw The pieces, in order.
 * @returns The parsed value.
 * @throws {SyntaxError} When the bytes are not one JSON value.
 */
export function parseWalked(raw: Uint8Array[]): unknown {
  return parseRaw(raw);
}

/**
 * Walks a JSON object pushed in chunks; see the module documentation.
 *
 * @example
 * ```ts
 * import { JsonWalker, parseWalked } from "./_json_walk.ts";
 * const seen: string[] = [];
 * const walker = new JsonWalker({
 *   key: (depth, key) => depth === 1 && key === "versions" ? "enter" : depth === 2 ? "capture" : "skip",
 *   value: (_depth, key, raw) => seen.push(`${key}=${JSON.stringify(parseWalked(raw))}`),
 *   enter: () => {},
 *   leave: () => {},
 * });
 * const text = new TextEncoder().encode('{"readme":"x","versions":{"1.0.0":{"a":[1]}}}');
 * walker.push(text.subarray(0, 20));
 * walker.push(text.subarray(20));
 * walker.end();
 * console.assert(seen[0] === '1.0.0={"a":[1]}');
 * ```
 */
export class JsonWalker {
  #visitor: WalkVisitor;
  #state: State = State.Start;
  #depth: 1 | 2 = 1;
  #first = true;
  #bytesSeen = 0;
  /** The key whose value is being read, and the entered top-level key. */
  #key = "";
  #entered = "";
  #action: WalkAction = "skip";
  // The value (or key) being read.
  #kind: Kind = Kind.Scalar;
  #nesting = 0;
  #inString = false;
  #escape = false;
  #raw: Uint8Array[] = [];
  #capturing = false;
  /**
   * The next quote and backslash at or after the scan position in `#searched` (-1: none
   * left), kept so that a long string full of escapes is searched once, not once per escape.
   */
  #searched: Uint8Array | undefined;
  #quote = -1;
  #backslash = -1;

  /** @param visitor Receives keys and captured values. */
  constructor(visitor: WalkVisitor) {
    this.#visitor = visitor;
  }

  /**
   * Reads the next chunk of the text.
   *
   * @param chunk The bytes; kept only in part, copied, when a captured value spans chunks.
   * @throws {SyntaxError} When the text is not a JSON object.
   */
  push(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    if (this.#bytesSeen === 0 && n >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb) {
      if (chunk[2] === 0xbf) i = 3;
    }
    this.#bytesSeen += n;
    this.#searched = undefined;
    let start = this.#capturing ? 0 : -1;
    while (i < n) {
      const byte = chunk[i]!;
      switch (this.#state) {
        case State.InValue:
        case State.InKey: {
          const end = this.#scan(chunk, i);
          if (end < 0) {
            i = n;
            continue;
          }
          if (this.#capturing) {
            this.#raw.push(chunk.subarray(start, end));
            start = -1;
            this.#capturing = false;
          }
          i = end;
          this.#finishToken();
          continue;
        }
        case State.Start:
          if (isSpace(byte)) break;
          if (byte !== OPEN_BRACE) this.#fail("expected an object", byte);
          this.#state = State.KeyOrEnd;
          this.#first = true;
          break;
        case State.KeyOrEnd:
        case State.Key:
          if (isSpace(byte)) break;
          if (byte === CLOSE_BRACE && this.#state === State.KeyOrEnd) {
            this.#closeObject();
            break;
          }
          if (byte !== QUOTE) this.#fail("expected a key", byte);
          this.#state = State.InKey;
          this.#beginValue(Kind.String, true);
          start = i;
          i++;
          continue;
        case State.Colon:
          if (isSpace(byte)) break;
          if (byte !== COLON) this.#fail("expected ':'", byte);
          this.#state = State.Value;
          break;
        case State.Value: {
          if (isSpace(byte)) break;
          if (this.#action === "enter") {
            const isObject = byte === OPEN_BRACE;
            this.#visitor.enter(this.#key, isObject);
            if (isObject) {
              this.#entered = this.#key;
              this.#depth = 2;
              this.#state = State.KeyOrEnd;
              break;
            }
            this.#action = "skip";
          }
          const kind = byte === QUOTE
            ? Kind.String
            : byte === OPEN_BRACE || byte === OPEN_BRACKET
            ? Kind.Container
            : Kind.Scalar;
          if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET || byte === COMMA) {
            this.#fail("expected a value", byte);
          }
          this.#state = State.InValue;
          this.#beginValue(kind, this.#action === "capture");
          if (this.#capturing) start = i;
          if (kind !== Kind.Scalar) i++;
          continue;
        }
        case State.CommaOrEnd:
          if (isSpace(byte)) break;
          if (byte === COMMA) this.#state = State.Key;
          else if (byte === CLOSE_BRACE) this.#closeObject();
          else this.#fail("expected ',' or '}'", byte);
          break;
        case State.Done:
          if (!isSpace(byte)) this.#fail("unexpected text after the object", byte);
          break;
      }
      i++;
    }
    if (this.#capturing && start >= 0 && start < n) this.#raw.push(chunk.slice(start));
  }

  /**
   * Ends the text.
   *
   * @throws {SyntaxError} When the object is incomplete.
   */
  end(): void {
    this.#searched = undefined;
    if (this.#state !== State.Done) {
      throw new SyntaxError("Cannot walk JSON: the text ends before its object does");
    }
  }

  #fail(expected: string, byte: number): never {
    throw new SyntaxError(
      `Cannot walk JSON: ${expected}, found '${
        String.fromCharCode(byte)
      }' near byte ${this.#bytesSeen}`,
    );
  }

  #beginValue(kind: Kind, capture: boolean): void {
    this.#kind = kind;
    this.#nesting = kind === Kind.Container ? 1 : 0;
    this.#inString = kind === Kind.String;
    this.#escape = false;
    this.#raw = [];
    this.#capturing = capture;
  }

  #closeObject(): void {
    if (this.#depth === 2) {
      this.#depth = 1;
      this.#state = State.CommaOrEnd;
      this.#visitor.leave(this.#entered);
    } else {
      this.#state = State.Done;
    }
  }

  /** A key or value ended: report it and move on. */
  #finishToken(): void {
    if (this.#state === State.InKey) {
      this.#key = parseRaw(this.#raw) as string;
      this.#raw = [];
      this.#action = this.#visitor.key(this.#depth, this.#key);
      if (this.#action === "enter" && this.#depth === 2) this.#action = "skip";
      this.#state = State.Colon;
      return;
    }
    if (this.#action === "capture") {
      const raw = this.#raw;
      this.#raw = [];
      this.#visitor.value(this.#depth, this.#key, raw);
    }
    this.#state = State.CommaOrEnd;
  }

  /**
   * Scans the current string, container or scalar from `i`: the index just past its end, or
   * -1 when it goes on past this chunk.
   */
  #scan(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    if (this.#kind === Kind.Scalar) {
      for (; i < n; i++) {
        const byte = chunk[i]!;
        if (byte === COMMA || byte === CLOSE_BRACE || byte === CLOSE_BRACKET || isSpace(byte)) {
          return i;
        }
      }
      return -1;
    }
    while (i < n) {
      if (this.#escape) {
        this.#escape = false;
        i++;
        continue;
      }
      if (this.#inString) {
        if (this.#searched !== chunk) {
          this.#searched = chunk;
          this.#quote = chunk.indexOf(QUOTE, i);
          this.#backslash = chunk.indexOf(BACKSLASH, i);
        }
        if (this.#quote >= 0 && this.#quote < i) this.#quote = chunk.indexOf(QUOTE, i);
        if (this.#backslash >= 0 && this.#backslash < i) {
          this.#backslash = chunk.indexOf(BACKSLASH, i);
        }
        const quote = this.#quote;
        const limit = quote < 0 ? n : quote;
        const backslash = this.#backslash;
        if (backslash >= 0 && backslash < limit) {
          this.#escape = true;
          i = backslash + 1;
          continue;
        }
        if (quote < 0) return -1;
        this.#inString = false;
        i = quote + 1;
        if (this.#nesting === 0) return i;
        continue;
      }
      const byte = chunk[i]!;
      if (byte === QUOTE) this.#inString = true;
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) this.#nesting++;
      else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        if (--this.#nesting === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
}
