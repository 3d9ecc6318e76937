import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { partitionKey } from "../../src/storage/keys.ts";
import { encodePartitionLines } from "../../src/couchdb/partition_lines.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import { indexLines } from "../../src/jobs/index_lines.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

async function cacheWith(origins: Record<string, string[][]>): Promise<Cache> {
  const cache = await Cache.open(new MemoryDriver());
  for (const [origin, ranges] of Object.entries(origins)) {
    const bounds = ["", ...ranges.slice(1).map((ids) => ids[0]!), ""];
    for (let i = 0; i < ranges.length; i++) {
      const rows = ranges[i]!.map((id) => ({ id, rev: `1-${origin}` }));
      await cache.put(
        partitionKey(origin, bounds[i]!, bounds[i + 1]!),
        encodePartitionLines(rows),
        {
          status: 200,
          count: rows.length,
        },
      );
    }
  }
  return cache;
}

async function collect(chunks: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

Deno.test("indexLines() hands out every id,rev line of indexRows() in chunks of whole lines", async () => {
  const ids = Array.from({ length: 3000 }, (_, i) => `pkg-${String(i).padStart(5, "0")}`);
  const cache = await cacheWith({
    a: [ids.slice(0, 1000), ids.slice(1000, 2500), ids.slice(2500)],
  });
  const expected: string[] = [];
  for await (const row of indexRows(cache)) expected.push(`${row.id},${row.rev}\n`);
  assert.equal(expected.length, 3000);
  const chunks = await collect(indexLines(cache, { chunkSize: 10_000 }));
  assert.equal(chunks.join(""), expected.join(""));
  // 42 KB of lines in chunks of at least 10,000 characters, cut between batches of rows.
  assert.ok(chunks.length > 1 && chunks.length <= 5, `${chunks.length} chunks`);
  for (const chunk of chunks.slice(0, -1)) assert.ok(chunk.length >= 10_000);
  for (const chunk of chunks) assert.ok(chunk.endsWith("\n"));
  // The default chunk (64 KiB) holds all 3000 lines (42 KB) at once.
  assert.deepEqual(await collect(indexLines(cache)), [expected.join("")]);
});

Deno.test("indexLines() reads one origin's partitions, or those given", async () => {
  const cache = await cacheWith({ a: [["x", "y"]], b: [["m"], ["n", "o"]] });
  assert.deepEqual(await collect(indexLines(cache, { originKey: "b" })), ["m,1-b\nn,1-b\no,1-b\n"]);
  assert.deepEqual(
    await collect(indexLines(cache, { only: [partitionKey("b", "n", "")] })),
    ["n,1-b\no,1-b\n"],
  );
  assert.deepEqual(await collect(indexLines(await cacheWith({}))), []);
});

Deno.test("indexLines() rejects a bad chunk size when called", async () => {
  const cache = await cacheWith({});
  for (const chunkSize of [0, -1, 1.5, NaN]) {
    assert.throws(() => indexLines(cache, { chunkSize }), RangeError);
  }
});
