/**
 * The npm build (`scripts/build_npm.ts`) and what it produces, run as a Node user would: the
 * package.json fields (caret ranges, optional peers, `files`, `sideEffects`, `engines`), the
 * README written for npm users, the packed tarball installed with npm (offline, from the cache
 * the build filled) without the optional peers and then with them, every export imported by
 * Node, the `_all_docs` bin against a local registry fixture (`worker start` on the memory queue,
 * and on a redis queue from the installed package, bullmq and ioredis with it), a Deno KV file
 * shared between the Deno CLI and the Node bin, and a TypeScript consumer checked against the
 * emitted declarations.
 *
 * The build goes to `npm/` and is skipped when its inputs are unchanged since the last one, so
 * `deno task ok` (tests, then `build:npm`) builds once.
 */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  assertSameSubpaths,
  binScript,
  caretRange,
  importMapPlan,
  nodeEngine,
  OPTIONAL_PEERS,
  packageDependencies,
  packageExports,
  parseNpmSpecifier,
  renderReadme,
  repositoryOf,
  ROOT,
} from "../../scripts/build_npm.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { runCli } from "../_support/run_cli.ts";
import { startRedis } from "../_support/redis.ts";
import { run, runIntoClosedPipe, type RunResult, start } from "../_support/spawn.ts";

const NPM_DIR = join(ROOT, "npm");
const README_SOURCE = join(ROOT, "scripts", "npm_README.md");
/** npm flags that keep a test off the network. */
const NPM_OFFLINE = ["--offline", "--no-audit", "--no-fund", "--no-update-notifier"];
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

Deno.test("packageDependencies(): caret ranges, with hono, @hono/node-server, @deno/kv, bullmq and ioredis as optional peers", () => {
  assert.deepStrictEqual(caretRange("4.13.19"), "^4.13.19");
  assert.deepStrictEqual(caretRange("0.14.0"), "^0.14.0");
  assert.deepStrictEqual(caretRange("1.0.0-rc.1"), "^1.0.0-rc.1");
  assert.deepStrictEqual(caretRange("^2"), "^2");
  assert.deepStrictEqual(caretRange("~1.2.3"), "~1.2.3");
  assert.deepStrictEqual(OPTIONAL_PEERS, [
    "hono",
    "@hono/node-server",
    "@deno/kv",
    "bullmq",
    "ioredis",
  ]);
  const split = packageDependencies({
    hono: "4.13.19",
    "@deno/kv": "0.14.0",
    "@hono/node-server": "2.1.9",
    bullmq: "6.7.0",
    ioredis: "5.11.1",
    aws4fetch: "1.0.20",
  });
  assert.deepStrictEqual(split, {
    dependencies: { aws4fetch: "^1.0.20" },
    peerDependencies: {
      "@deno/kv": "^0.14.0",
      "@hono/node-server": "^2.1.9",
      bullmq: "^6.7.0",
      hono: "^4.13.19",
      ioredis: "^5.11.1",
    },
    peerDependenciesMeta: {
      "@deno/kv": { optional: true },
      "@hono/node-server": { optional: true },
      bullmq: { optional: true },
      hono: { optional: true },
      ioredis: { optional: true },
    },
  });
  assert.throws(() => packageDependencies({ aws4fetch: "1.0.20" }), /optional peer "hono"/);
});

Deno.test("nodeEngine(): the strictest of Node 20 and every installed package's engines", () => {
  assert.deepStrictEqual(nodeEngine({}), ">=20");
  assert.deepStrictEqual(
    nodeEngine({
      "hono@4.13.19": ">=16.9.0",
      "@deno/kv-linux-x64-gnu@0.14.0": ">= 18",
      "@noble/hashes@1.8.0": "^14.21.3 || >=16",
      "@hono/node-server@2.1.9": ">=20",
    }),
    ">=20",
  );
  assert.deepStrictEqual(nodeEngine({ "a@1.0.0": ">=20.11.0", "b@1.0.0": "*" }), ">=20.11.0");
  assert.deepStrictEqual(nodeEngine({ "a@1.0.0": "^22.3 || >=23" }), ">=22.3.0");
  assert.deepStrictEqual(nodeEngine({ "a@1.0.0": "22.x" }), ">=22");
  assert.throws(() => nodeEngine({ "old@1.0.0": "^18" }), /old@1\.0\.0 needs node "\^18"/);
  assert.throws(() => nodeEngine({ "odd@1.0.0": "node 20" }), /cannot read the engines range/);
});

Deno.test("repositoryOf(): git remotes as npm's repository field, without credentials", () => {
  const expected = {
    field: { type: "git", url: "git+https://git.example.test/all-docs/all-docs.git" },
    web: "https://git.example.test/all-docs/all-docs",
  };
  assert.deepStrictEqual(repositoryOf("https://git.example.test/all-docs/all-docs.git"), expected);
  assert.deepStrictEqual(
    repositoryOf("https://user:s3cret@git.example.test/all-docs/all-docs\n"),
    expected,
  );
  const ssh = {
    field: { type: "git", url: "git+ssh://git@git.example.test/all-docs/all-docs.git" },
    web: "https://git.example.test/all-docs/all-docs",
  };
  assert.deepStrictEqual(repositoryOf("git@git.example.test:all-docs/all-docs.git"), ssh);
  assert.deepStrictEqual(repositoryOf("ssh://git@git.example.test:2222/all-docs/all-docs"), ssh);
  assert.deepStrictEqual(repositoryOf("/work/main"), undefined);
  assert.deepStrictEqual(repositoryOf("file:///work/main"), undefined);
  assert.deepStrictEqual(repositoryOf("../all-docs"), undefined);
});

Deno.test("renderReadme(): repository links become absolute, or plain text without one", () => {
  const source = "See [the CLI]({{repository}}#cli) and [Hono](https://hono.dev/).\n";
  assert.deepStrictEqual(
    renderReadme(source, "https://git.example.test/o/r"),
    "See [the CLI](https://git.example.test/o/r#cli) and [Hono](https://hono.dev/).\n",
  );
  assert.deepStrictEqual(
    renderReadme(source, undefined),
    "See the CLI and [Hono](https://hono.dev/).\n",
  );
  assert.throws(() => renderReadme("[docs](./README.md)", undefined), /not absolute/);
  assert.throws(() => renderReadme("at {{repository}}", undefined), /outside a link/);
});

Deno.test("the package README source is written for npm users", async () => {
  const source = await Deno.readTextFile(README_SOURCE);
  assert.ok(!/\bdeno (run|task)\b/.test(source), "no deno run or deno task lines");
  assert.ok(source.includes("npm install @all-docs/all-docs"), "install line");
  assert.ok(source.includes("npx _all_docs"), "the command through npx");
  for (const peer of OPTIONAL_PEERS) assert.ok(source.includes(peer), `names the peer ${peer}`);
  // Every link is absolute once rendered, with a repository or without one.
  renderReadme(source, "https://git.example.test/o/r");
  renderReadme(source, undefined);
});

Deno.test("binScript(): names a missing optional peer in one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "all_docs_npm_bin_" });
  try {
    await Deno.writeTextFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    await Deno.writeTextFile(join(dir, "cli.node.js"), 'import "@hono/node-server";\n');
    await Deno.writeTextFile(
      join(dir, "bin.js"),
      binScript("@all-docs/all-docs", { "@hono/node-server": "^2.1.9", hono: "^4.13.19" }),
    );
    const missing = await node([join(dir, "bin.js")], dir);
    assert.deepStrictEqual(missing.code, 1, missing.stderr);
    assert.deepStrictEqual(
      missing.stderr,
      "_all_docs: cannot find package '@hono/node-server', an optional peer dependency of " +
        "@all-docs/all-docs that the command needs; install the command's peers with: " +
        "npm install @hono/node-server@^2.1.9 hono@^4.13.19\n",
    );
    // Any other failure is not hidden.
    await Deno.writeTextFile(join(dir, "cli.node.js"), 'import "left-pad";\n');
    const other = await node([join(dir, "bin.js")], dir);
    assert.deepStrictEqual(other.code, 1);
    assert.ok(other.stderr.includes("Cannot find package 'left-pad'"), other.stderr);
    await Deno.writeTextFile(join(dir, "cli.node.js"), "process.exitCode = 3;\n");
    assert.deepStrictEqual((await node([join(dir, "bin.js")], dir)).code, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `git remote get-url origin` at the root, or `undefined`. */
async function originRemote(): Promise<string | undefined> {
  const result = await run("git", ["remote", "get-url", "origin"]);
  return result.code === 0 && result.stdout.trim() !== "" ? result.stdout.trim() : undefined;
}

/** The `engines.node` of every package installed under `dir`, nested ones included. */
async function installedEngines(dir: string, found: string[] = []): Promise<string[]> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const dirs = entry.name.startsWith("@")
      ? [...Deno.readDirSync(join(dir, entry.name))].map((e) => join(dir, entry.name, e.name))
      : [join(dir, entry.name)];
    for (const pkgDir of dirs) {
      try {
        const meta = JSON.parse(await Deno.readTextFile(join(pkgDir, "package.json")));
        if (typeof meta.engines?.node === "string") {
          found.push(`${meta.name}: ${meta.engines.node}`);
        }
      } catch {
        continue;
      }
      await installedEngines(join(pkgDir, "node_modules"), found);
    }
  }
  return found;
}

Deno.test("npm build", async (t) => {
  const build = await run(Deno.execPath(), ["run", "-A", "scripts/build_npm.ts"]);
  assertOk(build, "the build");

  const pkg = JSON.parse(await Deno.readTextFile(join(NPM_DIR, "package.json")));

  await t.step("package.json follows deno.json", () => {
    assert.deepStrictEqual(pkg.name, denoJson.name);
    assert.deepStrictEqual(pkg.version, denoJson.version);
    assert.deepStrictEqual(pkg.type, "module");
    assert.deepStrictEqual(pkg.bin, { _all_docs: "./bin.js" });
    assert.deepStrictEqual(pkg.devDependencies, undefined);
    assert.deepStrictEqual(
      Object.keys(pkg.exports).sort(),
      [...Object.keys(denoJson.exports), "./package.json"].sort(),
    );
    for (const [subpath, entry] of Object.entries(pkg.exports)) {
      if (subpath === "./package.json") continue;
      const { types, import: js } = entry as { types: string; import: string };
      assert.ok(Deno.statSync(join(NPM_DIR, types)).isFile, types);
      assert.ok(Deno.statSync(join(NPM_DIR, js)).isFile, js);
    }
    for (const file of ["README.md", "LICENSE", "bin.js"]) {
      assert.ok(Deno.statSync(join(NPM_DIR, file)).isFile, file);
    }
  });

  await t.step(
    "dependencies are caret ranges; hono, @hono/node-server, @deno/kv, bullmq, ioredis optional peers",
    () => {
      const dependencies: Record<string, string> = {};
      const peers: Record<string, string> = {};
      for (const target of Object.values(denoJson.imports)) {
        const { name, version } = parseNpmSpecifier(target)!;
        (OPTIONAL_PEERS.includes(name) ? peers : dependencies)[name] = `^${version}`;
      }
      assert.deepStrictEqual(pkg.dependencies, dependencies);
      assert.deepStrictEqual(pkg.peerDependencies, peers);
      assert.deepStrictEqual(Object.keys(peers).sort(), [...OPTIONAL_PEERS].sort());
      assert.deepStrictEqual(
        pkg.peerDependenciesMeta,
        Object.fromEntries(Object.keys(peers).map((name) => [name, { optional: true }])),
      );
      for (const name of OPTIONAL_PEERS) {
        assert.ok(!(name in pkg.dependencies), `${name} is not a dependency`);
      }
    },
  );

  await t.step("files, sideEffects, ./package.json, engines, repository", async () => {
    assert.deepStrictEqual(pkg.sideEffects, false);
    assert.deepStrictEqual(pkg.exports["./package.json"], "./package.json");
    assert.deepStrictEqual(pkg.files, [
      "mod.js",
      "mod.d.ts",
      "cli.node.js",
      "cli.node.d.ts",
      "bin.js",
      "src/",
      "cli/",
      "drivers/",
      "queues/",
    ]);
    // Node 20 or the strictest floor any installed package (peers included) asks for.
    assert.deepStrictEqual(pkg.engines, { node: ">=20" });
    const engines = await installedEngines(join(NPM_DIR, "node_modules"));
    assert.ok(engines.some((e) => e.startsWith("@hono/node-server: ")), engines.join("; "));
    for (const line of engines) {
      for (const [, major] of line.matchAll(/>=\s*(\d+)/g)) {
        if (!line.includes("||")) assert.ok(Number(major) <= 20, `${line} needs more than >=20`);
      }
    }
    const remote = await originRemote();
    assert.deepStrictEqual(
      pkg.repository,
      remote === undefined ? undefined : repositoryOf(remote)?.field,
    );
  });

  await t.step(
    "npm pack holds the compiled modules, README, LICENSE and package.json only",
    async () => {
      const packed = await run("npm", ["pack", "--dry-run", "--json", ...NPM_OFFLINE], {
        cwd: NPM_DIR,
      });
      assertOk(packed, "npm pack --dry-run");
      const paths = (JSON.parse(packed.stdout)[0].files as { path: string }[]).map((f) => f.path);
      for (const path of paths) {
        assert.ok(
          /\.(js|d\.ts)$/.test(path) || ["README.md", "LICENSE", "package.json"].includes(path),
          `unexpected file in the package: ${path}`,
        );
        assert.ok(!path.startsWith("node_modules/"), path);
      }
      for (const path of ["bin.js", "mod.js", "mod.d.ts", "README.md", "LICENSE", "package.json"]) {
        assert.ok(paths.includes(path), `the package lacks ${path}`);
      }
    },
  );

  await t.step("the package README is the npm one: no deno run, absolute links", async () => {
    const readme = await Deno.readTextFile(join(NPM_DIR, "README.md"));
    const remote = await originRemote();
    assert.deepStrictEqual(
      readme,
      renderReadme(
        await Deno.readTextFile(README_SOURCE),
        remote === undefined ? undefined : repositoryOf(remote)?.web,
      ),
    );
    assert.ok(!/\bdeno (run|task)\b/.test(readme), "the npm README has deno run lines");
    assert.ok(readme.includes("npx _all_docs"), "the npm README shows npx _all_docs");
    for (const [, target] of readme.matchAll(/\]\(([^)\s]*)/g)) {
      assert.ok(/^https?:\/\//.test(target!), `a relative link: ${target}`);
    }
  });

  // The package installed from its tarball, as a user has it: kept for the redis worker step.
  const installDir = await Deno.makeTempDir({ prefix: "all_docs_npm_install_" });
  const installedBin = join(installDir, "node_modules", ".bin", "_all_docs");
  await t.step(
    "installed from its tarball, the core imports under node without the optional peers",
    async () => {
      const packed = await run("npm", [
        "pack",
        "--json",
        "--pack-destination",
        installDir,
        ...NPM_OFFLINE,
      ], { cwd: NPM_DIR });
      assertOk(packed, "npm pack");
      const tarball = join(installDir, JSON.parse(packed.stdout)[0].filename as string);
      await Deno.writeTextFile(
        join(installDir, "package.json"),
        JSON.stringify({ private: true, type: "module" }),
      );
      // Offline: everything comes from the npm cache the build's own install filled.
      const install = (specs: string[]) =>
        run(
          "npm",
          ["install", "--ignore-scripts", "--no-package-lock", ...NPM_OFFLINE, ...specs],
          { cwd: installDir },
        );
      const hint = "(the npm cache lacks a package the build installed: " +
        "run `deno task build:npm --force` once)";
      assertOk(await install([tarball]), `npm install --offline ${tarball} ${hint}`);
      for (const peer of OPTIONAL_PEERS) {
        assert.ok(!existsSync(join(installDir, "node_modules", peer)), `${peer} was installed`);
      }
      const name = pkg.name as string;
      const core = [
        ".",
        "./drivers/memory",
        "./drivers/fs",
        "./drivers/s3",
        "./drivers/cloudflare_kv",
        "./drivers/cloudflare_r2",
      ];
      await Deno.writeTextFile(
        join(installDir, "core.mjs"),
        [
          ...core.map((s, i) => `import * as m${i} from ${JSON.stringify(name + s.slice(1))};`),
          `import meta from ${JSON.stringify(`${name}/package.json`)} with { type: "json" };`,
          `let replica;`,
          `try { await import(${JSON.stringify(`${name}/replica`)}); replica = "loaded"; }`,
          `catch (error) { replica = error.code + " " + error.message; }`,
          `console.log(JSON.stringify({ version: meta.version, replica, exports: [`,
          ...core.map((_, i) => `  Object.keys(m${i}).length,`),
          `] }));`,
        ].join("\n"),
      );
      const bare = await node(["core.mjs"], installDir);
      assertOk(bare, "node core.mjs without the peers");
      const seen = JSON.parse(bare.stdout) as {
        version: string;
        replica: string;
        exports: number[];
      };
      assert.deepStrictEqual(seen.version, denoJson.version);
      assert.ok(seen.exports.every((n) => n > 0), bare.stdout);
      assert.ok(
        seen.replica.startsWith("ERR_MODULE_NOT_FOUND Cannot find package 'hono'"),
        seen.replica,
      );
      const bin = installedBin;
      // Each peer loads with the commands that use it: the others run without any.
      const follow = await node([bin, "changes", "follow", "--help"], installDir);
      assertOk(follow, "_all_docs changes follow --help without the peers");
      assert.match(follow.stdout, /^Usage: _all_docs changes follow/);
      assertOk(await node([bin, "--version"], installDir), "_all_docs --version without the peers");
      const cacheDir = join(installDir, "cache");
      await Deno.mkdir(cacheDir);
      const noHono = await node([bin, "serve", "--port", "0", "--cache-dir", cacheDir], installDir);
      assert.deepStrictEqual(noHono.code, 1, noHono.stderr);
      assert.deepStrictEqual(
        noHono.stderr,
        "error: serve needs the packages hono and @hono/node-server, and 'hono' is not " +
          "installed: npm install hono @hono/node-server\n",
      );
      // worker start finds out first: no storage, queue or schedule is opened.
      const notMade = join(installDir, "not-made");
      const noHonoWorker = await node(
        [bin, "worker", "start", "--port", "0", "--no-auth", "--cache-dir", notMade],
        installDir,
      );
      assert.deepStrictEqual(noHonoWorker.code, 1, noHonoWorker.stderr);
      assert.match(noHonoWorker.stderr, /^error: worker start needs the packages hono and /);
      assert.ok(!existsSync(notMade), "worker start opened its storage before it failed");
      const noKv = await node(
        [bin, "cache", "stats", "--storage", "kv", "--cache-dir", cacheDir],
        installDir,
      );
      assert.deepStrictEqual(noKv.code, 1, noKv.stderr);
      assert.match(
        noKv.stderr,
        /^error: The kv storage needs the package @deno\/kv, and '@deno\/kv' is not installed: npm install @deno\/kv\n$/,
      );

      // With the peers at deno.json's pins (the versions in the cache), everything loads; the
      // command needs bullmq and ioredis only for a redis queue.
      const pins = Object.values(denoJson.imports).map((t) => parseNpmSpecifier(t)!)
        .filter(({ name }) => OPTIONAL_PEERS.includes(name))
        .map(({ name, version }) => `${name}@${version}`);
      const [redisPins, otherPins] = [true, false].map((redis) =>
        [...new Set(pins)].filter((pin) => /^(bullmq|ioredis)@/.test(pin) === redis)
      );
      assertOk(await install(otherPins!), `npm install --offline ${otherPins} ${hint}`);
      assertOk(await node([bin, "--version"], installDir), "_all_docs --version without bullmq");
      const noRedis = await node(
        [bin, "worker", "status", "--queue", "redis://127.0.0.1:9"],
        installDir,
      );
      assert.deepStrictEqual(noRedis.code, 1, noRedis.stderr);
      assert.match(noRedis.stderr, /needs the packages bullmq and ioredis.*npm install bullmq/);
      assertOk(await install(redisPins!), `npm install --offline ${redisPins} ${hint}`);
      const full = await node(["core.mjs"], installDir);
      assertOk(full, "node core.mjs with the peers");
      assert.deepStrictEqual(JSON.parse(full.stdout).replica, "loaded");
      const version = await node([bin, "--version"], installDir);
      assertOk(version, "_all_docs --version with the peers");
      assert.ok(version.stdout.includes(denoJson.version), version.stdout);
    },
  );

  await t.step("node imports every export of the package", async () => {
    const dir = await consumerDir();
    try {
      const subpaths = Object.keys(pkg.exports).filter((s) => s !== "./package.json");
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
      has("./drivers/cloudflare_r2", "CloudflareR2Driver");
      if ("./replica" in pkg.exports) has("./replica", "createReplicaApp");
      has("./queues/bullmq", "BullMqQueue");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("the bin runs under node", async () => {
    const help = await node([join(NPM_DIR, "bin.js"), "--help"]);
    assertOk(help, "_all_docs --help");
    assert.ok(help.stdout.includes("Usage: _all_docs"), help.stdout);
    const version = await node([join(NPM_DIR, "bin.js"), "--version"]);
    assertOk(version, "_all_docs --version");
    assert.ok(version.stdout.includes(denoJson.version), version.stdout);
    for (const file of ["bin.js", "cli.node.js"]) {
      const first = await Deno.readTextFile(join(NPM_DIR, file));
      assert.ok(first.startsWith("#!/usr/bin/env node\n"), file);
      assert.ok((Deno.statSync(join(NPM_DIR, file)).mode! & 0o111) !== 0, `${file} executable`);
    }
  });

  await t.step("under node, a closed stdout ends the bin quietly with status 141", async () => {
    // The reader is gone before the help is written, as with `_all_docs --help | head -0`.
    const closed = await runIntoClosedPipe("node", [join(NPM_DIR, "bin.js"), "--help"], {}, 0);
    assert.equal(closed.stderr, "");
    assert.equal(closed.code, 141);
  });

  const packuments = await loadFixturePackuments();
  const fixture = await startRegistryFixture({ packuments });
  const names = [...packuments.keys()];
  const bin = join(NPM_DIR, "bin.js");
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

    await t.step("the fs driver's file operations under node", async () => {
      // node:fs under Node, not Deno's version of it: views, exclusive creates, deletes that
      // prune the directories they empty, and a sweep of temporary files.
      const dir = join(tmp, "fs-ops");
      const script = join(tmp, "fs_ops.mjs");
      const driverUrl = new URL(`file://${join(NPM_DIR, "drivers", "fs.js")}`).href;
      await Deno.writeTextFile(
        script,
        `import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FsDriver } from ${JSON.stringify(driverUrl)};
const dir = process.argv[2];
const driver = new FsDriver(dir);
const buffer = new Uint8Array(600 * 1024).map((_, i) => i % 251);
const same = async (key, view) => {
  await driver.put(key, view);
  const back = await driver.get(key);
  return back.length === view.length && back.every((b, i) => b === view[i]);
};
const out = {
  small: await same("v1:a:small", buffer.subarray(10, 20)),
  large: await same("v1:a:large", buffer.subarray(1000, 1000 + 300 * 1024)),
  buffer: await same("v1:a:buffer", Buffer.from(buffer.buffer, 5, 7)),
  first: await driver.putIfAbsent("v1:b:once", new Uint8Array([1])),
  second: await driver.putIfAbsent("v1:b:once", new Uint8Array([2])),
};
out.once = Array.from(await driver.get("v1:b:once"));
await driver.put("v1:c:deep:key", new Uint8Array([1]));
await driver.delete("v1:c:deep:key");
out.deleted = await driver.get("v1:c:deep:key") === undefined;
out.pruned = !existsSync(join(dir, "sv1", "sc"));
out.kept = existsSync(join(dir, "sv1", "sa"));
mkdirSync(join(dir, "sv1", "sd"));
writeFileSync(join(dir, "sv1", "sd", ".tmp-1-00000000-0000-0"), "left by a writer");
const swept = [];
for await (const stale of driver.sweep({ remove: true, maxAgeMs: 0 })) swept.push(stale);
out.swept = swept.length;
out.sweptDir = !existsSync(join(dir, "sv1", "sd"));
await driver.close();
console.log(JSON.stringify(out));
`,
      );
      const result = await node([script, dir]);
      assertOk(result, "node fs_ops.mjs");
      assert.deepStrictEqual(JSON.parse(result.stdout), {
        small: true,
        large: true,
        buffer: true,
        first: true,
        second: false,
        once: [1],
        deleted: true,
        pruned: true,
        kept: true,
        swept: 1,
        sweptDir: true,
      });
    });

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

    /** Posts a packument item for `ms` to the worker at `url`; waits until it is done. */
    const mirrorMs = async (url: string, engine: string) => {
      const posted = await fetch(`${url}-/worker/items`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          items: [{ type: "packument", payload: { registry: fixture.url, names: ["ms"] } }],
        }),
      });
      assert.equal(posted.status, 202);
      await posted.body?.cancel();
      let stats: Record<string, number> = {};
      for (let i = 0; i < 400 && stats.done !== 1; i++) {
        stats = await (await fetch(`${url}-/worker/stats`)).json();
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.equal(stats.engine as unknown, engine);
      assert.equal(stats.done, 1);
      const doc = await fetch(`${url}ms`, { headers: { accept: "application/json" } });
      assert.deepStrictEqual(
        new Uint8Array(await doc.arrayBuffer()),
        fixture.expectedBody("ms", "full"),
      );
    };

    await t.step(
      "worker start runs under node on the memory queue (kv needs Deno: exit 2)",
      async () => {
        const cacheDir = join(tmp, "worker-cache");
        const common = ["worker", "start", "--port", "0", "--no-auth", "--cache-dir", cacheDir];
        const child = start("node", [bin, ...common, "--registry", fixture.url]);
        try {
          const line = await child.line();
          const url = /listening (\S+)/.exec(line)?.[1];
          assert.ok(url, `worker printed ${JSON.stringify(line)}`);
          await mirrorMs(url, "memory");
        } finally {
          const { code, stderr } = await child.stop();
          assert.equal(code, 0, `the worker stops cleanly on SIGTERM\n${stderr}`);
        }
        const kv = await run("node", [bin, ...common, "--queue", "kv"]);
        assert.equal(kv.code, 2);
        assert.match(kv.stderr, /kv queue needs Deno/);
      },
    );

    await t.step(
      "npx _all_docs worker start --queue redis://... runs under node, installed with bullmq",
      async () => {
        const redis = await startRedis();
        const cacheDir = join(tmp, "redis-worker-cache");
        const common = ["--queue", redis.url, "--cache-dir", cacheDir, "--registry", fixture.url];
        // What `npx _all_docs` runs in the install: its .bin link, under node.
        const child = start("node", [
          installedBin,
          ...["worker", "start", "--port", "0", "--no-auth", ...common],
        ], { cwd: installDir });
        try {
          const line = await child.line();
          const url = /listening (\S+)/.exec(line)?.[1];
          assert.ok(url, `worker printed ${JSON.stringify(line)}`);
          await mirrorMs(url, "redis");
          // Redis is the queue: a command reads it with no worker in between.
          const status = await node([installedBin, "worker", "status", ...common], installDir);
          assertOk(status, "worker status --queue redis://...");
          assert.deepStrictEqual(status.stdout, "queued 0, running 0, done 1, dead 0\n");
        } finally {
          const { code, stderr } = await child.stop();
          await redis.stop();
          assert.equal(code, 0, `the worker stops cleanly on SIGTERM\n${stderr}`);
        }
      },
    );

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
    await Deno.remove(installDir, { recursive: true });
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
