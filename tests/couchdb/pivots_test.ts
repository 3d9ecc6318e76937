import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { UsageError } from "../../cli/options.ts";
import { loadPivots } from "../../cli/pivots_file.ts";
import {
  parsePivots,
  partitionSetId,
  PivotError,
  rangesFromPivots,
  validatePivots,
} from "../../src/couchdb/pivots.ts";
import { compareKeys } from "../../src/storage/driver.ts";

Deno.test("validatePivots() names the index and value of every kind of bad pivot", () => {
  const cases: [unknown, number, RegExp][] = [
    [["a", 3], 1, /index 1: expected a string, received 3/],
    [["a", null], 1, /index 1: expected a string, received null/],
    [["", "a"], 0, /index 0: pivots must not be empty/],
    [["a", "a"], 1, /index 1: duplicate of index 0, received "a"/],
    [["b", "a"], 1, /index 1: pivots must increase in code-point order, received "a" after "b"/],
    [["a", "B"], 1, /received "B" after "a"/],
    [["\uffff", "😀", "\ud800"], 2, /index 2: not valid Unicode/],
  ];
  for (const [pivots, index, message] of cases) {
    assert.throws(() => validatePivots(pivots), (error: unknown) => {
      assert.ok(error instanceof PivotError);
      assert.equal(error.index, index);
      assert.match(error.message, message);
      return true;
    });
  }
  assert.throws(() => validatePivots("a"), /expected an array of strings/);
  assert.throws(() => validatePivots({}), PivotError);
});

Deno.test("validatePivots() uses code-point order, not UTF-16 order", () => {
  // U+FFFF sorts before U+1F600 by code point, though its UTF-16 unit is larger.
  assert.deepEqual(validatePivots(["\uffff", "😀"]), ["\uffff", "😀"]);
  assert.throws(() => validatePivots(["😀", "\uffff"]), PivotError);
  assert.deepEqual(validatePivots(["1", "@", "A", "_", "a", "~"]), ["1", "@", "A", "_", "a", "~"]);
});

Deno.test("parsePivots() reads JSON arrays and text lines with comments", () => {
  assert.deepEqual(parsePivots('["@", "b"]', "json"), ["@", "b"]);
  assert.deepEqual(parsePivots("# header\n@\n\nb c\r\nc\n", "txt"), ["@", "b c", "c"]);
  assert.throws(() => parsePivots("[", "json"), /not JSON/);
  assert.throws(() => parsePivots("b\na\n", "txt"), /index 1/);
});

Deno.test("parsePivots() reads .txt lines as name lists are read: trimmed, inline comments", () => {
  assert.deepEqual(parsePivots("  @  \n\tb # the b's\nc#d\n", "txt"), ["@", "b", "c#d"]);
  assert.deepEqual(parsePivots("\ufeffa\nb\n", "txt"), ["a", "b"]);
  assert.deepEqual(parsePivots('\ufeff["a", "b "]', "json"), ["a", "b "]);
});

Deno.test("rangesFromPivots() covers the key space with no gap and no overlap", () => {
  const pivots = ["@", "@b", "c", "c.d", "z"];
  const ranges = rangesFromPivots(pivots, "npm");
  assert.equal(ranges.length, pivots.length + 1);
  assert.deepEqual(ranges[0], { index: 0, startKey: "", endKey: "@", key: "v1:partition:npm::40" });
  assert.deepEqual(ranges.at(-1), {
    index: 5,
    startKey: "z",
    endKey: "",
    key: "v1:partition:npm:7a:",
  });
  const ids = [
    "",
    "!",
    "0",
    "@",
    "@a",
    "@b",
    "@b/x",
    "b",
    "c",
    "c.c",
    "c.d",
    "c.e",
    "y",
    "z",
    "zz",
    "😀",
  ];
  for (const id of ids) {
    const owners = ranges.filter((r) =>
      compareKeys(id, r.startKey) >= 0 && (r.endKey === "" || compareKeys(id, r.endKey) < 0)
    );
    assert.equal(owners.length, 1, `${id} belongs to ${owners.length} ranges`);
  }
  for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]!.startKey, ranges[i - 1]!.endKey);
  assert.deepEqual(rangesFromPivots([], "o").map((r) => [r.startKey, r.endKey]), [["", ""]]);
});

Deno.test("partitionSetId() is stable and depends on origin and pivots", () => {
  const id = partitionSetId("npm", ["a", "b"]);
  assert.match(id, /^[0-9a-f]{16}$/);
  assert.equal(partitionSetId("npm", ["a", "b"]), id);
  assert.notEqual(partitionSetId("other", ["a", "b"]), id);
  assert.notEqual(partitionSetId("npm", ["a", "c"]), id);
  assert.notEqual(partitionSetId("npm", ["ab"]), partitionSetId("npm", ["a", "b"]));
});

Deno.test("loadPivots() reads .js modules: a named pivots export, else a default array", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (name: string, text: string) => {
      const file = join(dir, name);
      await Deno.writeTextFile(file, text);
      return file;
    };
    const named = await write("named.js", 'export const pivots = ["@", "b", "\u{1F600}"];\n');
    assert.deepEqual(await loadPivots(named), ["@", "b", "😀"]);
    const byDefault = await write("default.js", 'export default ["a.b", "c"];\n');
    assert.deepEqual(await loadPivots(byDefault), ["a.b", "c"]);
    const both = await write("both.js", 'export const pivots = ["x"];\nexport default ["y"];\n');
    assert.deepEqual(await loadPivots(both), ["x"], "the named export wins");
    const computed = await write(
      "computed.js",
      "export const pivots = Array.from({ length: 3 }, (_, i) => String.fromCharCode(98 + i));\n",
    );
    assert.deepEqual(await loadPivots(relative(Deno.cwd(), computed)), ["b", "c", "d"]);
    const empty = await write("empty.js", "export default [];\n");
    assert.deepEqual(await loadPivots(empty), []);

    const rejects = (file: string, message: RegExp) =>
      assert.rejects(loadPivots(file), (error: unknown) => {
        assert.ok(error instanceof UsageError, String(error));
        assert.match(error.message, message);
        return true;
      });
    await rejects(
      await write("order.js", 'export default ["b", "a"];\n'),
      /^Invalid pivot at index 1: pivots must increase in code-point order, received "a" after "b" \(in .*order\.js\)$/,
    );
    await rejects(
      await write("none.js", "export const other = 1;\n"),
      /expected an array of strings, received undefined \(in .*none\.js\)/,
    );
    await rejects(
      await write("numbers.js", "export const pivots = [1, 2];\n"),
      /index 0: expected a string, received 1/,
    );
    await rejects(
      await write("syntax.js", "export const pivots = [;\n"),
      /Cannot load pivots module/,
    );
    await rejects(join(dir, "missing.js"), /^Cannot load pivots module '.*missing\.js'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
