/**
 * HTTP freshness of cache entries: how long an entry may be used without asking the origin,
 * from its `Cache-Control` and the time it was fetched or last revalidated.
 *
 * @module
 */

import type { CacheEntryInfo } from "./entry.ts";

/** Freshness of an entry at a moment. */
export interface Freshness {
  /** The entry may be used without asking the origin. */
  fresh: boolean;
  /** Milliseconds since the entry was fetched or revalidated. */
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

/**
 * Tells whether an entry is fresh at `now`.
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
 * ```
 */
export function freshness(
  info: Pick<CacheEntryInfo, "cacheControl" | "fetchedAt" | "etag" | "lastModified">,
  now: number,
  defaultMaxAgeMs = 0,
): Freshness {
  const seconds = maxAgeSeconds(info.cacheControl);
  const maxAgeMs = seconds === undefined ? defaultMaxAgeMs : seconds * 1000;
  const ageMs = Math.max(0, now - info.fetchedAt);
  return {
    fresh: ageMs < maxAgeMs,
    ageMs,
    maxAgeMs,
    canRevalidate: info.etag !== undefined || info.lastModified !== undefined,
  };
}
