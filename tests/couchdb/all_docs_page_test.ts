import assert from "node:assert/strict";
import { parsePage, scanPage } from "../../src/couchdb/all_docs_page.ts";
import { BadResponseError } from "../../src/http/errors.ts";
import type { AllDocsRow } from "../../src/couchdb/rows.ts";
import { encodePartitionLines, parsePartitionLines } from "../../src/couchdb/partition_lines.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const ROWS: AllDocsRow[] = [
  { id: "12.15rk..", rev: "3-ffee" },
  { id: "@scope/a", rev: "1-0a1b" },
  { id: "A-Legacy.Name", rev: "12-0123456789abcdef0123456789abcdef" },
  { id: "zz", rev: "2-b" },
];

/** A page in CouchDB's layout: a row per line, `\r\n` between them. */
function couchPage(rows: readonly AllDocsRow[], offset = 0): string {
  const lines = rows.map((r) =>
    `{"id":${JSON.stringify(r.id)},"key":${JSON.stringify(r.id)},"value":{"rev":${
      JSON.stringify(r.rev)
    }}}`
  );
  const head = `{"total_rows":${rows.length + offset},"offset":${offset},"rows":[`;
  return lines.length === 0 ? `${head}]}` : `${head}\r\n${lines.join(",\r\n")}\r\n]}\n`;
}

function linesOf(page: { lines: Uint8Array }): AllDocsRow[] {
  return parsePartitionLines(decoder.decode(page.lines));
}

Deno.test("a page in CouchDB's layout is read without JSON.parse, to the same lines", () => {
  for (const rows of [ROWS, ROWS.slice(0, 1), []]) {
    for (
      const text of [
        couchPage(rows),
        JSON.stringify({ total_rows: 9, offset: 2, rows: rows.map((r) => toRow(r)) }),
      ]
    ) {
      const bytes = encoder.encode(text);
      const fast = scanPage(bytes, undefined);
      assert.ok(fast, `scanned: ${text}`);
      const slow = parsePage(bytes, undefined);
      assert.deepEqual(fast.lines, slow.lines);
      assert.deepEqual(linesOf(fast), rows);
      assert.equal(fast.count, rows.length);
      assert.equal(fast.raw, rows.length);
      assert.equal(fast.firstId, rows[0]?.id);
      assert.equal(fast.lastId, rows.at(-1)?.id);
      assert.deepEqual(fast.lines, encodePartitionLines(rows));
    }
  }
});

function toRow(r: AllDocsRow) {
  return { id: r.id, key: r.id, value: { rev: r.rev } };
}

Deno.test("other pages are left to JSON.parse, which reads them to the right lines", () => {
  const cases: { name: string; rows: AllDocsRow[]; text: string }[] = [
    {
      name: "escaped quote",
      rows: [{ id: 'a"b', rev: "1-a" }, { id: "c", rev: "1-c" }],
      text: "",
    },
    { name: "non-ASCII", rows: [{ id: "caf\u00e9", rev: "1-a" }], text: "" },
    { name: "line separator", rows: [{ id: "a\u2028b", rev: "1-a" }], text: "" },
    { name: "astral", rows: [{ id: "\u{1f600}", rev: "1-a" }], text: "" },
    { name: "escaped slash", rows: [{ id: "a/b", rev: "1-a" }], text: "" },
    {
      name: "spaces inside rows",
      rows: [{ id: "a", rev: "1-a" }],
      text:
        '{"total_rows":1,"offset":0,"rows":[ {"id": "a", "key": "a", "value": {"rev": "1-a"}} ]}',
    },
    {
      name: "key differs from id",
      rows: [{ id: "a", rev: "1-a" }],
      text: '{"total_rows":1,"offset":0,"rows":[{"id":"a","key":"b","value":{"rev":"1-a"}}]}',
    },
    {
      name: "more fields in value",
      rows: [{ id: "a", rev: "1-a" }],
      text: '{"total_rows":1,"offset":0,"rows":[{"id":"a","key":"a","value":{"rev":"1-a","x":1}}]}',
    },
    {
      name: "fields after rows",
      rows: [{ id: "a", rev: "1-a" }],
      text: '{"total_rows":1,"offset":0,"rows":[{"id":"a","key":"a","value":{"rev":"1-a"}}],"x":1}',
    },
    {
      name: "a number with a leading zero (not JSON)",
      rows: [],
      text: '{"total_rows":01,"offset":0,"rows":[{"id":"a","key":"a","value":{"rev":"1-a"}}]}',
    },
    {
      name: "whitespace before the page",
      rows: [{ id: "a", rev: "1-a" }],
      text: ' {"total_rows":1,"offset":0,"rows":[{"id":"a","key":"a","value":{"rev":"1-a"}}]}',
    },
  ];
  for (const { name, rows, text } of cases) {
    let page = text === "" ? couchPage(rows) : text;
    if (name === "escaped slash") page = page.replaceAll("/", "\\/");
    const bytes = encoder.encode(page);
    assert.equal(scanPage(bytes, undefined), undefined, name);
    if (rows.length === 0) {
      assert.throws(() => parsePage(bytes, undefined), BadResponseError, name);
      continue;
    }
    const parsed = parsePage(bytes, undefined);
    assert.deepEqual(linesOf(parsed), rows, name);
    assert.deepEqual(parsed.lines, encodePartitionLines(rows), name);
  }
});

Deno.test("a page cut short or broken anywhere is refused by both readers", () => {
  const whole = couchPage(ROWS);
  for (let cut = 0; cut < whole.length; cut++) {
    const text = whole.slice(0, cut);
    let valid = true;
    try {
      JSON.parse(text);
    } catch {
      valid = false;
    }
    if (valid) continue; // Only trailing whitespace was cut.
    const bytes = encoder.encode(text);
    assert.equal(scanPage(bytes, undefined), undefined, `cut at ${cut}`);
    assert.throws(() => parsePage(bytes, undefined), BadResponseError, `cut at ${cut}`);
  }
  // One byte changed to another anywhere in the canonical page is never read as a valid page
  // with other contents by the fast path: it falls back, or both read the same lines.
  const bytes = encoder.encode(whole);
  for (let at = 0; at < bytes.length; at++) {
    for (const replacement of [0x00, 0x20, 0x22, 0x2c, 0x5d, 0x7d, 0x41, 0xc3]) {
      const changed = bytes.slice();
      changed[at] = replacement;
      let fast;
      try {
        fast = scanPage(changed, undefined);
      } catch (error) {
        assert.ok(error instanceof BadResponseError);
        assert.throws(() => parsePage(changed, undefined), BadResponseError);
        continue;
      }
      if (fast === undefined) continue;
      const slow = parsePage(changed, undefined);
      assert.deepEqual(fast.lines, slow.lines, `byte ${at} as ${replacement}`);
    }
  }
});

Deno.test("both readers refuse rows out of order and drop only a first repeat of `after`", () => {
  const sorted = ROWS.slice(0, 3);
  for (const read of [scanPage, parsePage]) {
    const swapped = encoder.encode(couchPage([sorted[1]!, sorted[0]!, sorted[2]!]));
    assert.throws(() => read(swapped, undefined), /rows out of order/);
    const twice = encoder.encode(couchPage([sorted[0]!, sorted[0]!]));
    assert.throws(() => read(twice, undefined), /rows out of order/);
    const page = encoder.encode(couchPage(sorted));
    const followOn = read(page, sorted[0]!.id)!;
    assert.deepEqual(linesOf(followOn), sorted.slice(1));
    assert.equal(followOn.count, 2);
    assert.equal(followOn.raw, 3);
    assert.equal(followOn.firstId, sorted[1]!.id);
    assert.throws(() => read(page, "b"), /rows out of order/);
    const repeated = encoder.encode(couchPage([sorted[0]!, sorted[0]!, sorted[1]!]));
    assert.throws(() => read(repeated, sorted[0]!.id), /rows out of order/);
    const onlyRepeat = read(encoder.encode(couchPage([sorted[0]!])), sorted[0]!.id)!;
    assert.equal(onlyRepeat.count, 0);
    assert.equal(onlyRepeat.raw, 1);
    assert.equal(onlyRepeat.lastId, undefined);
  }
});

Deno.test("parsePartitionLines cuts plain lines apart and parses escaped ones", () => {
  const rows: AllDocsRow[] = [
    ...ROWS,
    { id: 'a"b', rev: "1-a" },
    { id: "back\\slash", rev: "2-b" },
    { id: "", rev: "3-c" },
    { id: "caf\u00e9", rev: "4-d" },
  ];
  for (const batch of [ROWS, rows]) {
    const text = decoder.decode(encodePartitionLines(batch));
    assert.deepEqual(parsePartitionLines(text), batch);
    assert.deepEqual(parsePartitionLines(text.slice(0, -1)), batch, "no final newline");
  }
  // A line that is not exactly ["id","rev"] goes to JSON.parse, which reads it or refuses it.
  assert.deepEqual(parsePartitionLines('[ "a" , "1-a" ]\n'), [{ id: "a", rev: "1-a" }]);
  assert.throws(() => parsePartitionLines('["a","1-a"]x\n'), SyntaxError);
  assert.throws(() => parsePartitionLines('["a","b","c"]\n["a"\n'), SyntaxError);
});
