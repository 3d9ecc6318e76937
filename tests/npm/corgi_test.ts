import assert from "node:assert/strict";
import {
  ABBREVIATED_VERSION_FIELDS,
  abbreviatePackument,
  modifiedOf,
} from "../../src/npm/corgi.ts";

Deno.test("abbreviatePackument() keeps only the install fields of each version", () => {
  const manifest: Record<string, unknown> = { readme: "x", scripts: { test: "t" }, _id: "a@1" };
  for (const field of ABBREVIATED_VERSION_FIELDS) manifest[field] = `value of ${field}`;
  manifest.engines = undefined;
  const corgi = abbreviatePackument({
    _id: "a",
    _rev: "3-abc",
    name: "a",
    readme: "long",
    maintainers: [],
    "dist-tags": { latest: "1.0.0" },
    versions: { "1.0.0": manifest, "2.0.0": "not an object" },
    time: { modified: "2024-02-02T00:00:00.000Z" },
  });
  assert.deepEqual(Object.keys(corgi), ["name", "dist-tags", "versions", "modified"]);
  const versions = corgi.versions as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(versions), ["1.0.0"], "a version that is not an object is left out");
  const kept = versions["1.0.0"]!;
  assert.deepEqual(
    Object.keys(kept),
    ABBREVIATED_VERSION_FIELDS.filter((f) => f !== "engines"),
    "fields in their order, an undefined one left out",
  );
  assert.equal(kept.dist, "value of dist");
});

Deno.test("abbreviatePackument() fills dist-tags and versions, and leaves out a missing modified", () => {
  const corgi = abbreviatePackument({ name: "bare", "dist-tags": ["not", "a", "record"] });
  assert.deepEqual(corgi, { name: "bare", "dist-tags": {}, versions: {} });
});

Deno.test("abbreviatePackument() refuses what is not a package document", () => {
  for (const value of [null, "a", [], { versions: {} }, { name: 1 }]) {
    assert.throws(() => abbreviatePackument(value), TypeError);
  }
});

Deno.test("modifiedOf() reads time.modified, else the latest valid date in time", () => {
  assert.equal(
    modifiedOf({ time: { modified: "2020-01-01T00:00:00.000Z", "1.0.0": "2030-01-01" } }),
    "2020-01-01T00:00:00.000Z",
  );
  assert.equal(
    modifiedOf({
      time: {
        created: "2019-01-01T00:00:00.000Z",
        "1.0.0": "2021-06-01T00:00:00.000Z",
        "0.9.0": "not a date",
        unpublished: { time: "2099-01-01" },
      },
    }),
    "2021-06-01T00:00:00.000Z",
  );
  assert.equal(modifiedOf({ time: {} }), undefined);
  assert.equal(modifiedOf({ time: "2020" }), undefined);
  assert.equal(modifiedOf(null), undefined);
});
