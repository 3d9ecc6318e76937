import assert from "node:assert/strict";
import { join } from "node:path";
import { Cache } from "../../src/storage/cache.ts";
import { exportEntries } from "../../src/jobs/export.ts";
import { packumentKey, partitionKey } from "../../src/storage/keys.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { runCli } from "../_support/run_cli.ts";

const enc = new TextEncoder();

async function lines(stream: ReadableStream<Uint8Array>): Promise<Record<string, unknown>[]> {
  const text = await new Response(stream).text();
  assert.ok(text.endsWith("}\n"));
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

Deno.test("exportEntries() writes one line per document with its parsed body", async () => {
  const cache = await Cache.open(new MemoryDriver(), { inlineMax: 64 });
  const pretty = JSON.stringify({ name: "@a/b", versions: { "1.0.0": { d: "x\ny" } } }, null, 2);
  await cache.put(packumentKey("npm", "@a/b"), enc.encode(pretty), { status: 200 });
  await cache.put(packumentKey("npm", "ms", "abbreviated"), enc.encode('{"name":"ms"}'), {
    status: 200,
  });
  const rows = Array.from({ length: 50 }, (_, i) => `["pkg-${i}","1-${i}"]\n`).join("");
  await cache.put(partitionKey("npm", "", "q"), enc.encode(rows), { status: 200 });
  await cache.put(partitionKey("npm", "q", ""), new Uint8Array(), { status: 200 });
  const all = await lines(exportEntries(cache));
  assert.deepEqual(all.map((l) => l.type), ["corgi", "packument", "partition", "partition"]);
  assert.deepEqual(all[1]!.body, JSON.parse(pretty));
  assert.equal(all[1]!.name, "@a/b");
  assert.equal(all[1]!.origin, "npm");
  assert.equal(all[1]!.status, 200);
  // Keys sort by hex: the range starting at "q" (71) comes before the open start ("").
  assert.deepEqual([all[2]!.startKey, all[2]!.endKey], ["q", ""]);
  assert.deepEqual(all[2]!.body, []);
  assert.deepEqual([all[3]!.startKey, all[3]!.endKey], ["", "q"]);
  assert.equal((all[3]!.body as unknown[]).length, 50);
  assert.deepEqual((all[3]!.body as unknown[])[49], ["pkg-49", "1-49"]);
  const partitions = await lines(exportEntries(cache, { type: "partition" }));
  assert.equal(partitions.length, 2);
  const corgi = await lines(exportEntries(cache, { type: "corgi", prefix: "npm:" }));
  assert.deepEqual(corgi.map((l) => l.name), ["ms"]);
});

Deno.test("cli cache export streams NDJSON and checks --type", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const driver = new FsDriver(join(dir, "fs"));
    const cache = await Cache.open(driver);
    await cache.put(packumentKey("npm", "left-pad"), enc.encode('{"name":"left-pad"}'), {
      status: 200,
    });
    await cache.put(partitionKey("npm", "", ""), enc.encode('["left-pad","1-a"]\n'), {
      status: 200,
    });
    await driver.close();
    const env = { ALL_DOCS_CACHE_DIR: dir };
    const out = await runCli(["cache", "export", "--type", "packument"], env);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout).body, { name: "left-pad" });
    const all = (await runCli(["cache", "export"], env)).stdout.trim().split("\n");
    assert.equal(all.length, 2);
    const bad = await runCli(["cache", "export", "--type", "tarball"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid --type/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
