/**
 * The `_all_docs` command line for Deno: `deno run -A cli.ts <command> [options]`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import process from "node:process";
import { main } from "./cli/main.ts";
import type { Listen } from "./cli/context.ts";
import { createStorageDriver } from "./drivers/select.deno.ts";

/** `serve` on `Deno.serve`. */
const listen: Listen = async ({ hostname, port, fetch, onError }) => {
  let listening!: (addr: Deno.NetAddr) => void;
  const ready = new Promise<Deno.NetAddr>((resolve) => listening = resolve);
  const server = Deno.serve(
    { hostname, port, onError, onListen: (addr) => listening(addr) },
    fetch,
  );
  const addr = await ready;
  return {
    hostname: addr.hostname,
    port: addr.port,
    finished: server.finished,
    shutdown: () => server.shutdown(),
  };
};

if (import.meta.main) {
  const status = await main(process.argv.slice(2), {
    openStorage: (options, access) => createStorageDriver({ ...options, access }),
    listen,
    createHash: () => createHash("sha256"),
  });
  process.exitCode = status;
}
