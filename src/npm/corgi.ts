/**
 * The corgi derivation: the abbreviated ("corgi") package document that npm's registry answers
 * to `Accept: application/vnd.npm.install-v1+json`, derived from the full document. It keeps
 * what an installer needs (`name`, `modified`, `dist-tags`, and per version the fields of
 * {@linkcode ABBREVIATED_VERSION_FIELDS}) and drops the rest (readmes, scripts, maintainers).
 *
 * @module
 */

/**
 * The per-version fields an abbreviated document keeps, in the order they are written.
 *
 * @example
 * ```ts
 * import { ABBREVIATED_VERSION_FIELDS } from "./corgi.ts";
 * console.assert(ABBREVIATED_VERSION_FIELDS.includes("dist"));
 * console.assert(!ABBREVIATED_VERSION_FIELDS.includes("readme"));
 * ```
 */
export const ABBREVIATED_VERSION_FIELDS: readonly string[] = [
  "name",
  "version",
  "deprecated",
  "dependencies",
  "optionalDependencies",
  "devDependencies",
  "bundleDependencies",
  "peerDependencies",
  "peerDependenciesMeta",
  "bin",
  "directories",
  "dist",
  "engines",
  "os",
  "cpu",
  "_hasShrinkwrap",
  "hasInstallScript",
  "funding",
  "acceptDependencies",
  "libc",
];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * When a package document was last modified: `time.modified`, else the latest date in `time`.
 *
 * @param full A full package document.
 * @returns The date as written in the document, or `undefined` when it has none.
 *
 * @example
 * ```ts
 * import { modifiedOf } from "./corgi.ts";
 * const time = { created: "2020-01-01T00:00:00.000Z", "1.0.0": "2021-05-05T00:00:00.000Z" };
 * console.assert(modifiedOf({ time }) === "2021-05-05T00:00:00.000Z");
 * console.assert(modifiedOf({ name: "no-time" }) === undefined);
 * ```
 */
export function modifiedOf(full: unknown): string | undefined {
  if (!isRecord(full) || !isRecord(full.time)) return undefined;
  const time = full.time;
  if (typeof time.modified === "string") return time.modified;
  let best: string | undefined;
  let bestMs = -Infinity;
  for (const value of Object.values(time)) {
    if (typeof value !== "string") continue;
    const ms = Date.parse(value);
    if (Number.isFinite(ms) && ms > bestMs) {
      bestMs = ms;
      best = value;
    }
  }
  return best;
}

/**
 * The abbreviated form of one version's manifest: only the fields of
 * {@linkcode ABBREVIATED_VERSION_FIELDS} that are present, in that order.
 *
 * @param manifest One value of a full document's `versions`.
 * @returns The slim manifest, or `undefined` when `manifest` is not an object (left out).
 *
 * @example
 * ```ts
 * import { abbreviateVersion } from "./corgi.ts";
 * const slim = abbreviateVersion({ readme: "x", version: "1.0.0", name: "ms" });
 * console.assert(JSON.stringify(slim) === '{"name":"ms","version":"1.0.0"}');
 * console.assert(abbreviateVersion("1.0.0") === undefined);
 * ```
 */
export function abbreviateVersion(manifest: unknown): Record<string, unknown> | undefined {
  if (!isRecord(manifest)) return undefined;
  const slim: Record<string, unknown> = {};
  for (const field of ABBREVIATED_VERSION_FIELDS) {
    if (Object.hasOwn(manifest, field) && manifest[field] !== undefined) {
      slim[field] = manifest[field];
    }
  }
  return slim;
}

/**
 * Derives the abbreviated ("corgi") document from a full package document: `name`,
 * `dist-tags`, `versions` with only the fields of {@linkcode ABBREVIATED_VERSION_FIELDS} that
 * are present, and `modified` (`time.modified`, else the latest date in `time`; left out when
 * there is none).
 *
 * @param full The parsed full document.
 * @returns The abbreviated document.
 * @throws {TypeError} When `full` is not an object with a string `name`.
 *
 * @example
 * ```ts
 * import { abbreviatePackument } from "./corgi.ts";
 * const corgi = abbreviatePackument({
 *   name: "ms",
 *   readme: "long text",
 *   time: { modified: "2024-01-01T00:00:00.000Z" },
 *   "dist-tags": { latest: "1.0.0" },
 *   versions: { "1.0.0": { name: "ms", version: "1.0.0", scripts: {}, dist: { shasum: "0" } } },
 * });
 * console.assert(JSON.stringify(corgi) === JSON.stringify({
 *   name: "ms",
 *   "dist-tags": { latest: "1.0.0" },
 *   versions: { "1.0.0": { name: "ms", version: "1.0.0", dist: { shasum: "0" } } },
 *   modified: "2024-01-01T00:00:00.000Z",
 * }));
 * ```
 */
export function abbreviatePackument(full: unknown): Record<string, unknown> {
  if (!isRecord(full) || typeof full.name !== "string") {
    throw new TypeError("Cannot abbreviate: expected a package document with a string name");
  }
  const versions: Record<string, Record<string, unknown>> = {};
  if (isRecord(full.versions)) {
    for (const [version, manifest] of Object.entries(full.versions)) {
      const slim = abbreviateVersion(manifest);
      // defineProperty, so that a version named "__proto__" is kept like any other.
      if (slim) Object.defineProperty(versions, version, { value: slim, enumerable: true });
    }
  }
  const out: Record<string, unknown> = {
    name: full.name,
    "dist-tags": isRecord(full["dist-tags"]) ? full["dist-tags"] : {},
    versions,
  };
  const modified = modifiedOf(full);
  if (modified !== undefined) out.modified = modified;
  return out;
}
