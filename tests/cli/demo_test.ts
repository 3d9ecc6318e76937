import assert from "node:assert/strict";
import { join } from "node:path";
import { generateNames } from "../_support/all_docs_fixture.ts";
import { run } from "../_support/spawn.ts";

Deno.test("deno task demo runs the whole pipeline and npm view reads the replica", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const names = join(dir, "names.json");
    await Deno.writeTextFile(names, JSON.stringify(generateNames(400)));
    const { code, stdout: text, stderr } = await run(Deno.execPath(), [
      "run",
      "-A",
      "scripts/demo.ts",
      "--names",
      names,
      "--sample",
      "60",
      "--dir",
      join(dir, "cache"),
    ]);
    assert.equal(code, 0, text + stderr);
    assert.match(text, /partitions 8 \(fetched 8, unchanged 0, skipped 0, failed 0\)/);
    assert.match(text, /skipped \(same _rev\) \d+, not found 0, failed 0/);
    const views = text.match(/^name = '[^']+'$/gm) ?? [];
    assert.equal(views.length, 2, "npm view read a plain and a scoped name");
    assert.match(text, /Done: the replica, the origin and every process are stopped/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
