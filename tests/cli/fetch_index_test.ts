import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";

function packument(name: string, rev: string): string {
  return JSON.stringify({ _id: name, _rev: rev, name, "dist-tags": {}, versions: {} });
}

Deno.test("packument fetch-list takes cache create-index output and fetches only changed _revs", async () => {
  const ids = Array.from({ length: 40 }, (_, i) => `pkg-${String(i).padStart(3, "0")}`);
  const couch = await startAllDocsFixture({ ids });
  const registry = await startRegistryFixture();
  const dir = await Deno.makeTempDir();
  try {
    for (const row of couch.rows) registry.set(row.id, packument(row.id, row.rev));
    const env = {
      ALL_DOCS_ORIGIN: couch.origin,
      ALL_DOCS_REGISTRY: registry.url,
      ALL_DOCS_CACHE_DIR: dir,
    };
    const pivots = join(dir, "pivots.json");
    await Deno.writeTextFile(pivots, JSON.stringify([ids[20]]));
    const refresh = await runCli(["partition", "refresh", "--pivots", pivots], env);
    assert.equal(refresh.code, 0, refresh.stderr);
    const index = await runCli(["cache", "create-index"], env);
    const file = join(dir, "index.csv");
    await Deno.writeTextFile(file, `# from cache create-index\n${index.stdout}`);

    const fetch = async () => {
      const run = await runCli(["packument", "fetch-list", file, "--json"], env);
      assert.equal(run.code, 0, run.stderr);
      return JSON.parse(run.stdout.trim().split("\n").at(-1)!);
    };
    const first = await fetch();
    assert.equal(first.fetched, 40);
    assert.equal(first.skippedSameRev, 0);
    registry.requests.length = 0;
    // Every cached packument has its line's _rev: nothing is asked for.
    const second = await fetch();
    assert.equal(second.fetched, 0);
    assert.equal(second.skippedSameRev, 40);
    assert.equal(registry.requests.length, 0);
    // One document changed: only it is fetched.
    const rev = couch.update(ids[7]!);
    registry.set(ids[7]!, packument(ids[7]!, rev));
    await runCli(["partition", "refresh", "--pivots", pivots], env);
    await Deno.writeTextFile(file, (await runCli(["cache", "create-index"], env)).stdout);
    const third = await fetch();
    assert.equal(third.fetched, 1);
    assert.equal(third.skippedSameRev, 39);
    assert.deepEqual(registry.requests.map((r) => r.name), [ids[7]]);

    // A line that is not name,rev (after a first index line) exits 2 naming it.
    await Deno.writeTextFile(file, "pkg-000,1-a\nnot an index line\n");
    const bad = await runCli(["packument", "fetch-list", file], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /line 2: "not an index line"/);
  } finally {
    await couch.close();
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
