import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { checkCacheDir } from "../../drivers/select_cache_dir.ts";

/** Commands that only read the cache, with the arguments they need. */
const READERS: string[][] = [
  ["cache", "stats"],
  ["cache", "verify"],
  ["cache", "create-index"],
  ["cache", "export"],
  ["packument", "show", "ms"],
  ["partition", "list"],
  ["partition", "status"],
  ["serve", "--port", "0"],
];

async function withFixture(
  fn: (root: string, env: Record<string, string>, requests: () => number) => Promise<void>,
): Promise<void> {
  const fixture = await startRegistryFixture({ packuments: await loadFixturePackuments() });
  const root = await Deno.makeTempDir();
  try {
    await fn(root, { ALL_DOCS_REGISTRY: fixture.url }, () => fixture.requests.length);
  } finally {
    await fixture.close();
    await Deno.remove(root, { recursive: true });
  }
}

function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, pattern);
}

Deno.test("a cache dir that is a file, or under one, exits 2 in one line before any request", () =>
  withFixture(async (root, env, requests) => {
    const file = join(root, "file");
    await Deno.writeTextFile(file, "not a directory");
    for (const dir of [file, join(file, "cache")]) {
      for (const args of [["packument", "fetch", "ms"], ...READERS]) {
        const run = await runCli(args, { ...env, ALL_DOCS_CACHE_DIR: dir });
        assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
        assertOneLine(run.stderr, /^error: Cache dir '.*' is not a directory/);
        assert.equal(run.stdout, "", args.join(" "));
      }
    }
    assert.equal(requests(), 0);
  }));

Deno.test("read-only commands and serve say a missing cache dir does not exist; fetch makes it", () =>
  withFixture(async (root, env, requests) => {
    const dir = join(root, "missing", "cache");
    for (const args of READERS) {
      const run = await runCli(args, { ...env, ALL_DOCS_CACHE_DIR: dir });
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assertOneLine(run.stderr, /^error: Cache dir '.*missing\/cache' does not exist/);
    }
    await assert.rejects(Deno.stat(dir));
    const fetched = await runCli(["packument", "fetch", "ms"], { ...env, ALL_DOCS_CACHE_DIR: dir });
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(requests(), 1);
    const stats = await runCli(["cache", "stats", "--json"], { ...env, ALL_DOCS_CACHE_DIR: dir });
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal(JSON.parse(stats.stdout).types.packument, 1);
    // The probe file is gone.
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["fs"]);
  }));

Deno.test("checkCacheDir() fails up front on a cache dir that cannot be written", async () => {
  const root = await Deno.makeTempDir();
  try {
    const written: string[] = [];
    const readOnly = {
      isDirectory: () => Promise.resolve(true),
      mkdir: () => Promise.resolve(),
      writeFileExclusive: (path: string) => {
        written.push(path);
        const error = new Error(`EROFS: read-only file system, open '${path}'`);
        return Promise.reject(Object.assign(error, { code: "EROFS" }));
      },
      unlink: () => Promise.resolve(),
    };
    const error = await checkCacheDir(root, "write", readOnly).catch((e) => e);
    assert.equal(error?.name, "CacheDirError");
    assert.equal(error.code, "EROFS");
    assert.match(error.message, /^Cache dir '.*' is not writable: EROFS: read-only file system/);
    assert.equal(written.length, 1);
    // Reading needs no write.
    await checkCacheDir(root, "read", readOnly);
    assert.equal(written.length, 1);
    const denied = {
      ...readOnly,
      mkdir: () =>
        Promise.reject(Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" })),
    };
    const notMade = await checkCacheDir(join(root, "x"), "write", denied).catch((e) => e);
    assert.match(notMade.message, /^Cache dir '.*' cannot be created: EACCES/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
