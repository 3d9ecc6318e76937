/**
 * JSON values as views compare them: one total order (for `sort`, `min`, `max`, and the keys of
 * `view run`), deep equality, a canonical text (for `unique` and join keys), and truthiness.
 *
 * The order is CouchDB's view collation, simplified: `null` < `false` < `true` < numbers <
 * strings (in code-point order) < arrays (element by element, then by length) < objects
 * (member by member in their order, key then value, then by size).
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";

/** A plain JSON object (not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function rank(value: unknown): number {
  if (value === null || value === undefined) return 0;
  switch (typeof value) {
    case "boolean":
      return value ? 2 : 1;
    case "number":
      return 3;
    case "string":
      return 4;
    default:
      return Array.isArray(value) ? 5 : 6;
  }
}

/**
 * Compares two JSON values in the collation order of views.
 *
 * @param a A value.
 * @param b Another value.
 * @returns A negative number, zero, or a positive number.
 *
 * @example
 * ```ts
 * import { compareValues } from "./values.ts";
 * const sorted = [3, "a", null, [1], true, 1].sort(compareValues);
 * console.assert(JSON.stringify(sorted) === '[null,true,1,3,"a",[1]]');
 * ```
 */
export function compareValues(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 3) return (a as number) - (b as number);
  if (ra === 4) return compareKeys(a as string, b as string);
  if (ra === 5) {
    const x = a as unknown[];
    const y = b as unknown[];
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) {
      const c = compareValues(x[i], y[i]);
      if (c !== 0) return c;
    }
    return x.length - y.length;
  }
  if (ra === 6) {
    const x = Object.entries(a as object);
    const y = Object.entries(b as object);
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) {
      const c = compareKeys(x[i]![0], y[i]![0]) || compareValues(x[i]![1], y[i]![1]);
      if (c !== 0) return c;
    }
    return x.length - y.length;
  }
  return 0;
}

/**
 * Deep equality of JSON values; object members may be in any order.
 *
 * @param a A value.
 * @param b Another value.
 * @returns Whether they are equal.
 *
 * @example
 * ```ts
 * import { valuesEqual } from "./values.ts";
 * console.assert(valuesEqual({ a: [1, { b: 2 }], c: null }, { c: null, a: [1, { b: 2 }] }));
 * console.assert(!valuesEqual(1, "1"));
 * ```
 */
export function valuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return (a ?? null) === (b ?? null);
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!valuesEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key)) return false;
    if (!valuesEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) {
      return false;
    }
  }
  return true;
}

/**
 * A JSON text of a value with object members sorted by key, so equal values have equal texts.
 *
 * @param value A JSON value (`undefined` is `null`).
 * @returns The canonical text.
 *
 * @example
 * ```ts
 * import { canonicalJson } from "./values.ts";
 * console.assert(canonicalJson({ b: 1, a: [true] }) === '{"a":[true],"b":1}');
 * ```
 */
export function canonicalJson(value: unknown): string {
  if (value === undefined || value === null) return "null";
  if (typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort(compareKeys);
  return `{${
    keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")
  }}`;
}

/**
 * Whether a value counts as true in a condition: everything but `null`, `false`, `0` and `""`
 * (an empty array or object is true).
 *
 * @param value A JSON value.
 * @returns Its truth.
 */
export function truthy(value: unknown): boolean {
  return value !== null && value !== undefined && value !== false && value !== 0 && value !== "";
}
