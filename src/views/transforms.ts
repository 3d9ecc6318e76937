/**
 * The transforms a path may end with (`versions | keys | length`), each a function of one JSON
 * value. They never throw: a value of the wrong kind gives the empty result named below, so a
 * missing field (`null`) flows through a chain of them.
 *
 * | transform | of an object | of an array | of anything else |
 * | --------- | ------------ | ----------- | ---------------- |
 * | `keys`    | its keys     | its indexes | `[]`             |
 * | `values`  | its values   | itself      | `[]`             |
 * | `entries` | `[key, value]` pairs | `[index, value]` pairs | `[]` |
 * | `length`  | its size     | its length  | a string's length (UTF-16 units), else `0` |
 * | `first`, `last` | `null` | its first / last element, `null` when empty | `null` |
 * | `sort`    | `[]`         | a sorted copy, in the order of `compareValues` | `[]` |
 * | `reverse` | `[]`         | a reversed copy | `[]` |
 * | `unique`  | `[]`         | without repeats (deep equality), first kept | `[]` |
 * | `compact` | `[]`         | without `null` elements | `[]` |
 * | `flatten` | `[]`         | nested arrays spliced in, one level | `[]` |
 * | `sum`     | `0`          | the sum of its numbers | a number itself, else `0` |
 * | `min`, `max` | `null`    | the least / greatest non-null element, `null` when none | `null` |
 *
 * @module
 */

import { canonicalJson, compareValues, isObject } from "./values.ts";

/** A transform: one JSON value in, one out. */
export type Transform = (value: unknown) => unknown;

function arrayOr<T>(value: unknown, whenArray: (array: unknown[]) => T, otherwise: T): T {
  return Array.isArray(value) ? whenArray(value) : otherwise;
}

function extreme(value: unknown, sign: 1 | -1): unknown {
  if (!Array.isArray(value)) return null;
  let best: unknown = null;
  for (const item of value) {
    if (item === null || item === undefined) continue;
    if (best === null || sign * compareValues(item, best) > 0) best = item;
  }
  return best;
}

/**
 * Every transform by name.
 *
 * @example
 * ```ts
 * import { TRANSFORMS } from "./transforms.ts";
 * console.assert(TRANSFORMS.length!({ a: 1, b: 2 }) === 2);
 * console.assert(JSON.stringify(TRANSFORMS.sort!([3, 1, 2])) === "[1,2,3]");
 * console.assert(JSON.stringify(TRANSFORMS.keys!(null)) === "[]");
 * ```
 */
export const TRANSFORMS: Readonly<Record<string, Transform>> = Object.freeze({
  keys: (v: unknown) =>
    isObject(v) ? Object.keys(v) : arrayOr(v, (a) => a.map((_, i) => i), [] as unknown[]),
  values: (v: unknown) => isObject(v) ? Object.values(v) : arrayOr(v, (a) => a.slice(), []),
  length: (v: unknown) =>
    typeof v === "string" || Array.isArray(v) ? v.length : isObject(v) ? Object.keys(v).length : 0,
  first: (v: unknown) => arrayOr(v, (a) => a.length > 0 ? a[0] ?? null : null, null),
  last: (v: unknown) => arrayOr(v, (a) => a.length > 0 ? a[a.length - 1] ?? null : null, null),
  sort: (v: unknown) => arrayOr(v, (a) => a.slice().sort(compareValues), []),
  reverse: (v: unknown) => arrayOr(v, (a) => a.slice().reverse(), []),
  unique: (v: unknown) =>
    arrayOr(v, (a) => {
      const seen = new Set<string>();
      const out: unknown[] = [];
      for (const item of a) {
        const key = typeof item === "string" ? `s${item}` : canonicalJson(item);
        if (seen.has(key)) continue;
        seen.add(key);
        out.push(item ?? null);
      }
      return out;
    }, []),
  compact: (v: unknown) =>
    arrayOr(v, (a) => a.filter((item) => item !== null && item !== undefined), []),
  flatten: (v: unknown) => arrayOr(v, (a) => a.flat(1), []),
  entries: (v: unknown) =>
    isObject(v)
      ? Object.entries(v)
      : arrayOr(v, (a) => a.map((item, i) => [i, item ?? null]), [] as unknown[]),
  sum: (v: unknown) =>
    typeof v === "number" ? v : arrayOr(
      v,
      (a) => a.reduce<number>((sum, item) => typeof item === "number" ? sum + item : sum, 0),
      0,
    ),
  min: (v: unknown) => extreme(v, -1),
  max: (v: unknown) => extreme(v, 1),
});
