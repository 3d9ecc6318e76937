import assert from "node:assert/strict";
import {
  emptyPatchCounts,
  type PartitionEdit,
  patchPartition,
  revWins,
} from "../../src/couchdb/partition_patch.ts";
import { encodePartitionLines, parsePartitionLines } from "../../src/couchdb/partition_lines.ts";
import type { AllDocsRow } from "../../src/couchdb/rows.ts";
import { compareKeys } from "../../src/storage/driver.ts";

/** A stream of `bytes` cut into pieces of the given sizes (cycled). */
function chunked(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    pieces.push(bytes.slice(at, at + size));
    at += size;
  }
  return new ReadableStream({
    pull(controller) {
      const piece = pieces.shift();
      if (piece) controller.enqueue(piece);
      else controller.close();
    },
  });
}

/** The obvious way: parse every row, apply the edits, write every row. */
function reference(rows: AllDocsRow[], edits: PartitionEdit[]): AllDocsRow[] {
  const byId = new Map(rows.map((row) => [row.id, row.rev]));
  for (const edit of edits) {
    const held = byId.get(edit.id);
    if (held !== undefined && !revWins(edit.rev, held)) continue;
    if (edit.deleted) byId.delete(edit.id);
    else byId.set(edit.id, edit.rev);
  }
  return [...byId].map(([id, rev]) => ({ id, rev })).sort((a, b) => compareKeys(a.id, b.id));
}

async function patch(
  rows: AllDocsRow[],
  edits: PartitionEdit[],
  sizes: number[],
): Promise<{ text: string; counts: ReturnType<typeof emptyPatchCounts> }> {
  const counts = emptyPatchCounts();
  const body = chunked(encodePartitionLines(rows), sizes);
  const text = await new Response(patchPartition(body, edits, counts)).text();
  return { text, counts };
}

function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

Deno.test("revWins() prefers the higher generation, then the edit's revision", () => {
  assert.ok(revWins("10-a", "9-z"));
  assert.ok(!revWins("9-z", "10-a"));
  assert.ok(revWins("3-b", "3-a"));
  assert.ok(!revWins("3-a", "3-a"));
  assert.ok(revWins("x", "3-a"), "no generation: the edit wins");
});

Deno.test("patchPartition() equals parsing, editing and writing every row, however the body is cut", async () => {
  const alphabet = ["a", "b", "é", "😀", "\ufffd", "@x/", "-", ".", "1", 'q"', "\\", "z"];
  const random = prng(42);
  const word = () => {
    let text = "";
    for (let n = 1 + Math.floor(random() * 4); n > 0; n--) {
      text += alphabet[Math.floor(random() * alphabet.length)];
    }
    return text;
  };
  for (let round = 0; round < 60; round++) {
    const ids = [...new Set(Array.from({ length: Math.floor(random() * 80) }, word))]
      .sort(compareKeys);
    const rows = ids.map((id) => ({ id, rev: `${1 + Math.floor(random() * 5)}-r${round}` }));
    const editIds = [...new Set(Array.from({ length: Math.floor(random() * 30) }, word))]
      .sort(compareKeys);
    const edits = editIds.map((id): PartitionEdit => ({
      id,
      rev: `${1 + Math.floor(random() * 6)}-e${round}`,
      deleted: random() < 0.3,
    }));
    const sizes = [1 + Math.floor(random() * 40), 1 + Math.floor(random() * 7), 1000];
    const { text, counts } = await patch(rows, edits, sizes);
    const expected = reference(rows, edits);
    assert.deepEqual(parsePartitionLines(text), expected, `round ${round}`);
    assert.equal(text, new TextDecoder().decode(encodePartitionLines(expected)));
    assert.equal(
      counts.added + counts.replaced + counts.removed + counts.stale + counts.unchanged,
      edits.length,
    );
    assert.equal(rows.length + counts.added - counts.removed, expected.length);
  }
});

Deno.test("patchPartition() counts what it did and keeps newer rows", async () => {
  const rows = [
    { id: "a", rev: "1-a" },
    { id: "b", rev: "5-b" },
    { id: "c", rev: "2-c" },
    { id: "e", rev: "7-e" },
  ];
  const edits: PartitionEdit[] = [
    { id: "0", rev: "1-0", deleted: false },
    { id: "a", rev: "1-a", deleted: false },
    { id: "b", rev: "4-b", deleted: false },
    { id: "c", rev: "3-c", deleted: true },
    { id: "d", rev: "2-d", deleted: true },
    { id: "e", rev: "6-e", deleted: true },
    { id: "f", rev: "1-f", deleted: false },
  ];
  const { text, counts } = await patch(rows, edits, [5]);
  assert.equal(text, '["0","1-0"]\n["a","1-a"]\n["b","5-b"]\n["e","7-e"]\n["f","1-f"]\n');
  assert.deepEqual(counts, { added: 2, replaced: 0, removed: 1, stale: 2, unchanged: 2 });
});

Deno.test("patchPartition() fills an empty partition and passes an untouched one through", async () => {
  const added = await patch([], [{ id: "x", rev: "1-x", deleted: false }], [3]);
  assert.equal(added.text, '["x","1-x"]\n');
  const rows = Array.from({ length: 5000 }, (_, i) => ({ id: `n${i}`, rev: "1-a" }))
    .sort((a, b) => compareKeys(a.id, b.id));
  const same = await patch(rows, [], [65_536]);
  assert.equal(same.text, new TextDecoder().decode(encodePartitionLines(rows)));
});

Deno.test("patchPartition() errors on a body that is no partition", async () => {
  const counts = emptyPatchCounts();
  const body = new Blob(["<html>\n"]).stream();
  const stream = patchPartition(body, [{ id: "a", rev: "1-a", deleted: false }], counts);
  await assert.rejects(new Response(stream).text(), SyntaxError);
});
