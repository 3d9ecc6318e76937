import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { startAllDocsFixture } from "../_support/all_docs_fixture.ts";

Deno.test("cache create-index leaves out a document deleted before a refresh with other pivots", async () => {
  const fixture = await startAllDocsFixture({
    ids: ["apple", "banana", "grape", "hazel", "kiwi", "mango", "olive", "tomato", "zucchini"],
  });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    const refresh = async (pivots: string[]) => {
      const file = join(dir, `pivots-${pivots.join("-")}.json`);
      await Deno.writeTextFile(file, JSON.stringify(pivots));
      const result = await runCli(["partition", "refresh", "--pivots", file, "--quiet"], env);
      assert.equal(result.code, 0, result.stderr);
    };
    await refresh(["m"]);
    // Deleted at the origin: one id inside ["g", "t") (covered by both sets), one after "t".
    assert.ok(fixture.remove("hazel") && fixture.remove("zucchini"));
    // The second set is fetched later than the first, whatever the clock's resolution.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await refresh(["g", "t"]);
    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.code, 0, index.stderr);
    const expected = fixture.rows.map((r) => `${r.id},${r.rev}\n`).join("");
    assert.doesNotMatch(index.stdout, /hazel|zucchini/);
    assert.equal(index.stdout, expected);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});
