import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../_support/run_cli.ts";
import { generatePackumentChunks } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";

/** The temporary files under `dir`, with their sizes. */
async function temps(dir: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const at = stack.pop()!;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(at));
    } catch {
      continue; // Removed meanwhile.
    }
    for (const entry of entries) {
      const path = join(at, entry.name);
      if (entry.isDirectory) stack.push(path);
      else if (entry.name.startsWith(".tmp-")) {
        const size = await Deno.stat(path).then((s) => s.size, () => -1);
        if (size >= 0) out.push({ path, size });
      }
    }
  }
  return out;
}

Deno.test("a fetch killed mid-body leaves a temp file that cache stats, verify --fix and clear find and remove", async () => {
  const big = { versions: 4000, seed: 7, targetBytes: 108 * 1024 * 1024 };
  const fixture = await startRegistryFixture({
    packuments: new Map([["huge", () => generatePackumentChunks("huge", big)]]),
  });
  const dir = await Deno.makeTempDir();
  const aside = await Deno.makeTempDir({ dir });
  // Stored as fetched: a gzip body would be a few MB, written too fast to catch midway.
  const env = {
    ALL_DOCS_REGISTRY: fixture.url,
    ALL_DOCS_CACHE_DIR: join(dir, "cache"),
    ALL_DOCS_STORE_ENCODING: "identity",
  };
  try {
    const child = startCli(["packument", "fetch", "huge"], env);
    let found: { path: string; size: number } | undefined;
    for (let i = 0; i < 6000 && found === undefined; i++) {
      found = (await temps(env.ALL_DOCS_CACHE_DIR)).find((t) => t.size > 8 * 1024 * 1024);
      if (found === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal((await child.stop("SIGKILL")).signal, "SIGKILL");
    assert.ok(found, "the write of the body was caught midway");
    const [left] = await temps(env.ALL_DOCS_CACHE_DIR);
    assert.ok(left && left.size < big.targetBytes, "the killed write left its temp file");

    const stats = await runCli(["cache", "stats", "--json"], env);
    assert.equal(stats.code, 0, stats.stderr);
    assert.deepEqual(JSON.parse(stats.stdout).staleTempFiles, { files: 1, bytes: left.size });
    const text = await runCli(["cache", "stats"], env);
    assert.match(text.stdout, /stale temp files 1 \(/);

    const verify = await runCli(["cache", "verify", "--json"], env);
    assert.equal(verify.code, 0, verify.stderr);
    assert.deepEqual(JSON.parse(verify.stdout).staleTempFiles, [
      { path: left.path, bytes: left.size },
    ]);
    assert.equal((await temps(env.ALL_DOCS_CACHE_DIR)).length, 1, "verify alone removes nothing");
    // Keep a second name for the same bytes, to give `clear` a leftover too.
    const copy = join(aside, "leftover");
    await Deno.link(left.path, copy);

    const fix = await runCli(["cache", "verify", "--fix"], env);
    assert.equal(fix.code, 0, fix.stderr);
    assert.match(fix.stdout, /1 stale temp files, removed/);
    assert.match(fix.stderr, /stale {4}.*\.tmp-/);
    assert.deepEqual(await temps(env.ALL_DOCS_CACHE_DIR), []);

    await Deno.mkdir(join(left.path, ".."), { recursive: true });
    await Deno.rename(copy, left.path);
    const clear = await runCli(["cache", "clear", "--json"], env);
    assert.equal(clear.code, 0, clear.stderr);
    assert.deepEqual(JSON.parse(clear.stdout).staleTempFiles, { files: 1, bytes: left.size });
    assert.deepEqual(await temps(env.ALL_DOCS_CACHE_DIR), []);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});
