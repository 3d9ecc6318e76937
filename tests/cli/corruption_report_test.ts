import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { BODY_PREFIX, originKey, packumentKey } from "../../src/storage/keys.ts";
import { createStorageDriver } from "../../drivers/select.deno.ts";
import { runCli } from "../_support/run_cli.ts";

const REGISTRY = "http://127.0.0.1:9/";

/** A cache dir holding `ms` (inline) and `big` (stored apart), both made corrupt. */
async function corruptCache(dir: string): Promise<{ ms: string; big: string }> {
  const driver = await createStorageDriver({ storage: "fs", cacheDir: dir });
  try {
    const cache = await Cache.open(driver);
    const ms = packumentKey(originKey(REGISTRY), "ms");
    const big = packumentKey(originKey(REGISTRY), "big");
    await cache.put(ms, new TextEncoder().encode('{"name":"ms"}'), { status: 200 });
    const body = JSON.stringify({ name: "big", readme: "x".repeat(100_000) });
    await cache.put(big, new TextEncoder().encode(body), { status: 200 });
    const raw = (await driver.get(ms))!;
    raw[raw.length - 2] = raw[raw.length - 2]! ^ 1;
    await driver.put(ms, raw);
    // The header of `big` is garbage; its body stays (stored apart).
    await driver.put(big, new TextEncoder().encode("garbage"));
    assert.equal((await Array.fromAsync(driver.list({ prefix: BODY_PREFIX }))).length, 1);
    return { ms, big };
  } finally {
    await driver.close();
  }
}

Deno.test("cache verify counts each corrupt entry once; packument show says corrupt", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { ms, big } = await corruptCache(dir);
    const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_REGISTRY: REGISTRY };
    const verify = await runCli(["cache", "verify", "--json"], env);
    assert.equal(verify.code, 1, verify.stderr);
    const report = JSON.parse(verify.stdout);
    assert.equal(report.checked, 2);
    assert.deepEqual(report.corrupt.map((c: { key: string }) => c.key).sort(), [big, ms].sort());
    assert.equal(report.orphanBodies.length, 1, "the body of the garbled header is orphaned");
    const text = await runCli(["cache", "verify"], env);
    assert.match(text.stdout, /2 entries checked, 2 corrupt, 1 orphaned bodies/);

    const show = await runCli(["packument", "show", "ms"], env);
    assert.equal(show.code, 1);
    assert.match(show.stderr, /ms: corrupt in the cache/);
    assert.doesNotMatch(show.stderr, /not in the cache/);
    // Removed when found: now it is simply not there.
    const again = await runCli(["packument", "show", "ms"], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ms: not in the cache/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
