import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import type { ViewDefinition } from "../../src/views/definition.ts";
import { type JoinMode, joinProblem, joinsByName, joinViews } from "../../src/views/join.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { seed } from "./seed.ts";

const createdAt = "2024-01-01T00:00:00.000Z";

function view(name: string, origin: string, rest: Partial<ViewDefinition> = {}): ViewDefinition {
  return { name, origin, type: "packument", createdAt, ...rest };
}

/** Public has a, b, c, d; private has a, c (c changed), e. */
async function registries(): Promise<Cache> {
  const cache = await Cache.open(new MemoryDriver(), { bloom: false });
  await seed(cache, "public", {
    a: { name: "a", license: "MIT", stars: 1 },
    b: { name: "b", license: "ISC", stars: 2 },
    c: { name: "c", license: "MIT", stars: 3 },
    d: { name: "d", stars: 4 },
  });
  await seed(cache, "private", {
    a: { name: "a", license: "MIT", owner: "x" },
    c: { name: "c", license: "Apache-2.0", owner: "y" },
    e: { name: "e", license: "ISC", owner: "z" },
  });
  return cache;
}

async function join(
  cache: Cache,
  left: ViewDefinition,
  right: ViewDefinition,
  mode: JoinMode,
  on?: string,
): Promise<unknown[]> {
  const lines: string[] = [];
  for await (const r of joinViews(cache, left, right, { mode, ...(on ? { on } : {}) })) {
    lines.push(...r.lines);
  }
  return lines.map((l) => JSON.parse(l));
}

const PUB = view("pub", "public", { select: "name, license" });
const PRIV = view("priv", "private", { select: "name, owner" });

Deno.test("joinViews() by name: every mode, the right side from another origin", async () => {
  const cache = await registries();
  const l = (name: string, license: string | null = "MIT") => ({ name, license });
  const r = (name: string, owner: string) => ({ name, owner });
  assert.deepStrictEqual(await join(cache, PUB, PRIV, "left"), [
    { key: "a", left: l("a"), right: r("a", "x") },
    { key: "b", left: l("b", "ISC"), right: null },
    { key: "c", left: l("c"), right: r("c", "y") },
    { key: "d", left: l("d", null), right: null },
  ]);
  assert.deepStrictEqual(await join(cache, PUB, PRIV, "inner"), [
    { key: "a", left: l("a"), right: r("a", "x") },
    { key: "c", left: l("c"), right: r("c", "y") },
  ]);
  assert.deepStrictEqual(await join(cache, PUB, PRIV, "right"), [
    { key: "a", left: l("a"), right: r("a", "x") },
    { key: "c", left: l("c"), right: r("c", "y") },
    { key: "e", left: null, right: r("e", "z") },
  ]);
  assert.deepStrictEqual(await join(cache, PUB, PRIV, "full"), [
    { key: "a", left: l("a"), right: r("a", "x") },
    { key: "b", left: l("b", "ISC"), right: null },
    { key: "c", left: l("c"), right: r("c", "y") },
    { key: "d", left: l("d", null), right: null },
    { key: "e", left: null, right: r("e", "z") },
  ]);
  // The upstream's "packages on npm but not in my private registry".
  assert.deepStrictEqual(await join(cache, PUB, PRIV, "diff"), [
    { key: "b", left: l("b", "ISC"), right: null },
    { key: "d", left: l("d", null), right: null },
  ]);
});

Deno.test("joinViews() by name honours each view's where", async () => {
  const cache = await registries();
  const mit = view("mit", "public", { select: "name", where: "license = 'MIT'" });
  const owned = view("owned", "private", { select: "name", where: "owner != 'x'" });
  assert.deepStrictEqual(await join(cache, mit, owned, "left"), [
    { key: "a", left: { name: "a" }, right: null },
    { key: "c", left: { name: "c" }, right: { name: "c" } },
  ]);
  assert.deepStrictEqual(await join(cache, mit, owned, "full"), [
    { key: "a", left: { name: "a" }, right: null },
    { key: "c", left: { name: "c" }, right: { name: "c" } },
    { key: "e", left: null, right: { name: "e" } },
  ]);
  assert.deepStrictEqual(await join(cache, mit, owned, "diff"), [
    { key: "a", left: { name: "a" }, right: null },
  ]);
});

Deno.test("joinViews() of whole documents, and of views without a name field", async () => {
  const cache = await registries();
  const whole = view("whole", "private");
  const stars = view("stars", "public", { select: "stars" });
  assert.deepStrictEqual(await join(cache, stars, whole, "inner"), [
    { key: "a", left: { stars: 1 }, right: { name: "a", license: "MIT", owner: "x" } },
    { key: "c", left: { stars: 3 }, right: { name: "c", license: "Apache-2.0", owner: "y" } },
  ]);
});

Deno.test("joinViews() on another field: matches held by key, null keys never match", async () => {
  const cache = await registries();
  const pub = view("pub", "public", { select: "name, license" });
  const priv = view("priv", "private", { select: "name as owned, license" });
  assert.equal(joinsByName(pub, priv, "license"), false);
  const k = (v: unknown) => v;
  assert.deepStrictEqual(await join(cache, pub, priv, "left", "license"), [
    { key: k("MIT"), left: { name: "a", license: "MIT" }, right: { owned: "a", license: "MIT" } },
    { key: "ISC", left: { name: "b", license: "ISC" }, right: { owned: "e", license: "ISC" } },
    { key: "MIT", left: { name: "c", license: "MIT" }, right: { owned: "a", license: "MIT" } },
    { key: null, left: { name: "d", license: null }, right: null },
  ]);
  assert.deepStrictEqual(await join(cache, pub, priv, "inner", "license"), [
    { key: "MIT", left: { name: "a", license: "MIT" }, right: { owned: "a", license: "MIT" } },
    { key: "ISC", left: { name: "b", license: "ISC" }, right: { owned: "e", license: "ISC" } },
    { key: "MIT", left: { name: "c", license: "MIT" }, right: { owned: "a", license: "MIT" } },
  ]);
  assert.deepStrictEqual(await join(cache, pub, priv, "diff", "license"), [
    { key: null, left: { name: "d", license: null }, right: null },
  ]);
  assert.deepStrictEqual(await join(cache, pub, priv, "right", "license"), [
    { key: "MIT", left: { name: "a", license: "MIT" }, right: { owned: "a", license: "MIT" } },
    { key: "MIT", left: { name: "c", license: "MIT" }, right: { owned: "a", license: "MIT" } },
    {
      key: "Apache-2.0",
      left: null,
      right: { owned: "c", license: "Apache-2.0" },
    },
    { key: "ISC", left: { name: "b", license: "ISC" }, right: { owned: "e", license: "ISC" } },
  ]);
  assert.deepStrictEqual(await join(cache, pub, priv, "full", "license"), [
    { key: "MIT", left: { name: "a", license: "MIT" }, right: { owned: "a", license: "MIT" } },
    { key: "ISC", left: { name: "b", license: "ISC" }, right: { owned: "e", license: "ISC" } },
    { key: "MIT", left: { name: "c", license: "MIT" }, right: { owned: "a", license: "MIT" } },
    { key: null, left: { name: "d", license: null }, right: null },
    {
      key: "Apache-2.0",
      left: null,
      right: { owned: "c", license: "Apache-2.0" },
    },
  ]);
});

Deno.test("joinViews() a name field made of something else joins on values, not keys", async () => {
  const cache = await registries();
  const left = view("l", "public", { select: "license as name" });
  const right = view("r", "private", { select: "license as name, owner" });
  assert.equal(joinsByName(left, right, "name"), false);
  assert.deepStrictEqual(await join(cache, left, right, "inner"), [
    { key: "MIT", left: { name: "MIT" }, right: { name: "MIT", owner: "x" } },
    { key: "ISC", left: { name: "ISC" }, right: { name: "ISC", owner: "z" } },
    { key: "MIT", left: { name: "MIT" }, right: { name: "MIT", owner: "x" } },
  ]);
});

Deno.test("joinProblem() names a view without the join field", () => {
  assert.equal(joinProblem(PUB, PRIV, "name"), undefined);
  assert.equal(
    joinProblem(PUB, PRIV, "license"),
    "View 'priv' has no field 'license' to join on (its fields: name, owner)",
  );
  assert.equal(joinProblem(view("x", "o"), view("y", "o"), "anything"), undefined);
});

Deno.test("joinViews() rejects a join it cannot do", async () => {
  const cache = await registries();
  await assert.rejects(() => join(cache, PUB, PRIV, "left", "owner"), /no field 'owner'/);
  await assert.rejects(() => join(cache, PUB, PRIV, "sideways" as JoinMode), /unknown mode/);
});
