/**
 * The `_all_docs` command line for Deno: `deno run -A cli.ts <command> [options]`.
 *
 * @module
 */

import { dirname } from "node:path";
import { main } from "./cli/main.ts";
import { exitAfterOutput } from "./cli/io.ts";
import { type Listen, openRedisQueue } from "./cli/context.ts";
import { createStorageDriver } from "./drivers/select.deno.ts";
import { MemoryQueue } from "./queues/memory.ts";
import { setViewWorkerFactory } from "./cli/view_workers.ts";
import { setHost } from "./cli/host.ts";
import { denoHost, prepareDenoHost } from "./cli/host.deno.ts";

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
  // Standard streams, environment, exit and signals on Deno's own APIs: no command loads Node's
  // compatibility layer unless it needs it.
  await prepareDenoHost();
  setHost(denoHost);
  // Parallel view scans: Web Workers running cli/view_worker.deno.ts, with this process's
  // permissions.
  setViewWorkerFactory(({ message, error }) => {
    const worker = new Worker(new URL("./cli/view_worker.deno.ts", import.meta.url).href, {
      type: "module",
    });
    worker.onmessage = (event) => message(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      error(new Error(`View worker failed: ${event.message}`));
    };
    return { postMessage: (data) => worker.postMessage(data), terminate: () => worker.terminate() };
  });
  const status = await main(Deno.args, {
    openStorage: (options, access) => createStorageDriver({ ...options, access }),
    listen,
    openQueue: async (kind, { path, redis }) => {
      if (kind === "memory") return new MemoryQueue();
      if (kind === "redis") {
        // Loaded only for a redis queue: no other command needs bullmq and ioredis.
        return await openRedisQueue(() => import("./queues/bullmq.ts"), redis!);
      }
      await Deno.mkdir(dirname(path), { recursive: true });
      const { DenoKvQueue } = await import("./queues/deno_kv.deno.ts");
      // One process per queue file: an item in hand at a crash comes back within 10 s.
      return await DenoKvQueue.open(path, { leaseMs: 10_000 });
    },
    defaultQueue: "kv",
    // `node:crypto` and `node:zlib` load Node's compatibility layer: only for a command that
    // uses them (not `changes follow`).
    loadNative: async () => {
      const [{ createHash }, { gzipSync, gunzipSync }] = await Promise.all([
        import("node:crypto"),
        import("./cli/zlib.ts"),
      ]);
      return { createHash: () => createHash("sha256"), gzipSync, gunzipSync };
    },
  });
  await exitAfterOutput(status);
}
