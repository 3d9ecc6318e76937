import assert from "node:assert/strict";
import { parseLineList } from "../../src/_util/line_list.ts";

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
});

Deno.test("parseLineList() without trimming keeps whitespace, and only a # in column 1 is a comment", () => {
  assert.deepEqual(parseLineList(TEXT, { trim: false }), [
    { line: 3, value: "ms" },
    { line: 4, value: "  left-pad  " },
    { line: 6, value: "  # indented" },
    { line: 7, value: "@scope/x@^1" },
    { line: 8, value: "last" },
  ]);
  // Only the \r of a \r\n line break goes; one at the very end is part of the line.
  assert.deepEqual(parseLineList("a\r\nb\r", { trim: false }).map((e) => e.value), ["a", "b\r"]);
});
