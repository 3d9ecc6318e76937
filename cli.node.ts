#!/usr/bin/env node
/**
 * The `_all_docs` command line for Node: the `_all_docs` bin of the npm package
 * (`node cli.node.js <command> [options]`). The same CLI as `cli.ts`, with Node's storage
 * drivers (`drivers/select.node.ts`: the Deno KV driver runs on `@deno/kv`) and `serve` on
 * `@hono/node-server`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import process from "node:process";
import { serve as nodeServe } from "@hono/node-server";
import { main } from "./cli/main.ts";
import type { Listen } from "./cli/context.ts";
import { createStorageDriver } from "./drivers/select.node.ts";

/** `serve` on `@hono/node-server`. */
const listen: Listen = ({ hostname, port, fetch, onError }) =>
  new Promise((resolve, reject) => {
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

const status = await main(process.argv.slice(2), {
  openStorage: (options, access) => createStorageDriver({ ...options, access }),
  listen,
  createHash: () => createHash("sha256"),
});
process.exitCode = status;
