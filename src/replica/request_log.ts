/**
 * Request logging for the replica: a Hono middleware writing one JSON line per request once
 * its response body has been sent (or has failed, or was cancelled).
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";

/** Options of {@linkcode requestLog}. */
export interface RequestLogOptions {
  /** The clock for request durations, in milliseconds.
   * @default {() => Date.now()} */
  now?: () => number;
}

/** Paths longer than this are cut in the log line. */
const MAX_LOGGED_PATH = 2048;

/**
 * The request target as sent (path and query), from the raw request URL.
 *
 * @param url The request URL.
 * @returns Everything from the first `/` after the authority, or `/`.
 *
 * @example
 * ```ts
 * import { rawTarget } from "./request_log.ts";
 * console.assert(rawTarget("http://127.0.0.1:8080/@a%2fb?x=1") === "/@a%2fb?x=1");
 * console.assert(rawTarget("http://127.0.0.1:8080") === "/");
 * ```
 */
export function rawTarget(url: string): string {
  const scheme = url.indexOf("://");
  const start = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  return start < 0 ? "/" : url.slice(start);
}

/**
 * A middleware that writes one JSON line per request: `method`, `path` (the raw target, cut
 * at 2048 characters), `status`, `bytes` of body sent and `ms` from the request to the end of
 * the body; `error` when the body failed (its message) or was `"cancelled"` by the client.
 * A response without a body, or to `HEAD`, is logged at once with `bytes: 0`.
 *
 * Register it first, so it sees the final response of every request.
 *
 * @param log Receives each line.
 * @param options The clock.
 * @returns The middleware.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { requestLog } from "./request_log.ts";
 * const lines: string[] = [];
 * const app = new Hono();
 * app.use(requestLog((line) => lines.push(line), { now: () => 0 }));
 * app.get("/hello", (c) => c.text("hi"));
 * await (await app.request("/hello?x=1")).text();
 * console.assert(lines[0] === '{"method":"GET","path":"/hello?x=1","status":200,"bytes":2,"ms":0}');
 * ```
 */
export function requestLog(
  log: (line: string) => void,
  options: RequestLogOptions = {},
): MiddlewareHandler {
  const now = options.now ?? (() => Date.now());
  return async function requestLog(c, next): Promise<void> {
    const started = now();
    const method = c.req.method;
    const target = rawTarget(c.req.url);
    await next();
    const response = c.res;
    const status = response.status;
    let written = false;
    const write = (bytes: number, error?: string): void => {
      if (written) return;
      written = true;
      const line: Record<string, unknown> = {
        method,
        path: target.length > MAX_LOGGED_PATH ? `${target.slice(0, MAX_LOGGED_PATH)}...` : target,
        status,
        bytes,
        ms: Math.round((now() - started) * 10) / 10,
      };
      if (error !== undefined) line.error = error;
      log(JSON.stringify(line));
    };
    if (!response.body || method === "HEAD") {
      write(0);
      return;
    }
    const reader = response.body.getReader();
    let bytes = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) {
            controller.close();
            write(bytes);
          } else {
            bytes += value.byteLength;
            controller.enqueue(value);
          }
        } catch (error) {
          write(bytes, error instanceof Error ? error.message : String(error));
          controller.error(error);
        }
      },
      cancel(reason) {
        write(bytes, "cancelled");
        return reader.cancel(reason);
      },
    });
    c.res = new Response(body, response);
  };
}

/**
 * The path of a request as sent, not percent-decoded: the app routes on it (Hono's default
 * decodes `%5F` to `_`, which would make `/%5Fall_docs` the `_all_docs` endpoint instead of a
 * package name), and a package name is decoded exactly once, by its route.
 *
 * @param request The request.
 * @returns The raw path.
 */
export function rawPath(request: Request): string {
  const target = rawTarget(request.url);
  const cut = target.search(/[?#]/);
  return cut < 0 ? target : target.slice(0, cut);
}

/**
 * The query of a request as sent (without `?` and fragment), `""` when it has none.
 *
 * @param request The request.
 * @returns The raw query.
 */
export function rawQuery(request: Request): string {
  const target = rawTarget(request.url);
  const cut = target.search(/[?#]/);
  return cut < 0 || target[cut] === "#" ? "" : target.slice(cut + 1).replace(/#.*$/, "");
}
