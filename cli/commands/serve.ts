/**
 * `serve`: the read replica over the embedded storage, served the runtime's way (`Deno.serve`
 * from `cli.ts`, `@hono/node-server` from `cli.node.ts`); its usage, help, flags and handler.
 *
 * @module
 */

import { host } from "../host.ts";
import { Cache } from "../../src/storage/cache.ts";
import { type Command, type CommandContext, originKeyOf, type Server } from "../context.ts";
import { err, out } from "../io.ts";
import { UsageError } from "../options.ts";
import { registryResolver } from "../registry.ts";
import { HTTP_PEERS, loadWithPeers } from "../peers.ts";

/** The port `serve` listens on when `--port` is not given (CouchDB's). */
export const DEFAULT_PORT = 5984;
/** The address `serve` binds to when `--hostname` is not given. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

function parsePort(raw: string | boolean | undefined): number {
  if (raw === undefined) return DEFAULT_PORT;
  const text = String(raw);
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value > 65535) {
    throw new UsageError(`Invalid --port: expected an integer from 0 to 65535, received '${text}'`);
  }
  return value;
}

/** Whether an address is a loopback one (`localhost`, `127.0.0.0/8`, `::1`). */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost" || host === "::1" || host === "0:0:0:0:0:0:0:1") return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host.replace(/^::ffff:/, ""));
  return v4 !== null && v4[1] === "127" && v4.slice(2).every((part) => Number(part) <= 255);
}

/**
 * Where a server command listens: `--port` (0 to 65535, default `defaultPort`), `--hostname`
 * (default loopback); an address that is not loopback needs `--public`.
 *
 * @throws {UsageError} When a value is bad, before anything is opened.
 */
export function listenAddress(
  ctx: CommandContext,
  defaultPort: number,
  what: string,
): { hostname: string; port: number } {
  const { values } = ctx;
  const port = values["port"] === undefined ? defaultPort : parsePort(values["port"]);
  const rawHost = values["hostname"];
  const hostname = typeof rawHost === "string" ? rawHost.replace(/^\[(.*)\]$/, "$1") : undefined;
  if (hostname === "") throw new UsageError("Invalid --hostname: expected an address");
  const host = hostname ?? DEFAULT_HOSTNAME;
  if (!isLoopback(host) && values["public"] !== true) {
    throw new UsageError(
      `Refusing to bind to '${host}', which is not a loopback address: add --public to serve ` +
        `${what} to other machines`,
    );
  }
  return { hostname: host, port };
}

/**
 * Serves `fetch` on `address` and prints `listening http://HOST:PORT/` on stdout; an error
 * answers 500 JSON and is logged on stderr (unless `--quiet`).
 *
 * @returns The server, or `undefined` when the address is in use (said on stderr).
 */
export async function listenAndAnnounce(
  ctx: CommandContext,
  address: { hostname: string; port: number },
  fetch: (request: Request) => Response | Promise<Response>,
): Promise<Server | undefined> {
  const { quiet } = ctx.options;
  let server: Server;
  try {
    server = await ctx.listen({
      ...address,
      fetch,
      onError: (error) => {
        if (!quiet) err(`error: ${error instanceof Error ? error.message : error}`);
        return new Response('{"error":"internal_server_error"}\n', {
          status: 500,
          headers: { "content-type": "application/json" },
        });
      },
    });
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE") {
      err(
        `error: Cannot listen on ${address.hostname}:${address.port}: the address is in use (pick --port)`,
      );
      return undefined;
    }
    throw error;
  }
  const shown = server.hostname.includes(":") ? `[${server.hostname}]` : server.hostname;
  await out(`listening http://${shown}:${server.port}/\n`);
  return server;
}

/** `serve`: answers from the cache until SIGINT or SIGTERM. */
async function serve(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  const address = listenAddress(ctx, DEFAULT_PORT, "the cache");
  const partitionsOrigin = originKeyOf(options);
  const resolve = await registryResolver(options);
  // Hono (needed by `serve` and `worker start` only), and the runtime's HTTP server, before
  // anything is opened: on Node they are optional packages.
  const { createReplicaApp } = await loadWithPeers(
    "serve",
    HTTP_PEERS,
    () => import("../../src/replica/app.ts"),
  );
  await ctx.prepareListen();
  const driver = await ctx.openDriver("read");
  let server: Server | undefined;
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    server?.shutdown().catch(() => {});
  };
  try {
    const cache = await Cache.open(driver, ctx.cacheOptions);
    const app = createReplicaApp({
      cache,
      packumentOrigin: (name) => resolve(name).originKey,
      ...(partitionsOrigin !== undefined ? { partitionsOrigin } : {}),
      ...(options.quiet ? {} : { log: (line: string) => err(line) }),
    });
    host().onSignal("SIGINT", stop);
    host().onSignal("SIGTERM", stop);
    server = await listenAndAnnounce(ctx, address, app.fetch);
    if (server === undefined) return 1;
    // A signal that came while it started up.
    if (stopped) await server.shutdown();
    await server.finished;
    return 0;
  } finally {
    host().offSignal("SIGINT", stop);
    host().offSignal("SIGTERM", stop);
    await driver.close();
  }
}

/** The `serve` command. */
export const SERVE_COMMAND: Command = {
  // A one-word command: the second word is the absent positional.
  words: ["serve"],
  usage: "serve [--port N] [--hostname H] [--public]",
  summary: "serve the cache as a read-only registry and _all_docs",
  help: "Serves the cache over HTTP, read only; it never contacts an origin.\n\n" +
    "  GET /NAME, /@SCOPE%2fNAME  a cached packument: the abbreviated document for\n" +
    "                             Accept: application/vnd.npm.install-v1+json or */*\n" +
    "                             (derived from the full one when only that is cached),\n" +
    "                             else the full one; ETag, If-None-Match -> 304\n" +
    "  GET /_all_docs             the cached partitions, CouchDB-style: startkey, endkey,\n" +
    "                             key, keys, inclusive_end, descending, limit (<= 10000)\n" +
    "  GET /                      database info\n" +
    "  GET /-/ping                {} (for npm ping)\n\n" +
    "Packuments are looked up under the registry 'packument fetch' used (--registry, else\n" +
    "npm's configuration); _all_docs serves the partitions of --origin / --origin-key, or\n" +
    "all cached ones. Tarball URLs keep pointing at the origin; a tarball path\n" +
    "(/NAME/-/FILE) answers 404 with a JSON reason: tarballs are not served here.\n\n" +
    "Never answers 200 with a body it cannot verify: a corrupt entry answers 500 (a body\n" +
    "over 64 KiB is checked as it streams: when wrong, the transfer is aborted; HEAD checks\n" +
    "first). Each is logged on stderr and removed from the cache.\n\n" +
    "Prints 'listening http://HOST:PORT/' on stdout when ready, and one JSON line per\n" +
    "request on stderr (none with --quiet). Stops on SIGINT or SIGTERM.\n\n" +
    "Options:\n" +
    "  --port N       0 to 65535; 0 picks a free port (default 5984)\n" +
    "  --hostname H   address to bind (default 127.0.0.1)\n" +
    "  --public       required to bind an address that is not loopback",
  flags: { port: { type: "string" }, hostname: { type: "string" }, public: { type: "boolean" } },
  maxArgs: 0,
  run: serve,
};
