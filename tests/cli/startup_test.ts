import assert from "node:assert/strict";
import { run } from "../_support/spawn.ts";
import { type CliRuntime, main } from "../../cli/main.ts";
import { host, type HostStream, setHost } from "../../cli/host.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

/** The `node:` modules (or, with `prefix`, the npm packages) a module loads, with everything it
 * imports statically (`deno info`). */
async function nodeModulesOf(entry: string, prefix = "node:"): Promise<string[]> {
  const info = await run(Deno.execPath(), ["info", "--json", entry]);
  assert.equal(info.code, 0, info.stderr);
  const graph = JSON.parse(info.stdout) as {
    roots: string[];
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier?: string }; isDynamic?: boolean }[];
    }[];
  };
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const nodes = new Set<string>();
  const stack = [...graph.roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      const to = dependency.code?.specifier;
      if (to === undefined || dependency.isDynamic) continue;
      if (to.startsWith(prefix)) nodes.add(to);
      else if (to.startsWith("file:")) stack.push(to);
    }
  }
  return [...nodes].sort();
}

// On Deno the first touch of node:process, node:fs, node:crypto or node:zlib loads Node's
// compatibility layer: tens of milliseconds before anything else. The CLI's start, and the
// follower's command, load only node:util (parseArgs) and node:path.
Deno.test("the Deno CLI starts, and changes follow runs, on no Node module but node:util and node:path", async () => {
  for (const entry of ["cli.ts", "cli/commands/changes.ts"]) {
    const loaded = await nodeModulesOf(entry);
    assert.deepEqual(
      loaded.filter((name) => name !== "node:util" && name !== "node:path"),
      [],
      `${entry} loads ${loaded.join(", ")}`,
    );
  }
});

// On Node, `@deno/kv` (sixty modules), `undici` (a hundred) and `@hono/node-server` load only
// for the commands that use them (a kv storage, a proxy or cafile, serve and worker start):
// the optional peers stay optional, and a command's start is a third shorter.
Deno.test("the Node CLI loads no optional peer nor undici before a command needs one", async () => {
  for (const entry of ["cli.node.ts", "cli/view_worker.node.ts"]) {
    const loaded = await nodeModulesOf(entry, "npm:");
    assert.deepEqual(
      loaded.filter((name) => /^npm:\/?(@deno\/kv|undici|@hono\/|hono|bullmq|ioredis)/.test(name)),
      [],
      `${entry} loads ${loaded.join(", ")}`,
    );
  }
});

Deno.test("main() loads the runtime's native hash and gzip only for a command that needs them", async () => {
  const loads: string[] = [];
  const written: string[] = [];
  const quiet: HostStream = {
    write: (chunk, done) => {
      written.push(String(chunk));
      done?.();
      return true;
    },
    on: () => {},
    once: () => {},
    off: () => {},
  };
  const before = host();
  setHost({ ...before, stdout: quiet, stderr: quiet, env: () => undefined });
  try {
    const runtime: CliRuntime = {
      openStorage: () => Promise.resolve(new MemoryDriver()),
      listen: () => Promise.reject(new Error("not listening")),
      loadNative: () => {
        loads.push("native");
        return Promise.resolve({});
      },
    };
    const global = ["--origin", "http://127.0.0.1:9/", "--storage", "memory"];
    // Neither --since nor a checkpoint: exit 2, after the command has started.
    assert.equal(await main(["changes", "follow", "--once", ...global], runtime), 2);
    assert.match(written.join(""), /--since/);
    assert.deepEqual(loads, [], "a follow writes patches only: nothing native loaded");
    assert.equal(
      await main(["changes", "follow", "--once", "--packuments", ...global], runtime),
      2,
    );
    assert.deepEqual(loads, ["native"], "a follow storing packuments loads them");
    // A follower that keeps running (no --once) has them too (and stops at the missing --since).
    assert.equal(await main(["changes", "follow", ...global], runtime), 2);
    assert.deepEqual(loads, ["native", "native"], "a follower that keeps running loads them");
    assert.equal(await main(["cache", "stats", "--storage", "memory"], runtime), 0);
    assert.deepEqual(loads, ["native", "native", "native"]);
  } finally {
    setHost(before);
  }
});
