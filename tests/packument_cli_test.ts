import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runCli, runCliMeasured } from "./_support/run_cli.ts";
import {
  generatePackument,
  generatePackumentChunks,
  loadFixturePackuments,
} from "./_support/packuments.ts";
import { type RegistryFixture, startRegistryFixture } from "./_support/registry_fixture.ts";
import { startAllDocsFixture } from "./_support/all_docs_fixture.ts";
import { startVerdaccio } from "./_support/verdaccio.ts";

const root = new URL("../", import.meta.url).pathname;

async function withRegistry(
  options: Parameters<typeof startRegistryFixture>[0],
  fn: (fixture: RegistryFixture, dir: string, env: Record<string, string>) => Promise<void>,
): Promise<void> {
  const fixture = await startRegistryFixture(options);
  const dir = await Deno.makeTempDir();
  try {
    await fn(fixture, dir, { ALL_DOCS_REGISTRY: fixture.url, ALL_DOCS_CACHE_DIR: dir });
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

function generated(count: number): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const name = i % 5 === 0 ? `@gen/pkg-${i}` : `pkg-${i}`;
    out.set(name, generatePackument(name, { versions: 1 + (i % 7), seed: i }));
  }
  return out;
}

Deno.test("packument fetch and fetch-list reject names npm never served, before any request", () =>
  withRegistry({}, async (fixture, dir, env) => {
    const bad: [string, RegExp][] = [
      ["", /empty name/],
      ["x".repeat(215), /longer than 214/],
      [".hidden", /starts with '\.' or '_'/],
      ["_private", /starts with '\.' or '_'/],
      ["has space", /whitespace or control/],
      ["tab\there", /whitespace or control/],
      ["bell\u0007", /whitespace or control/],
      ["a/b", /'\/' outside a scope/],
      ["@scope", /exactly one '\/'/],
      ["@a/b/c", /exactly one '\/'/],
      ["@a/.b", /after the scope starts with/],
      ["100%", /do not survive URL encoding/],
      ["what?", /do not survive URL encoding/],
      ["naïve", /do not survive URL encoding/],
    ];
    for (const [name, message] of bad) {
      const direct = await runCli(["packument", "fetch", "ok-name", name], env);
      assert.equal(direct.code, 2, JSON.stringify(name));
      assert.match(direct.stderr, /argument 2/);
      assert.match(direct.stderr, message, JSON.stringify(name));
    }
    const json = join(dir, "names.json");
    await Deno.writeTextFile(json, JSON.stringify(["left-pad", "", "ms", "a b"]));
    const fromJson = await runCli(["packument", "fetch-list", json], env);
    assert.equal(fromJson.code, 2);
    assert.match(fromJson.stderr, /index 1: "" \(empty name\); index 3: "a b"/);
    const txt = join(dir, "names.txt");
    await Deno.writeTextFile(txt, "# list\nleft-pad\n\n_bad@1.0.0\n");
    const fromText = await runCli(["packument", "fetch-list", txt], env);
    assert.equal(fromText.code, 2);
    assert.match(fromText.stderr, /line 4: "_bad@1\.0\.0"/);
    assert.equal(fixture.requests.length, 0, "no request was sent");
  }));

Deno.test("packument fetch-list fetches each name once; show writes the body byte for byte", async () => {
  const packuments = await loadFixturePackuments();
  await withRegistry({ packuments }, async (fixture, dir, env) => {
    const txt = join(dir, "names.txt");
    // Legacy names (upper case, dots, "..") are valid: unknown here, so recorded as not found.
    await Deno.writeTextFile(
      txt,
      "# high impact\nms@^2.0.0\nchalk\nms\n\nleft-pad@1.3.0\nJSONStream\n12.15rk..\n",
    );
    const first = await runCli(["packument", "fetch-list", txt], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^fetched 3, revalidated 0, unchanged 0, not found 2, failed 0, /);
    assert.equal(fixture.requests.filter((r) => r.name === "ms").length, 1);
    assert.ok(fixture.requests.every((r) => r.representation === "full"));
    for (const name of ["ms", "chalk", "left-pad"]) {
      const shown = await runCliMeasured(["packument", "show", name], env);
      assert.equal(shown.code, 0);
      assert.equal(
        shown.stdoutSha256,
        createHash("sha256").update(fixture.expectedBody(name, "full")).digest("hex"),
        name,
      );
    }
    const corgi = await runCli(["packument", "fetch", "ms", "--abbreviated", "--json"], env);
    assert.equal(lastJson(corgi.stdout).fetched, 1);
    const shownCorgi = await runCliMeasured(["packument", "show", "ms", "--abbreviated"], env);
    assert.equal(
      shownCorgi.stdoutSha256,
      createHash("sha256").update(fixture.expectedBody("ms", "corgi")).digest("hex"),
    );
    const missing = await runCli(["packument", "show", "chalk", "--abbreviated"], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /chalk: not in the cache/);
    const notFound = await runCli(["packument", "show", "JSONStream"], env);
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /not found \(the registry answered 404\)/);
    const offline = await runCli(["packument", "fetch", "ms", "debug", "--offline"], env);
    assert.equal(offline.code, 1);
    assert.match(offline.stdout, /unchanged 1, not found 0, missing 1/);
  });
});

Deno.test("packument fetch --refresh downloads only what changed", () =>
  withRegistry({ packuments: generated(20) }, async (fixture, _dir, env) => {
    const names = [...generated(20).keys()];
    assert.equal((await runCli(["packument", "fetch", ...names], env)).code, 0);
    fixture.set("pkg-3", generatePackument("pkg-3", { versions: 9, seed: 99 }));
    fixture.requests.length = 0;
    const refresh = await runCli(["packument", "fetch", ...names, "--refresh", "--json"], env);
    const summary = lastJson(refresh.stdout);
    assert.equal(summary.fetched, 1);
    assert.equal(summary.revalidated, 19);
    assert.equal(fixture.requests.filter((r) => r.status === 200).length, 1);
    assert.equal(fixture.requests.filter((r) => r.status === 304).length, 19);
    const within = await runCli(["packument", "fetch", ...names, "--json"], env);
    assert.equal(lastJson(within.stdout).unchanged, 20, "fresh entries cost no request");
  }));

Deno.test("packument fetch-list killed with SIGKILL resumes without downloading again", () =>
  withRegistry(
    { packuments: generated(60), faults: () => ({ kind: "delay", ms: 40 }) },
    async (fixture, dir, env) => {
      const list = join(dir, "names.json");
      await Deno.writeTextFile(list, JSON.stringify([...generated(60).keys()]));
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "cli.ts",
          "packument",
          "fetch-list",
          list,
          "--json",
          "--concurrency",
          "2",
        ],
        cwd: root,
        env: { ...env, RUST_BACKTRACE: "0", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const reader = child.stdout.getReader();
      const decoder = new TextDecoder();
      let text = "";
      const done = new Set<string>();
      while (done.size < 10) {
        const { value, done: eof } = await reader.read();
        if (eof) break;
        text += decoder.decode(value, { stream: true });
        for (const line of text.split("\n").slice(0, -1)) {
          const event = JSON.parse(line);
          if (event.outcome === "fetched") done.add(event.name);
        }
      }
      child.kill("SIGKILL");
      await reader.cancel();
      assert.equal((await child.status).signal, "SIGKILL");
      assert.ok(done.size >= 10 && done.size < 60, `${done.size} fetched before the kill`);
      fixture.requests.length = 0;
      const resumed = await runCli(["packument", "fetch-list", list, "--json"], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      const again = new Set(fixture.requests.map((r) => r.name));
      for (const name of done) assert.ok(!again.has(name), `${name} was downloaded again`);
      const summary = lastJson(resumed.stdout);
      assert.equal((summary.fetched as number) + (summary.unchanged as number), 60);
      const verify = await runCli(["cache", "verify", "--json"], env);
      assert.equal(verify.code, 0);
      assert.deepEqual(JSON.parse(verify.stdout).corrupt, []);
    },
  ));

Deno.test("a 110 MB packument fetches and shows with peak memory under 200 MB", () => {
  const big = { versions: 4000, seed: 7, targetBytes: 110 * 1024 * 1024 };
  return withRegistry(
    { packuments: new Map([["huge", () => generatePackumentChunks("huge", big)]]) },
    async (_fixture, _dir, env) => {
      const fetched = await runCliMeasured(["packument", "fetch", "huge"], env);
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.ok(fetched.peakRss > 0, "peak memory was read");
      assert.ok(fetched.peakRss < 200 * 1024 * 1024, `fetch peak ${fetched.peakRss} bytes`);
      const shown = await runCliMeasured(["packument", "show", "huge"], env);
      assert.equal(shown.code, 0);
      assert.equal(shown.stdoutBytes, big.targetBytes);
      const expected = createHash("sha256");
      for (const piece of generatePackumentChunks("huge", big)) expected.update(piece);
      assert.equal(shown.stdoutSha256, expected.digest("hex"));
      assert.ok(shown.peakRss < 200 * 1024 * 1024, `show peak ${shown.peakRss} bytes`);
    },
  );
});

Deno.test("packument fetch-partitions fetches only new or changed documents", async () => {
  const docs = generated(30);
  const revOf = (name: string) => JSON.parse(docs.get(name)!)._rev as string;
  const replicate = await startAllDocsFixture({ ids: [...docs.keys()], revFor: revOf });
  try {
    await withRegistry({ packuments: docs }, async (registry, dir, env) => {
      const all = { ...env, ALL_DOCS_ORIGIN: replicate.origin };
      const pivots = join(dir, "pivots.json");
      await Deno.writeTextFile(pivots, JSON.stringify(["pkg-2"]));
      assert.equal((await runCli(["partition", "refresh", "--pivots", pivots], all)).code, 0);
      const first = lastJson(
        (await runCli(["packument", "fetch-partitions", "--json"], all)).stdout,
      );
      assert.equal(first.fetched, 30);
      assert.equal(first.skippedSameRev, 0);

      // One document changes upstream: a new _rev in _all_docs and a new body in the registry.
      const changed = JSON.parse(docs.get("pkg-7")!);
      changed._rev = "99-0123456789abcdef0123456789abcdef";
      docs.set("pkg-7", JSON.stringify(changed));
      registry.set("pkg-7", docs.get("pkg-7")!);
      replicate.setRev("pkg-7", changed._rev);
      assert.equal((await runCli(["partition", "refresh", "--pivots", pivots], all)).code, 0);
      registry.requests.length = 0;
      const second = lastJson(
        (await runCli(["packument", "fetch-partitions", "--pivots", pivots, "--json"], all)).stdout,
      );
      assert.equal(second.skippedSameRev, 29);
      assert.equal(second.fetched, 1);
      assert.deepEqual(registry.requests.map((r) => r.name), ["pkg-7"]);
      const shown = await runCliMeasured(["packument", "show", "pkg-7"], all);
      assert.equal(
        shown.stdoutSha256,
        createHash("sha256").update(docs.get("pkg-7")!).digest("hex"),
      );
    });
  } finally {
    await replicate.close();
  }
});

Deno.test("packument commands work against verdaccio, with auth from an .npmrc", async () => {
  const verdaccio = await startVerdaccio({ privateAccess: true });
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [name, version] of [["plain-pkg", "1.0.0"], ["plain-pkg", "1.1.0"], [
        "@corp/tool",
        "2.0.0",
      ]]
    ) {
      await verdaccio.publish(
        await verdaccio.packageDir({
          name: name!,
          version: version!,
          description: `${name} ${version}`,
        }),
      );
    }
    // Registry and token come from the .npmrc only: no --registry.
    const env = {
      npm_config_userconfig: verdaccio.npmrc,
      ALL_DOCS_CACHE_DIR: dir,
      ALL_DOCS_REGISTRY: "",
    };
    const full = await runCli(["packument", "fetch", "plain-pkg", "@corp/tool", "--json"], env);
    assert.equal(full.code, 0, full.stderr);
    assert.equal(lastJson(full.stdout).fetched, 2);
    const corgi = await runCli(["packument", "fetch", "plain-pkg", "--abbreviated", "--json"], env);
    assert.equal(lastJson(corgi.stdout).fetched, 1);
    const fullDoc = JSON.parse((await runCli(["packument", "show", "plain-pkg"], env)).stdout);
    const corgiDoc = JSON.parse(
      (await runCli(["packument", "show", "plain-pkg", "--abbreviated"], env)).stdout,
    );
    assert.deepEqual(Object.keys(fullDoc.versions).sort(), ["1.0.0", "1.1.0"]);
    assert.deepEqual(Object.keys(corgiDoc.versions).sort(), ["1.0.0", "1.1.0"]);
    assert.ok("_id" in fullDoc && !("_id" in corgiDoc), "the two representations differ");
    const refresh = await runCli([
      "packument",
      "fetch",
      "plain-pkg",
      "@corp/tool",
      "--refresh",
      "--json",
    ], env);
    assert.equal(lastJson(refresh.stdout).revalidated, 2, "verdaccio answered 304");
    for (const result of [full, corgi, refresh]) {
      assert.ok(
        !result.stdout.includes(verdaccio.token) && !result.stderr.includes(verdaccio.token),
      );
    }
    // Without the token, the private registry refuses, and the run says so without the token.
    const anonymous = await runCli(["packument", "fetch", "plain-pkg", "--refresh"], {
      ...env,
      npm_config_userconfig: join(dir, "none"),
      ALL_DOCS_REGISTRY: verdaccio.url,
    });
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /failed plain-pkg: .*401/);
  } finally {
    await verdaccio.close();
    await Deno.remove(dir, { recursive: true });
  }
});
