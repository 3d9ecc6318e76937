import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";

Deno.test("packument fetch-list and show take scoped names whose name part starts with '_'", async () => {
  const names = ["@babel/___internal___test-oidc-publish", "@ng-toolkit/_utils", "ms"];
  const registry = await startRegistryFixture({
    packuments: new Map(names.map((name) => [name, JSON.stringify({ name })])),
  });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_REGISTRY: registry.url, ALL_DOCS_CACHE_DIR: dir };
    const list = join(dir, "names.txt");
    await Deno.writeTextFile(list, names.join("\n") + "\n");
    const fetched = await runCli(["packument", "fetch-list", list], env);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stdout, /^fetched 3, /);
    const shown = await runCli(["packument", "show", "@ng-toolkit/_utils"], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(JSON.parse(shown.stdout), { name: "@ng-toolkit/_utils" });
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
