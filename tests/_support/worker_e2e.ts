/**
 * Shared by the worker's end-to-end tests (the CLI's `worker start` and the Deno Deploy entry):
 * the strict `_all_docs` and registry fixtures with generated packuments, `worker start`
 * processes, the worker API from the test's side, and the check that the cache mirrors the
 * origins.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "./run_cli.ts";
import type { Child } from "./spawn.ts";
import { generatePackument, prng } from "./packuments.ts";
import {
  type RegistryFaultPlan,
  type RegistryFixture,
  startRegistryFixture,
} from "./registry_fixture.ts";
import {
  type AllDocsFixture,
  applyRandomChanges,
  type FaultPlan,
  startAllDocsFixture,
} from "./all_docs_fixture.ts";

export const TOKEN = "worker-test-token";

function generated(count: number): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const name = i % 5 === 0 ? `@gen/pkg-${i}` : `pkg-${i}`;
    out.set(name, generatePackument(name, { versions: 1 + (i % 5), seed: i }));
  }
  return out;
}

function revOf(body: string): string {
  return JSON.parse(body)._rev as string;
}

export interface Origins {
  docs: Map<string, string>;
  allDocs: AllDocsFixture;
  registry: RegistryFixture;
  dir: string;
  env: Record<string, string>;
}

/**
 * Faults on both origins, the same plan for every worker's end-to-end test: 20% of registry
 * requests fail (half 503, half a reset), and every fifth `_all_docs` request (the first one
 * included) fails (half 502, half a truncated body). The dice are seeded: a run repeats.
 */
export function twentyPercentFaults(
  registrySeed: number,
  allDocsSeed: number,
): { registryFaults: RegistryFaultPlan; allDocsFaults: FaultPlan } {
  const registryDice = prng(registrySeed);
  const allDocsDice = prng(allDocsSeed);
  return {
    registryFaults: () =>
      registryDice() < 0.2
        ? (registryDice() < 0.5 ? { kind: "status", status: 503 } : { kind: "reset" })
        : undefined,
    allDocsFaults: ({ n }) =>
      n % 5 === 0
        ? (allDocsDice() < 0.5 ? { kind: "status", status: 502 } : { kind: "truncate" })
        : undefined,
  };
}

export async function withOrigins(
  options: {
    count?: number;
    registryFaults?: RegistryFaultPlan;
    allDocsFaults?: FaultPlan;
  },
  fn: (origins: Origins) => Promise<void>,
): Promise<void> {
  const docs = generated(options.count ?? 40);
  const allDocs = await startAllDocsFixture({
    ids: [...docs.keys()],
    revFor: (id) => revOf(docs.get(id)!),
    ...(options.allDocsFaults ? { faults: options.allDocsFaults } : {}),
  });
  const registry = await startRegistryFixture({
    packuments: docs,
    ...(options.registryFaults ? { faults: options.registryFaults } : {}),
  });
  const dir = await Deno.makeTempDir();
  const env = {
    ALL_DOCS_CACHE_DIR: join(dir, "cache"),
    ALL_DOCS_ORIGIN: allDocs.origin,
    ALL_DOCS_REGISTRY: registry.url,
    ALL_DOCS_WORKER_TOKEN: TOKEN,
  };
  try {
    await fn({ docs, allDocs, registry, dir, env });
  } finally {
    await registry.close();
    await allDocs.close();
    await Deno.remove(dir, { recursive: true });
  }
}

export function api(url: string, path: string, init: RequestInit = {}, token = TOKEN) {
  const headers = new Headers(init.headers);
  if (token) headers.set("authorization", `Bearer ${token}`);
  if (init.body) headers.set("content-type", "application/json");
  return fetch(new URL(path, url), { ...init, headers });
}

export async function json(response: Response): Promise<Record<string, unknown>> {
  return await response.json() as Record<string, unknown>;
}

export async function postSet(url: string, origins: Origins, pivots: string[]) {
  const response = await api(url, "-/worker/items", {
    method: "POST",
    body: JSON.stringify({
      items: [{
        type: "partition-set",
        payload: {
          origin: origins.allDocs.origin,
          pivots,
          packuments: "full",
          registry: origins.registry.url,
        },
      }],
    }),
  });
  assert.equal(response.status, 202);
  return await json(response);
}

/** Deletions and updates at the origin, and one new document. */
export function changeOrigin(origins: Origins, seed: number): void {
  const applied = applyRandomChanges(origins.allDocs, 40, { seed, creates: 0, deletes: 0.1 });
  assert.ok(applied.deleted > 0 && applied.updated > 0, JSON.stringify(applied));
  assert.ok(origins.allDocs.add(`${origins.allDocs.ids[3]}-new${seed}`, "1-abc"));
}

/** Polls the worker's stats until nothing is queued or running. */
export async function untilIdle(url: string, ms = 60_000): Promise<Record<string, number>> {
  const until = Date.now() + ms;
  while (true) {
    const stats = await json(await api(url, "-/worker/stats")) as Record<string, number>;
    if (stats.queued === 0 && stats.running === 0 && stats.done! > 0) return stats;
    if (Date.now() > until) assert.fail(`worker never went idle: ${JSON.stringify(stats)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The origin's listing, create-index style (unless `index` is false: a cache the CLI cannot
 * open), and every packument as the worker's replica serves it, byte for byte.
 */
export async function assertMirrored(
  origins: Origins,
  url: string,
  options: { index?: boolean } = {},
): Promise<void> {
  if (options.index !== false) {
    const index = await runCli(["cache", "create-index"], origins.env);
    assert.equal(index.code, 0, index.stderr);
    assert.equal(index.stdout, origins.allDocs.rows.map((r) => `${r.id},${r.rev}\n`).join(""));
  }
  for (const name of origins.docs.keys()) {
    const path = name.startsWith("@") ? name.replace("/", "%2f") : name;
    const response = await fetch(new URL(path, url), { headers: { accept: "application/json" } });
    assert.equal(response.status, 200, name);
    const body = new Uint8Array(await response.arrayBuffer());
    assert.deepEqual(body, origins.registry.expectedBody(name, "full"), name);
  }
}

/** How many times each packument body was sent whole (200 GET). */
export function bodiesSent(registry: RegistryFixture): Map<string, number> {
  const sent = new Map<string, number>();
  for (const r of registry.requests) {
    if (r.method === "GET" && r.status === 200 && r.name !== null) {
      sent.set(r.name, (sent.get(r.name) ?? 0) + 1);
    }
  }
  return sent;
}

/** A `worker start` process and its address. */
export interface RunningWorker {
  child: Child;
  url: string;
}

/**
 * Starts `worker start --port 0 ...args` with `env` and waits for its `listening` line.
 *
 * @param args Flags after `worker start --port 0`.
 * @param env Extra environment values.
 */
export async function startWorker(
  args: string[],
  env: Record<string, string>,
): Promise<RunningWorker> {
  const child = startCli(["worker", "start", "--port", "0", ...args], env);
  const line = await child.line().catch(async (error) => {
    await child.stop();
    throw error;
  });
  const match = /^listening (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
  if (!match) {
    await child.stop();
    assert.fail(`unexpected first line: ${JSON.stringify(line)}\n${child.output()}`);
  }
  return { child, url: match[1]! };
}

/** Polls `ready` every 20 ms until it is true; fails with `what` after `ms`. */
export async function waitFor(ready: () => boolean, what: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The ids of the items a worker settled with `outcome`, from its stderr event lines. */
export function settled(stderr: string, outcome = "ack"): string[] {
  const ids: string[] = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith('{"type":"item"')) continue;
    const event = JSON.parse(line) as { outcome: string; id?: string };
    if (event.outcome === outcome && event.id !== undefined) ids.push(event.id);
  }
  return ids;
}

/** The worker's `/_all_docs` (every row) equals the origin's listing, as `id,rev` lines. */
export async function assertListing(origins: Origins, url: string): Promise<void> {
  const listing = await fetch(new URL("_all_docs", url));
  assert.equal(listing.status, 200);
  const rows = (await listing.json() as { rows: { id: string; value: { rev: string } }[] }).rows;
  assert.deepEqual(
    rows.map((r) => `${r.id},${r.value.rev}`),
    origins.allDocs.rows.map((r) => `${r.id},${r.rev}`),
  );
}
