/**
 * Runs the Cloudflare Workers bundle locally in workerd, through Miniflare, with every binding
 * of `workers/wrangler.toml`: `deno task dev:cloudflare --port N --origin URL --registry URL
 * --token T [--persist DIR]`. It is driven over HTTP exactly like `worker start`: the same
 * worker API under `/-/worker/` and the same replica routes.
 *
 * Options:
 * - `--port N` (default 8787; 0 for any free port), on 127.0.0.1.
 * - `--registry URL` (required), `--token T` (required: the worker API's bearer token),
 *   `--registry-token T` (optional).
 * - `--origin URL`, `--pivots JSON`, `--packuments full|corgi`: the cron refresh's partition
 *   set (the vars `ORIGIN`, `PIVOTS`, `PACKUMENTS`); `--follow-cron PATTERN`: the cron pattern
 *   that follows `_changes` (the var `FOLLOW_CRON`).
 * - `--retries N`, `--concurrency N`: the vars `RETRIES` and `CONCURRENCY`.
 * - `--persist DIR`: keep R2, D1 and the queues in DIR across runs (in memory otherwise).
 * - `--script FILE`: run this bundle instead of building one with `bundle:edge`.
 *
 * Miniflare comes from the test peers (`npm install --prefix tests/peers`) and runs under Node.
 * The cron trigger is fired by `GET /cdn-cgi/handler/scheduled?cron=PATTERN` (Miniflare's
 * `unsafeTriggerHandlers`, as `wrangler dev --test-scheduled`). Prints
 * `listening http://127.0.0.1:PORT/` once ready; the Worker's log lines (one JSON line per
 * settled item) go to stderr. SIGINT or SIGTERM stops workerd and exits 0.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleEdge } from "./bundle_edge.ts";

/** The repository root. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Where Miniflare is installed (a test peer). */
const PEERS = join(ROOT, "tests", "peers") + "/";

/** The queues, as `workers/wrangler.toml` names them. */
export const QUEUE_NAMES = {
  high: "all-docs-high",
  normal: "all-docs-normal",
  dead: "all-docs-dead",
} as const;

/** The Node script that runs the bundle in workerd until its stdin closes. */
const RUNNER = `
import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
const config = JSON.parse(await readFile(process.argv[2], "utf8"));
const require = createRequire(config.peers);
const { Miniflare } = await import(pathToFileURL(require.resolve("miniflare")).href);
const band = {
  maxBatchSize: 10,
  maxBatchTimeout: 0,
  maxRetries: 3,
  deadLetterQueue: config.queues.dead,
};
const mf = new Miniflare({
  modules: true,
  scriptPath: config.scriptPath,
  compatibilityDate: "2026-04-01",
  r2Buckets: ["BODIES"],
  d1Databases: ["STATE"],
  queueProducers: {
    WORK_HIGH: { queueName: config.queues.high },
    WORK_NORMAL: { queueName: config.queues.normal },
  },
  queueConsumers: {
    [config.queues.high]: band,
    [config.queues.normal]: band,
    [config.queues.dead]: { maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: 3 },
  },
  bindings: config.bindings,
  unsafeTriggerHandlers: true,
  ...(config.persist ? { defaultPersistRoot: config.persist } : {}),
  host: "127.0.0.1",
  port: config.port,
});
const url = await mf.ready;
process.stdout.write("ready " + url.href + "\\n");
process.stdin.resume();
process.stdin.on("end", () => mf.dispose().then(() => process.exit(0)));
`;

function usage(message: string): never {
  console.error(`error: ${message}`);
  console.error(
    "usage: deno task dev:cloudflare --port N --registry URL --token T [--origin URL] " +
      "[--pivots JSON] [--packuments full|corgi] [--follow-cron PATTERN] [--retries N] [--concurrency N] " +
      "[--registry-token T] [--persist DIR] [--script FILE]",
  );
  Deno.exit(2);
}

/** Copies lines of `stream` to stderr, handing the first `ready ` line to `ready`. */
async function pump(
  stream: ReadableStream<Uint8Array>,
  ready: ((url: string) => void) | undefined,
): Promise<void> {
  const encoder = new TextEncoder();
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    rest += text;
    let at: number;
    while ((at = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, at);
      rest = rest.slice(at + 1);
      if (ready && line.startsWith("ready ")) {
        ready(line.slice(6));
        ready = undefined;
      } else await Deno.stderr.write(encoder.encode(`${line}\n`));
    }
  }
  if (rest !== "") await Deno.stderr.write(encoder.encode(rest));
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        port: { type: "string", default: "8787" },
        origin: { type: "string" },
        registry: { type: "string" },
        token: { type: "string" },
        "registry-token": { type: "string" },
        pivots: { type: "string" },
        packuments: { type: "string" },
        "follow-cron": { type: "string" },
        retries: { type: "string" },
        concurrency: { type: "string" },
        persist: { type: "string" },
        script: { type: "string" },
      },
    }));
  } catch (error) {
    usage((error as Error).message);
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) usage(`invalid --port '${values.port}'`);
  if (!values.registry) usage("--registry is required");
  if (!values.token) usage("--token is required");
  const bindings: Record<string, string> = {
    WORKER_TOKEN: values.token,
    REGISTRY: values.registry,
    DEAD_LETTER_QUEUE: QUEUE_NAMES.dead,
  };
  const vars: [string, string | undefined][] = [
    ["ORIGIN", values.origin],
    ["PIVOTS", values.pivots],
    ["PACKUMENTS", values.packuments],
    ["FOLLOW_CRON", values["follow-cron"]],
    ["RETRIES", values.retries],
    ["CONCURRENCY", values.concurrency],
    ["REGISTRY_TOKEN", values["registry-token"]],
  ];
  for (const [name, value] of vars) if (value !== undefined) bindings[name] = value;

  const dir = await Deno.makeTempDir({ prefix: "dev-cloudflare-" });
  const scriptPath = values.script === undefined
    ? (await bundleEdge(join(dir, "cloudflare.js"))).path
    : resolve(values.script);
  const config = join(dir, "config.json");
  await Deno.writeTextFile(join(dir, "run.mjs"), RUNNER);
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      peers: PEERS,
      scriptPath,
      queues: QUEUE_NAMES,
      bindings,
      persist: values.persist === undefined ? undefined : resolve(values.persist),
      port,
    }),
  );
  const child = new Deno.Command("node", {
    args: [join(dir, "run.mjs"), config],
    cwd: dirname(scriptPath),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { promise: listening, resolve: ready } = Promise.withResolvers<string>();
  const out = pump(child.stdout, ready);
  const err = pump(child.stderr, undefined);
  // A signal closes workerd's stdin: the runner disposes of Miniflare and exits, and the end
  // of this function cleans up.
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    child.stdin.close().catch(() => {});
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, stop);
  const exited = child.status.then((status) => {
    throw new Error(`Miniflare exited with ${status.code} before it was ready`);
  });
  try {
    console.log(`listening ${await Promise.race([listening, exited])}`);
  } catch (error) {
    await Promise.all([out, err]);
    await Deno.remove(dir, { recursive: true });
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
  // After a signal, or Miniflare's own exit (a crash).
  const status = await child.status;
  await Promise.all([out, err]);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  Deno.exit(stopped || status.success ? 0 : 1);
}

if (import.meta.main) await main();
