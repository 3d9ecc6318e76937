import assert from "node:assert/strict";
import { parseLineList, stripBom } from "../../src/_util/line_list.ts";

const TEXT = "# a list\r\n\r\nms\n  left-pad  \n\t\n  # indented\n@scope/x@^1\r\nlast";

Deno.test("parseLineList() trims lines and skips blank ones and # comments, keeping line numbers", () => {
  assert.deepEqual(parseLineList(TEXT), [
    { line: 3, value: "ms" },
    { line: 4, value: "left-pad" },
    { line: 7, value: "@scope/x@^1" },
    { line: 8, value: "last" },
  ]);
  assert.deepEqual(parseLineList(""), []);
  assert.deepEqual(parseLineList("\n\n"), []);
  // Only the \r of a \r\n line break is a line break; a lone one is whitespace, trimmed.
  assert.deepEqual(parseLineList("a\r\nb\r").map((e) => e.value), ["a", "b"]);
});

Deno.test("parseLineList() ends an entry at an inline comment: whitespace, then #", () => {
  assert.deepEqual(parseLineList("left-pad # why\nms\t#tab\nchalk@^5   # pinned  \n#x\n"), [
    { line: 1, value: "left-pad" },
    { line: 2, value: "ms" },
    { line: 3, value: "chalk@^5" },
  ]);
  // A # right after other characters is part of the entry (the name check rejects it).
  assert.deepEqual(parseLineList("a#b\n  # only a comment  \n").map((e) => e.value), ["a#b"]);
});

Deno.test("parseLineList() and stripBom() ignore a leading UTF-8 byte order mark", () => {
  assert.deepEqual(parseLineList("\ufeffms\nchalk\n"), [
    { line: 1, value: "ms" },
    { line: 2, value: "chalk" },
  ]);
  assert.deepEqual(parseLineList("\ufeff# comment\nms").map((e) => e.value), ["ms"]);
  assert.equal(stripBom("\ufeff[1]"), "[1]");
  assert.equal(stripBom("[1]\ufeff"), "[1]\ufeff");
});
