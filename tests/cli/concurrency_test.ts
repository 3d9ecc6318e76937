import assert from "node:assert/strict";
import { runCli } from "../_support/run_cli.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { HttpClient } from "../../src/http/client.ts";
import { Cache } from "../../src/storage/cache.ts";
import { fetchPackuments } from "../../src/jobs/fetch_packuments.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

Deno.test("--concurrency above 1024 exits 2 in one line, before any request", async () => {
  const fixture = await startRegistryFixture({ packuments: await loadFixturePackuments() });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_REGISTRY: fixture.url, ALL_DOCS_CACHE_DIR: dir };
    for (
      const [args, extra] of [
        [["--concurrency", "100000000"], {}],
        [["--concurrency", "1025"], {}],
        [[], { ALL_DOCS_CONCURRENCY: "5000" }],
      ] as const
    ) {
      const run = await runCli(["packument", "fetch", "ms", ...args], { ...env, ...extra });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /^error: Invalid --concurrency: expected an integer from 1 to 1024/);
      assert.equal(run.stderr.trim().split("\n").length, 1);
    }
    assert.equal(fixture.requests.length, 0);
    const ok = await runCli(["packument", "fetch", "ms", "--concurrency", "1024"], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(fixture.requests.length, 1);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetchPackuments() starts one worker for one name, whatever 'parallel' says", async () => {
  let inFlight = 0;
  let most = 0;
  const client = new HttpClient({
    concurrency: 100_000_000,
    fetch: async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
      return Response.json({ name: "ms" });
    },
  });
  const cache = await Cache.open(new MemoryDriver());
  const target = { url: "http://registry.test/", originKey: "test" };
  const names = (async function* () {
    yield "ms";
  })();
  const summary = await fetchPackuments(client, cache, names, {
    registryFor: () => target,
    parallel: 100_000_000,
  });
  assert.equal(summary.outcomes.fetched, 1);
  assert.equal(most, 1);
  assert.equal(client.stats.inFlight, 0);
});
