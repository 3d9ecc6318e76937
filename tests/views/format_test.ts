import assert from "node:assert/strict";
import {
  bareLine,
  csvCell,
  outputFraming,
  RECORD_FORMATS,
  recordFormatter,
} from "../../src/views/format.ts";

Deno.test("csvCell() quotes what RFC 4180 needs quoted", () => {
  assert.equal(csvCell(null), "");
  assert.equal(csvCell(undefined), "");
  assert.equal(csvCell("plain"), "plain");
  assert.equal(csvCell("a,b"), '"a,b"');
  assert.equal(csvCell('say "x"'), '"say ""x"""');
  assert.equal(csvCell("two\nlines"), '"two\nlines"');
  assert.equal(csvCell("cr\r"), '"cr\r"');
  assert.equal(csvCell(1.5), "1.5");
  assert.equal(csvCell(false), "false");
  assert.equal(csvCell({ a: 1 }), '"{""a"":1}"');
  assert.equal(csvCell([]), "[]");
});

Deno.test("bareLine() writes strings as they are, anything else as JSON", () => {
  assert.equal(bareLine("left-pad"), "left-pad");
  assert.equal(bareLine("two\nlines"), '"two\\nlines"');
  assert.equal(bareLine(null), "null");
  assert.equal(bareLine(undefined), "null");
  assert.equal(bareLine(3), "3");
  assert.equal(bareLine(["a"]), '["a"]');
});

Deno.test("recordFormatter() per format, and what each needs of the view", () => {
  const record = { name: "a", n: [1, 2] };
  assert.deepStrictEqual(RECORD_FORMATS, ["ndjson", "json", "lines", "csv"]);
  assert.equal(recordFormatter("ndjson", undefined)(record), '{"name":"a","n":[1,2]}');
  assert.equal(recordFormatter("json", ["name", "n"])(record), '{"name":"a","n":[1,2]}');
  assert.equal(recordFormatter("lines", ["n"])(record), "[1,2]");
  assert.equal(recordFormatter("csv", ["n", "name", "missing"])(record), '"[1,2]",a,');
  assert.throws(() => recordFormatter("lines", ["name", "n"]), /exactly one field/);
  assert.throws(() => recordFormatter("lines", undefined), /exactly one field/);
  assert.throws(() => recordFormatter("csv", undefined), /needs a view with a select list/);
});

Deno.test("outputFraming() wraps records into the whole output of each format", () => {
  const render = (format: "ndjson" | "json" | "lines" | "csv", records: string[]) => {
    const f = outputFraming(format, ["a", "b,c"]);
    if (records.length === 0) return f.empty;
    return f.head + records.map((r, i) => (i ? f.separator : "") + r + f.after).join("") + f.tail;
  };
  assert.equal(render("ndjson", ["1", "2"]), "1\n2\n");
  assert.equal(render("ndjson", []), "");
  assert.equal(render("lines", ["x"]), "x\n");
  assert.equal(render("json", ["1", "2"]), "[\n1,\n2\n]\n");
  assert.equal(render("json", []), "[]\n");
  assert.deepStrictEqual(JSON.parse(render("json", ["{}", "[]"])), [{}, []]);
  assert.equal(render("csv", ["1,2"]), 'a,"b,c"\n1,2\n');
  assert.equal(render("csv", []), 'a,"b,c"\n');
});
