/**
 * Cache keys: one stable format on every storage backend.
 *
 * - Partition: `v1:partition:{originKey}:{hex(startKey)}:{hex(endKey)}`; an open end is the
 *   empty string.
 * - Full packument: `v1:packument:{originKey}:{hex(name)}`.
 * - Abbreviated ("corgi") packument: `v1:corgi:{originKey}:{hex(name)}`. The representation is
 *   the key's type, so a full request can never be answered from a corgi entry and a prefix
 *   listing of `v1:packument:` sees only full documents.
 *
 * - View definition: `v1:view:{name}` (a JSON document; see `src/views/definition.ts`).
 *
 * - Internal: `v1:body:...` (large bodies stored apart from their entry),
 *   `v1:checkpoint:{originKey}:{setId}[:{index}]` (partition-set checkpoints; `...:pass:{n}`
 *   where a pass started) and `v1:checkpoint:{originKey}:changes:...` (the `_changes`
 *   follower: its checkpoint `...:follower`, pending partition edits `...:patches` and
 *   `...:patch:{shard}`).
 *
 * `hex` is the lowercase hex of the UTF-8 bytes. `originKey` names an origin: given explicitly,
 * or derived from the URL without loss by {@linkcode originKey}.
 *
 * @module
 */

import { bytesToHex } from "../_util/hex.ts";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** The version prefix of every key this package writes. */
export const KEY_VERSION = "v1";

/** The key prefix of large bodies stored apart from their entry (internal to the cache). */
export const BODY_PREFIX = "v1:body:";

/** The key prefix of partition-set checkpoints (plain JSON records, not cache entries). */
export const CHECKPOINT_PREFIX = "v1:checkpoint:";

/** The key prefix of cached partitions (every origin). */
export const PARTITION_PREFIX = "v1:partition:";

/** The key prefix of cached full packuments (every origin). */
export const PACKUMENT_PREFIX = "v1:packument:";

/** The key prefix of cached abbreviated ("corgi") packuments (every origin). */
export const CORGI_PREFIX = "v1:corgi:";

/** The key prefix of view definitions. */
export const VIEW_PREFIX = "v1:view:";

/**
 * The cache key of a view definition.
 *
 * @param name The view's name: 1 to 64 characters of `[A-Za-z0-9._-]`, not starting with `.`
 *   or `-`.
 * @returns `v1:view:{name}`.
 * @throws {TypeError} When the name is not acceptable.
 *
 * @example
 * ```ts
 * import { viewKey } from "./keys.ts";
 * console.assert(viewKey("npm-edges") === "v1:view:npm-edges");
 * ```
 */
export function viewKey(name: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new TypeError(
      `Invalid view name: expected 1 to 64 characters of [A-Za-z0-9._-], not starting with . or -, received '${name}'`,
    );
  }
  return `${VIEW_PREFIX}${name}`;
}

/**
 * The key prefix of an entry type, for one origin or for all of them.
 *
 * @param type `partition`, `packument` (full documents) or `corgi` (abbreviated ones).
 * @param origin An origin key; every origin when omitted.
 * @returns `v1:{type}:` or `v1:{type}:{origin}:`.
 *
 * @example
 * ```ts
 * import { keyPrefix } from "./keys.ts";
 * console.assert(keyPrefix("partition", "npm") === "v1:partition:npm:");
 * console.assert(keyPrefix("corgi") === "v1:corgi:");
 * ```
 */
export function keyPrefix(type: "partition" | "packument" | "corgi", origin?: string): string {
  return origin === undefined ? `${KEY_VERSION}:${type}:` : `${KEY_VERSION}:${type}:${origin}:`;
}

/** A packument representation: the full document or the abbreviated install document. */
export type Representation = "full" | "abbreviated";

/**
 * Lowercase hex of the UTF-8 bytes of a string.
 *
 * @param text Any string.
 * @returns The hex digits, two per byte.
 *
 * @example
 * ```ts
 * import { hex } from "./keys.ts";
 * console.assert(hex("@a") === "4061");
 * ```
 */
export function hex(text: string): string {
  return bytesToHex(encoder.encode(text));
}

/**
 * Decodes lowercase hex of UTF-8 bytes back into a string.
 *
 * @param digits Hex produced by {@linkcode hex}.
 * @returns The original string.
 * @throws {TypeError} When the digits are not even-length lowercase hex of valid UTF-8.
 */
export function unhex(digits: string): string {
  if (digits.length % 2 !== 0 || !/^[0-9a-f]*$/.test(digits)) {
    throw new TypeError(`Cannot decode hex: expected lowercase hex digits, received '${digits}'`);
  }
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  }
  try {
    return strictDecoder.decode(bytes);
  } catch (cause) {
    throw new TypeError(`Cannot decode hex: bytes are not valid UTF-8, received '${digits}'`, {
      cause,
    });
  }
}

const SAFE = /[A-Za-z0-9.-]/;

function normalizeOrigin(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new TypeError(`Cannot derive origin key: invalid URL, received '${String(url)}'`, {
      cause,
    });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(
      `Cannot derive origin key: URL must be http or https, received '${String(url)}'`,
    );
  }
  if (parsed.username || parsed.password) {
    throw new TypeError("Cannot derive origin key: URL must not contain credentials");
  }
  const path = parsed.pathname.replace(/\/+$/, "");
  return `${parsed.protocol}//${parsed.host}${path}`;
}

/**
 * Derives a lossless origin key from a URL: two different origins never share a key.
 *
 * The URL is normalized (lower-case scheme and host, default port dropped, trailing slashes,
 * query and fragment removed); `https://` is dropped; then every character outside
 * `[A-Za-z0-9.-]` is written as `_` plus the lowercase hex of its UTF-8 bytes.
 *
 * @param url An http or https URL.
 * @returns A key segment without `:`.
 * @throws {TypeError} When the URL is invalid, not http(s), or carries credentials.
 *
 * @example
 * ```ts
 * import { originKey, originFromKey } from "./keys.ts";
 * const key = originKey("http://127.0.0.1:5984/registry/");
 * console.assert(key === "http_3a_2f_2f127.0.0.1_3a5984_2fregistry");
 * console.assert(originFromKey(key) === "http://127.0.0.1:5984/registry");
 * ```
 */
export function originKey(url: string | URL): string {
  let text = normalizeOrigin(url);
  if (text.startsWith("https://")) text = text.slice("https://".length);
  let out = "";
  for (const ch of text) {
    out += SAFE.test(ch) ? ch : hex(ch).replace(/../g, "_$&");
  }
  return out;
}

/**
 * Recovers the normalized origin URL from a key made by {@linkcode originKey}.
 *
 * @param key A derived origin key.
 * @returns The normalized URL.
 * @throws {TypeError} When the key was not derived from a URL.
 */
export function originFromKey(key: string): string {
  if (!/^([A-Za-z0-9.-]|_[0-9a-f]{2})+$/.test(key)) {
    throw new TypeError(`Cannot decode origin key: not a derived key, received '${key}'`);
  }
  const bytes: number[] = [];
  for (let i = 0; i < key.length;) {
    if (key[i] === "_") {
      bytes.push(parseInt(key.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(key.charCodeAt(i));
      i += 1;
    }
  }
  const text = strictDecoder.decode(new Uint8Array(bytes));
  return text.startsWith("http://") ? text : `https://${text}`;
}

/**
 * Checks an explicitly given origin key (`--origin-key`).
 *
 * @param key The key to check: 1 to 64 characters of `[A-Za-z0-9._-]`.
 * @returns The key.
 * @throws {TypeError} When the key is not acceptable.
 */
export function validateOriginKey(key: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(key)) {
    throw new TypeError(
      `Invalid origin key: expected 1 to 64 characters of [A-Za-z0-9._-], received '${key}'`,
    );
  }
  return key;
}

function checkOrigin(origin: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(origin)) {
    throw new TypeError(
      `Cannot build cache key: origin key must be characters of [A-Za-z0-9._-], received '${origin}'`,
    );
  }
  return origin;
}

/**
 * The cache key of a partition (an `_all_docs` key range).
 *
 * @param origin The origin key.
 * @param startKey The first key of the range, or `""` for the open start.
 * @param endKey The end of the range (exclusive), or `""` for the open end.
 * @returns The key.
 *
 * @example
 * ```ts
 * import { partitionKey } from "./keys.ts";
 * console.assert(partitionKey("npm", "@", "@a") === "v1:partition:npm:40:4061");
 * ```
 */
export function partitionKey(origin: string, startKey: string, endKey: string): string {
  return `${KEY_VERSION}:partition:${checkOrigin(origin)}:${hex(startKey)}:${hex(endKey)}`;
}

/**
 * The cache key of a packument in one representation.
 *
 * @param origin The origin key.
 * @param name The package name.
 * @param representation Full (`v1:packument:`) or abbreviated (`v1:corgi:`).
 * @returns The key.
 *
 * @example
 * ```ts
 * import { packumentKey } from "./keys.ts";
 * console.assert(packumentKey("npm", "@babel/core") === "v1:packument:npm:40626162656c2f636f7265");
 * ```
 */
export function packumentKey(
  origin: string,
  name: string,
  representation: Representation = "full",
): string {
  const type = representation === "full" ? "packument" : "corgi";
  return `${KEY_VERSION}:${type}:${checkOrigin(origin)}:${hex(name)}`;
}

/** A parsed partition key. */
export interface PartitionKeyParts {
  /** The key type. */
  type: "partition";
  /** The origin key. */
  origin: string;
  /** The range start (`""` when open). */
  startKey: string;
  /** The range end, exclusive (`""` when open). */
  endKey: string;
}

/** A parsed packument key. */
export interface PackumentKeyParts {
  /** The key type. */
  type: "packument";
  /** The origin key. */
  origin: string;
  /** The package name. */
  name: string;
  /** Which document the key holds. */
  representation: Representation;
}

/** The parts of a cache key. */
export type KeyParts = PartitionKeyParts | PackumentKeyParts;

/**
 * Parses a cache key back into its parts.
 *
 * @param key A key made by {@linkcode partitionKey} or {@linkcode packumentKey}.
 * @returns The parts.
 * @throws {TypeError} When the key does not follow the format.
 *
 * @example
 * ```ts
 * import { parseKey } from "./keys.ts";
 * const parts = parseKey("v1:corgi:npm:6d73");
 * console.assert(parts.type === "packument" && parts.name === "ms");
 * ```
 */
export function parseKey(key: string): KeyParts {
  const parts = key.split(":");
  const [version, type, origin] = parts;
  const fail = () => new TypeError(`Cannot parse cache key: unknown format, received '${key}'`);
  if (version !== KEY_VERSION || origin === undefined || !/^[A-Za-z0-9._-]+$/.test(origin)) {
    throw fail();
  }
  try {
    if (type === "partition" && parts.length === 5) {
      return { type, origin, startKey: unhex(parts[3]!), endKey: unhex(parts[4]!) };
    }
    if ((type === "packument" || type === "corgi") && parts.length === 4 && parts[3] !== "") {
      return {
        type: "packument",
        origin,
        name: unhex(parts[3]!),
        representation: type === "packument" ? "full" : "abbreviated",
      };
    }
  } catch (cause) {
    throw new TypeError(`Cannot parse cache key: bad hex, received '${key}'`, { cause });
  }
  throw fail();
}
