/**
 * View expressions: select lists and conditions, parsed (never evaluated as JavaScript) and
 * compiled once into closures over parsed JSON documents.
 *
 * ## Select lists
 * Comma-separated paths, each with optional transforms and an alias:
 * `name, time.modified, dependencies["node-gyp"], versions | keys | length as count`.
 * - A path starts with a field name (`[A-Za-z_$][A-Za-z0-9_$-]*`, so `dist-tags` is one name)
 *   or a bracket, and goes on with `.name` or brackets: `["any key"]` (a quoted key),
 *   `[0]` (an array index; negative counts from the end), `[path]` (the value of another path
 *   of the same document used as the key: `versions[dist-tags.latest].scripts`), or, in
 *   `view enrich` only, `[.field]` (the value of the input record's field used as the key:
 *   `time[.version]`).
 * - Transforms follow `|`: see `./transforms.ts`.
 * - The output name is the alias (`as name` or `as "any name"`), else the path as written.
 * - A missing field, or a step into something that is not an object or array, is `null`. Only
 *   a document's own members are seen (`constructor` is not a field of every object).
 *
 * ## Conditions (`--where`, `--filter`)
 * Comparisons `=` (also `==`), `!=`, `<`, `<=`, `>`, `>=` between paths (with transforms) and
 * literals (strings in `"` or `'`, numbers, `null`, `true`, `false`); `&&`, `||`, `!` and
 * parentheses; a path or literal alone is a truth test (everything but `null`, `false`, `0` and
 * `""` is true). `=` and `!=` compare deeply. `<`, `<=`, `>`, `>=` compare two numbers or two
 * strings (in code-point order) and are false for anything else, a missing field included.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import { ViewExpressionError } from "./expression_error.ts";
import {
  type ConditionNode,
  type OperandNode,
  parseCondition,
  parseSelect,
  type PathNode,
  type Step,
  TRANSFORM_NAMES,
} from "./_parser.ts";
import { TRANSFORMS } from "./transforms.ts";
import { isObject, truthy, valuesEqual } from "./values.ts";

export { ViewExpressionError };
export { TRANSFORM_NAMES };

/** A compiled path: the value it selects from a document (and an input record). */
export type PathGetter = (doc: unknown, input?: unknown) => unknown;

/** Options of {@linkcode compileSelect}. */
export interface SelectOptions {
  /** Allow `[.field]` references to an input record (for `view enrich`).
   * @default {false} */
  inputs?: boolean;
  /** Input fields under other names: `{ version: "v" }` makes `[.version]` read the input's `v`.
   * @default {{}} */
  inputFields?: Readonly<Record<string, string>>;
}

/** One field of a compiled select list. */
export interface SelectField {
  /** The output name. */
  name: string;
  /** The path and transforms as written. */
  path: string;
  /** Whether it is a plain path of field names without transforms (`name`, `time.modified`). */
  plain: boolean;
  /** The field names of a plain path. */
  keys: readonly string[] | undefined;
  /** The value of the field in a document. */
  get: PathGetter;
}

/** A compiled select list. */
export interface CompiledSelect {
  /** The fields, in order. */
  readonly fields: readonly SelectField[];
  /** The output names, in order. */
  readonly names: readonly string[];
  /** The record of a document: each output name with its value (`null` when missing). */
  project(doc: unknown, input?: unknown): Record<string, unknown>;
}

function own(value: unknown, key: string): unknown {
  return isObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

function index(value: unknown, i: number): unknown {
  if (Array.isArray(value)) return value[i < 0 ? value.length + i : i];
  return own(value, String(i));
}

/** A step of a path: from a value to the next, given the input record and the document. */
type StepFn = (value: unknown, input: unknown, root: unknown) => unknown;

/** The value a key taken from somewhere (`[.field]`, `[path]`) selects in `value`. */
function byKey(value: unknown, key: unknown): unknown {
  if (typeof key === "string") return own(value, key);
  if (typeof key === "number" && Number.isSafeInteger(key)) return index(value, key);
  return undefined;
}

function stepper(step: Step, inputFields: Readonly<Record<string, string>>): StepFn {
  switch (step.kind) {
    case "key": {
      const key = step.key;
      return (value) => own(value, key);
    }
    case "index": {
      const i = step.index;
      return (value) => index(value, i);
    }
    case "input": {
      const [head, ...rest] = step.path;
      const first = inputFields[head!] ?? head!;
      return (value, input) => {
        let key = own(input, first);
        for (const part of rest) key = own(key, part);
        return byKey(value, key);
      };
    }
    case "ref": {
      const get = compilePath(step.path, inputFields);
      return (value, input, root) => byKey(value, get(root, input));
    }
  }
}

function compilePath(node: PathNode, inputFields: Readonly<Record<string, string>>): PathGetter {
  const steps = node.steps.map((step) => stepper(step, inputFields));
  const transforms = node.transforms.map((name) => TRANSFORMS[name]!);
  const plainKeys = node.steps.every((s) => s.kind === "key")
    ? node.steps.map((s) => (s as { key: string }).key)
    : undefined;
  let walk: PathGetter;
  if (plainKeys && plainKeys.length === 1) {
    const [a] = plainKeys as [string];
    walk = (doc) => own(doc, a);
  } else if (plainKeys && plainKeys.length === 2) {
    const [a, b] = plainKeys as [string, string];
    walk = (doc) => own(own(doc, a), b);
  } else {
    walk = (doc, input) => {
      let value = doc;
      for (const step of steps) {
        if (value === undefined) return undefined;
        value = step(value, input, doc);
      }
      return value;
    };
  }
  if (transforms.length === 0) return (doc, input) => walk(doc, input) ?? null;
  return (doc, input) => {
    let value: unknown = walk(doc, input) ?? null;
    for (const transform of transforms) value = transform(value);
    return value ?? null;
  };
}

/**
 * Compiles a select list.
 *
 * @param source The expression: `name, versions | keys as versions, time.modified`.
 * @param options Whether `[.field]` input references are allowed.
 * @returns The compiled list.
 * @throws {ViewExpressionError} When it does not parse; `position` says where.
 *
 * @example
 * ```ts
 * import { compileSelect } from "./expressions.ts";
 * const select = compileSelect('name, versions | keys | length as count, dependencies["node-gyp"]');
 * const doc = { name: "a", versions: { "1.0.0": {}, "1.1.0": {} }, dependencies: {} };
 * const record = select.project(doc);
 * console.assert(JSON.stringify(record) === '{"name":"a","count":2,"dependencies[\\"node-gyp\\"]":null}');
 * ```
 */
export function compileSelect(source: string, options: SelectOptions = {}): CompiledSelect {
  const items = parseSelect(source, options.inputs ?? false);
  const inputFields = options.inputFields ?? {};
  const fields: SelectField[] = items.map((item) => {
    const plain = item.path.transforms.length === 0 &&
      item.path.steps.every((s) => s.kind === "key");
    return {
      name: item.name,
      path: item.path.text,
      plain,
      keys: plain ? item.path.steps.map((s) => (s as { key: string }).key) : undefined,
      get: compilePath(item.path, inputFields),
    };
  });
  const names = fields.map((f) => f.name);
  const getters = fields.map((f) => f.get);
  // `__proto__` as a plain assignment would set the prototype, not a member.
  const safe = !names.includes("__proto__");
  const project = safe
    ? (doc: unknown, input?: unknown) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i++) out[names[i]!] = getters[i]!(doc, input);
      return out;
    }
    : (doc: unknown, input?: unknown) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i++) {
        Object.defineProperty(out, names[i]!, {
          value: getters[i]!(doc, input),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    };
  return { fields, names, project };
}

/** A compiled condition: whether a record matches. */
export type Predicate = (record: unknown) => boolean;

function operand(node: OperandNode): PathGetter {
  if (node.kind === "literal") {
    const value = node.value;
    return () => value;
  }
  return compilePath(node, {});
}

function ordered(
  left: PathGetter,
  right: PathGetter,
  test: (c: number) => boolean,
): Predicate {
  return (record) => {
    const a = left(record);
    const b = right(record);
    if (typeof a === "number" && typeof b === "number") return test(a < b ? -1 : a > b ? 1 : 0);
    if (typeof a === "string" && typeof b === "string") {
      return test(a === b ? 0 : compareKeys(a, b));
    }
    return false;
  };
}

function compileCondition(node: ConditionNode): Predicate {
  switch (node.kind) {
    case "or": {
      const left = compileCondition(node.left);
      const right = compileCondition(node.right);
      return (record) => left(record) || right(record);
    }
    case "and": {
      const left = compileCondition(node.left);
      const right = compileCondition(node.right);
      return (record) => left(record) && right(record);
    }
    case "not": {
      const inner = compileCondition(node.operand);
      return (record) => !inner(record);
    }
    case "truthy": {
      const get = operand(node.operand);
      return (record) => truthy(get(record));
    }
    case "compare": {
      const left = operand(node.left);
      const right = operand(node.right);
      switch (node.op) {
        case "=":
          return (record) => valuesEqual(left(record), right(record));
        case "!=":
          return (record) => !valuesEqual(left(record), right(record));
        case "<":
          return ordered(left, right, (c) => c < 0);
        case "<=":
          return ordered(left, right, (c) => c <= 0);
        case ">":
          return ordered(left, right, (c) => c > 0);
        case ">=":
          return ordered(left, right, (c) => c >= 0);
      }
    }
  }
}

/**
 * Compiles a condition (`--where` over documents, `--filter` over a view's records).
 *
 * @param source The expression: `scripts.install != null && !dependencies["node-gyp"]`.
 * @returns Whether a record matches.
 * @throws {ViewExpressionError} When it does not parse; `position` says where.
 *
 * @example
 * ```ts
 * import { compileWhere } from "./expressions.ts";
 * const where = compileWhere('versions | keys | length > 1 && license = "MIT"');
 * console.assert(where({ versions: { a: {}, b: {} }, license: "MIT" }));
 * console.assert(!where({ versions: { a: {} }, license: "MIT" }));
 * ```
 */
export function compileWhere(source: string): Predicate {
  return compileCondition(parseCondition(source));
}
