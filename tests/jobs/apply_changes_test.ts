import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { partitionKey } from "../../src/storage/keys.ts";
import { encodePartitionLines } from "../../src/couchdb/partition_lines.ts";
import type { AllDocsRow } from "../../src/couchdb/rows.ts";
import { type PartitionEdit, sortEditRuns, sortEdits } from "../../src/couchdb/partition_patch.ts";
import { applyChanges, ChangeBatch, listEditablePartitions } from "../../src/jobs/apply_changes.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import { exportEntries } from "../../src/jobs/export.ts";
import { listCachedPartitions } from "../../src/jobs/partition_status.ts";
import { PartitionIndex } from "../../src/replica/partition_index.ts";
import { readPatch, readPatchIndex } from "../../src/storage/partition_patches.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const ORIGIN = "couch";
const LOW = partitionKey(ORIGIN, "", "m");
const HIGH = partitionKey(ORIGIN, "m", "");

function rows(ids: string[], rev = "1-a"): AllDocsRow[] {
  return ids.map((id) => ({ id, rev }));
}

async function world(): Promise<{ cache: Cache; clock: FakeClock }> {
  const clock = new FakeClock({ now: 1_000_000 });
  const cache = await Cache.open(new MemoryDriver(), { clock });
  await cache.put(LOW, encodePartitionLines(rows(["a", "c", "e"])), { status: 200, count: 3 });
  clock.advance(10);
  await cache.put(HIGH, encodePartitionLines(rows(["m", "p", "x"])), { status: 200, count: 3 });
  return { cache, clock };
}

async function index(cache: Cache): Promise<string[]> {
  const out = [];
  for await (const row of indexRows(cache, ORIGIN)) out.push(`${row.id},${row.rev}`);
  return out;
}

/** The rows `cache export` writes of the partitions, as `id,rev`, sorted (it exports them in
 * key order, where the open start's key sorts last). */
async function exported(cache: Cache): Promise<string[]> {
  const text = await new Response(exportEntries(cache, { type: "partition" })).text();
  return text.trim().split("\n").flatMap((line) => JSON.parse(line).body as [string, string][])
    .map(([id, rev]) => `${id},${rev}`).sort();
}

const EDITS: PartitionEdit[] = [
  { id: "b", rev: "1-b", deleted: false },
  { id: "c", rev: "2-c", deleted: false },
  { id: "e", rev: "2-e", deleted: true },
  { id: "n", rev: "1-n", deleted: false },
  { id: "x", rev: "2-x", deleted: true },
  { id: "zz", rev: "1-z", deleted: false },
];
const EXPECTED = ["a,1-a", "b,1-b", "c,2-c", "m,1-a", "n,1-n", "p,1-a", "zz,1-z"];

Deno.test("applyChanges() keeps changes as pending edits that the index, the export and the replica read", async () => {
  const { cache } = await world();
  const before = await listCachedPartitions(cache);
  const done = await applyChanges(cache, ORIGIN, EDITS);
  assert.deepEqual(
    { applied: done.applied, deletions: done.deletions, patched: done.patched },
    { applied: 6, deletions: 2, patched: 2 },
  );
  assert.equal(done.rewritten, 0);
  // The partitions are as they were; the index of patches names both.
  assert.deepEqual(await listCachedPartitions(cache), before);
  const patches = await readPatchIndex(cache.driver, ORIGIN);
  assert.deepEqual(Object.keys(patches).sort(), [HIGH, LOW].sort());
  assert.equal(patches[LOW]!.edits, 3);

  assert.deepEqual(await index(cache), EXPECTED);

  assert.deepEqual(await exported(cache), EXPECTED);

  const replica = new PartitionIndex(cache, ORIGIN);
  const clusters = await replica.clusters();
  assert.deepEqual(clusters.map((c) => c.rows), [3, 4], "counted with their edits");
  const page = await replica.ascending(clusters, {
    start: "b",
    end: undefined,
    keys: undefined,
    inclusiveEnd: true,
    descending: false,
    limit: 4,
  });
  assert.equal(page.offset, 1);
  assert.deepEqual(page.rows.map((r) => r.id), ["b", "c", "m", "n"]);
  const found = await replica.lookup(clusters, ["e", "n", "x", "zz"]);
  assert.deepEqual([...found.keys()].sort(), ["n", "zz"]);

  // Applying the same changes again changes nothing; older ones are left out.
  const again = await applyChanges(
    cache,
    ORIGIN,
    [
      ...EDITS,
      { id: "c", rev: "1-old", deleted: false },
    ].filter((e, i, all) => all.findIndex((x) => x.id === e.id) === i),
  );
  assert.equal(again.applied, 0);
  assert.equal(again.unchanged, 6);
  assert.equal(again.patched, 0);
  const older = await applyChanges(cache, ORIGIN, [{ id: "c", rev: "1-old", deleted: false }]);
  assert.equal(older.stale, 1);
  assert.deepEqual(await index(cache), EXPECTED);
});

Deno.test("applyChanges() stores edits in feed order, and every reader takes each id's newer revision", async () => {
  const { cache } = await world();
  const done = await applyChanges(cache, ORIGIN, [
    { id: "d", rev: "2-d", deleted: false },
    { id: "b", rev: "1-b", deleted: false },
    // Older than the call's first edit of "d": read as 2-d, though both are taken.
    { id: "d", rev: "1-d", deleted: false },
    { id: "c", rev: "3-c", deleted: true },
    // Made again after its deletion.
    { id: "c", rev: "4-c", deleted: false },
  ]);
  // Each change is compared with what was pending before the call (nothing here).
  const counts = (s: typeof done) => [s.applied, s.deletions, s.unchanged, s.stale];
  assert.deepEqual(counts(done), [5, 1, 0, 0]);
  // Stored as they came: nothing is sorted when a batch is applied.
  assert.deepEqual((await readPatch(cache.driver, LOW))!.edits, [
    ["d", "2-d", 0],
    ["b", "1-b", 0],
    ["d", "1-d", 0],
    ["c", "3-c", 1],
    ["c", "4-c", 0],
  ]);
  const expected = ["a,1-a", "b,1-b", "c,4-c", "d,2-d", "e,1-a", "m,1-a", "p,1-a", "x,1-a"];
  assert.deepEqual(await index(cache), expected);
  assert.deepEqual(await exported(cache), expected);
  const replica = new PartitionIndex(cache, ORIGIN);
  const clusters = await replica.clusters();
  assert.deepEqual(clusters.map((c) => c.rows), [5, 3]);
  const found = await replica.lookup(clusters, ["c", "d"]);
  assert.deepEqual([...found].sort(), [["c", "4-c"], ["d", "2-d"]]);

  // The next call compares with the newer of each id's pending revisions.
  const next = await applyChanges(cache, ORIGIN, [
    { id: "d", rev: "2-d", deleted: false },
    { id: "d", rev: "1-d", deleted: false },
    { id: "c", rev: "3-c", deleted: true },
    { id: "b", rev: "2-b", deleted: true },
  ]);
  assert.deepEqual(counts(next), [1, 1, 1, 2]);
  assert.equal((await readPatch(cache.driver, LOW))!.edits.length, 6, "only b's deletion added");
  const withoutB = expected.filter((row) => !row.startsWith("b,"));
  assert.deepEqual(await index(cache), withoutB);
  // Back to the pending revision after another of the same generation (a conflict's winner,
  // then removed): the later edit is current, though unchanged from what was pending.
  await applyChanges(cache, ORIGIN, [{ id: "d", rev: "2-x", deleted: false }]);
  const back = await applyChanges(cache, ORIGIN, [
    { id: "d", rev: "2-y", deleted: false },
    { id: "d", rev: "2-x", deleted: false },
  ]);
  assert.deepEqual(counts(back), [1, 0, 1, 0]);
  const withX = withoutB.map((row) => row.startsWith("d,") ? "d,2-x" : row);
  assert.deepEqual(await index(cache), withX);
  // A rewrite applies the same.
  const rewritten = await applyChanges(cache, ORIGIN, [], { compact: true });
  assert.equal(rewritten.rewritten, 1);
  assert.equal(await readPatch(cache.driver, LOW), undefined);
  assert.deepEqual(await index(cache), withX);
  assert.equal((await cache.info(LOW))!.count, 4);
});

Deno.test("applyChanges() rewrites a partition once its patch grows past compactEdits", async () => {
  const { cache } = await world();
  const low = (await cache.info(LOW))!;
  const first = await applyChanges(cache, ORIGIN, EDITS.slice(0, 2), { compactEdits: 3 });
  assert.equal(first.patched, 1);
  const second = await applyChanges(cache, ORIGIN, EDITS.slice(2, 3), { compactEdits: 3 });
  assert.equal(second.patched, 1, "three edits fit");
  const third = await applyChanges(cache, ORIGIN, [{ id: "d", rev: "1-d", deleted: false }], {
    compactEdits: 3,
  });
  assert.equal(third.rewritten, 1);
  assert.deepEqual(third.rows, { added: 2, replaced: 1, removed: 1, stale: 0, unchanged: 0 });
  const after = (await cache.info(LOW))!;
  assert.equal(after.fetchedAt, low.fetchedAt, "the fetch time is kept");
  assert.equal(after.count, 4);
  assert.notEqual(after.integrity, low.integrity);
  assert.deepEqual(await readPatchIndex(cache.driver, ORIGIN), {});
  assert.equal(await readPatch(cache.driver, LOW), undefined);
  assert.deepEqual(await index(cache), [
    "a,1-a",
    "b,1-b",
    "c,2-c",
    "d,1-d",
    "m,1-a",
    "p,1-a",
    "x,1-a",
  ]);
  // compactEdits 0 rewrites at once; compact rewrites every patched partition.
  const now = await applyChanges(cache, ORIGIN, [EDITS[3]!], { compactEdits: 0 });
  assert.equal(now.rewritten, 1);
  await applyChanges(cache, ORIGIN, [EDITS[4]!]);
  const all = await applyChanges(cache, ORIGIN, [], { compact: true });
  assert.equal(all.rewritten, 1);
  assert.deepEqual(await readPatchIndex(cache.driver, ORIGIN), {});
  assert.deepEqual(await index(cache), [
    "a,1-a",
    "b,1-b",
    "c,2-c",
    "d,1-d",
    "m,1-a",
    "n,1-n",
    "p,1-a",
  ]);
});

Deno.test("applyChanges(): a refreshed partition no longer takes its old patch", async () => {
  const { cache } = await world();
  await applyChanges(cache, ORIGIN, EDITS);
  // `partition refresh` replaces the low partition: its edits are in the new body or not at all.
  await cache.put(LOW, encodePartitionLines(rows(["a", "c", "f"], "3-r")), { status: 200 });
  assert.deepEqual(await index(cache), [
    "a,3-r",
    "c,3-r",
    "f,3-r",
    "m,1-a",
    "n,1-n",
    "p,1-a",
    "zz,1-z",
  ]);
  // The next application drops the stale patch.
  await applyChanges(cache, ORIGIN, [{ id: "q", rev: "1-q", deleted: false }]);
  assert.deepEqual(Object.keys(await readPatchIndex(cache.driver, ORIGIN)), [HIGH]);
  assert.equal(await readPatch(cache.driver, LOW), undefined);
});

Deno.test("applyChanges() leaves a corrupt partition out and reports it", async () => {
  const { cache } = await world();
  const raw = (await cache.driver.get(LOW))!;
  const damaged = raw.slice();
  damaged[damaged.length - 3] = damaged[damaged.length - 3]! ^ 1;
  await cache.driver.put(LOW, damaged);
  const done = await applyChanges(cache, ORIGIN, EDITS, { compactEdits: 0 });
  assert.deepEqual(done.corrupt, [LOW]);
  assert.equal(done.uncovered, 3);
  assert.equal(done.rewritten, 1);
  // The corrupt partition's changes count as uncovered only, not as applied too.
  assert.equal(done.applied, 3);
  assert.equal(done.deletions, 1);
  assert.equal(done.applied + done.unchanged + done.stale + done.uncovered, EDITS.length);
});

Deno.test("applyChanges() leaves out changes no partition covers", async () => {
  const cache = await Cache.open(new MemoryDriver());
  await cache.put(partitionKey(ORIGIN, "m", ""), encodePartitionLines(rows(["m"])), {
    status: 200,
  });
  const done = await applyChanges(cache, ORIGIN, EDITS);
  assert.equal(done.uncovered, 3);
  assert.equal(done.applied, 3);
  // Counted per change, as the others are: each change is one of them.
  const twice = await applyChanges(cache, ORIGIN, [...EDITS, EDITS[0]!, EDITS[5]!]);
  assert.equal(twice.uncovered, 4);
  assert.equal(
    twice.applied + twice.unchanged + twice.stale + twice.uncovered,
    EDITS.length + 2,
  );
});

Deno.test("sortEdits() sorts in code-point order and keeps the newer revision of an id", () => {
  const sorted = sortEdits([
    { id: "\ufffd", rev: "1-a", deleted: false },
    { id: "😀", rev: "1-a", deleted: false },
    { id: "b", rev: "3-b", deleted: false },
    { id: "b", rev: "2-b", deleted: true },
    { id: "a", rev: "1-a", deleted: false },
    { id: "a", rev: "1-z", deleted: true },
  ]);
  // U+1F600 sorts after U+FFFD by code point (before it in UTF-16 order).
  assert.deepEqual(sorted.map((e) => `${e.id} ${e.rev} ${e.deleted}`), [
    "a 1-z true",
    "b 3-b false",
    "\ufffd 1-a false",
    "😀 1-a false",
  ]);
});

Deno.test("applyChanges() gives the same for the same edits in any order", async () => {
  const a = await world();
  const b = await world();
  const c = await world();
  const sorted = sortEdits(EDITS);
  const taken = await applyChanges(a.cache, ORIGIN, sorted);
  const plain = await applyChanges(b.cache, ORIGIN, EDITS);
  const reversed = await applyChanges(c.cache, ORIGIN, [...sorted].reverse());
  assert.deepEqual(taken, plain);
  assert.deepEqual(reversed, plain);
  assert.deepEqual(await index(a.cache), await index(b.cache));
  assert.deepEqual(await index(c.cache), await index(b.cache));
});

Deno.test("sortEditRuns() equals sortEdits() of the runs concatenated, the later edit winning ties", () => {
  const runs: PartitionEdit[][] = [
    [
      { id: "m", rev: "1-m", deleted: false },
      { id: "b", rev: "2-b", deleted: false },
      { id: "\ufffd", rev: "1-a", deleted: false },
    ],
    [],
    [{ id: "b", rev: "2-c", deleted: true }, { id: "😀", rev: "1-a", deleted: false }],
    [{ id: "a", rev: "1-a", deleted: false }, { id: "m", rev: "1-m", deleted: true }],
  ];
  const merged = sortEditRuns(runs);
  assert.deepEqual(merged, sortEdits(runs.flat()));
  assert.deepEqual(merged.map((e) => `${e.id} ${e.rev} ${e.deleted}`), [
    "a 1-a false",
    "b 2-c true",
    "m 1-m true",
    "\ufffd 1-a false",
    "😀 1-a false",
  ]);
  for (let n = 1; n <= 5; n++) {
    const edits = EDITS.concat(EDITS.map((e) => ({ ...e, rev: `9-${e.id}` })));
    const split: PartitionEdit[][] = [];
    for (let i = 0; i < edits.length; i += n) split.push(edits.slice(i, i + n));
    assert.deepEqual(sortEditRuns(split), sortEdits(edits), `runs of ${n}`);
  }
});

Deno.test("a ChangeBatch finds the partition of ids around starts that share their first two characters", async () => {
  // Starts and ids around the pairs a ChangeBatch looks up ids by: equal to a start, one
  // character longer or shorter, the last ASCII character (U+007F) and the first after it.
  const starts = ["", "ab", "abc", "ab\u007f", "b", "b\u007f", "b\u007fq", "c~", "c\u0080", "d"];
  const make = async () => {
    const cache = await Cache.open(new MemoryDriver());
    for (let i = 0; i < starts.length; i++) {
      const end = starts[i + 1] ?? "x";
      await cache.put(partitionKey(ORIGIN, starts[i]!, end), encodePartitionLines([]), {
        status: 200,
      });
    }
    return cache;
  };
  const ids = ["a", "aa", "ab", "aba", "abc", "abd", "ab\u007f", "ab\u007fz", "ab\u0080", "a\u007f"]
    .concat(["b", "ba", "b\u007f", "b\u007fp", "b\u007fq", "b\u007fr", "b\u0080", "c", "c}"])
    .concat(["c~", "c~a", "c\u007f", "c\u0080", "c\u0081", "d", "dd", "w", "x", "xa", "ab😀"]);
  const edits = ids.map((id) => ({ id, rev: "1-a", deleted: false }));
  const a = await make();
  const b = await make();
  const batch = new ChangeBatch(await listEditablePartitions(a, ORIGIN));
  // Every id on its own, then all again: the first look-up of a pair and later ones.
  for (const edit of edits) batch.add([edit]);
  batch.add(edits.map((e) => ({ ...e, rev: "2-a" })));
  const again = edits.map((e) => ({ ...e, rev: "2-a" }));
  assert.deepEqual(
    await applyChanges(a, ORIGIN, batch),
    await applyChanges(b, ORIGIN, [...edits, ...again]),
  );
  assert.deepEqual(await index(a), await index(b));
  assert.equal((await index(a)).length, ids.length - 2);
});

Deno.test("a ChangeBatch applies as the same edits do: overlapping partitions, a gap, astral ids", async () => {
  // ["", "m") and ["m", "x"), then ["f", "p") fetched later, which decides its range; ids from
  // "x" on are in no partition.
  const make = async () => {
    const clock = new FakeClock({ now: 1_000_000 });
    const cache = await Cache.open(new MemoryDriver(), { clock });
    await cache.put(partitionKey(ORIGIN, "", "m"), encodePartitionLines(rows(["a", "g"])), {
      status: 200,
    });
    await cache.put(partitionKey(ORIGIN, "m", "x"), encodePartitionLines(rows(["m", "q"])), {
      status: 200,
    });
    clock.advance(10);
    await cache.put(partitionKey(ORIGIN, "f", "p"), encodePartitionLines(rows(["g", "n"])), {
      status: 200,
    });
    return cache;
  };
  const ids = ["a", "b", "f", "g", "h", "l", "m", "n", "o", "p", "q", "w", "x", "zz"]
    .concat(["\ufffd", "😀", "m\ufffd", "m😀", "g😀"]);
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n;
  for (let trial = 0; trial < 20; trial++) {
    const edits: PartitionEdit[] = [];
    for (let i = 0; i < 60; i++) {
      const id = ids[random(ids.length)]!;
      edits.push({ id, rev: `${1 + random(4)}-${random(3)}`, deleted: random(5) === 0 });
    }
    const a = await make();
    const b = await make();
    const batch = new ChangeBatch(await listEditablePartitions(a, ORIGIN));
    for (let i = 0; i < edits.length;) {
      const n = 1 + random(15);
      batch.add(edits.slice(i, i + n));
      i += n;
    }
    assert.equal(batch.size, edits.length);
    assert.deepEqual(batch.edits(), sortEdits(edits), `trial ${trial}: edits()`);
    const viaBatch = await applyChanges(a, ORIGIN, batch);
    const viaList = await applyChanges(b, ORIGIN, edits);
    assert.deepEqual(viaBatch, viaList, `trial ${trial}: summary`);
    assert.ok(viaList.uncovered > 0 && viaList.applied > 0, `trial ${trial}: both kinds`);
    assert.deepEqual(await index(a), await index(b), `trial ${trial}: index`);
    // Still the same edits once applied (its buckets were sorted in place).
    assert.deepEqual(batch.edits(), sortEdits(edits), `trial ${trial}: edits() after`);
    // Then more, onto the stored patches, some rewriting the partitions.
    const more: PartitionEdit[] = [];
    for (let i = 0; i < 40; i++) {
      const id = ids[random(ids.length)]!;
      more.push({ id, rev: `${1 + random(6)}-${random(3)}`, deleted: random(5) === 0 });
    }
    const options = { compactEdits: [0, 3, 4096][random(3)]!, compact: random(4) === 0 };
    const second = new ChangeBatch(await listEditablePartitions(a, ORIGIN));
    second.add(more);
    assert.deepEqual(
      await applyChanges(a, ORIGIN, second, options),
      await applyChanges(b, ORIGIN, more, options),
      `trial ${trial}: second summary`,
    );
    assert.deepEqual(await index(a), await index(b), `trial ${trial}: second index`);
    const stored = async (cache: Cache) => {
      const out: Record<string, string> = {};
      for await (const key of cache.driver.list({ prefix: "v1:checkpoint:" })) {
        out[key] = new TextDecoder().decode(await cache.driver.get(key));
      }
      return out;
    };
    assert.deepEqual(await stored(a), await stored(b), `trial ${trial}: patches`);
  }
});
