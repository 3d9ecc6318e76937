/**
 * A Hono app on `TrieRouter` alone. `new Hono()` routes with `SmartRouter`, which tries
 * `RegExpRouter` first and falls back to `TrieRouter` for patterns the first cannot take; the
 * replica's `/-/:rest{.*}` is one, so our apps always ran on `TrieRouter`, and without the other
 * two routers the edge bundle is about 1.8 KB (gzipped) smaller.
 *
 * @module
 */

import type { Hono } from "hono";
import { HonoBase } from "hono/hono-base";
import { TrieRouter } from "hono/router/trie-router";
import type { BlankEnv, BlankSchema } from "hono/types";

/**
 * A new app.
 *
 * @param getPath The path routes are matched on.
 * @returns The app.
 *
 * @example
 * ```ts
 * import { honoApp } from "./hono.ts";
 * const app = honoApp((request) => new URL(request.url).pathname);
 * app.get("/-/ping", (c) => c.text("pong"));
 * const response = await app.request("/-/ping");
 * console.assert((await response.text()) === "pong");
 * ```
 */
export function honoApp(getPath: (request: Request) => string): Hono {
  return new HonoBase<BlankEnv, BlankSchema>({ getPath, router: new TrieRouter() });
}
