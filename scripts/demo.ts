/**
 * `deno task demo`: the whole pipeline on one machine, against a local origin.
 *
 * 1. Starts a local origin on 127.0.0.1: a replication endpoint (`_all_docs`) and a registry
 *    serving a sample of real package names from the `all-the-package-names` npm package, with
 *    generated packuments whose `_rev` matches the listing.
 * 2. Runs `partition refresh`, `packument fetch-partitions` (twice: the second run skips
 *    everything unchanged) and `cache create-index` into the embedded fs storage under
 *    `.tmp/demo/` (a fresh directory each run, so your own cache is left alone).
 * 3. Starts `serve` on the cache.
 * 4. Shows `npm view` reading from it.
 * 5. Stops everything it started.
 *
 * Options: `--sample N` names (default 2000); `--names FILE` (a JSON array) instead of the
 * package, which is otherwise installed into `bench/names/` with npm on first use; `--dir DIR`
 * for the cache instead of `.tmp/demo/` (it is emptied first).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { ensureNames, NAMES_FILE, ROOT } from "../bench/_measure.ts";
import { packageNameProblem } from "../src/npm/package_name.ts";
import { generatePackument } from "../tests/_support/packuments.ts";
import { startAllDocsFixture } from "../tests/_support/all_docs_fixture.ts";
import { startRegistryFixture } from "../tests/_support/registry_fixture.ts";

const encoder = new TextEncoder();

function say(text: string): void {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  console.log(`$ ${[cmd === Deno.execPath() ? "deno" : cmd, ...args].join(" ")}`);
  const output = await new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    console.log(text);
    throw new Error(`${cmd} ${args.join(" ")} exited with ${output.code}`);
  }
  return text;
}

async function loadNames(file: string | undefined, sample: number): Promise<string[]> {
  if (!file) await ensureNames();
  const all: string[] = JSON.parse(await Deno.readTextFile(file ?? NAMES_FILE));
  const step = Math.max(1, Math.floor(all.length / sample));
  const names: string[] = [];
  for (let i = 0; i < all.length && names.length < sample; i += step) {
    // Skip the few listed names a registry could not serve (a leading "-" reads as a registry
    // path such as /-/ping).
    let j = i;
    while (j < all.length && (packageNameProblem(all[j]!) || all[j]!.startsWith("-"))) j++;
    if (j < all.length) names.push(all[j]!);
  }
  return [...new Set(names)];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sample: { type: "string", default: "2000" },
      names: { type: "string" },
      dir: { type: "string" },
    },
    strict: true,
  });
  const sample = Number(values.sample);
  if (!Number.isInteger(sample) || sample < 10) {
    console.error(`error: --sample must be an integer of at least 10, received '${values.sample}'`);
    Deno.exit(2);
  }
  const names = await loadNames(values.names, sample);
  say(`Starting a local origin with ${names.length} real package names`);
  const packuments = new Map<string, string>();
  const revs = new Map<string, string>();
  names.forEach((name, i) => {
    const doc = generatePackument(name, { versions: 1 + (i % 5), seed: i });
    packuments.set(name, doc);
    revs.set(name, JSON.parse(doc)._rev);
  });
  const replicate = await startAllDocsFixture({ ids: names, revFor: (id) => revs.get(id)! });
  const registry = await startRegistryFixture({ packuments });
  console.log(`replication endpoint ${replicate.origin}\nregistry             ${registry.url}`);

  const cacheDir = values.dir ?? join(ROOT, ".tmp", "demo");
  await Deno.remove(cacheDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(cacheDir, { recursive: true });
  const env = {
    ALL_DOCS_CACHE_DIR: cacheDir,
    ALL_DOCS_ORIGIN: replicate.origin,
    ALL_DOCS_REGISTRY: registry.url,
  };
  const cli = (...args: string[]) => run(Deno.execPath(), ["run", "-A", "cli.ts", ...args], env);
  let server: Deno.ChildProcess | undefined;
  try {
    const sorted = replicate.ids;
    const pivots = Array.from(
      { length: 7 },
      (_, i) => sorted[Math.floor((i + 1) * sorted.length / 8)]!,
    );
    const pivotsFile = join(cacheDir, "pivots.json");
    await Deno.writeFile(pivotsFile, encoder.encode(JSON.stringify(pivots)));

    say("partition refresh: every _all_docs range into the cache (8 ranges)");
    console.log(await cli("partition", "refresh", "--pivots", pivotsFile));
    say("packument fetch-partitions: the packument of every listed id");
    console.log(await cli("packument", "fetch-partitions"));
    say("packument fetch-partitions again: nothing changed, so nothing is fetched");
    console.log(await cli("packument", "fetch-partitions"));
    say("cache create-index: id,rev of every document (first 5 lines)");
    const index = await cli("cache", "create-index");
    console.log(index.split("\n").slice(0, 5).join("\n"));
    console.log(`... ${index.trim().split("\n").length} lines`);
    say("cache stats");
    console.log(await cli("cache", "stats"));

    say("serve: the cache as a read replica");
    server = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli.ts", "serve", "--port", "0", "--quiet"],
      cwd: ROOT,
      env: { RUST_BACKTRACE: "0", NO_COLOR: "1", ...env },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = server.stdout.getReader();
    let line = "";
    while (!line.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("serve stopped before it listened");
      line += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const replica = /listening (\S+)/.exec(line)?.[1];
    if (!replica) throw new Error(`serve said: ${line}`);
    console.log(`replica ${replica}`);

    say("npm view, reading from the replica");
    const npmDir = join(cacheDir, "npm");
    await Deno.mkdir(npmDir, { recursive: true });
    await Deno.writeTextFile(join(npmDir, "npmrc"), "update-notifier=false\n");
    const plain = names.find((n) => !n.startsWith("@"))!;
    const scoped = names.find((n) => n.startsWith("@"));
    for (const name of [plain, ...(scoped ? [scoped] : [])]) {
      const out = await run("npm", [
        "view",
        name,
        "name",
        "dist-tags.latest",
        "versions",
        "--registry",
        replica,
        "--userconfig",
        join(npmDir, "npmrc"),
        "--cache",
        join(npmDir, "cache"),
      ]);
      console.log(out.trim());
    }
    say("Done: the replica, the origin and every process are stopped");
  } finally {
    if (server) {
      server.kill("SIGTERM");
      await server.status;
      await server.stdout.cancel().catch(() => {});
    }
    await replicate.close();
    await registry.close();
  }
}

if (import.meta.main) await main();
