import assert from "node:assert/strict";
import {
  compileSelect,
  compileWhere,
  TRANSFORM_NAMES,
  ViewExpressionError,
} from "../../src/views/expressions.ts";
import { TRANSFORMS } from "../../src/views/transforms.ts";
import { canonicalJson, compareValues, truthy, valuesEqual } from "../../src/views/values.ts";

/** The error a bad expression raises, checked to be a ViewExpressionError. */
function failure(fn: () => unknown): ViewExpressionError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ViewExpressionError, `not a ViewExpressionError: ${error}`);
    return error;
  }
  assert.fail("expected a ViewExpressionError");
}

const DOC = {
  name: "left-pad",
  "dist-tags": { latest: "1.3.0" },
  versions: { "1.0.0": { dist: { integrity: "sha512-a" } }, "1.3.0": { dist: {} } },
  time: { modified: "2020-01-01T00:00:00.000Z", "1.0.0": "2014-01-01T00:00:00.000Z" },
  dependencies: { "node-gyp": "^9.0.0", nan: "2" },
  maintainers: [{ name: "a" }, { name: "b" }],
  keywords: ["pad", "left", "pad", null],
  scripts: { install: "node-gyp rebuild" },
  count: 3,
  empty: "",
  nothing: null,
};

Deno.test("compileSelect() selects fields, nested paths, bracket keys and indexes", () => {
  const select = compileSelect(
    'name, time.modified, dependencies["node-gyp"], maintainers[0].name, maintainers[-1].name, ' +
      "dist-tags.latest, ['dist-tags'].latest",
  );
  assert.deepStrictEqual(select.project(DOC), {
    name: "left-pad",
    "time.modified": "2020-01-01T00:00:00.000Z",
    'dependencies["node-gyp"]': "^9.0.0",
    "maintainers[0].name": "a",
    "maintainers[-1].name": "b",
    "dist-tags.latest": "1.3.0",
    "['dist-tags'].latest": "1.3.0",
  });
});

Deno.test("compileSelect() names a bracket path by all of it", () => {
  assert.deepStrictEqual(compileSelect('["a b"], [0], ["c"] | keys').names, [
    '["a b"]',
    "[0]",
    '["c"] | keys',
  ]);
});

Deno.test("compileSelect() names a field by its alias, else by the path as written", () => {
  const select = compileSelect(
    'versions|keys as list, versions | keys | length, time["1.0.0"] as "first publish"',
  );
  assert.deepStrictEqual(select.names, ["list", "versions | keys | length", "first publish"]);
  assert.deepStrictEqual(select.fields.map((f) => f.path), [
    "versions|keys",
    "versions | keys | length",
    'time["1.0.0"]',
  ]);
  assert.deepStrictEqual(select.project(DOC), {
    list: ["1.0.0", "1.3.0"],
    "versions | keys | length": 2,
    "first publish": "2014-01-01T00:00:00.000Z",
  });
});

Deno.test("compileSelect() [path] takes a key from the document itself", () => {
  const select = compileSelect(
    "versions[dist-tags.latest].dist as latestDist, time[versions|keys|first] as firstTime, " +
      "maintainers[count|sum].name as none, time[['dist-tags'].latest] as latestTime, " +
      "versions[missing] as gone, maintainers[keywords|length].name as byNumber",
  );
  assert.deepStrictEqual(select.project({ ...DOC, time: { ...DOC.time, "1.3.0": "t13" } }), {
    latestDist: {},
    firstTime: "2014-01-01T00:00:00.000Z",
    none: null,
    latestTime: "t13",
    gone: null,
    byNumber: null,
  });
  const where = compileWhere("versions[dist-tags.latest].dist.integrity = null");
  assert.equal(where(DOC), true);
  assert.equal(
    compileSelect("maintainers[n].name").project({ ...DOC, n: 1 })["maintainers[n].name"],
    "b",
  );
});

Deno.test("compileSelect() gives null for missing fields and steps into non-objects", () => {
  const select = compileSelect(
    "missing, name.length, maintainers.name, maintainers[5], count[0], nothing.x, versions.x.y.z",
  );
  assert.deepStrictEqual(Object.values(select.project(DOC)), [
    null,
    null,
    null,
    null,
    null,
    null,
    null,
  ]);
  assert.deepStrictEqual(Object.values(select.project(null)), [
    null,
    null,
    null,
    null,
    null,
    null,
    null,
  ]);
  assert.deepStrictEqual(Object.values(select.project("text")), [
    null,
    null,
    null,
    null,
    null,
    null,
    null,
  ]);
});

Deno.test("compileSelect() sees only a document's own members", () => {
  const select = compileSelect(
    'constructor, toString, ["__proto__"], hasOwnProperty, name.constructor',
  );
  assert.deepStrictEqual(Object.values(select.project({})), [null, null, null, null, null]);
  const parsed = JSON.parse('{"__proto__": {"x": 1}, "constructor": 2}');
  assert.deepStrictEqual(compileSelect('["__proto__"].x, constructor').project(parsed), {
    '["__proto__"].x': 1,
    constructor: 2,
  });
});

Deno.test("compileSelect() an alias named __proto__ is a member, not the prototype", () => {
  const record = compileSelect("name as __proto__").project(DOC);
  assert.equal(Object.getPrototypeOf(record), Object.prototype);
  assert.equal(JSON.stringify(record), '{"__proto__":"left-pad"}');
});

Deno.test("compileSelect() marks plain paths", () => {
  const select = compileSelect("name, time.modified, versions|keys, a[0], b['c']");
  assert.deepStrictEqual(select.fields.map((f) => f.plain), [true, true, false, false, true]);
  assert.deepStrictEqual(select.fields[1]!.keys, ["time", "modified"]);
});

Deno.test("compileSelect() [.field] takes a key from the input record, in enrich only", () => {
  const error = failure(() => compileSelect("time[.version]"));
  assert.equal(error.position, 5);
  assert.match(error.message, /only allowed in 'view enrich --add'/);
  const select = compileSelect(
    "time[.version] as publishedAt, versions[.version].dist.integrity as integrity, " +
      "maintainers[.at].name as who, time[.nested.v] as nested, time[.missing] as none",
    { inputs: true },
  );
  assert.deepStrictEqual(
    select.project(DOC, { name: "left-pad", version: "1.0.0", at: 1, nested: { v: "modified" } }),
    {
      publishedAt: "2014-01-01T00:00:00.000Z",
      integrity: "sha512-a",
      who: "b",
      nested: "2020-01-01T00:00:00.000Z",
      none: null,
    },
  );
  const renamed = compileSelect("time[.version] as t", {
    inputs: true,
    inputFields: { version: "v" },
  });
  assert.deepStrictEqual(renamed.project(DOC, { v: "1.0.0", version: "9.9.9" }), {
    t: "2014-01-01T00:00:00.000Z",
  });
  assert.deepStrictEqual(renamed.project(DOC, { v: { not: "a key" } }), { t: null });
});

Deno.test("compileSelect() rejects bad lists with the position of the problem", () => {
  const cases: [string, number, RegExp][] = [
    ["", 0, /Expected a field path, found the end of the expression/],
    ["name,", 5, /Expected a field path/],
    ["name,,time", 5, /Expected a field path, found ','/],
    ["name time", 5, /Expected ',', 'as', '\|' or the end/],
    ["name as", 7, /Expected a name after 'as'/],
    ["name as 'x' y", 12, /Expected ','/],
    [
      "versions|kyes",
      9,
      /Expected a transform \(keys, values, length, first, last, sort, reverse, unique, compact, flatten, entries, sum, min, max\), found 'kyes'/,
    ],
    ["versions|", 9, /Expected a transform/],
    ["a.", 2, /Expected a field name after '\.'/],
    ["a[", 2, /Expected a quoted key, an integer index, a path or \.field/],
    ["a[null]", 2, /Expected a quoted key/],
    ["a[b", 3, /Expected '\]'/],
    ["a[b as c]", 4, /Expected '\]'/],
    ['a["b"', 5, /Expected '\]'/],
    ["a[1.5]", 2, /Expected an integer index/],
    ["name, name", 6, /Duplicate output name "name"/],
    ["a as x, b as x", 13, /Duplicate output name "x"/],
    ['a as ""', 5, /Expected a name that is not empty/],
    ['a["b', 2, /Unterminated string/],
    ['a["\\q"]', 3, /Invalid escape in string/],
    ["a # b", 2, /Unexpected character '#'/],
    ["null", 0, /Expected a field path, found 'null'/],
    ["a = 1", 2, /Expected ','/],
  ];
  for (const [source, position, message] of cases) {
    const error = failure(() => compileSelect(source));
    assert.equal(error.position, position, `${source}: ${error.message}`);
    assert.match(error.message, message, source);
    assert.match(error.message, new RegExp(`at position ${position}$`), source);
    assert.equal(error.expression, source);
    assert.equal(error.name, "ViewExpressionError");
  }
});

Deno.test("ViewExpressionError.pointer() puts a caret under the problem", () => {
  const error = failure(() => compileWhere("a = = 1"));
  assert.equal(error.position, 4);
  assert.equal(error.pointer(), "  a = = 1\n      ^");
});

Deno.test("strings take JSON escapes in either quote", () => {
  const select = compileSelect(
    `["a\\"b"] as x, ['c\\'d'] as y, ["\\u00e9\\n\\t\\\\\\/"] as z, ['say "hi"'] as w`,
  );
  const doc = { 'a"b': 1, "c'd": 2, "é\n\t\\/": 3, 'say "hi"': 4 };
  assert.deepStrictEqual(select.project(doc), { x: 1, y: 2, z: 3, w: 4 });
});

Deno.test("every transform, on objects, arrays and anything else", () => {
  assert.deepStrictEqual(TRANSFORM_NAMES, [
    "keys",
    "values",
    "length",
    "first",
    "last",
    "sort",
    "reverse",
    "unique",
    "compact",
    "flatten",
    "entries",
    "sum",
    "min",
    "max",
  ]);
  const t = (name: string, value: unknown) => TRANSFORMS[name]!(value);
  const obj = { b: 1, a: [2] };
  const arr = [3, null, "x", [1, [2]], 1, 3];
  const cases: [string, unknown, unknown, unknown, unknown][] = [
    // name, of obj, of arr, of null, of "str"
    ["keys", ["b", "a"], [0, 1, 2, 3, 4, 5], [], []],
    ["values", [1, [2]], arr, [], []],
    ["entries", [["b", 1], ["a", [2]]], arr.map((v, i) => [i, v]), [], []],
    ["length", 2, 6, 0, 3],
    ["first", null, 3, null, null],
    ["last", null, 3, null, null],
    ["sort", [], [null, 1, 3, 3, "x", [1, [2]]], [], []],
    ["reverse", [], [3, 1, [1, [2]], "x", null, 3], [], []],
    ["unique", [], [3, null, "x", [1, [2]], 1], [], []],
    ["compact", [], [3, "x", [1, [2]], 1, 3], [], []],
    ["flatten", [], [3, null, "x", 1, [2], 1, 3], [], []],
    ["sum", 0, 7, 0, 0],
    ["min", null, 1, null, null],
    ["max", null, [1, [2]], null, null],
  ];
  for (const [name, ofObject, ofArray, ofNull, ofString] of cases) {
    assert.deepStrictEqual(t(name, obj), ofObject, `${name} of an object`);
    assert.deepStrictEqual(t(name, arr), ofArray, `${name} of an array`);
    assert.deepStrictEqual(t(name, null), ofNull, `${name} of null`);
    assert.deepStrictEqual(t(name, "str"), ofString, `${name} of a string`);
  }
  assert.deepStrictEqual(t("first", []), null);
  assert.deepStrictEqual(t("last", []), null);
  assert.deepStrictEqual(t("sum", 4), 4);
  assert.deepStrictEqual(t("min", [null]), null);
  assert.deepStrictEqual(t("max", ["1.0.0", "2.0.0", "10.0.0"]), "2.0.0");
  assert.deepStrictEqual(t("unique", [{ a: 1, b: 2 }, { b: 2, a: 1 }, "1", 1]), [
    { a: 1, b: 2 },
    "1",
    1,
  ]);
  // Copies: the document is never changed.
  const original = [2, 1];
  t("sort", original);
  t("reverse", original);
  assert.deepStrictEqual(original, [2, 1]);
});

Deno.test("transforms chain after a path, and a missing field flows through them", () => {
  const select = compileSelect(
    "versions|keys|length as n, dependencies|keys|sort as deps, missing|keys|length as none, " +
      "keywords|compact|unique|sort|reverse|first as top, maintainers|values|length as m, " +
      "versions|entries|first|first as firstVersion, missing|first as gone",
  );
  assert.deepStrictEqual(select.project(DOC), {
    n: 2,
    deps: ["nan", "node-gyp"],
    none: 0,
    top: "pad",
    m: 2,
    firstVersion: "1.0.0",
    gone: null,
  });
});

Deno.test("compileWhere() compares with = != < <= > >= and == for =", () => {
  const yes = [
    'name = "left-pad"',
    "name == 'left-pad'",
    'name != "other"',
    "count = 3",
    "count != 4",
    "count < 4",
    "count <= 3",
    "count > 2",
    "count >= 3",
    'name < "m"',
    'name >= "left-pad"',
    "versions|keys|length = 2",
    "versions | keys | length >= 2",
    'dependencies|keys|first = "node-gyp"',
    "dependencies|keys = dependencies|keys",
    "missing = null",
    "nothing = null",
    "missing != 0",
    "missing != false",
    "count = 3.0",
    "-1 < count",
    "count > -1e2",
    "1 = 1",
    'time.modified > "2019"',
    'dependencies["node-gyp"] != null',
    "scripts.install != null",
  ];
  const no = [
    'name = "other"',
    "count = '3'",
    "count < 3",
    "count > 3",
    "missing < 1",
    "missing > 1",
    "missing >= null",
    "nothing <= null",
    'count < "4"',
    "dependencies > 1",
    "versions|keys|length > 2",
    "missing != null",
    "empty != ''",
    'dependencies["left-pad"] != null',
  ];
  for (const source of yes) assert.equal(compileWhere(source)(DOC), true, source);
  for (const source of no) assert.equal(compileWhere(source)(DOC), false, source);
});

Deno.test("compileWhere() = compares deeply, members in any order", () => {
  const where = compileWhere("a = b");
  assert.equal(where({ a: { x: [1, { y: 2 }], z: 0 }, b: { z: 0, x: [1, { y: 2 }] } }), true);
  assert.equal(where({ a: { x: [1, 2] }, b: { x: [2, 1] } }), false);
  assert.equal(where({ a: [1], b: { 0: 1 } }), false);
});

Deno.test("compileWhere() && || ! and parentheses, with the usual precedence", () => {
  const cases: [string, boolean][] = [
    ["count = 3 && name = 'left-pad'", true],
    ["count = 3 && name = 'x'", false],
    ["count = 4 || name = 'left-pad'", true],
    ["count = 4 || name = 'x'", false],
    ["!(count = 4)", true],
    ["!count = 3", false],
    ["!!count", true],
    ["count = 4 && name = 'x' || count = 3", true],
    ["count = 3 || name = 'x' && count = 4", true],
    ["(count = 3 || name = 'x') && count = 4", false],
    ["((count = 3))", true],
    ["scripts.install && !dependencies['node-gyp']", false],
    ["scripts.install && !devDependencies['node-gyp']", true],
  ];
  for (const [source, expected] of cases) assert.equal(compileWhere(source)(DOC), expected, source);
});

Deno.test("compileWhere() a path or literal alone tests its truth", () => {
  const cases: [string, boolean][] = [
    ["name", true],
    ["missing", false],
    ["nothing", false],
    ["empty", false],
    ["count", true],
    ["dependencies", true],
    ["keywords|length", true],
    ["missing|keys", true],
    ["missing|keys|length", false],
    ["true", true],
    ["false", false],
    ["null", false],
    ["0", false],
    ["''", false],
    ["'x'", true],
  ];
  for (const [source, expected] of cases) assert.equal(compileWhere(source)(DOC), expected, source);
  assert.equal(compileWhere('["null"]')({ null: 1 }), true);
});

Deno.test("compileWhere() rejects bad conditions with the position of the problem", () => {
  const cases: [string, number, RegExp][] = [
    ["", 0, /Expected a field path, a string, a number, null, true, false, '!' or '\('/],
    ["a =", 3, /found the end of the expression/],
    ["a = = 1", 4, /found '='/],
    ["a = 1 = 2", 6, /Expected the end of the expression, found '='/],
    ["(a = 1", 6, /Expected '\)' or an operator/],
    ["a = 1)", 5, /Expected the end of the expression, found '\)'/],
    ["a && ", 5, /Expected a field path/],
    ["a || || b", 5, /found '\|\|'/],
    ["a & b", 2, /Unexpected character '&'/],
    ["a === b", 4, /found '='/],
    ["a = 'x", 4, /Unterminated string/],
    ["a = 01", 4, /Invalid number/],
    ["a = 1x", 4, /Invalid number/],
    ["a = -", 4, /Invalid number/],
    ["a|nope > 1", 2, /Expected a transform/],
    ["a[.b] = 1", 2, /only allowed in 'view enrich --add'/],
    ["a as b", 2, /Expected the end of the expression, found 'as'/],
    ["a, b", 1, /Expected the end of the expression, found ','/],
    ["!", 1, /found the end/],
    ["null.x = 1", 4, /Expected the end of the expression, found '\.'/],
  ];
  for (const [source, position, message] of cases) {
    const error = failure(() => compileWhere(source));
    assert.equal(error.position, position, `${source}: ${error.message}`);
    assert.match(error.message, message, source);
  }
});

Deno.test("compileWhere() never runs code: expressions are data", () => {
  const where = compileWhere('constructor.constructor = "x" || ["__proto__"] != null');
  assert.equal(where({}), false);
  assert.equal(compileWhere("toString")({}), false);
});

Deno.test("compareValues() orders null, booleans, numbers, strings, arrays, objects", () => {
  const sorted = [
    { b: 1 },
    [2],
    "b",
    2,
    true,
    null,
    [1, 2],
    "a",
    -1,
    false,
    { a: 2 },
    { a: 1 },
    [1],
    "\u{1f600}",
    "\ufffd",
  ].sort(compareValues);
  assert.deepStrictEqual(sorted, [
    null,
    false,
    true,
    -1,
    2,
    "a",
    "b",
    "\ufffd",
    "\u{1f600}",
    [1],
    [1, 2],
    [2],
    { a: 1 },
    { a: 2 },
    { b: 1 },
  ]);
  assert.equal(compareValues(undefined, null), 0);
  assert.equal(compareValues({ a: 1 }, { a: 1, b: 2 }) < 0, true);
});

Deno.test("valuesEqual(), canonicalJson() and truthy()", () => {
  assert.equal(valuesEqual(null, undefined), true);
  assert.equal(valuesEqual([1, [2]], [1, [2]]), true);
  assert.equal(valuesEqual([1], [1, 2]), false);
  assert.equal(valuesEqual({ a: 1 }, { a: 1, b: undefined }), false);
  assert.equal(valuesEqual({ a: 1 }, { b: 1 }), false);
  assert.equal(valuesEqual({ a: 1 }, [1]), false);
  assert.equal(valuesEqual(0, false), false);
  assert.equal(canonicalJson({ b: [{ d: 1, c: 2 }], a: "x" }), '{"a":"x","b":[{"c":2,"d":1}]}');
  assert.equal(canonicalJson(undefined), "null");
  for (const value of [null, undefined, false, 0, ""]) assert.equal(truthy(value), false);
  for (const value of [true, 1, -1, "0", [], {}]) assert.equal(truthy(value), true);
});
