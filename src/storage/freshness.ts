/**
 * HTTP freshness of cache entries: how long an entry may be used without asking the origin,
 * from its `Cache-Control`, the `Age` it arrived with and the time it was fetched or last
 * revalidated (RFC 9111 §4.2).
 *
 * @module
 */

import type { CacheEntryInfo } from "./entry.ts";

/** Freshness of an entry at a moment. */
export interface Freshness {
  /** The entry may be used without asking the origin. */
  fresh: boolean;
  /** The entry's current age in milliseconds: the `Age` it arrived with plus the time since it
   * was fetched or revalidated. */
  ageMs: number;
  /** The freshness lifetime in milliseconds. */
  maxAgeMs: number;
  /** The entry has a validator (`ETag` or `Last-Modified`) for a conditional request. */
  canRevalidate: boolean;
}

/**
 * Parses the freshness lifetime out of a `Cache-Control` value.
 *
 * @param cacheControl The header value.
 * @returns Seconds, or `undefined` when the header gives no lifetime.
 *
 * @example
 * ```ts
 * import { maxAgeSeconds } from "./freshness.ts";
 * console.assert(maxAgeSeconds("public, max-age=300") === 300);
 * console.assert(maxAgeSeconds("no-cache, max-age=300") === 0);
 * console.assert(maxAgeSeconds("public") === undefined);
 * ```
 */
export function maxAgeSeconds(cacheControl: string | undefined): number | undefined {
  if (!cacheControl) return undefined;
  const directives = cacheControl.toLowerCase().split(",").map((d) => d.trim());
  if (directives.some((d) => d === "no-cache" || d === "no-store")) return 0;
  for (const d of directives) {
    const m = /^max-age\s*=\s*"?(\d+)"?$/.exec(d);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** The largest `Age` kept, in seconds (RFC 9111 §1.2.2: 2^31). */
const AGE_MAX = 2 ** 31;

/**
 * Parses an `Age` response header (RFC 9111 §5.1): the seconds a response had already spent in
 * caches when it arrived. A list gives its first member; anything but a non-negative integer is
 * ignored.
 *
 * @param value The header value, or `null` when absent.
 * @returns Seconds, or `undefined` when absent or invalid.
 *
 * @example
 * ```ts
 * import { ageSeconds } from "./freshness.ts";
 * console.assert(ageSeconds("200") === 200);
 * console.assert(ageSeconds("30, 40") === 30);
 * console.assert(ageSeconds("-1") === undefined && ageSeconds(null) === undefined);
 * ```
 */
export function ageSeconds(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const first = value.split(",", 1)[0]!.trim();
  if (!/^\d+$/.test(first)) return undefined;
  return Math.min(Number(first), AGE_MAX);
}

/**
 * Tells whether an entry is fresh at `now`: whether its current age (the `Age` it arrived with,
 * 0 when it had none, plus the time since `fetchedAt`) is below its freshness lifetime.
 *
 * @param info The entry's metadata.
 * @param now The current time in ms since the epoch.
 * @param defaultMaxAgeMs The lifetime to use when `Cache-Control` gives none.
 * @returns The freshness.
 *
 * @example
 * ```ts
 * import { freshness } from "./freshness.ts";
 * const info = { cacheControl: "public, max-age=300", fetchedAt: 0, etag: '"a"' };
 * console.assert(freshness(info, 299_000).fresh);
 * const later = freshness(info, 300_000);
 * console.assert(!later.fresh && later.canRevalidate);
 * // It arrived 200 s old: fresh for 100 s more.
 * const aged = { ...info, age: 200 };
 * console.assert(freshness(aged, 99_000).fresh && !freshness(aged, 100_000).fresh);
 * ```
 */
export function freshness(
  info: Pick<CacheEntryInfo, "cacheControl" | "fetchedAt" | "etag" | "lastModified" | "age">,
  now: number,
  defaultMaxAgeMs = 0,
): Freshness {
  const seconds = maxAgeSeconds(info.cacheControl);
  const maxAgeMs = seconds === undefined ? defaultMaxAgeMs : seconds * 1000;
  const initial = info.age !== undefined && info.age > 0 ? Math.min(info.age, AGE_MAX) : 0;
  const ageMs = initial * 1000 + Math.max(0, now - info.fetchedAt);
  return {
    fresh: ageMs < maxAgeMs,
    ageMs,
    maxAgeMs,
    canRevalidate: info.etag !== undefined || info.lastModified !== undefined,
  };
}
