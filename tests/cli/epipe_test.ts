import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { type ClosedPipeResult, runIntoClosedPipe } from "../_support/spawn.ts";
import { generateNames, startAllDocsFixture } from "../_support/all_docs_fixture.ts";

/** Runs the CLI with stdout on a pipe closed after `keep` chunks, as `| head` does. */
function runCliIntoClosedPipe(
  args: string[],
  env: Record<string, string>,
  keep: number,
): Promise<ClosedPipeResult> {
  return runIntoClosedPipe(Deno.execPath(), ["run", "-A", "cli.ts", ...args], { env }, keep);
}

Deno.test("a closed stdout ends a command quietly with status 141, as git's", async () => {
  const origin = await startAllDocsFixture({ ids: generateNames(4000) });
  const dir = await Deno.makeTempDir();
  try {
    const pivots = join(dir, "pivots.json");
    await Deno.writeTextFile(
      pivots,
      JSON.stringify(origin.ids.filter((_, i) => i > 0 && i % 100 === 0)),
    );
    const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_ORIGIN: origin.origin };
    const refresh = await runCli(["partition", "refresh", "--pivots", pivots], env);
    assert.equal(refresh.code, 0, refresh.stderr);
    const cases: [string[], number][] = [
      [["cache", "create-index"], 0],
      [["cache", "create-index"], 1],
      [["cache", "export"], 0],
      [["cache", "export"], 1],
      [["partition", "list"], 0],
      [["partition", "list", "--json"], 0],
      [["partition", "refresh", "--pivots", pivots, "--json"], 0],
      [["partition", "refresh", "--pivots", pivots, "--json", "--fresh"], 1],
    ];
    for (const [args, keep] of cases) {
      const run = await runCliIntoClosedPipe(args, env, keep);
      const what = `${args.join(" ")} (reader kept ${keep} chunks)`;
      assert.equal(run.stderr, "", what);
      assert.equal(run.code, 141, what);
    }
    // What was cached is intact after the runs that stopped early.
    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.code, 0, index.stderr);
    assert.equal(index.stdout.trim().split("\n").length, 4000);
  } finally {
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
