/**
 * Replica benchmark for gzip bodies: requests per second for full documents over 1 MB, served by
 * the real command (`cli.ts serve`, `Deno.serve`, a separate process) from an fs cache, with the
 * bodies stored identity (as before gzip storage) and stored gzip, to clients that send
 * `Accept-Encoding: gzip` (as npm's CLI and pacote do) and to clients that send none.
 *
 * The client is `node:http` in this process (it does not decode, so the client's cost is the
 * same whatever the encoding): `--concurrency` requests in flight for `--seconds` per scenario,
 * each reading the whole response. Documents are generated (`tests/_support/packuments.ts`),
 * `--docs` of them, 1.5 to 3 MB each.
 *
 * Goal: gzip clients of a gzip-stored cache at least 1.5x the requests per second of gzip
 * clients of an identity-stored one.
 *
 * Run with `deno run -A bench/replica_gzip.ts [--dir /dev/shm] [--seconds 5] [--docs 8]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import http from "node:http";
import { generatePackument } from "../tests/_support/packuments.ts";
import { ROOT } from "./_measure.ts";

const GOAL = 1.5;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    dir: { type: "string" },
    seconds: { type: "string", default: "5" },
    docs: { type: "string", default: "8" },
    concurrency: { type: "string", default: "8" },
  },
  strict: true,
});
const SECONDS = Number(values.seconds);
const DOCS = Number(values.docs);
const CONCURRENCY = Number(values.concurrency);

/** Starts `cli.ts serve` on a free port over `cacheDir` (documents of `registry`); resolves with
 * its URL and a stopper. */
async function serve(
  cacheDir: string,
  registry: string,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", "serve", "--port", "0", "--hostname", "127.0.0.1", "--quiet"],
    cwd: ROOT,
    env: { ALL_DOCS_CACHE_DIR: cacheDir, ALL_DOCS_REGISTRY: registry },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/listening (\S+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve exited before listening: ${text}`);
    text += value;
  }
  const url = /listening (\S+)/.exec(text)![1]!;
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    url,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** One GET with node:http (never decoding); resolves with the bytes received. */
function get(url: string, gzip: boolean, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, {
      agent,
      headers: { accept: "application/json", ...(gzip ? { "accept-encoding": "gzip" } : {}) },
    }, (response) => {
      let bytes = 0;
      response.on("data", (chunk: Uint8Array) => bytes += chunk.length);
      response.on("end", () => {
        if (response.statusCode !== 200) reject(new Error(`${url}: ${response.statusCode}`));
        else resolve(bytes);
      });
      response.on("error", reject);
    });
    request.on("error", reject);
  });
}

/** Requests per second and bytes per response of `--seconds` of load on `names`. */
async function load(
  base: string,
  names: string[],
  gzip: boolean,
): Promise<{ rps: number; bytes: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const end = performance.now() + SECONDS * 1000;
  let requests = 0;
  let bytes = 0;
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      const received = await get(`${base}${names[next++ % names.length]}`, gzip, agent);
      bytes += received;
      requests++;
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  return { rps: requests / elapsed, bytes: bytes / requests };
}

const tmp = await Deno.makeTempDir({
  prefix: "all-docs-replica-gzip-",
  ...(values.dir ? { dir: values.dir } : {}),
});
try {
  const registry = await startRegistry();
  const names = Array.from({ length: DOCS }, (_, i) => `big-${i}`);
  const rows: string[] = [];
  const rps: Record<string, number> = {};
  let docBytes = 0;
  for (const encoding of ["identity", "gzip"] as const) {
    const cacheDir = join(tmp, encoding);
    await Deno.mkdir(cacheDir);
    const fetched = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "cli.ts",
        "packument",
        "fetch",
        ...names,
        "--quiet",
        "--store-encoding",
        encoding,
      ],
      cwd: ROOT,
      env: { ALL_DOCS_CACHE_DIR: cacheDir, ALL_DOCS_REGISTRY: registry.url },
    }).output();
    if (fetched.code !== 0) throw new Error(new TextDecoder().decode(fetched.stderr));
    const server = await serve(cacheDir, registry.url);
    try {
      for (const gzip of [true, false]) {
        await load(server.url, names, gzip); // warm-up pass, not counted
        const result = await load(server.url, names, gzip);
        const label = `stored ${encoding}, client ${gzip ? "accepts gzip" : "no gzip"}`;
        rps[`${encoding}/${gzip}`] = result.rps;
        if (encoding === "identity" && !gzip) docBytes = result.bytes;
        rows.push(
          `| ${label} | ${result.rps.toFixed(1)} | ${(result.bytes / 1e6).toFixed(2)} |`,
        );
      }
    } finally {
      await server.stop();
    }
  }
  await registry.stop();
  const ratio = rps["gzip/true"]! / rps["identity/true"]!;
  console.log(
    [
      `Replica, ${DOCS} full documents of ${(docBytes / 1e6).toFixed(2)} MB on average, ` +
      `${CONCURRENCY} in flight, ${SECONDS} s per scenario:`,
      "",
      "| scenario | requests/s | MB per response |",
      "| --- | ---: | ---: |",
      ...rows,
      "",
      `Goal: gzip clients at least ${GOAL}x with bodies stored gzip: ${ratio.toFixed(2)}x ` +
      `${ratio >= GOAL ? "MET" : "NOT MET"}`,
      `(clients without gzip, stored gzip vs identity: ${
        (rps["gzip/false"]! / rps["identity/false"]!).toFixed(2)
      }x)`,
    ].join("\n"),
  );
} finally {
  await Deno.remove(tmp, { recursive: true });
}

/** The registry fixture in this process, serving the generated documents. */
async function startRegistry(): Promise<{ url: string; stop: () => Promise<void> }> {
  const { startRegistryFixture } = await import("../tests/_support/registry_fixture.ts");
  const docs = new Map<string, string>();
  for (let i = 0; i < DOCS; i++) {
    docs.set(`big-${i}`, generatePackument(`big-${i}`, { versions: 1000 + 150 * i, seed: i }));
  }
  const fixture = await startRegistryFixture({ packuments: docs });
  return { url: fixture.url, stop: () => fixture.close() };
}
