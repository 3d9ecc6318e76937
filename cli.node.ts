#!/usr/bin/env node
/**
 * The `_all_docs` command line for Node: the `_all_docs` bin of the npm package
 * (`node cli.node.js <command> [options]`). The same CLI as `cli.ts`, with Node's storage
 * drivers (`cli/storage.node.ts`: the Deno KV driver runs on `@deno/kv`), `serve` on
 * `@hono/node-server`, the memory and redis queues (the kv queue needs Deno), and `fetch`
 * through the proxies and `cafile` of the environment and npm's configuration
 * (`cli/proxy.node.ts`: Node's `fetch` honours no proxy variable by itself). The optional peers
 * (`@deno/kv`, `@hono/node-server`, `bullmq`, `ioredis`) and `undici` load only for a command
 * that uses them.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "./cli/zlib.ts";
import process from "node:process";
import { main } from "./cli/main.ts";
import { exitAfterOutput } from "./cli/io.ts";
import { type Listen, type OpenQueue, openRedisQueue } from "./cli/context.ts";
import { UsageError } from "./cli/options.ts";
import { MemoryQueue } from "./queues/memory.ts";
import { openNodeStorage } from "./cli/storage.node.ts";
import { installNetworkSettings, networkSettings } from "./cli/proxy.node.ts";
import { npmConfig } from "./cli/registry.ts";
import { setViewWorkerFactory } from "./cli/view_workers.ts";
import { Worker } from "node:worker_threads";
import { homedir, hostname } from "node:os";
import { processHost, setHost } from "./cli/host.ts";
import { HTTP_PEERS, loadWithPeers } from "./cli/peers.ts";

// Standard streams, environment, exit and signals: Node's own.
setHost(processHost(process, { homedir, hostname }));

/** `@hono/node-server`: an optional peer, loaded by the commands that listen. */
const loadServer = () =>
  loadWithPeers(
    "The HTTP server (serve, worker start)",
    HTTP_PEERS,
    () => import("@hono/node-server"),
  );

/** `serve` on `@hono/node-server`. */
const listen: Listen = async ({ hostname, port, fetch, onError }) => {
  const { serve: nodeServe } = await loadServer();
  return await new Promise((resolve, reject) => {
    let closed!: () => void;
    const finished = new Promise<void>((done) => closed = done);
    const server = nodeServe({
      hostname,
      port,
      fetch: async (request: Request) => {
        try {
          return await fetch(request);
        } catch (error) {
          return onError(error);
        }
      },
    }, (info) =>
      resolve({
        hostname: info.address,
        port: info.port,
        finished,
        shutdown: () => new Promise<void>((done) => server.close(() => done())),
      }));
    server.once("error", reject);
    server.once("close", () => closed());
  });
};

/**
 * The memory queue, or the redis one: `queues/bullmq.ts` (and with it the optional peers
 * `bullmq` and `ioredis`) is imported only when a redis queue is asked for, so no other command
 * needs them installed. Deno KV queues need Deno.
 */
const openQueue: OpenQueue = async (kind, { redis }) => {
  if (kind === "memory") return new MemoryQueue();
  if (kind === "redis") return await openRedisQueue(() => import("./queues/bullmq.ts"), redis!);
  throw new UsageError(
    "The kv queue needs Deno (deno run cli.ts ...); here use --queue memory or " +
      "--queue redis://HOST:PORT",
  );
};

/** Proxies and `cafile` for `fetch`; a `cafile` that cannot be read exits 2 before anything. */
async function setUpNetwork(): Promise<number | undefined> {
  try {
    const config = await npmConfig();
    await installNetworkSettings(networkSettings(process.env, (key) => config.get(key)));
    return undefined;
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return 2;
  }
}

// Parallel view scans: worker_threads running cli/view_worker.node.js (.ts when this file runs
// from source). Deno KV stays on the main thread, which the workers read through: `@deno/kv`
// 0.14's native addon crashes the process now and then (SIGSEGV, or V8's "Check failed:
// node->IsInUse()") when two threads use it at once.
const viewWorker = new URL(
  `./cli/view_worker.node.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`,
  import.meta.url,
);
setViewWorkerFactory(({ message, error }) => {
  const worker = new Worker(viewWorker);
  worker.on("message", message);
  worker.on("error", error);
  return {
    postMessage: (data) => worker.postMessage(data),
    terminate: () => void worker.terminate(),
  };
}, ["kv"]);

const status = (await setUpNetwork()) ?? await main(process.argv.slice(2), {
  openStorage: (options, access) => openNodeStorage({ ...options, access }),
  listen,
  prepareListen: async () => {
    await loadServer();
  },
  openQueue,
  createHash: () => createHash("sha256"),
  gzipSync,
  gunzipSync,
});
await exitAfterOutput(status);
