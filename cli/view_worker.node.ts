/**
 * The view worker on Node: a `worker_threads` worker started by `cli.node.ts` for parallel view
 * scans (`view query`, `view join`, `view run`). It opens its own storage driver from the
 * settings the main thread sends, with Node's drivers (`./storage.node.ts`), and serves
 * `src/views/worker.ts`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gunzipSync } from "./zlib.ts";
import { parentPort } from "node:worker_threads";
import type { StorageSettings } from "../drivers/select.node.ts";
import { openNodeStorage } from "./storage.node.ts";
import { serveViewWorker } from "../src/views/worker.ts";

const port = parentPort;
if (port) {
  serveViewWorker({
    post: (message) => port.postMessage(message),
    listen: (handler) => {
      port.on("message", handler);
    },
  }, {
    openStorage: (settings) => openNodeStorage(settings as StorageSettings),
    cacheOptions: { createHash: () => createHash("sha256"), gunzipSync },
    importModule: (specifier) => import(specifier),
  });
}
