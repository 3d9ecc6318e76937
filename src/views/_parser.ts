/**
 * The parser of view expressions: tokens to a syntax tree, by recursive descent.
 *
 * ```
 * select    = item ("," item)*
 * item      = path ["as" (ident | string)]
 * path      = (ident | bracket) ("." ident | bracket)* ("|" ident)*
 * bracket   = "[" (string | number | "." ident ("." ident)* | path) "]"
 * condition = and ("||" and)*
 * and       = unary ("&&" unary)*
 * unary     = "!" unary | "(" condition ")" | operand [op operand]
 * operand   = path | string | number | "null" | "true" | "false"
 * op        = "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
 * ```
 *
 * @module
 */

import { ViewExpressionError } from "./expression_error.ts";
import { type Token, tokenize, type TokenKind } from "./_lexer.ts";
import { TRANSFORMS } from "./transforms.ts";

/**
 * One step of a path: a key, an array index, a key taken from the input record (`[.field]`), or
 * a key taken from the document itself (`[dist-tags.latest]`).
 */
export type Step =
  | { kind: "key"; key: string }
  | { kind: "index"; index: number }
  | { kind: "input"; path: readonly string[]; start: number }
  | { kind: "ref"; path: PathNode };

/** A path with its transforms, and the text it was written as. */
export interface PathNode {
  kind: "path";
  steps: readonly Step[];
  transforms: readonly string[];
  /** The source text of the path and its transforms. */
  text: string;
  start: number;
}

/** A literal value. */
export interface LiteralNode {
  kind: "literal";
  value: string | number | boolean | null;
}

/** Something compared: a path or a literal. */
export type OperandNode = PathNode | LiteralNode;

/** A comparison operator. */
export type CompareOp = "=" | "!=" | "<" | "<=" | ">" | ">=";

/** A condition. */
export type ConditionNode =
  | { kind: "or"; left: ConditionNode; right: ConditionNode }
  | { kind: "and"; left: ConditionNode; right: ConditionNode }
  | { kind: "not"; operand: ConditionNode }
  | { kind: "compare"; op: CompareOp; left: OperandNode; right: OperandNode }
  | { kind: "truthy"; operand: OperandNode };

/** One item of a select list. */
export interface SelectItemNode {
  path: PathNode;
  /** The output name: the alias, else the path as written. */
  name: string;
  /** Where the name was written (the alias, else the path). */
  nameStart: number;
}

/** The transforms a path may end with. */
export const TRANSFORM_NAMES: readonly string[] = Object.keys(TRANSFORMS);

const KEYWORDS = new Set(["null", "true", "false"]);
const COMPARE_OPS = new Set<TokenKind>(["=", "!=", "<", "<=", ">", ">="]);

function describe(token: Token): string {
  if (token.kind === "end") return "the end of the expression";
  if (token.kind === "string") return `the string ${JSON.stringify(token.text)}`;
  return `'${token.text}'`;
}

class Parser {
  #source: string;
  #tokens: Token[];
  #at = 0;
  #inputs: boolean;

  constructor(source: string, inputs: boolean) {
    this.#source = source;
    this.#tokens = tokenize(source);
    this.#inputs = inputs;
  }

  get #peek(): Token {
    return this.#tokens[this.#at]!;
  }

  #next(): Token {
    const token = this.#tokens[this.#at]!;
    if (token.kind !== "end") this.#at++;
    return token;
  }

  #fail(token: Token, expected: string): never {
    throw new ViewExpressionError(
      this.#source,
      token.start,
      `Expected ${expected}, found ${describe(token)}`,
    );
  }

  #expect(kind: TokenKind, expected: string): Token {
    const token = this.#peek;
    if (token.kind !== kind) this.#fail(token, expected);
    return this.#next();
  }

  end(): void {
    if (this.#peek.kind !== "end") this.#fail(this.#peek, "the end of the expression");
  }

  selectList(): SelectItemNode[] {
    const items: SelectItemNode[] = [];
    const names = new Set<string>();
    while (true) {
      const path = this.path("a field path");
      let name = path.text;
      let nameStart = path.start;
      const after = this.#peek;
      if (after.kind === "ident" && after.text === "as") {
        this.#next();
        const alias = this.#peek;
        if (alias.kind !== "ident" && alias.kind !== "string") {
          this.#fail(alias, "a name after 'as'");
        }
        if (alias.text === "") this.#fail(alias, "a name that is not empty");
        this.#next();
        name = alias.text;
        nameStart = alias.start;
      }
      if (names.has(name)) {
        throw new ViewExpressionError(
          this.#source,
          nameStart,
          `Duplicate output name ${JSON.stringify(name)} (give one an alias with 'as')`,
        );
      }
      names.add(name);
      items.push({ path, name, nameStart });
      const next = this.#peek;
      if (next.kind === ",") {
        this.#next();
        continue;
      }
      if (next.kind === "end") return items;
      this.#fail(next, "',', 'as', '|' or the end of the expression");
    }
  }

  path(expected: string): PathNode {
    const first = this.#peek;
    const steps: Step[] = [];
    if (first.kind === "ident" && !KEYWORDS.has(first.text)) {
      this.#next();
      steps.push({ kind: "key", key: first.text });
    } else if (first.kind === "[") {
      steps.push(this.#bracket());
    } else {
      this.#fail(first, expected);
    }
    let end = this.#tokens[this.#at - 1]!.end;
    while (true) {
      const token = this.#peek;
      if (token.kind === ".") {
        this.#next();
        const name = this.#expect("ident", "a field name after '.'");
        steps.push({ kind: "key", key: name.text });
        end = name.end;
      } else if (token.kind === "[") {
        steps.push(this.#bracket());
        end = this.#tokens[this.#at - 1]!.end;
      } else break;
    }
    const transforms: string[] = [];
    while (this.#peek.kind === "|") {
      this.#next();
      const name = this.#peek;
      if (name.kind !== "ident" || !TRANSFORM_NAMES.includes(name.text)) {
        this.#fail(name, `a transform (${TRANSFORM_NAMES.join(", ")})`);
      }
      this.#next();
      transforms.push(name.text);
      end = name.end;
    }
    return {
      kind: "path",
      steps,
      transforms,
      text: this.#source.slice(first.start, end),
      start: first.start,
    };
  }

  #bracket(): Step {
    this.#expect("[", "'['");
    const token = this.#peek;
    let step: Step;
    if (token.kind === "string") {
      this.#next();
      step = { kind: "key", key: token.text };
    } else if (token.kind === "number") {
      if (!Number.isSafeInteger(token.value)) this.#fail(token, "an integer index");
      this.#next();
      step = { kind: "index", index: token.value };
    } else if (token.kind === ".") {
      if (!this.#inputs) {
        throw new ViewExpressionError(
          this.#source,
          token.start,
          "An input field reference ([.field]) is only allowed in 'view enrich --add'",
        );
      }
      this.#next();
      const path = [this.#expect("ident", "an input field name after '.'").text];
      while (this.#peek.kind === ".") {
        this.#next();
        path.push(this.#expect("ident", "an input field name after '.'").text);
      }
      step = { kind: "input", path, start: token.start };
    } else if ((token.kind === "ident" && !KEYWORDS.has(token.text)) || token.kind === "[") {
      step = { kind: "ref", path: this.path("a path") };
    } else {
      this.#fail(token, "a quoted key, an integer index, a path or .field inside '[ ]'");
    }
    this.#expect("]", "']'");
    return step;
  }

  condition(): ConditionNode {
    let left = this.#and();
    while (this.#peek.kind === "||") {
      this.#next();
      left = { kind: "or", left, right: this.#and() };
    }
    return left;
  }

  #and(): ConditionNode {
    let left = this.#unary();
    while (this.#peek.kind === "&&") {
      this.#next();
      left = { kind: "and", left, right: this.#unary() };
    }
    return left;
  }

  #unary(): ConditionNode {
    const token = this.#peek;
    if (token.kind === "!") {
      this.#next();
      return { kind: "not", operand: this.#unary() };
    }
    if (token.kind === "(") {
      this.#next();
      const inner = this.condition();
      this.#expect(")", "')' or an operator ('&&', '||')");
      return inner;
    }
    const left = this.#operand();
    const op = this.#peek;
    if (!COMPARE_OPS.has(op.kind)) return { kind: "truthy", operand: left };
    this.#next();
    const right = this.#operand();
    return { kind: "compare", op: op.kind as CompareOp, left, right };
  }

  #operand(): OperandNode {
    const token = this.#peek;
    const expected = "a field path, a string, a number, null, true, false, '!' or '('";
    if (token.kind === "string") {
      this.#next();
      return { kind: "literal", value: token.text };
    }
    if (token.kind === "number") {
      this.#next();
      return { kind: "literal", value: token.value };
    }
    if (token.kind === "ident" && KEYWORDS.has(token.text)) {
      this.#next();
      return { kind: "literal", value: token.text === "null" ? null : token.text === "true" };
    }
    return this.path(expected);
  }
}

/**
 * Parses a select list.
 *
 * @param source The expression.
 * @param inputs Whether `[.field]` references to an input record are allowed.
 * @returns Its items, in order.
 * @throws {ViewExpressionError} When it does not parse.
 */
export function parseSelect(source: string, inputs = false): SelectItemNode[] {
  const parser = new Parser(source, inputs);
  const items = parser.selectList();
  parser.end();
  return items;
}

/**
 * Parses a condition (a where or filter expression).
 *
 * @param source The expression.
 * @returns Its tree.
 * @throws {ViewExpressionError} When it does not parse.
 */
export function parseCondition(source: string): ConditionNode {
  const parser = new Parser(source, false);
  const node = parser.condition();
  parser.end();
  return node;
}
