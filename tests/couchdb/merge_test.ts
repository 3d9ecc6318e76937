import assert from "node:assert/strict";
import { mergeBatches, type MergeSource } from "../../src/couchdb/merge.ts";
import type { AllDocsRow } from "../../src/couchdb/rows.ts";
import { compareKeys } from "../../src/storage/driver.ts";

/** A source over `batches`, recording when it is opened and closed. */
interface TestSource extends MergeSource {
  opened: boolean;
  closed: boolean;
  batches: AllDocsRow[][];
}

function source(
  startKey: string,
  endKey: string,
  fetchedAt: number,
  batches: AllDocsRow[][],
): TestSource {
  const s: TestSource = {
    startKey,
    endKey,
    fetchedAt,
    batches,
    opened: false,
    closed: false,
    open: async function* () {
      assert.ok(!s.opened, "a source is opened at most once");
      s.opened = true;
      try {
        for (const batch of batches) yield batch;
      } finally {
        s.closed = true;
      }
    },
  };
  return s;
}

function rows(ids: string[], rev: string): AllDocsRow[] {
  return ids.map((id) => ({ id, rev: `${rev}-${id}` }));
}

async function collect(sources: MergeSource[]): Promise<AllDocsRow[][]> {
  const out: AllDocsRow[][] = [];
  for await (const batch of mergeBatches(sources)) out.push(batch);
  return out;
}

/**
 * The merge written the slow, obvious way: a row is kept when its source is the newest (then
 * first in start-key order) of those whose range covers its id.
 */
function reference(sources: TestSource[]): AllDocsRow[] {
  const ordered = sources.map((s, i) => ({ s, i }))
    .sort((a, b) => compareKeys(a.s.startKey, b.s.startKey) || a.i - b.i)
    .map(({ s }) => s);
  const covers = (s: TestSource, id: string) =>
    compareKeys(s.startKey, id) <= 0 && (s.endKey === "" || compareKeys(id, s.endKey) < 0);
  const kept: AllDocsRow[] = [];
  ordered.forEach((s, order) => {
    for (const row of s.batches.flat()) {
      const winner = ordered.findIndex((o, i) =>
        covers(o, row.id) &&
        ordered.every((p, j) =>
          !covers(p, row.id) || p.fetchedAt < o.fetchedAt || (p.fetchedAt === o.fetchedAt && j >= i)
        )
      );
      if (winner === order) kept.push(row);
    }
  });
  return kept.sort((a, b) => compareKeys(a.id, b.id));
}

/** A small deterministic PRNG (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("mergeBatches() merges overlapping partitions in id order, one row per id", async () => {
  const a = source("", "d", 1, [rows(["a", "c"], "1")]);
  const b = source("b", "", 1, [rows(["b", "c", "d"], "1"), rows(["g", "h"], "1")]);
  const merged = (await collect([a, b])).flat();
  assert.deepEqual(merged.map((r) => r.rev), ["1-a", "1-c", "1-d", "1-g", "1-h"]);
  assert.ok(a.closed && b.closed);
});

Deno.test("mergeBatches() takes an id from the most recently fetched partition", async () => {
  const older = source("", "", 100, [rows(["a", "b", "c"], "1")]);
  const newer = source("b", "", 200, [rows(["b", "c", "d"], "2")]);
  for (const order of [[older, newer], [newer, older]]) {
    older.opened = newer.opened = false;
    const merged = (await collect(order)).flat();
    assert.deepEqual(merged.map((r) => r.rev), ["1-a", "2-b", "2-c", "2-d"]);
  }
  // A newer partition that starts first wins over an older one that starts later, too.
  const first = source("", "c", 300, [rows(["a", "b"], "3")]);
  const later = source("a", "", 100, [rows(["a", "b", "c"], "1")]);
  assert.deepEqual(
    (await collect([first, later])).flat().map((r) => r.rev),
    ["3-a", "3-b", "1-c"],
  );
  // Equal fetch times: the first partition in start-key order (then as given) wins.
  const x = source("a", "c", 5, [rows(["a", "b"], "x")]);
  const y = source("a", "", 5, [rows(["b", "c"], "y")]);
  assert.deepEqual((await collect([x, y])).flat().map((r) => r.rev), ["x-a", "x-b", "y-c"]);
});

Deno.test("mergeBatches() drops an id the newer partition covering it lacks", async () => {
  // Pivots ["m"], then "gone" and "lost" deleted at the origin, then pivots ["g", "t"].
  const old = [
    source("", "m", 100, [rows(["a", "gone", "k"], "1")]),
    source("m", "", 100, [rows(["lost", "n", "z"], "1")]),
  ];
  const fresh = [
    source("", "g", 200, [rows(["a"], "2")]),
    source("g", "t", 200, [rows(["k", "n"], "2")]),
    source("t", "", 200, [rows(["z"], "2")]),
  ];
  for (const sources of [[...old, ...fresh], [...fresh, ...old]]) {
    for (const s of sources) s.opened = s.closed = false;
    const merged = (await collect(sources)).flat();
    assert.deepEqual(merged.map((r) => r.rev), ["2-a", "2-k", "2-n", "2-z"]);
    assert.ok(old.every((s) => !s.opened), "partitions that decide nothing are never opened");
  }
});

Deno.test("mergeBatches() lets an older partition decide outside the newer range", async () => {
  const older = source("", "", 1, [rows(["a", "c", "e", "g", "i"], "1")]);
  const newer = source("c", "g", 2, [rows(["d"], "2")]);
  const merged = (await collect([older, newer])).flat();
  assert.deepEqual(merged.map((r) => r.rev), ["1-a", "2-d", "1-g", "1-i"]);
  assert.ok(older.closed && newer.closed);
  // The older partition is read once, its rows inside the newer range skipped.
  const stopped = source("", "", 1, [rows(["a", "c"], "1"), rows(["e", "g"], "1")]);
  const middle = source("b", "f", 3, []);
  const tail = source("f", "h", 2, [rows(["f"], "2")]);
  assert.deepEqual(
    (await collect([stopped, middle, tail])).flat().map((r) => r.rev),
    ["1-a", "2-f"],
  );
});

Deno.test("mergeBatches() passes a lone partition's batches through as they are", async () => {
  const batches = [rows(["a", "b"], "1"), rows(["c"], "1"), rows(["d", "e", "f"], "1")];
  const lone = source("", "", 1, batches);
  const out = await collect([lone]);
  assert.equal(out.length, 3);
  out.forEach((batch, i) => assert.equal(batch, batches[i], "the source's own array"));

  // Disjoint ranges: each passes through as it is.
  const left = source("", "c", 1, [rows(["a", "b"], "1")]);
  const right = source("c", "", 2, [rows(["c", "d", "e"], "2")]);
  const cut = await collect([left, right]);
  assert.equal(cut[0], left.batches[0]);
  assert.equal(cut[1], right.batches[0]);
  assert.deepEqual(cut.flat().map((r) => r.rev), ["1-a", "1-b", "2-c", "2-d", "2-e"]);
});

Deno.test("mergeBatches() gives the same rows for disjoint and overlapping sets", async () => {
  const ids = Array.from({ length: 5_000 }, (_, i) => `pkg-${String(i).padStart(5, "0")}`);
  const chunk = (list: AllDocsRow[]) => {
    const out: AllDocsRow[][] = [];
    for (let i = 0; i < list.length; i += 700) out.push(list.slice(i, i + 700));
    return out;
  };
  const all = rows(ids, "1");
  // Disjoint: the fast path only.
  const starts = [0, 1_000, 2_500, 4_000];
  const disjoint = starts.map((start, i) =>
    source(
      i === 0 ? "" : ids[start]!,
      ids[starts[i + 1]!] ?? "",
      1,
      chunk(all.slice(start, starts[i + 1] ?? ids.length)),
    )
  );
  // The same rows in overlapping partitions fetched at the same time.
  const overlapping = [
    source("", ids[3_000]!, 1, chunk(all.slice(0, 3_000))),
    source(ids[1_000]!, "", 1, chunk(all.slice(1_000, 5_000))),
    source(ids[2_000]!, ids[4_000]!, 0, chunk(all.filter((_, i) => i >= 2_000 && i % 2 === 0))),
  ];
  const fast = (await collect(disjoint)).flat();
  const merged = await collect(overlapping);
  assert.deepEqual(merged.flat(), fast);
  assert.deepEqual(fast, all);
});

Deno.test("mergeBatches() skips empty partitions and empty batches", async () => {
  assert.deepEqual(await collect([]), []);
  assert.deepEqual(await collect([source("", "m", 1, []), source("m", "", 1, [[]])]), []);
  const merged = await collect([
    source("", "", 1, [[], rows(["a"], "1"), []]),
    source("a", "b", 0, []),
    source("b", "", 1, [[], []]),
    source("b", "", 3, [rows(["b", "c"], "3"), []]),
  ]);
  assert.deepEqual(merged.flat().map((r) => r.rev), ["1-a", "3-b", "3-c"]);
  assert.ok(merged.every((batch) => batch.length > 0), "no empty batch is handed out");
});

Deno.test("mergeBatches() opens partitions lazily and closes them when stopped early", async () => {
  const a = source("", "", 1, [rows(["a", "b"], "1")]);
  const b = source("b", "", 2, [rows(["b", "c"], "2")]);
  const c = source("x", "", 1, [rows(["x", "y"], "1")]);
  const merge = mergeBatches([c, b, a]);
  const first = await merge.next();
  assert.deepEqual(first.value, rows(["a"], "1"), "rows before the next start come out first");
  assert.ok(a.opened && !b.opened && !c.opened);
  await merge.return(undefined);
  assert.ok(a.closed, "the open partition is closed");
  assert.ok(!b.opened && !c.opened, "an early stop opens nothing more");
});

Deno.test("mergeBatches() matches a reference merge on random partitions", async () => {
  const next = random(42);
  const names = Array.from({ length: 400 }, (_, i) => `n${(i * 7919) % 1000}`)
    .sort(compareKeys);
  for (let round = 0; round < 200; round++) {
    const sources: TestSource[] = [];
    const count = 1 + Math.floor(next() * 6);
    for (let s = 0; s < count; s++) {
      const from = Math.floor(next() * names.length);
      const to = from + Math.floor(next() * (names.length - from + 1));
      const picked = names.slice(from, to).filter(() => next() < 0.7);
      const batches: AllDocsRow[][] = [];
      for (let i = 0; i < picked.length;) {
        const size = Math.floor(next() * 40);
        batches.push(rows(picked.slice(i, i + size), `${s}`));
        i += size;
        if (size === 0) batches.push(rows(picked.slice(i, ++i), `${s}`));
      }
      const startKey = from === 0 && next() < 0.5 ? "" : names[from] ?? "zzz";
      const endKey = to >= names.length ? (next() < 0.5 ? "" : "zzz") : names[to]!;
      sources.push(source(startKey, endKey, Math.floor(next() * 3), batches));
    }
    const merged = (await collect(sources)).flat();
    assert.deepEqual(merged, reference(sources), `round ${round}`);
    assert.ok(sources.every((s) => s.closed === s.opened), `round ${round}: every source closed`);
  }
});
