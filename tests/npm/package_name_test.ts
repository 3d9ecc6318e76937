import assert from "node:assert/strict";
import { packageNameProblem, parseNameList } from "../../src/npm/package_name.ts";

Deno.test("packageNameProblem() accepts real names: @scope/_name, leading '-', legacy ones", () => {
  for (
    const name of [
      "@babel/___internal___test-oidc-publish",
      "@ng-toolkit/_utils",
      "@k3labs/__bindings",
      "-",
      "-lodash",
      "@-/x",
      "JSONStream",
      "12.15rk..",
    ]
  ) {
    assert.equal(packageNameProblem(name), undefined, name);
  }
});

Deno.test("packageNameProblem() rejects a leading '.' after the scope, and '.' or '_' unscoped", () => {
  assert.match(packageNameProblem("@scope/.hidden")!, /after the scope starts with '\.'/);
  assert.match(packageNameProblem(".hidden")!, /starts with '\.' or '_'/);
  assert.match(packageNameProblem("_private")!, /starts with '\.' or '_'/);
});

Deno.test("parseNameList() keeps @scope/_name entries of text and JSON lists", () => {
  const names = ["@ng-toolkit/_utils", "@babel/___internal___test-oidc-publish", "ms"];
  assert.deepEqual(parseNameList(JSON.stringify(names), "json"), { names, duplicates: 0 });
  assert.deepEqual(parseNameList(names.map((n) => `${n}@1.0.0`).join("\n"), "txt"), {
    names,
    duplicates: 0,
  });
});
