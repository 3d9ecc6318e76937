import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { generateNames, startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { Cache } from "../../src/storage/cache.ts";
import { packumentKey, partitionKey } from "../../src/storage/keys.ts";
import { VERSION } from "../../src/version.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { DenoKvDriver } from "../../drivers/deno_kv.deno.ts";

const enc = new TextEncoder();

async function withCacheDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli --help and --version describe the tool", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  for (
    const text of ["cache stats", "cache verify", "cache clear", "--cache-dir", "ALL_DOCS_STORAGE"]
  ) {
    assert.ok(help.stdout.includes(text), text);
  }
  const version = await runCli(["--version"]);
  assert.equal(version.stdout, `_all_docs ${VERSION}\n`);
  const sub = await runCli(["cache", "verify", "--help"]);
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /Usage: _all_docs cache verify/);
  assert.match(sub.stdout, /--fix/);
  const group = await runCli(["cache", "--help"]);
  assert.match(group.stdout, /_all_docs cache stats/);
});

Deno.test("cli usage errors print one line and exit 2", async () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["nope"], {}, /^error: Unknown command 'nope'/],
    [["cache", "stats", "--bogus"], {}, /^error: .*bogus/],
    [["cache", "stats", "--fix"], {}, /^error: Unknown option '--fix' for 'cache stats'/],
    [["cache", "stats", "extra"], {}, /^error: Unexpected argument 'extra'/],
    [["serve", "extra"], {}, /^error: Unexpected argument 'extra' for 'serve'/],
    [["cache", "stats", "--storage", "s4"], {}, /^error: Invalid --storage: .*received 's4'/],
    [["cache", "stats", "--concurrency", "0"], {}, /^error: Invalid --concurrency: .*'0'/],
    [["cache", "stats"], { ALL_DOCS_RETRIES: "-1" }, /^error: Invalid ALL_DOCS_RETRIES: .*'-1'/],
    [["cache", "stats", "--timeout", "1.5"], {}, /^error: Invalid --timeout/],
    [["cache", "stats", "--origin", "ftp://x"], {}, /^error: Invalid --origin/],
    [["cache", "stats", "--registry", "nope"], {}, /^error: Invalid --registry/],
    [["cache", "stats", "--origin-key", "a:b"], {}, /^error: Invalid --origin-key/],
  ];
  for (const [args, env, message] of cases) {
    const result = await runCli(args, { ALL_DOCS_STORAGE: "memory", ...env });
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, message, args.join(" "));
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
});

Deno.test("cli cache stats counts entries by type on fs and kv storage", async (t) => {
  for (const storage of ["fs", "kv"] as const) {
    await t.step(storage, () =>
      withCacheDir(async (dir) => {
        const driver = storage === "fs"
          ? new FsDriver(join(dir, "fs"))
          : await DenoKvDriver.open(join(dir, "deno.kv"));
        const cache = await Cache.open(driver, { inlineMax: 100 });
        await cache.put(packumentKey("npm", "ms"), enc.encode("x".repeat(10)), { status: 200 });
        await cache.put(packumentKey("npm", "big"), enc.encode("y".repeat(500)), { status: 200 });
        await cache.put(packumentKey("npm", "ms", "abbreviated"), enc.encode("z"), { status: 200 });
        await cache.put(partitionKey("npm", "", "a"), enc.encode("[]"), { status: 200 });
        await driver.close();
        const result = await runCli(["cache", "stats", "--json", "--storage", storage], {
          ALL_DOCS_CACHE_DIR: dir,
        });
        assert.equal(result.code, 0, result.stderr);
        const stats = JSON.parse(result.stdout);
        assert.equal(stats.entries, 4);
        assert.deepEqual(stats.types, { partition: 1, packument: 2, corgi: 1, other: 0 });
        assert.equal(stats.bytes, 10 + 500 + 1 + 2);
        assert.equal(stats.separateBodies, 1);
        assert.equal(stats.storage.kind, storage);
        const human = await runCli(["cache", "stats", "--cache-dir", dir, "--storage", storage]);
        assert.match(human.stdout, /entries\s+4/);
      }));
  }
});

Deno.test("cli cache verify finds corrupt entries and orphans; --fix removes them", () =>
  withCacheDir(async (dir) => {
    const driver = new FsDriver(join(dir, "fs"));
    const cache = await Cache.open(driver, { inlineMax: 100 });
    await cache.put(packumentKey("npm", "good"), enc.encode("fine"), { status: 200 });
    const badKey = packumentKey("npm", "bad");
    await cache.put(badKey, enc.encode("will rot"), { status: 200 });
    const raw = (await driver.get(badKey))!;
    raw[raw.length - 1]! ^= 1;
    await driver.put(badKey, raw);
    await driver.put("v1:body:packument:npm:6f:0123456789abcdef", enc.encode("orphan"));
    await driver.close();
    const env = { ALL_DOCS_CACHE_DIR: dir };

    const first = await runCli(["cache", "verify"], env);
    assert.equal(first.code, 1);
    assert.match(first.stdout, /2 entries checked, 1 corrupt, 1 orphaned bodies/);
    assert.match(first.stderr, new RegExp(`corrupt  ${badKey}`));
    const json = JSON.parse((await runCli(["cache", "verify", "--json"], env)).stdout);
    assert.deepEqual(json.corrupt.map((c: { key: string }) => c.key), [badKey]);
    assert.deepEqual(json.orphanBodies, ["v1:body:packument:npm:6f:0123456789abcdef"]);

    assert.equal((await runCli(["cache", "verify", "--fix"], env)).code, 0);
    const after = await runCli(["cache", "verify"], env);
    assert.equal(after.code, 0);
    assert.match(after.stdout, /1 entries checked, 0 corrupt, 0 orphaned bodies/);
  }));

Deno.test("cli cache clear removes everything or a prefix", () =>
  withCacheDir(async (dir) => {
    const driver = new FsDriver(join(dir, "fs"));
    const cache = await Cache.open(driver);
    for (const name of ["a", "b", "c"]) {
      await cache.put(packumentKey("npm", name), enc.encode(name), { status: 200 });
    }
    await cache.put(partitionKey("npm", "", ""), enc.encode("[]"), { status: 200 });
    await driver.close();
    const env = { ALL_DOCS_CACHE_DIR: dir };
    const some = await runCli(["cache", "clear", "--prefix", "v1:packument:", "--json"], env);
    assert.deepEqual(JSON.parse(some.stdout), { deleted: 3, prefix: "v1:packument:" });
    const stats = JSON.parse((await runCli(["cache", "stats", "--json"], env)).stdout);
    assert.equal(stats.entries, 1);
    const all = await runCli(["cache", "clear"], env);
    assert.equal(all.stdout, "1 keys removed\n");
    assert.equal(JSON.parse((await runCli(["cache", "stats", "--json"], env)).stdout).entries, 0);
  }));

Deno.test("cli defaults to fs storage under the XDG cache dir", () =>
  withCacheDir(async (dir) => {
    const driver = new FsDriver(join(dir, "_all_docs", "fs"));
    const cache = await Cache.open(driver);
    await cache.put(packumentKey("npm", "x"), enc.encode("{}"), { status: 200 });
    await driver.close();
    const result = await runCli(["cache", "stats", "--json"], { XDG_CACHE_HOME: dir });
    const stats = JSON.parse(result.stdout);
    assert.equal(stats.entries, 1);
    assert.equal(stats.storage.location, join(dir, "_all_docs", "fs"));
  }));

Deno.test("cli --progress draws the progress of a refresh and a fetch as plain lines", async () => {
  const names = generateNames(300);
  const origin = await startAllDocsFixture({ ids: names });
  const registry = await startRegistryFixture({
    packuments: new Map(names.slice(0, 40).map((name) => [name, JSON.stringify({ name })])),
  });
  try {
    await withCacheDir(async (dir) => {
      const pivots = join(dir, "pivots.json");
      const sorted = origin.ids;
      await Deno.writeTextFile(pivots, JSON.stringify([sorted[100], sorted[200]]));
      const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_ORIGIN: origin.origin };
      const refresh = await runCli(["partition", "refresh", "--pivots", pivots, "--progress"], env);
      assert.equal(refresh.code, 0, refresh.stderr);
      // No terminal: plain lines, no escape codes.
      assert.ok(!refresh.stderr.includes("\x1b"), "no escape codes");
      assert.match(
        refresh.stderr,
        /^\[[#-]{24}\] \d\/3 partitions {2}\d+ rows {2}\d+ rows\/s {2}ETA \d+s$/m,
      );
      const quiet = await runCli(["partition", "refresh", "--pivots", pivots], env);
      assert.equal(quiet.code, 0, quiet.stderr);
      assert.doesNotMatch(
        quiet.stderr,
        /partitions {2}/,
        "no progress unless asked off a terminal",
      );

      const list = join(dir, "names.json");
      await Deno.writeTextFile(list, JSON.stringify(names.slice(0, 40)));
      const fetch = await runCli([
        "packument",
        "fetch-list",
        list,
        "--registry",
        registry.url,
        "--progress",
      ], env);
      assert.equal(fetch.code, 0, fetch.stderr);
      assert.ok(!fetch.stderr.includes("\x1b"), "no escape codes");
      assert.match(fetch.stderr, /^\[[#-]{24}\] \d+\/40 {2}\d+\/s {2}[\d.]+ K?B {2}ETA \d+s$/m);

      const both = await runCli(["partition", "status", "--quiet", "--progress"], env);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /--quiet and --progress contradict each other/);
    });
  } finally {
    await origin.close();
    await registry.close();
  }
});
