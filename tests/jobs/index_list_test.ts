import assert from "node:assert/strict";
import { isIndexText, parseIndexLines } from "../../src/jobs/index_lines.ts";

Deno.test("isIndexText() tells create-index output from a list of names", () => {
  assert.ok(isIndexText("\ufeff\n# index\nleft-pad,12-0123abcdef\n"));
  assert.ok(!isIndexText("left-pad\nms@^2.0.0\n"));
  assert.ok(!isIndexText("left-pad, 12-abc\n"), "a space is no index line");
  assert.ok(!isIndexText("# only a comment\n"));
});

Deno.test("parseIndexLines() reads id,rev lines, the last of a repeated id winning", () => {
  const list = parseIndexLines("a,1-x\r\n\n# c\n@scope/b,2-y\na,3-z\n");
  assert.ok("rows" in list);
  assert.deepEqual(list.rows, [{ id: "a", rev: "3-z" }, { id: "@scope/b", rev: "2-y" }]);
  assert.equal(list.duplicates, 1);
  const bad = parseIndexLines("a,1-x\nb\n.c,1-y\nd,rev\n");
  assert.ok("problems" in bad);
  assert.deepEqual(bad.problems.map((p) => p.at), [2, 3, 4]);
});
