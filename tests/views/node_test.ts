/**
 * Views on Node, as the npm package runs them: the package is built into a temporary directory
 * (`scripts/build_npm.ts --out`), and its `cli.node.js` queries an fs cache and a Deno KV file
 * with `worker_threads` (the compiled `cli/view_worker.node.js`), giving the same bytes as the
 * Deno CLI whatever the number of threads.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Cache } from "../../src/storage/cache.ts";
import type { StorageDriver } from "../../src/storage/driver.ts";
import { originKey } from "../../src/storage/keys.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { DenoKvDriver } from "../../drivers/deno_kv.deno.ts";
import { runCli } from "../_support/run_cli.ts";
import { run } from "../_support/spawn.ts";
import { EXAMPLE_PACKUMENTS, packument, seed } from "./seed.ts";

const REGISTRY = "http://127.0.0.1:9/";

async function seeded(driver: StorageDriver): Promise<void> {
  const cache = await Cache.open(driver, { bloom: false, inlineMax: 2048 });
  const docs: Record<string, unknown> = { ...EXAMPLE_PACKUMENTS };
  for (let i = 0; i < 400; i++) {
    docs[`pkg-${i}`] = packument(`pkg-${i}`, {
      "1.0.0": {},
      [`2.${i % 4}.0`]: { x: "y".repeat(i * 10) },
    }, {
      n: i,
    });
  }
  await seed(cache, originKey(REGISTRY), docs);
  await driver.close();
}

Deno.test("views on Node: worker_threads give the bytes of the Deno CLI, on fs and kv", async () => {
  const out = await Deno.makeTempDir({ prefix: "views_npm_" });
  const dir = await Deno.makeTempDir({ prefix: "views_node_cache_" });
  try {
    const built = await run(Deno.execPath(), ["run", "-A", "scripts/build_npm.ts", "--out", out]);
    assert.equal(built.code, 0, built.stderr);
    await seeded(new FsDriver(join(dir, "fs")));
    await seeded(await DenoKvDriver.open(join(dir, "deno.kv")));
    for (const storage of ["fs", "kv"]) {
      const env = {
        ALL_DOCS_CACHE_DIR: dir,
        ALL_DOCS_REGISTRY: REGISTRY,
        ALL_DOCS_STORAGE: storage,
      };
      const defined = await runCli(
        [
          "view",
          "define",
          "v",
          "--select",
          "name, versions | keys as versions, n",
          "--where",
          "n != 3",
        ],
        env,
      );
      assert.equal(defined.code, 0, defined.stderr);
      const deno = await runCli(["view", "query", "v", "--workers", "1"], env);
      assert.equal(deno.code, 0, deno.stderr);
      assert.equal(deno.stdout.split("\n").length, 405 + 1 - 1);
      for (const workers of ["1", "2", "3"]) {
        const node = await run("node", [
          join(out, "cli.node.js"),
          "view",
          "query",
          "v",
          "--workers",
          workers,
        ], {
          env,
        });
        assert.equal(node.code, 0, `${storage}, ${workers} threads: ${node.stderr}`);
        assert.equal(node.stdout, deno.stdout, `${storage}, ${workers} threads`);
      }
      const join_ = await run("node", [
        join(out, "cli.node.js"),
        "view",
        "join",
        "v",
        "v",
        "--full",
        "--workers",
        "2",
      ], {
        env,
      });
      const denoJoin = await runCli(["view", "join", "v", "v", "--full", "--workers", "2"], env);
      assert.equal(join_.code, 0, join_.stderr);
      assert.equal(join_.stdout, denoJoin.stdout);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});
