/**
 * The keys of bodies stored apart from their entry's record, and of the marker of a refresh
 * under way: `v1:body:{entry key less v1:}:{16 hex}` and `...:refreshing`.
 *
 * @module
 */

import { randomHex } from "../_util/hex.ts";
import { BODY_PREFIX, KEY_VERSION } from "./keys.ts";

const VERSION_PART = new RegExp(`^${KEY_VERSION}:`);

/** A new key for a body of the entry `key`, stored apart: `v1:body:{key less v1:}:{16 hex}`. */
export function bodyKeyOf(key: string): string {
  return `${BODY_PREFIX}${key.replace(VERSION_PART, "")}:${randomHex(8)}`;
}

/** The key that marks a refresh of the entry `key` under way in some handle: beside its bodies,
 * and, when left behind, an orphan to `orphanBodies()` (it ends with no body suffix). */
export function refreshMarkerOf(key: string): string {
  return `${BODY_PREFIX}${key.replace(VERSION_PART, "")}:refreshing`;
}

/** The entry key a body key of {@linkcode bodyKeyOf} was made for. */
export function entryKeyOf(bodyKey: string): string {
  return `${KEY_VERSION}:${bodyKey.slice(BODY_PREFIX.length).replace(/:[0-9a-f]+$/, "")}`;
}
