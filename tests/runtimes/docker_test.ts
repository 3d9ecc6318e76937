/**
 * The worker's container image (`Dockerfile`, `.dockerignore`). The image is built with the
 * README's `docker build` command when a Docker engine answers `docker info`; without one the
 * test says so on stdout (`no Docker engine: docker info failed: ...`), never silently. What
 * needs no engine is always checked: the build context holds what the Dockerfile copies (the npm
 * build, built here into `.tmp/docker-context/npm` so that it never races the npm build test
 * over `npm/`) and `.dockerignore` lets it through; the optional peers it installs are deno.json's
 * pins; and its entry point, run by `sh` as the image runs it (with the built package's bin in
 * place of the installed one), is a `worker start` that takes PORT as `--port` and passes every
 * usage check.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { OPTIONAL_PEERS, parseNpmSpecifier, ROOT } from "../../scripts/build_npm.ts";
import { freePort, run, type RunResult } from "../_support/spawn.ts";

/** A build context like the repository's, with its own npm build. */
const CONTEXT = join(ROOT, ".tmp", "docker-context");
/** Where the image installs the package's bin. */
const IMAGE_BIN = "/app/node_modules/.bin/_all_docs";

/** A Dockerfile instruction: its keyword and the rest, continuation lines joined. */
interface Instruction {
  keyword: string;
  args: string;
}

function instructions(text: string): Instruction[] {
  const joined = text.split("\n").filter((line) => !/^\s*#/.test(line)).join("\n")
    .replace(/\\\n/g, " ");
  return joined.split("\n").filter((line) => line.trim() !== "").map((line) => {
    const [, keyword, args] = /^\s*(\S+)\s+(.*)$/.exec(line)!;
    return { keyword: keyword!.toUpperCase(), args: args!.trim() };
  });
}

/** Whether `.dockerignore` (Docker's rules: the last matching pattern wins) keeps `path`. */
function keptByDockerignore(patterns: string[], path: string): boolean {
  let kept = true;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const pattern = (negated ? raw.slice(1) : raw).replace(/\/+$/, "");
    const source = pattern.split("**").map((part) =>
      part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")
    ).join(".*");
    // A pattern that matches a folder matches everything in it.
    if (new RegExp(`^${source}(/.*)?$`).test(path)) kept = negated;
  }
  return kept;
}

/** Builds the npm package into the context (skipped when its inputs are unchanged) and copies
 * the Dockerfile and `.dockerignore` beside it. */
async function prepareContext(): Promise<void> {
  await Deno.mkdir(CONTEXT, { recursive: true });
  const build = await run(Deno.execPath(), [
    "run",
    "-A",
    "scripts/build_npm.ts",
    "--out",
    join(CONTEXT, "npm"),
  ]);
  assert.equal(build.code, 0, `the npm build failed:\n${build.stderr}`);
  for (const file of ["Dockerfile", ".dockerignore"]) {
    await Deno.copyFile(join(ROOT, file), join(CONTEXT, file));
  }
}

const dockerfile = instructions(await Deno.readTextFile(join(ROOT, "Dockerfile")));
const denoJson = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as {
  imports: Record<string, string>;
};

/** Runs the image's entry point with `sh`, the built bin in place of the installed one. */
function entrypoint(args: string[], env: Record<string, string>): Promise<RunResult> {
  const entry = dockerfile.find((i) => i.keyword === "ENTRYPOINT");
  assert.ok(entry, "the Dockerfile has an ENTRYPOINT");
  const [shell, flag, script, name, ...rest] = JSON.parse(entry.args) as string[];
  assert.deepEqual([shell, flag, name, rest], ["/bin/sh", "-c", "_all_docs", []]);
  assert.ok(script!.includes(IMAGE_BIN), script);
  const local = script!.replace(IMAGE_BIN, join(CONTEXT, "npm", "bin.js"));
  return run("sh", ["-c", local, name!, ...args], {
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: CONTEXT, ...env },
    clearEnv: true,
  });
}

Deno.test("Dockerfile: the context holds what it copies, its peers are deno.json's pins, its entry point is a valid worker start", async (t) => {
  await prepareContext();

  await t.step(
    "two stages on node:20-slim; COPY sources exist and pass .dockerignore",
    async () => {
      const froms = dockerfile.filter((i) => i.keyword === "FROM").map((i) => i.args);
      assert.deepEqual(froms, ["node:20-slim AS pack", "node:20-slim"]);
      const ignore = (await Deno.readTextFile(join(CONTEXT, ".dockerignore"))).split("\n")
        .map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
      const copies = dockerfile.filter((i) => i.keyword === "COPY").map((i) => i.args.split(/\s+/));
      assert.equal(copies.length, 2);
      for (const [source, target] of copies) {
        if (source!.startsWith("--from=")) {
          assert.equal(source, "--from=pack", "copied from the first stage");
          continue;
        }
        assert.equal(source, "npm/", `COPY ${source} ${target}`);
        assert.ok(Deno.statSync(join(CONTEXT, source!)).isDirectory, source);
      }
      // The package itself goes in; the build's own node_modules (its dev install) stays out, as
      // does the rest of the repository.
      for (const file of ["npm/package.json", "npm/bin.js", "npm/cli.node.js", "npm/README.md"]) {
        assert.ok(Deno.statSync(join(CONTEXT, file)).isFile, file);
        assert.ok(keptByDockerignore(ignore, file), `.dockerignore leaves out ${file}`);
      }
      for (const path of ["npm/node_modules/bullmq/package.json", "src/version.ts", ".git/HEAD"]) {
        assert.ok(!keptByDockerignore(ignore, path), `.dockerignore lets ${path} in`);
      }
      const pkg = JSON.parse(await Deno.readTextFile(join(CONTEXT, "npm", "package.json")));
      assert.deepEqual(pkg.bin, { _all_docs: "./bin.js" }, `the image runs ${IMAGE_BIN}`);
      assert.ok(dockerfile.some((i) => i.keyword === "WORKDIR" && i.args === "/app"));
    },
  );

  await t.step("the image installs every optional peer at deno.json's pin", () => {
    const install = dockerfile.find((i) => i.keyword === "RUN" && i.args.includes("npm install"));
    assert.ok(install, "an npm install");
    const specs = install.args.split(/\s+/).filter((word) => /^@?[a-z0-9][\w./-]*@\d/.test(word));
    const pins = Object.values(denoJson.imports).map((t) => parseNpmSpecifier(t)!)
      .filter(({ name }) => OPTIONAL_PEERS.includes(name))
      .map(({ name, version }) => `${name}@${version}`);
    assert.deepEqual(specs.toSorted(), [...new Set(pins)].toSorted());
    assert.ok(install.args.includes("/tmp/all-docs.tgz"), "and the package's tarball");
  });

  await t.step("the entry point is worker start on 0.0.0.0 with PORT as --port", async () => {
    const cacheDir = await Deno.makeTempDir({ prefix: "all_docs_docker_" });
    try {
      // A Redis where nothing listens: whatever the entry point does, it never gets as far as
      // binding 0.0.0.0 here.
      const port = freePort();
      const env = {
        ALL_DOCS_CACHE_DIR: cacheDir,
        ALL_DOCS_QUEUE: `redis://127.0.0.1:${port}`,
        ALL_DOCS_WORKER_TOKEN: "docker-test-token",
      };
      // Arguments after the image name reach the command: here, its help.
      const help = await entrypoint(["--help"], { ...env, PORT: "8080" });
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: _all_docs worker start /);
      const badPort = await entrypoint([], { ...env, PORT: "70000" });
      assert.equal(badPort.code, 2, badPort.stderr);
      assert.match(badPort.stderr, /^error: Invalid --port: .*'70000'/);
      // A public worker needs its token.
      const noToken = await entrypoint([], { ...env, PORT: "8080", ALL_DOCS_WORKER_TOKEN: "" });
      assert.equal(noToken.code, 2, noToken.stderr);
      assert.match(noToken.stderr, /worker start needs a token/);
      // Every usage check passes: it gets as far as connecting to its Redis, before it binds
      // anything.
      const valid = await entrypoint([], { ...env, PORT: "8080" });
      assert.equal(valid.code, 1, valid.stderr);
      assert.match(valid.stderr, new RegExp(`cannot connect to redis://127\\.0\\.0\\.1:${port}/0`));
      assert.equal(valid.stdout, "", "nothing listened");
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  });
});

Deno.test("docker build with the README's command, when a Docker engine answers", async () => {
  let info: RunResult;
  try {
    info = await run("docker", ["info", "--format", "{{.ServerVersion}}"]);
  } catch (error) {
    info = { code: 127, stdout: "", stdoutBytes: new Uint8Array(), stderr: String(error) };
  }
  if (info.code !== 0 || info.stdout.trim() === "") {
    const why = (info.stderr.trim() || info.stdout.trim() || `exit ${info.code}`).split("\n")
      .filter((line) => line.trim() !== "").at(-1)!;
    console.log(`no Docker engine: docker info failed: ${why} (the image is not built)`);
    assert.ok(why.length > 0, "a reason is printed");
    return;
  }
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const command = /^docker build [^\n]+$/m.exec(readme)?.[0];
  assert.ok(command, "the README shows the docker build command");
  const image = /-t\s+(\S+)/.exec(command)?.[1];
  assert.ok(image, command);
  await prepareContext();
  const built = await run("sh", ["-c", command], { cwd: CONTEXT });
  assert.equal(built.code, 0, `${command}\n${built.stderr}`);
  const help = await run("docker", ["run", "--rm", image, "--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: _all_docs worker start /);
});
