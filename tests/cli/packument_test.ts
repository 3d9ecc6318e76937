import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runCli, runCliMeasured, startCli } from "../_support/run_cli.ts";
import { ROOT } from "../_support/spawn.ts";
import {
  generatePackument,
  generatePackumentChunks,
  loadFixturePackuments,
} from "../_support/packuments.ts";
import {
  onlyName,
  type RegistryFixture,
  standalonePackuments,
  startRegistryFixture,
} from "../_support/registry_fixture.ts";
import { startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { startVerdaccio } from "../_support/verdaccio.ts";
import { Cache } from "../../src/storage/cache.ts";
import { originKey, packumentKey, type Representation } from "../../src/storage/keys.ts";
import { packageNameProblem, parseNameList } from "../../src/npm/package_name.ts";
import { FsDriver } from "../../drivers/fs.ts";

/** The `npm-high-impact` 1.13.0 name list (see tests/fixtures/README.md). */
const HIGH_IMPACT = join(ROOT, "tests", "fixtures", "npm-high-impact.json");

/** Reads the cache a CLI run left in `dir` (fs storage), while no run is going on. */
async function withStoredCache<T>(dir: string, fn: (cache: Cache) => Promise<T>): Promise<T> {
  const driver = new FsDriver(join(dir, "fs"));
  try {
    return await fn(await Cache.open(driver));
  } finally {
    await driver.close();
  }
}

/** The `_rev` the cache holds for `name` as served by `registry`. */
function storedRev(
  dir: string,
  registry: RegistryFixture,
  name: string,
  representation: Representation = "full",
): Promise<string | undefined> {
  return withStoredCache(dir, async (cache) => {
    const info = await cache.info(packumentKey(originKey(registry.url), name, representation));
    assert.ok(info, `${name} (${representation}) is cached`);
    return info.rev;
  });
}

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
      const child = startCli(
        ["packument", "fetch-list", list, "--json", "--concurrency", "2"],
        env,
      );
      const done = new Set<string>();
      const record = (line: string) => {
        const event = JSON.parse(line);
        if (event.outcome === "fetched") done.add(event.name);
      };
      while (done.size < 10) record(await child.line());
      const killed = await child.stop("SIGKILL");
      assert.equal(killed.signal, "SIGKILL");
      // Names it reported fetched before the kill landed count too (complete lines only).
      for (const line of killed.stdout.split("\n").slice(0, -1)) record(line);
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
      // Stored gzip (the default), decoded as it is shown.
      const stats = JSON.parse((await runCli(["cache", "stats", "--json"], env)).stdout);
      assert.equal(stats.gzipEntries, 1);
      assert.equal(stats.decodedBytes, big.targetBytes);
      assert.ok(stats.bytes < big.targetBytes * 0.25, `${stats.bytes} bytes stored`);
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

Deno.test("packument fetch-partitions never gives a document a _rev its body does not have", async () => {
  const docs = generated(8);
  const names = [...docs.keys()];
  const revOf = (body: string) => JSON.parse(body)._rev as string;
  const replicate = await startAllDocsFixture({ ids: names, revFor: (id) => revOf(docs.get(id)!) });
  try {
    await withRegistry({ packuments: docs }, async (registry, dir, env) => {
      const all = { ...env, ALL_DOCS_ORIGIN: replicate.origin };
      const pivots = join(dir, "pivots.json");
      await Deno.writeTextFile(pivots, JSON.stringify(["pkg-4"]));
      const refresh = async () =>
        assert.equal((await runCli(["partition", "refresh", "--pivots", pivots], all)).code, 0);
      const run = async (...extra: string[]) => {
        registry.requests.length = 0;
        const result = await runCli(["packument", "fetch-partitions", "--json", ...extra], all);
        assert.equal(result.code, 0, result.stderr);
        return lastJson(result.stdout);
      };
      const asked = () => registry.requests.map((r) => [r.name, r.status]);
      await refresh();
      assert.equal((await run()).fetched, 8);
      const name = "pkg-3";
      const bodyRev = revOf(docs.get(name)!);
      assert.equal(await storedRev(dir, registry, name), bodyRev);

      // The partition moves on while the registry still serves the old body (same ETag): 304.
      const newRev = "2-0123456789abcdef0123456789abcdef";
      replicate.setRev(name, newRev);
      await refresh();
      const stale = await run();
      assert.equal(stale.revalidated, 1);
      assert.equal(stale.skippedSameRev, 7);
      assert.deepEqual(asked(), [[name, 304]]);
      assert.equal(registry.requests[0]!.ifNoneMatch, registry.etag(name, "full"));
      assert.equal(await storedRev(dir, registry, name), bodyRev, "a 304 stamps no new _rev");
      // So the next run asks again instead of skipping it for good.
      const again = await run();
      assert.equal(again.skippedSameRev, 7);
      assert.deepEqual(asked(), [[name, 304]]);

      // An older body under another ETag (a lagging copy) is stored with its own _rev.
      const lagging = JSON.parse(docs.get(name)!);
      lagging.description = "served by a copy that lags behind";
      registry.set(name, JSON.stringify(lagging));
      const older = await run();
      assert.equal(older.fetched, 1);
      assert.deepEqual(asked(), [[name, 200]]);
      assert.equal(await storedRev(dir, registry, name), bodyRev, "the body's _rev is kept");
      const stillBehind = await run();
      assert.equal(stillBehind.skippedSameRev, 7);
      assert.deepEqual(asked(), [[name, 304]], "asked again: the cached body is still behind");

      // The registry catches up: the new body brings the new _rev, and later runs skip it.
      const current = JSON.parse(docs.get(name)!);
      current._rev = newRev;
      current.description = "the current body";
      registry.set(name, JSON.stringify(current));
      const caughtUp = await run();
      assert.equal(caughtUp.fetched, 1);
      assert.deepEqual(asked(), [[name, 200]]);
      assert.equal(await storedRev(dir, registry, name), newRev);
      const settled = await run();
      assert.equal(settled.skippedSameRev, 8);
      assert.deepEqual(asked(), []);

      // The abbreviated document has no _rev: a fetched one takes the partition's, a 304 never.
      const corgi = await run("--abbreviated");
      assert.equal(corgi.fetched, 8);
      for (const each of names) {
        assert.equal(
          await storedRev(dir, registry, each, "abbreviated"),
          each === name ? newRev : revOf(docs.get(each)!),
          each,
        );
      }
      assert.equal((await run("--abbreviated")).skippedSameRev, 8);
      assert.deepEqual(asked(), []);
      const moved = "pkg-6";
      const movedRev = "3-fedcba9876543210fedcba9876543210";
      replicate.setRev(moved, movedRev);
      await refresh();
      const corgi304 = await run("--abbreviated");
      assert.equal(corgi304.revalidated, 1);
      assert.deepEqual(asked(), [[moved, 304]]);
      assert.equal(
        await storedRev(dir, registry, moved, "abbreviated"),
        revOf(docs.get(moved)!),
        "a 304 stamps no new _rev on the abbreviated document either",
      );
      assert.equal((await run("--abbreviated")).skippedSameRev, 7);
      assert.deepEqual(asked(), [[moved, 304]]);
    });
  } finally {
    await replicate.close();
  }
});

Deno.test("packument fetch-partitions --pivots FILE is driven by that partition set only", async () => {
  const docs = generated(14);
  const revOf = (id: string) => JSON.parse(docs.get(id)!)._rev as string;
  // pkg-12 is listed only before set B is refreshed; pkg-13 only after.
  const before = [...docs.keys()].filter((id) => id !== "pkg-13");
  const replicate = await startAllDocsFixture({ ids: before, revFor: revOf });
  try {
    await withRegistry({ packuments: docs }, async (registry, dir, env) => {
      const all = { ...env, ALL_DOCS_ORIGIN: replicate.origin };
      const cached = before.filter((id) => id !== "pkg-12");
      assert.equal((await runCli(["packument", "fetch", ...cached], all)).code, 0);
      const setA = join(dir, "a.json");
      const setB = join(dir, "b.json");
      await Deno.writeTextFile(setA, JSON.stringify(["pkg-3"]));
      await Deno.writeTextFile(setB, JSON.stringify(["pkg-6", "pkg-9"]));
      assert.equal((await runCli(["partition", "refresh", "--pivots", setA], all)).code, 0);

      // Upstream changes between the two refreshes.
      const changed = new Map<string, string>();
      for (const [i, id] of [[4, "pkg-4"], [8, "pkg-8"]] as const) {
        const doc = JSON.parse(docs.get(id)!);
        doc._rev = `${i + 10}-${"ab".repeat(16)}`;
        docs.set(id, JSON.stringify(doc));
        registry.set(id, docs.get(id)!);
        replicate.setRev(id, doc._rev);
        changed.set(id, doc._rev);
      }
      replicate.remove("pkg-12");
      replicate.add("pkg-13", revOf("pkg-13"));
      assert.equal((await runCli(["partition", "refresh", "--pivots", setB], all)).code, 0);

      const run = async (pivots: string) => {
        registry.requests.length = 0;
        const result = await runCli(
          ["packument", "fetch-partitions", "--pivots", pivots, "--json"],
          all,
        );
        assert.equal(result.code, 0, result.stderr);
        return {
          summary: lastJson(result.stdout),
          asked: registry.requests.map((r) => r.name).sort(),
        };
      };
      // Set A lists pkg-12 (not cached) and the old revs of pkg-4 and pkg-8 (as cached).
      const a = await run(setA);
      assert.deepEqual(a.asked, ["pkg-12"]);
      assert.equal(a.summary.fetched, 1);
      assert.equal(a.summary.skippedSameRev, 12);
      assert.equal(a.summary.total, 13);
      // Set B lists the new revs of pkg-4 and pkg-8, and pkg-13; pkg-12 is not in it.
      const b = await run(setB);
      assert.deepEqual(b.asked, ["pkg-13", "pkg-4", "pkg-8"]);
      assert.equal(b.summary.fetched, 3);
      assert.equal(b.summary.skippedSameRev, 10);
      assert.equal(b.summary.total, 13);
      for (const [id, rev] of changed) assert.equal(await storedRev(dir, registry, id), rev);
      // Set A again: its old revs differ from what is cached now, so it asks for those two; the
      // registry answers 304 and the cached bodies keep their own (newer) _rev.
      const again = await run(setA);
      assert.deepEqual(again.asked, ["pkg-4", "pkg-8"]);
      assert.equal(again.summary.revalidated, 2);
      assert.equal(again.summary.skippedSameRev, 11);
      for (const [id, rev] of changed) assert.equal(await storedRev(dir, registry, id), rev);
    });
  } finally {
    await replicate.close();
  }
});

/** Runs the CLI with exactly `env` (nothing inherited beyond it). */
function runCliClean(args: string[], env: Record<string, string>) {
  return runCli(args, env, { clearEnv: true });
}

/** The environment of this process without npm's settings or this tool's. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const kept = Object.entries(Deno.env.toObject()).filter(([key]) =>
    !/^npm_config_/i.test(key) && !key.startsWith("ALL_DOCS_")
  );
  return { ...Object.fromEntries(kept), RUST_BACKTRACE: "0", NO_COLOR: "1", ...extra };
}

Deno.test("packument fetch routes scopes and tokens by .npmrc: the token goes to its registry only", async () => {
  const token = "corp-npmrc-s3cret-t0ken";
  const body = (name: string, seed: number) => generatePackument(name, { versions: 2, seed });
  const open = await startRegistryFixture({
    packuments: new Map([["plain-y", body("plain-y", 1)], ["@other/z", body("@other/z", 2)]]),
    recordHeaders: true,
  });
  const corp = await startRegistryFixture({
    packuments: new Map([["@corp/x", body("@corp/x", 3)], ["@corp/broken", body("@corp/b", 4)]]),
    token,
    recordHeaders: true,
    faults: onlyName("@corp/broken", () => ({ kind: "status", status: 503 })),
  });
  const dir = await Deno.makeTempDir();
  try {
    const npmrc = join(dir, "user.npmrc");
    const corpHost = new URL(corp.url).host;
    await Deno.writeTextFile(
      npmrc,
      `registry=${open.url}\n@corp:registry=${corp.url}\n//${corpHost}/:_authToken=${token}\n`,
    );
    const env = cleanEnv({ NPM_CONFIG_USERCONFIG: npmrc, ALL_DOCS_CACHE_DIR: dir });
    const runs = [
      await runCliClean(["packument", "fetch", "@corp/x", "plain-y", "@other/z", "--json"], env),
    ];
    assert.equal(runs[0]!.code, 0, runs[0]!.stderr);
    assert.equal(lastJson(runs[0]!.stdout).fetched, 3);
    assert.deepEqual(corp.requests.map((r) => [r.name, r.status]), [["@corp/x", 200]]);
    assert.equal(corp.requests[0]!.headers!["authorization"], `Bearer ${token}`);
    assert.deepEqual(
      open.requests.map((r) => [r.name, r.status]).sort(),
      [["@other/z", 200], ["plain-y", 200]],
    );
    for (const request of open.requests) {
      assert.equal(request.authorization, false, request.name!);
      assert.equal("authorization" in request.headers!, false, request.name!);
    }
    // Each body came from its own registry.
    for (const [name, registry] of [["@corp/x", corp], ["plain-y", open]] as const) {
      const shown = await runCliClean(["packument", "show", name], env);
      runs.push(shown);
      assert.equal(shown.code, 0, shown.stderr);
      assert.equal(shown.stdout, new TextDecoder().decode(registry.expectedBody(name, "full")));
    }
    // A failure on the private registry is reported without the token.
    const failed = await runCliClean(["packument", "fetch", "@corp/broken", "--retries", "0"], env);
    runs.push(failed);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /failed @corp\/broken: GET .*503/);
    assert.equal(corp.requests.at(-1)!.headers!["authorization"], `Bearer ${token}`);
    for (const run of runs) {
      assert.equal(run.stdout.includes(token), false);
      assert.equal(run.stderr.includes(token), false);
    }
  } finally {
    await open.close();
    await corp.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the npm-high-impact list: every name is valid, and fetch-list accepts the file", async () => {
  const text = await Deno.readTextFile(HIGH_IMPACT);
  const names = JSON.parse(text) as string[];
  assert.equal(names.length, 17_338, "the whole list of npm-high-impact 1.13.0");
  assert.equal(new Set(names).size, names.length);
  const problems = names.flatMap((name) => {
    const problem = packageNameProblem(name);
    return problem ? [`${name}: ${problem}`] : [];
  });
  assert.deepEqual(problems, []);
  // Legacy names (upper case, dots) and scoped names are in it, and all are accepted.
  for (const name of ["JSONStream", "lodash.merge", "@nodelib/fs.stat", "@babel/core"]) {
    assert.ok(names.includes(name), name);
  }
  const parsed = parseNameList(text, "json");
  assert.ok("names" in parsed, JSON.stringify(parsed).slice(0, 200));
  assert.deepEqual(parsed.names, names);
  assert.equal(parsed.duplicates, 0);
  await withRegistry({}, async (fixture, _dir, env) => {
    // Offline with an empty cache: the whole list is accepted (no exit 2), and all of it is
    // reported missing without a request.
    const offline = await runCli(["packument", "fetch-list", HIGH_IMPACT, "--offline"], env);
    assert.equal(offline.code, 1, offline.stderr);
    assert.match(offline.stdout, /^fetched 0, .*, missing 17338, failed 0, /);
    assert.match(offline.stderr, /^17338 not in the cache$/m);
    assert.doesNotMatch(offline.stderr, /Invalid package name/);
    assert.equal(fixture.requests.length, 0);
  });
});

Deno.test("packument fetch-list of a slice of npm-high-impact fetches each once, byte for byte", async () => {
  const names = JSON.parse(await Deno.readTextFile(HIGH_IMPACT)) as string[];
  const slice = names.filter((name, i) => i % 50 === 0 || /[A-Z]/.test(name));
  assert.ok(slice.length >= 300 && slice.length <= 400, `${slice.length} names`);
  assert.ok(slice.some((name) => name.startsWith("@")), "scoped names");
  assert.ok(slice.some((name) => /[A-Z]/.test(name)), "legacy upper-case names");
  assert.ok(slice.some((name) => name.includes(".")), "names with dots");
  await withRegistry({ packuments: standalonePackuments(slice) }, async (fixture, dir, env) => {
    const list = join(dir, "slice.json");
    // Repeats are fetched once.
    await Deno.writeTextFile(list, JSON.stringify([...slice, ...slice.slice(0, 25)]));
    const first = await runCli(["packument", "fetch-list", list, "--json"], env);
    assert.equal(first.code, 0, first.stderr);
    const summary = lastJson(first.stdout);
    assert.equal(summary.fetched, slice.length);
    assert.deepEqual(summary.failed, []);
    assert.equal(fixture.requests.length, slice.length);
    const perName = new Map<string, number>();
    for (const r of fixture.requests) perName.set(r.name!, (perName.get(r.name!) ?? 0) + 1);
    assert.deepEqual([...perName.keys()].sort(), [...slice].sort());
    assert.ok([...perName.values()].every((n) => n === 1), "each name was asked for once");
    assert.ok(fixture.requests.every((r) => r.status === 200 && r.representation === "full"));
    await withStoredCache(dir, async (cache) => {
      const origin = originKey(fixture.url);
      for (const name of slice) {
        const entry = await cache.get(packumentKey(origin, name));
        assert.ok(entry, name);
        assert.deepEqual(await entry.bytes(), fixture.expectedBody(name, "full"), name);
      }
    });
    for (const name of [slice.find((n) => n.startsWith("@"))!, "JSONStream"]) {
      const shown = await runCliMeasured(["packument", "show", name], env);
      assert.equal(shown.code, 0, shown.stderr);
      assert.equal(
        shown.stdoutSha256,
        createHash("sha256").update(fixture.expectedBody(name, "full")).digest("hex"),
        name,
      );
    }
    fixture.requests.length = 0;
    const second = await runCli(["packument", "fetch-list", list, "--json"], env);
    assert.equal(lastJson(second.stdout).unchanged, slice.length);
    assert.equal(fixture.requests.length, 0, "fresh entries cost no request");
  });
});
