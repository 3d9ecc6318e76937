/**
 * Pivots and partition ranges: sorted keys that split the `_all_docs` key space into ranges.
 *
 * Pivots `p1..pn` make `n + 1` ranges: `("", p1)`, `[p1, p2)`, ..., `[pn, "")`, where `""` is an
 * open end. Every range excludes its end (requests use `inclusive_end=false`), so a pivot's own
 * row belongs to exactly one range, and together the ranges cover the key space with no gap and
 * no overlap.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import { partitionKey } from "../storage/keys.ts";
import { sha256 } from "../_util/sha256.ts";
import { bytesToHex } from "../_util/hex.ts";
import { parseLineList, stripBom } from "../_util/line_list.ts";

/** A bad pivot list. `index` and `value` name the pivot at fault. */
export class PivotError extends Error {
  /** The error name. */
  override name = "PivotError";
  /** The index of the pivot at fault. */
  index: number;
  /** The pivot at fault. */
  value: unknown;
  /**
   * Creates the error.
   *
   * @param message What is wrong.
   * @param index The index of the pivot at fault.
   * @param value The pivot at fault.
   */
  constructor(message: string, index: number, value: unknown) {
    super(message);
    this.index = index;
    this.value = value;
  }
}

/** One key range of a partition set. */
export interface PartitionRange {
  /** The range's position in its set, from 0. */
  index: number;
  /** The first key (inclusive), or `""` for the open start. */
  startKey: string;
  /** The end key (exclusive), or `""` for the open end. */
  endKey: string;
  /** The range's cache key, which is also its stable id. */
  key: string;
}

function hasLoneSurrogate(text: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

/**
 * Checks a pivot list: an array of non-empty strings, strictly increasing in code-point order.
 *
 * @param pivots The candidate list.
 * @returns The same list, typed.
 * @throws {PivotError} Naming the index and value at fault.
 *
 * @example
 * ```ts
 * import { validatePivots } from "./pivots.ts";
 * validatePivots(["@", "a", "n"]);
 * try {
 *   validatePivots(["b", "a"]);
 * } catch (error) {
 *   console.assert((error as Error).message.includes("index 1"));
 * }
 * ```
 */
export function validatePivots(pivots: unknown): string[] {
  if (!Array.isArray(pivots)) {
    throw new PivotError(
      `Invalid pivots: expected an array of strings, received ${typeof pivots}`,
      -1,
      pivots,
    );
  }
  for (let i = 0; i < pivots.length; i++) {
    const value: unknown = pivots[i];
    const shown = JSON.stringify(value);
    if (typeof value !== "string") {
      throw new PivotError(
        `Invalid pivot at index ${i}: expected a string, received ${shown}`,
        i,
        value,
      );
    }
    if (value === "") {
      throw new PivotError(`Invalid pivot at index ${i}: pivots must not be empty`, i, value);
    }
    if (hasLoneSurrogate(value)) {
      throw new PivotError(
        `Invalid pivot at index ${i}: not valid Unicode (lone surrogate), received ${shown}`,
        i,
        value,
      );
    }
    if (i > 0) {
      const previous = pivots[i - 1] as string;
      const order = compareKeys(previous, value);
      if (order === 0) {
        throw new PivotError(
          `Invalid pivot at index ${i}: duplicate of index ${i - 1}, received ${shown}`,
          i,
          value,
        );
      }
      if (order > 0) {
        throw new PivotError(
          `Invalid pivot at index ${i}: pivots must increase in code-point order, received ${shown} after ${
            JSON.stringify(previous)
          }`,
          i,
          value,
        );
      }
    }
  }
  return pivots as string[];
}

/**
 * Parses pivots from the text of a `.json` file (an array) or a `.txt` file (one key per line,
 * read as every line list is, see `parseLineList`: trimmed, blank lines and `#`
 * comments ignored, a `#` after whitespace starts a comment), then validates them. A leading
 * byte order mark is ignored in both. A key with surrounding whitespace, or with whitespace
 * followed by `#`, can only be given in a `.json` file.
 *
 * @param text The file contents.
 * @param format `json` or `txt`.
 * @returns The validated pivots.
 * @throws {PivotError} For bad JSON or a bad list.
 */
export function parsePivots(text: string, format: "json" | "txt"): string[] {
  if (format === "json") {
    let value: unknown;
    try {
      value = JSON.parse(stripBom(text));
    } catch (cause) {
      throw new PivotError(
        `Invalid pivots: the file is not JSON (${(cause as Error).message})`,
        -1,
        text,
      );
    }
    return validatePivots(value);
  }
  return validatePivots(parseLineList(text).map((entry) => entry.value));
}

/**
 * The ranges a pivot list makes, each with its cache key.
 *
 * @param pivots Validated pivots.
 * @param origin The origin key for the cache keys.
 * @returns `pivots.length + 1` ranges in key order.
 *
 * @example
 * ```ts
 * import { rangesFromPivots } from "./pivots.ts";
 * const ranges = rangesFromPivots(["@", "@a"], "npm");
 * console.assert(ranges.length === 3);
 * console.assert(ranges[1]!.key === "v1:partition:npm:40:4061");
 * ```
 */
export function rangesFromPivots(pivots: readonly string[], origin: string): PartitionRange[] {
  const bounds = ["", ...pivots, ""];
  const ranges: PartitionRange[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const startKey = bounds[i]!;
    const endKey = bounds[i + 1]!;
    ranges.push({ index: i, startKey, endKey, key: partitionKey(origin, startKey, endKey) });
  }
  return ranges;
}

/**
 * A stable id for a partition set: derived from the origin key and the pivots.
 *
 * @param origin The origin key.
 * @param pivots The pivots.
 * @returns 16 lowercase hex digits.
 */
export function partitionSetId(origin: string, pivots: readonly string[]): string {
  const digest = sha256(new TextEncoder().encode(JSON.stringify([origin, pivots])));
  return bytesToHex(digest.subarray(0, 8));
}
