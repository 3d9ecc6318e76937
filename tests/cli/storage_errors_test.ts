import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";

Deno.test("packument fetch stops with one line at a storage failure, downloading nothing again", async () => {
  const packuments = await loadFixturePackuments();
  const fixture = await startRegistryFixture({ packuments });
  const dir = await Deno.makeTempDir();
  try {
    // The fs storage's own directory is a regular file: every write fails (as root too).
    await Deno.writeTextFile(join(dir, "fs"), "not a directory");
    const names = [...packuments.keys()];
    const run = await runCli(["packument", "fetch", ...names, "--concurrency", "1"], {
      ALL_DOCS_REGISTRY: fixture.url,
      ALL_DOCS_CACHE_DIR: dir,
    });
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stderr.trim().split("\n");
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0]!,
      /^error: Cannot put key .*the file system failed: .*(Not a directory|exists)/i,
    );
    assert.equal(fixture.requests.length, 1, "one download, never repeated");
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});
