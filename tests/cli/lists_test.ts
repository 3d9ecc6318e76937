import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { startAllDocsFixture } from "../_support/all_docs_fixture.ts";

Deno.test("fetch-list reads inline comments and a UTF-8 byte order mark in .txt and .json", async () => {
  const names = ["ms", "left-pad", "chalk"];
  const registry = await startRegistryFixture({
    packuments: new Map(names.map((name) => [name, JSON.stringify({ name })])),
  });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_REGISTRY: registry.url, ALL_DOCS_CACHE_DIR: dir };
    const txt = join(dir, "names.txt");
    await Deno.writeTextFile(txt, "\ufeffms # why\r\nleft-pad@^1\t# pinned\n  chalk  \n");
    const fromText = await runCli(["packument", "fetch-list", txt], env);
    assert.equal(fromText.code, 0, fromText.stderr);
    assert.match(fromText.stdout, /^fetched 3, .*not found 0, failed 0/);
    const json = join(dir, "names.json");
    await Deno.writeTextFile(json, "\ufeff" + JSON.stringify(names));
    const fromJson = await runCli(["packument", "fetch-list", json, "--json"], env);
    assert.equal(fromJson.code, 0, fromJson.stderr);
    assert.equal(JSON.parse(fromJson.stdout.trim().split("\n").at(-1)!).unchanged, 3);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("partition refresh trims .txt pivots like names, with comments and a BOM", async () => {
  const origin = await startAllDocsFixture({ ids: ["a", "b", "c", "d", "e"] });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_ORIGIN: origin.origin };
    const txt = join(dir, "pivots.txt");
    await Deno.writeTextFile(txt, "\ufeff# split\r\n  b  \r\nd # the d's\r\n");
    const json = join(dir, "pivots.json");
    await Deno.writeTextFile(json, '\ufeff["b", "d"]');
    const fromText = await runCli(["partition", "refresh", "--pivots", txt, "--json"], env);
    assert.equal(fromText.code, 0, fromText.stderr);
    const fromJson = await runCli(["partition", "refresh", "--pivots", json, "--json"], env);
    assert.equal(fromJson.code, 0, fromJson.stderr);
    const summary = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!);
    // The same pivots make the same set.
    assert.equal(summary(fromText.stdout).setId, summary(fromJson.stdout).setId);
    assert.equal(summary(fromText.stdout).partitions, 3);
    const list = await runCli(["partition", "list", "--json"], env);
    assert.deepEqual(
      list.stdout.trim().split("\n").map((line) => JSON.parse(line).endKey),
      ["b", "d", ""],
    );
  } finally {
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
