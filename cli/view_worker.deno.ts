/**
 * The view worker on Deno: a Web Worker started by `cli.ts` for parallel view scans
 * (`view query`, `view join`, `view run`). It opens its own storage driver from the settings the
 * main thread sends, with Deno's drivers (`drivers/select.deno.ts`), and serves
 * `src/views/worker.ts`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gunzipSync } from "./zlib.ts";
import { createStorageDriver, type StorageSettings } from "../drivers/select.deno.ts";
import { serveViewWorker } from "../src/views/worker.ts";

/** The worker's global scope, as far as it is used here. */
const scope = globalThis as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
};

serveViewWorker({
  post: (message) => scope.postMessage(message),
  listen: (handler) => {
    scope.onmessage = (event) => handler(event.data);
  },
}, {
  openStorage: (settings) => createStorageDriver(settings as StorageSettings),
  cacheOptions: { createHash: () => createHash("sha256"), gunzipSync },
  importModule: (specifier) => import(specifier),
});
