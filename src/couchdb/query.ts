/**
 * The query of an `_all_docs` request, parsed with the strictness of npm's replication endpoint:
 * `startkey`, `endkey` and `key` are JSON strings, `keys` a JSON array of strings, `limit` at most
 * 10,000 (1,000 when absent), `inclusive_end` and `descending` `true` or `false`;
 * `include_docs=true`, `skip`, unknown or repeated parameters, a reversed range and `..` anywhere
 * in the query are refused. The read replica answers with it, and the test fixture that stands in
 * for npm uses the same rules.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from "./rows.ts";

/** A request the endpoint refuses (answered 400 `bad_request` with this message as reason). */
export class AllDocsQueryError extends Error {
  /** The error name. */
  override name = "AllDocsQueryError";
}

const KNOWN_PARAMS = new Set([
  "startkey",
  "endkey",
  "key",
  "keys",
  "limit",
  "descending",
  "inclusive_end",
  "include_docs",
]);

function parseKeyParam(name: string, raw: string): string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new AllDocsQueryError(`${name} is not valid JSON: ${raw}`);
  }
  if (typeof value !== "string") throw new AllDocsQueryError(`${name} must be a JSON string`);
  return value;
}

function parseBool(name: string, raw: string): boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new AllDocsQueryError(`${name} must be true or false`);
}

/** A parsed `_all_docs` query. */
export interface AllDocsQuery {
  start: string | undefined;
  end: string | undefined;
  keys: string[] | undefined;
  inclusiveEnd: boolean;
  descending: boolean;
  limit: number;
}

/**
 * Parses and checks the raw query string of an `_all_docs` request.
 *
 * @param rawQuery The query, without `?`, as sent (percent-encoding intact).
 * @returns The query.
 * @throws {AllDocsQueryError} For anything the endpoint refuses.
 *
 * @example
 * ```ts
 * import { parseAllDocsQuery } from "./query.ts";
 * const query = parseAllDocsQuery("startkey=%22a%22&limit=10");
 * console.assert(query.start === "a" && query.limit === 10 && query.inclusiveEnd);
 * ```
 */
export function parseAllDocsQuery(rawQuery: string): AllDocsQuery {
  if (rawQuery.includes("..")) throw new AllDocsQueryError("path traversal is not allowed");
  const params = new URLSearchParams(rawQuery);
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (name === "skip") throw new AllDocsQueryError("skip is not supported: page with startkey");
    if (!KNOWN_PARAMS.has(name)) throw new AllDocsQueryError(`unknown parameter ${name}`);
    if (seen.has(name)) throw new AllDocsQueryError(`repeated parameter ${name}`);
    seen.add(name);
  }
  const get = (name: string): string | undefined => params.get(name) ?? undefined;
  const includeDocs = get("include_docs");
  if (includeDocs !== undefined && parseBool("include_docs", includeDocs)) {
    throw new AllDocsQueryError("include_docs is not supported");
  }
  let limit = DEFAULT_PAGE_LIMIT;
  const rawLimit = get("limit");
  if (rawLimit !== undefined) {
    if (!/^[0-9]+$/.test(rawLimit)) {
      throw new AllDocsQueryError("limit must be a non-negative integer");
    }
    limit = Number(rawLimit);
    if (limit > MAX_PAGE_LIMIT) {
      throw new AllDocsQueryError(`limit must be at most ${MAX_PAGE_LIMIT}`);
    }
  }
  const rawDescending = get("descending");
  const descending = rawDescending !== undefined && parseBool("descending", rawDescending);
  const rawInclusive = get("inclusive_end");
  const inclusiveEnd = rawInclusive === undefined || parseBool("inclusive_end", rawInclusive);
  const rawKeys = get("keys");
  const rawKey = get("key");
  const rawStart = get("startkey");
  const rawEnd = get("endkey");
  if (rawKeys !== undefined) {
    if (rawKey !== undefined || rawStart !== undefined || rawEnd !== undefined) {
      throw new AllDocsQueryError("keys is incompatible with key, startkey and endkey");
    }
    let keys: unknown;
    try {
      keys = JSON.parse(rawKeys);
    } catch {
      throw new AllDocsQueryError("keys is not valid JSON");
    }
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
      throw new AllDocsQueryError("keys must be a JSON array of strings");
    }
    return { start: undefined, end: undefined, keys, inclusiveEnd, descending, limit };
  }
  let start = rawStart === undefined ? undefined : parseKeyParam("startkey", rawStart);
  let end = rawEnd === undefined ? undefined : parseKeyParam("endkey", rawEnd);
  if (rawKey !== undefined) {
    if (start !== undefined || end !== undefined) {
      throw new AllDocsQueryError("key is incompatible with startkey and endkey");
    }
    start = end = parseKeyParam("key", rawKey);
  }
  if (start !== undefined && end !== undefined) {
    const order = compareKeys(start, end);
    if (descending ? order < 0 : order > 0) {
      throw new AllDocsQueryError(
        "No rows can match your key range, reverse your start_key and end_key or set descending=true",
      );
    }
  }
  return { start, end, keys: undefined, inclusiveEnd, descending, limit };
}
