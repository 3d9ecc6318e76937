import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { viewKey } from "../../src/storage/keys.ts";
import {
  checkViewDefinition,
  deleteView,
  listViews,
  loadView,
  saveView,
  type ViewDefinition,
  viewDocumentPrefix,
} from "../../src/views/definition.ts";
import { ViewExpressionError } from "../../src/views/expressions.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

const createdAt = "2024-01-01T00:00:00.000Z";
const VIEW: ViewDefinition = {
  name: "edges",
  origin: "registry.example.test",
  registry: "https://registry.example.test/",
  type: "packument",
  select: "name, versions[dist-tags.latest].dependencies | keys as deps",
  where: "versions | keys | length > 0",
  createdAt,
};

Deno.test("viewKey() is v1:view:{name} for names of [A-Za-z0-9._-]", () => {
  assert.equal(viewKey("npm-edges"), "v1:view:npm-edges");
  assert.equal(viewKey("a.b_c-1"), "v1:view:a.b_c-1");
  assert.equal(viewKey("_x"), "v1:view:_x");
  for (const bad of ["", ".x", "-x", "a:b", "a/b", "a b", "é", "x".repeat(65)]) {
    assert.throws(() => viewKey(bad), TypeError, bad);
  }
  assert.equal(viewKey("x".repeat(64)).length, 8 + 64);
});

Deno.test("saveView(), loadView(), listViews(), deleteView() keep views in the cache", async () => {
  const driver = new MemoryDriver();
  const cache = await Cache.open(driver, { bloom: false });
  assert.equal(await saveView(cache, VIEW), false);
  const { select: _select, ...whole } = VIEW;
  assert.equal(await saveView(cache, { ...whole, name: "all" }), false);
  assert.deepStrictEqual(await loadView(cache, "edges"), VIEW);
  assert.equal(await saveView(cache, { ...VIEW, where: "license = 'MIT'" }), true, "replaced");
  assert.equal((await loadView(cache, "edges"))?.where, "license = 'MIT'");
  assert.deepStrictEqual((await Array.fromAsync(listViews(cache))).map((v) => v.name), [
    "all",
    "edges",
  ]);
  const stored = JSON.parse(
    new TextDecoder().decode(await (await cache.get("v1:view:all"))!.bytes()),
  );
  assert.deepStrictEqual(Object.keys(stored), [
    "name",
    "origin",
    "registry",
    "type",
    "where",
    "createdAt",
  ]);
  assert.equal(await deleteView(cache, "edges"), true);
  assert.equal(await deleteView(cache, "edges"), false);
  assert.equal(await loadView(cache, "edges"), undefined);
  assert.deepStrictEqual((await Array.fromAsync(listViews(cache))).map((v) => v.name), ["all"]);
});

Deno.test("loadView() a stored definition that is not valid is an error naming the view", async () => {
  const cache = await Cache.open(new MemoryDriver(), { bloom: false });
  await cache.put("v1:view:broken", new TextEncoder().encode('{"name":"broken"}'), { status: 200 });
  await assert.rejects(() => loadView(cache, "broken"), /Cannot read view 'broken'/);
  await cache.put("v1:view:text", new TextEncoder().encode("not json"), { status: 200 });
  await assert.rejects(() => loadView(cache, "text"), /Cannot read view 'text'/);
});

Deno.test("checkViewDefinition() checks every field and compiles the expressions", () => {
  const bad: [
    Partial<ViewDefinition> & Record<string, unknown>,
    RegExp | typeof ViewExpressionError,
  ][] = [
    [{ name: "a b" }, /Invalid view name/],
    [{ origin: "a:b" }, /Invalid origin key/],
    [{ type: "partition" as "corgi" }, /type must be packument or corgi/],
    [{ select: 5 as unknown as string }, /select must be a string/],
    [{ createdAt: undefined as unknown as string }, /no createdAt/],
    [{ select: "name," }, ViewExpressionError],
    [{ where: "a = = b" }, ViewExpressionError],
  ];
  for (const [patch, expected] of bad) {
    assert.throws(
      () => checkViewDefinition({ ...VIEW, ...patch } as ViewDefinition),
      expected as RegExp,
    );
  }
  assert.throws(() => checkViewDefinition(null as unknown as ViewDefinition), /expected an object/);
  const extra = { ...VIEW, evil: "x" } as ViewDefinition;
  assert.equal("evil" in checkViewDefinition(extra), false);
});

Deno.test("viewDocumentPrefix() is the key prefix of the view's documents", () => {
  assert.equal(viewDocumentPrefix(VIEW), "v1:packument:registry.example.test:");
  assert.equal(viewDocumentPrefix({ origin: "npm", type: "corgi" }), "v1:corgi:npm:");
});
