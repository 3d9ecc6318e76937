import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { generateNames, startAllDocsFixture } from "../_support/all_docs_fixture.ts";

const root = new URL("../../", import.meta.url).pathname;

/**
 * Runs the CLI with stdout on a pipe whose reader reads `keep` chunks (0: none) and then closes
 * it, as `| head` does.
 */
async function runIntoClosedPipe(
  args: string[],
  env: Record<string, string>,
  keep: number,
): Promise<{ code: number; stderr: string; read: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: root,
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  let read = 0;
  for (let i = 0; i < keep; i++) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.length;
  }
  await reader.cancel();
  const status = await child.status;
  return { code: status.code, stderr: await stderr, read };
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
      const run = await runIntoClosedPipe(args, env, keep);
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
