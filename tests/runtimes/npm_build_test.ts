/**
 * The npm build (`scripts/build_npm.ts`) and what it produces, run as a Node user would: every
 * export imported by Node, the `_all_docs` bin against a local registry fixture, a Deno KV file
 * shared between the Deno CLI and the Node bin, and a TypeScript consumer checked against the
 * emitted declarations.
 *
 * The build goes to `npm/` and is skipped when its inputs are unchanged since the last one, so
 * `deno task ok` (tests, then `build:npm`) builds once.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertSameSubpaths,
  importMapPlan,
  packageExports,
  parseNpmSpecifier,
  ROOT,
} from "../../scripts/build_npm.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { runCli } from "../_support/run_cli.ts";
import { run, type RunResult, start } from "../_support/spawn.ts";

const NPM_DIR = join(ROOT, "npm");
const TOOLS_TYPES = join(ROOT, ".tmp", "npm-build-tools", "node_modules", "@types");

function node(args: string[], cwd = ROOT): Promise<RunResult> {
  return run("node", args, { cwd });
}

function assertOk(result: RunResult, what: string): void {
  assert.deepStrictEqual(result.code, 0, `${what} exited ${result.code}:\n${result.stderr}`);
}

const denoJson = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as {
  name: string;
  version: string;
  exports: Record<string, string>;
  imports: Record<string, string>;
};

/** A temp dir where `import "<package name>"` resolves to the built package. */
async function consumerDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "all_docs_npm_consumer_" });
  const [scope, bare] = denoJson.name.startsWith("@")
    ? denoJson.name.split("/") as [string, string]
    : ["", denoJson.name];
  const parent = join(dir, "node_modules", scope);
  await Deno.mkdir(parent, { recursive: true });
  await Deno.symlink(NPM_DIR, join(parent, bare));
  return dir;
}

Deno.test("import map plan: npm: targets become bare specifiers and dependencies", () => {
  assert.deepStrictEqual(parseNpmSpecifier("npm:@deno/kv@0.14.0"), {
    name: "@deno/kv",
    version: "0.14.0",
    subpath: "",
  });
  assert.deepStrictEqual(parseNpmSpecifier("npm:/hono@4.13.19/"), {
    name: "hono",
    version: "4.13.19",
    subpath: "",
  });
  assert.deepStrictEqual(parseNpmSpecifier("jsr:@std/assert@1"), undefined);
  const plan = importMapPlan({
    "registry-auth-token": "npm:registry-auth-token@5.1.1",
    "registry-auth-token/registry-url": "npm:registry-auth-token@5.1.1/registry-url.js",
    "hono": "npm:hono@4.13.19",
    "hono/": "npm:/hono@4.13.19/",
  });
  assert.deepStrictEqual(
    plan.rewrite("registry-auth-token/registry-url"),
    "registry-auth-token/registry-url.js",
  );
  assert.deepStrictEqual(plan.rewrite("registry-auth-token"), "registry-auth-token");
  assert.deepStrictEqual(plan.rewrite("hono/http-exception"), "hono/http-exception");
  assert.deepStrictEqual(plan.rewrite("node:fs"), "node:fs");
  assert.deepStrictEqual(plan.dependencies, { hono: "4.13.19", "registry-auth-token": "5.1.1" });
  let threw = false;
  try {
    importMapPlan({ a: "npm:x@1", b: "npm:x@2" });
  } catch {
    threw = true;
  }
  assert.ok(threw, "two versions of one package must fail the build");
});

Deno.test("export lists: the build fails when deno.json and package.json differ", () => {
  const pkg = packageExports(
    {
      ".": "./mod.ts",
      "./drivers/fs": "./drivers/fs.ts",
      "./drivers/deno_kv": "./drivers/deno_kv.deno.ts",
    },
    false,
  );
  // A Deno-only module (NAME.deno.ts) is its Node flavour (NAME.node.ts) in the package.
  assert.deepStrictEqual(pkg, {
    ".": "./mod.ts",
    "./drivers/fs": "./drivers/fs.ts",
    "./drivers/deno_kv": "./drivers/deno_kv.node.ts",
  });
  let threw = 0;
  try {
    assertSameSubpaths({ ".": 1, "./a": 1 }, { ".": 1 });
  } catch {
    threw++;
  }
  try {
    packageExports({ ".": "./mod.ts" }, true); // the replica app exists, deno.json lacks it
  } catch {
    threw++;
  }
  assert.deepStrictEqual(threw, 2);
});

Deno.test("npm build", async (t) => {
  const build = await run(Deno.execPath(), ["run", "-A", "scripts/build_npm.ts"]);
  assertOk(build, "the build");

  const pkg = JSON.parse(await Deno.readTextFile(join(NPM_DIR, "package.json")));

  await t.step("package.json follows deno.json", () => {
    assert.deepStrictEqual(pkg.name, denoJson.name);
    assert.deepStrictEqual(pkg.version, denoJson.version);
    assert.deepStrictEqual(pkg.type, "module");
    assert.deepStrictEqual(pkg.bin, { _all_docs: "./cli.node.js" });
    assert.deepStrictEqual(pkg.engines, { node: ">=20" });
    assert.deepStrictEqual(pkg.devDependencies, undefined);
    assert.deepStrictEqual(Object.keys(pkg.exports).sort(), Object.keys(denoJson.exports).sort());
    const expected: Record<string, string> = {};
    for (const target of Object.values(denoJson.imports)) {
      const parsed = parseNpmSpecifier(target)!;
      expected[parsed.name] = parsed.version;
    }
    assert.deepStrictEqual(pkg.dependencies, expected);
    for (const entry of Object.values(pkg.exports) as { types: string; import: string }[]) {
      assert.ok(Deno.statSync(join(NPM_DIR, entry.types)).isFile, entry.types);
      assert.ok(Deno.statSync(join(NPM_DIR, entry.import)).isFile, entry.import);
    }
    for (const file of ["README.md", "LICENSE"]) {
      assert.ok(Deno.statSync(join(NPM_DIR, file)).isFile, file);
    }
  });

  await t.step("node imports every export of the package", async () => {
    const dir = await consumerDir();
    try {
      const subpaths = Object.keys(pkg.exports);
      const lines = subpaths.map((s, i) =>
        `import * as m${i} from ${JSON.stringify(pkg.name + s.slice(1))};`
      );
      lines.push(
        `console.log(JSON.stringify({ node: process.versions.node, exports: {`,
        ...subpaths.map((s, i) => `  ${JSON.stringify(s)}: Object.keys(m${i}).sort(),`),
        `} }));`,
      );
      await Deno.writeTextFile(join(dir, "check.mjs"), lines.join("\n"));
      const result = await node(["check.mjs"], dir);
      assertOk(result, "node check.mjs");
      const seen = JSON.parse(result.stdout) as { node: string; exports: Record<string, string[]> };
      assert.ok(Number(seen.node.split(".")[0]) >= 20, `node ${seen.node}`);
      const has = (subpath: string, name: string) =>
        assert.ok(seen.exports[subpath]?.includes(name), `${subpath} exports ${name}`);
      has(".", "Cache");
      has(".", "packumentKey");
      has(".", "HttpClient");
      has("./drivers/memory", "MemoryDriver");
      has("./drivers/fs", "FsDriver");
      has("./drivers/deno_kv", "DenoKvDriver");
      if ("./replica" in pkg.exports) has("./replica", "createReplicaApp");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("the bin runs under node", async () => {
    const help = await node([join(NPM_DIR, "cli.node.js"), "--help"]);
    assertOk(help, "_all_docs --help");
    assert.ok(help.stdout.includes("Usage: _all_docs"), help.stdout);
    const version = await node([join(NPM_DIR, "cli.node.js"), "--version"]);
    assertOk(version, "_all_docs --version");
    assert.ok(version.stdout.includes(denoJson.version), version.stdout);
    const first = await Deno.readTextFile(join(NPM_DIR, "cli.node.js"));
    assert.ok(first.startsWith("#!/usr/bin/env node\n"));
    assert.ok((Deno.statSync(join(NPM_DIR, "cli.node.js")).mode! & 0o111) !== 0, "executable");
  });

  const packuments = await loadFixturePackuments();
  const fixture = await startRegistryFixture({ packuments });
  const names = [...packuments.keys()];
  const bin = join(NPM_DIR, "cli.node.js");
  const tmp = await Deno.makeTempDir({ prefix: "all_docs_npm_build_" });
  try {
    await t.step(
      "packument fetch-list and show under node, fs storage, byte for byte",
      async () => {
        const list = join(tmp, "names.json");
        await Deno.writeTextFile(list, JSON.stringify(names));
        const cacheDir = join(tmp, "fs-cache");
        const common = ["--storage", "fs", "--cache-dir", cacheDir, "--registry", fixture.url];
        const fetched = await node([bin, "packument", "fetch-list", list, ...common, "--quiet"]);
        assertOk(fetched, "packument fetch-list");
        for (const name of names) {
          const shown = await node([bin, "packument", "show", name, ...common]);
          assertOk(shown, `packument show ${name}`);
          assert.deepStrictEqual(shown.stdoutBytes, fixture.expectedBody(name, "full"), name);
        }
      },
    );

    await t.step("serve runs under node on @hono/node-server", async () => {
      const cacheDir = join(tmp, "fs-cache");
      const child = start("node", [
        bin,
        "serve",
        "--port",
        "0",
        "--storage",
        "fs",
        "--cache-dir",
        cacheDir,
        "--registry",
        fixture.url,
      ]);
      try {
        const line = await child.line();
        const url = /listening (\S+)/.exec(line)?.[1];
        assert.ok(url, `serve printed ${JSON.stringify(line)}`);
        const ping = await fetch(`${url}-/ping`);
        assert.equal(ping.status, 200);
        assert.deepStrictEqual(await ping.json(), {});
        const doc = await fetch(`${url}ms`, { headers: { accept: "application/json" } });
        assert.equal(doc.status, 200);
        assert.deepStrictEqual(
          new Uint8Array(await doc.arrayBuffer()),
          fixture.expectedBody("ms", "full"),
        );
      } finally {
        const { code, stderr } = await child.stop();
        assert.equal(code, 0, `serve stops cleanly on SIGTERM\n${stderr}`);
      }
    });

    // debug.json is over one 61,440-byte chunk, so the chunked layout is crossed too.
    const shared = names.filter((n) => n === "debug" || n === "left-pad");
    assert.deepStrictEqual(shared.length, 2);

    await t.step("a Deno KV file written by the Deno CLI is read by the node bin", async () => {
      const common = [
        "--storage",
        "kv",
        "--cache-dir",
        join(tmp, "kv-deno"),
        "--registry",
        fixture.url,
      ];
      assertOk(
        await runCli(["packument", "fetch", ...shared, ...common]),
        "deno packument fetch",
      );
      for (const name of shared) {
        const shown = await node([bin, "packument", "show", name, ...common]);
        assertOk(shown, `node packument show ${name}`);
        assert.deepStrictEqual(shown.stdoutBytes, fixture.expectedBody(name, "full"), name);
      }
    });

    await t.step("a Deno KV file written by the node bin is read by the Deno CLI", async () => {
      const common = [
        "--storage",
        "kv",
        "--cache-dir",
        join(tmp, "kv-node"),
        "--registry",
        fixture.url,
      ];
      assertOk(
        await node([bin, "packument", "fetch", ...shared, ...common]),
        "node packument fetch",
      );
      for (const name of shared) {
        const shown = await runCli(["packument", "show", name, ...common]);
        assertOk(shown, `deno packument show ${name}`);
        assert.deepStrictEqual(shown.stdoutBytes, fixture.expectedBody(name, "full"), name);
      }
    });
  } finally {
    await fixture.close();
    await Deno.remove(tmp, { recursive: true });
  }

  await t.step("a TypeScript consumer type-checks against the emitted declarations", async () => {
    const dir = await consumerDir();
    try {
      const name = pkg.name as string;
      await Deno.writeTextFile(
        join(dir, "consumer.ts"),
        `import { Cache, HttpClient, packumentKey } from "${name}";
import type { StorageDriver } from "${name}";
import { MemoryDriver } from "${name}/drivers/memory";
import { FsDriver } from "${name}/drivers/fs";
import { DenoKvDriver } from "${name}/drivers/deno_kv";

const driver: StorageDriver = new MemoryDriver();
const cache: Cache = await Cache.open(driver);
const key: string = packumentKey("npm", "left-pad");
await cache.put(key, new TextEncoder().encode("{}"), { status: 200 });
const present: boolean = await cache.has(key);
const client: HttpClient = new HttpClient({ concurrency: 2 });
const fs: StorageDriver = new FsDriver("/tmp/x");
const kv: Promise<DenoKvDriver> = DenoKvDriver.open(":memory:");
// @ts-expect-error a package name is a string
packumentKey("npm", 42);
export { client, fs, kv, present };
`,
      );
      await Deno.writeTextFile(
        join(dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            // The declarations name DOM's HeadersInit (src/http/client.ts), which @types/node
            // does not declare globally: a consumer needs the DOM lib.
            lib: ["ES2022", "DOM"],
            types: ["node"],
            typeRoots: [TOOLS_TYPES],
            strict: true,
            noEmit: true,
            skipLibCheck: false,
          },
          files: ["consumer.ts"],
        }),
      );
      await Deno.writeTextFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
      const tsc = await run(Deno.execPath(), [
        "run",
        "-A",
        "npm:typescript@5.9.3/tsc",
        "-p",
        dir,
      ], { cwd: dir });
      assert.deepStrictEqual(tsc.code, 0, `tsc --noEmit failed:\n${tsc.stdout}${tsc.stderr}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
