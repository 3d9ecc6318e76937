/**
 * The media types of npm package documents and how a request picks one: the full document
 * (`application/json`) or the abbreviated ("corgi") one that npm's installers ask for
 * (`application/vnd.npm.install-v1+json`).
 *
 * @module
 */

import type { Representation } from "../storage/keys.ts";

/** The media type of full package documents. */
export const FULL_MEDIA_TYPE = "application/json";

/** The media type of abbreviated ("corgi") package documents. */
export const CORGI_MEDIA_TYPE = "application/vnd.npm.install-v1+json";

/**
 * The `Accept` header that asks a registry for each representation.
 *
 * @example
 * ```ts
 * import { ACCEPT } from "./media_types.ts";
 * console.assert(ACCEPT.abbreviated === "application/vnd.npm.install-v1+json");
 * ```
 */
export const ACCEPT: Record<Representation, string> = {
  full: FULL_MEDIA_TYPE,
  abbreviated: CORGI_MEDIA_TYPE,
};

/**
 * Whether an `Accept` header gets the abbreviated document: it names
 * `application/vnd.npm.install-v1+json` or contains `*\/*`, as npm's registry decides.
 *
 * @param accept The header value, or `null`/`undefined` when absent.
 * @returns `true` for the abbreviated document, `false` for the full one.
 *
 * @example
 * ```ts
 * import { acceptsAbbreviated } from "./media_types.ts";
 * console.assert(acceptsAbbreviated("application/vnd.npm.install-v1+json; q=1.0, *\/*"));
 * console.assert(!acceptsAbbreviated("application/json"));
 * console.assert(!acceptsAbbreviated(undefined));
 * ```
 */
export function acceptsAbbreviated(accept: string | null | undefined): boolean {
  if (!accept) return false;
  const lower = accept.toLowerCase();
  return lower.includes(CORGI_MEDIA_TYPE) || lower.includes("*/*");
}
