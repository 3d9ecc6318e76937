/**
 * View definitions, stored in the cache itself (`v1:view:{name}`, a JSON document), so a view
 * works on every storage driver and from every process that opens the same storage (the CLI,
 * the worker, another machine on the same bucket).
 *
 * A view names the documents it reads (an origin and a representation: the cached documents
 * under `v1:packument:{origin}:` or `v1:corgi:{origin}:`), a condition they must meet
 * (`where`, over the documents) and what a record holds (`select`; without one a record is the
 * whole document).
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import { keyPrefix, validateOriginKey, VIEW_PREFIX, viewKey } from "../storage/keys.ts";
import { compileSelect, compileWhere } from "./expressions.ts";

/** Which cached documents a view reads: full packuments or abbreviated (corgi) ones. */
export type ViewType = "packument" | "corgi";

/** A view definition, as stored. */
export interface ViewDefinition {
  /** The view's name: 1 to 64 characters of `[A-Za-z0-9._-]`, not starting with `.` or `-`. */
  name: string;
  /** The origin key of the documents (derived from the registry URL, or a key given explicitly). */
  origin: string;
  /** The registry URL the origin key was derived from, when it was (for display). */
  registry?: string;
  /** The representation of the documents. */
  type: ViewType;
  /** What a record holds; absent: the whole document. */
  select?: string;
  /** Which documents count; absent: all of them. */
  where?: string;
  /** When it was defined (ISO 8601). */
  createdAt: string;
}

const encoder = new TextEncoder();

/**
 * Checks a definition: its name, origin key and type, and that its expressions compile.
 *
 * @param definition The definition.
 * @returns The definition with only its known fields, in a stable order.
 * @throws {TypeError} When a field is missing or malformed.
 * @throws {ViewExpressionError} When `select` or `where` does not parse.
 *
 * @example
 * ```ts
 * import { checkViewDefinition } from "./definition.ts";
 * const view = checkViewDefinition({
 *   name: "edges",
 *   origin: "npm",
 *   type: "packument",
 *   select: "name, dependencies | keys as deps",
 *   createdAt: "2024-01-01T00:00:00.000Z",
 * });
 * console.assert(view.select === "name, dependencies | keys as deps");
 * ```
 */
export function checkViewDefinition(definition: ViewDefinition): ViewDefinition {
  const d = definition as unknown as Record<string, unknown>;
  if (typeof d !== "object" || d === null) {
    throw new TypeError("Invalid view definition: expected an object");
  }
  if (typeof d["name"] !== "string") throw new TypeError("Invalid view definition: no name");
  viewKey(d["name"]);
  if (typeof d["origin"] !== "string") {
    throw new TypeError(`Invalid view definition '${d["name"]}': no origin`);
  }
  validateOriginKey(d["origin"]);
  if (d["type"] !== "packument" && d["type"] !== "corgi") {
    throw new TypeError(
      `Invalid view definition '${d["name"]}': type must be packument or corgi, received ${
        JSON.stringify(d["type"])
      }`,
    );
  }
  for (const field of ["registry", "select", "where"]) {
    if (d[field] !== undefined && typeof d[field] !== "string") {
      throw new TypeError(`Invalid view definition '${d["name"]}': ${field} must be a string`);
    }
  }
  if (typeof d["createdAt"] !== "string") {
    throw new TypeError(`Invalid view definition '${d["name"]}': no createdAt`);
  }
  if (definition.select !== undefined) compileSelect(definition.select);
  if (definition.where !== undefined) compileWhere(definition.where);
  return {
    name: definition.name,
    origin: definition.origin,
    ...(definition.registry !== undefined ? { registry: definition.registry } : {}),
    type: definition.type,
    ...(definition.select !== undefined ? { select: definition.select } : {}),
    ...(definition.where !== undefined ? { where: definition.where } : {}),
    createdAt: definition.createdAt,
  };
}

/**
 * The key prefix of the documents a view reads.
 *
 * @param view The view.
 * @returns `v1:packument:{origin}:` or `v1:corgi:{origin}:`.
 */
export function viewDocumentPrefix(view: Pick<ViewDefinition, "origin" | "type">): string {
  return keyPrefix(view.type, view.origin);
}

/**
 * Stores a view, replacing one of the same name.
 *
 * @param cache The cache.
 * @param definition The view.
 * @returns Whether a view of that name was replaced.
 * @throws {TypeError} When the definition is malformed.
 * @throws {ViewExpressionError} When an expression does not parse.
 */
export async function saveView(cache: Cache, definition: ViewDefinition): Promise<boolean> {
  const view = checkViewDefinition(definition);
  const key = viewKey(view.name);
  const existed = await cache.driver.has(key);
  await cache.put(key, encoder.encode(JSON.stringify(view) + "\n"), {
    status: 200,
    contentType: "application/json",
    representation: "view",
  });
  return existed;
}

/** Decodes a stored view; a stored document that is not one is a `TypeError` naming it. */
async function decode(cache: Cache, key: string): Promise<ViewDefinition | undefined> {
  const entry = await cache.get(key);
  if (!entry) return undefined;
  try {
    return checkViewDefinition(await entry.json() as ViewDefinition);
  } catch (cause) {
    throw new TypeError(
      `Cannot read view '${key.slice(VIEW_PREFIX.length)}': the stored definition is not valid`,
      { cause },
    );
  }
}

/**
 * Reads a view.
 *
 * @param cache The cache.
 * @param name The view's name.
 * @returns The view, or `undefined` when there is none of that name.
 * @throws {TypeError} When the name is malformed, or the stored definition is not valid.
 *
 * @example
 * ```ts
 * import { Cache } from "../storage/cache.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 * import { deleteView, listViews, loadView, saveView } from "./definition.ts";
 * const cache = await Cache.open(new MemoryDriver());
 * const createdAt = new Date(0).toISOString();
 * await saveView(cache, { name: "all", origin: "npm", type: "packument", createdAt });
 * console.assert((await loadView(cache, "all"))?.origin === "npm");
 * console.assert((await Array.fromAsync(listViews(cache))).length === 1);
 * console.assert(await deleteView(cache, "all"));
 * console.assert((await loadView(cache, "all")) === undefined);
 * ```
 */
export function loadView(cache: Cache, name: string): Promise<ViewDefinition | undefined> {
  return decode(cache, viewKey(name));
}

/**
 * Every stored view, in name order.
 *
 * @param cache The cache.
 * @returns The views.
 * @throws {TypeError} When a stored definition is not valid.
 */
export async function* listViews(cache: Cache): AsyncGenerator<ViewDefinition> {
  for await (const key of cache.keys(VIEW_PREFIX)) {
    const view = await decode(cache, key);
    if (view) yield view;
  }
}

/**
 * Removes a view.
 *
 * @param cache The cache.
 * @param name The view's name.
 * @returns Whether there was one.
 * @throws {TypeError} When the name is malformed.
 */
export function deleteView(cache: Cache, name: string): Promise<boolean> {
  return cache.delete(viewKey(name));
}
