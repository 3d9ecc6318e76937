import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { BODY_PREFIX, partitionKey } from "../../src/storage/keys.ts";
import { encodePartitionLines } from "../../src/couchdb/partition_lines.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

Deno.test("indexRows() reports a corrupt partition and goes on with the others", async () => {
  for (const apart of [false, true]) {
    const driver = new MemoryDriver();
    const seen: string[] = [];
    const cache = await Cache.open(driver, {
      inlineMax: apart ? 8 : 65536,
      onCorrupt: (key) => seen.push(key),
    });
    const rows = (ids: string[]) => ids.map((id) => ({ id, rev: `1-${id}` }));
    await cache.put(partitionKey("o", "", "m"), encodePartitionLines(rows(["a", "b"])), {
      status: 200,
    });
    const bad = partitionKey("o", "m", "");
    await cache.put(bad, encodePartitionLines(rows(["m", "n"])), { status: 200 });
    const [body] = await Array.fromAsync(driver.list({ prefix: `${BODY_PREFIX}partition:o:6d` }));
    // Flip a quote: the lines no longer parse (and the integrity no longer matches).
    const target = apart ? body! : bad;
    const raw = (await driver.get(target))!;
    raw[raw.length - 3] = raw[raw.length - 3]! ^ 1;
    await driver.put(target, raw);
    const ids = (await Array.fromAsync(indexRows(cache, "o"))).map((r) => r.id);
    assert.deepEqual(ids, ["a", "b"], `apart: ${apart}`);
    assert.deepEqual(seen, [bad], `apart: ${apart}`);
  }
});
