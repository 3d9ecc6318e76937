import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { packumentKey } from "../../src/storage/keys.ts";
import {
  compileEnrichment,
  type EnrichEvent,
  EnrichMissingError,
  type EnrichOptions,
} from "../../src/views/enrich.ts";
import { ViewExpressionError } from "../../src/views/expressions.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { EXAMPLE_PACKUMENTS, seed } from "./seed.ts";

const PREFIX = "v1:packument:npm:";
const ADD = ["time[.version] as publishedAt", "versions[.version].dist.integrity as integrity"];

async function cache(): Promise<Cache> {
  const c = await Cache.open(new MemoryDriver(), { bloom: false });
  await seed(c, "npm", EXAMPLE_PACKUMENTS);
  return c;
}

async function run(
  c: Cache,
  lines: string[],
  options: Partial<EnrichOptions> = {},
): Promise<EnrichEvent[]> {
  const enrichment = compileEnrichment({ prefix: PREFIX, add: ADD, ...options });
  return await Array.fromAsync(enrichment.run(c, lines));
}

const SPECS = [
  '{"name":"native-addon","version":"1.0.0","resolved":"x"}',
  "",
  '{"name":"tidy-lib","version":"3.1.0"}',
  '{"name":"not-cached","version":"1.0.0"}',
  '{"name":"native-addon","version":"9.9.9"}',
];

Deno.test("compileEnrichment() adds the selected fields of each record's packument", async () => {
  const events = await run(await cache(), SPECS);
  assert.deepStrictEqual(events, [
    {
      type: "record",
      line: 1,
      text: JSON.stringify({
        name: "native-addon",
        version: "1.0.0",
        resolved: "x",
        publishedAt: "2015-06-01T00:00:00.000Z",
        integrity: "sha512-native-addon-1.0.0",
      }),
    },
    {
      type: "record",
      line: 3,
      text: JSON.stringify({
        name: "tidy-lib",
        version: "3.1.0",
        publishedAt: "2016-06-01T00:00:00.000Z",
        integrity: "sha512-tidy-lib-3.1.0",
      }),
    },
    {
      type: "record",
      line: 4,
      text: JSON.stringify({
        name: "not-cached",
        version: "1.0.0",
        publishedAt: null,
        integrity: null,
      }),
    },
    {
      type: "record",
      line: 5,
      text: JSON.stringify({
        name: "native-addon",
        version: "9.9.9",
        publishedAt: null,
        integrity: null,
      }),
    },
  ]);
});

Deno.test("compileEnrichment() --on-missing skip leaves the record out", async () => {
  const events = await run(await cache(), SPECS, { onMissing: "skip" });
  assert.deepStrictEqual(events.map((e) => [e.type, e.line]), [
    ["record", 1],
    ["record", 3],
    ["skipped", 4],
    ["record", 5],
  ]);
  assert.deepStrictEqual(events[2], {
    type: "skipped",
    line: 4,
    reason: "not-cached is not in the cache",
  });
});

Deno.test("compileEnrichment() --on-missing error stops at the record, after those before", async () => {
  const written: number[] = [];
  const enrichment = compileEnrichment({ prefix: PREFIX, add: ADD, onMissing: "error" });
  const error = await (async () => {
    for await (const event of enrichment.run(await cache(), SPECS)) written.push(event.line);
  })().catch((e) => e);
  assert.ok(error instanceof EnrichMissingError);
  assert.equal(error.line, 4);
  assert.equal(error.message, "Line 4: not-cached is not in the cache");
  assert.deepStrictEqual(written, [1, 3]);
});

Deno.test("compileEnrichment() a record without a name is missing; a line that is no object is invalid", async () => {
  const lines = ['{"version":"1.0.0"}', "[1,2]", "{oops", '"text"', '{"name":5}'];
  const events = await run(await cache(), lines, { onMissing: "skip" });
  assert.deepStrictEqual(events, [
    { type: "skipped", line: 1, reason: "no 'name' field" },
    { type: "invalid", line: 2, reason: "not a JSON object" },
    { type: "invalid", line: 3, reason: "not a JSON object" },
    { type: "invalid", line: 4, reason: "not a JSON object" },
    { type: "skipped", line: 5, reason: "no 'name' field" },
  ]);
});

Deno.test("compileEnrichment() --name-field and --version-field rename what the record holds", async () => {
  const events = await run(await cache(), ['{"pkg":"tidy-lib","v":"3.0.0"}'], {
    nameField: "pkg",
    versionField: "v",
    add: ["time[.version] as at, versions[.version].dependencies | keys as deps, [.name] as x"],
  });
  assert.deepStrictEqual(JSON.parse((events[0] as { text: string }).text), {
    pkg: "tidy-lib",
    v: "3.0.0",
    at: "2015-06-01T00:00:00.000Z",
    deps: ["ms"],
    x: null,
  });
});

Deno.test("compileEnrichment() an added field replaces an input field of that name", async () => {
  const events = await run(await cache(), ['{"name":"tidy-lib","license":"?"}'], {
    add: ["license"],
  });
  assert.equal((events[0] as { text: string }).text, '{"name":"tidy-lib","license":"ISC"}');
});

Deno.test("compileEnrichment() reads each packument once for the records naming it", async () => {
  const c = await cache();
  let reads = 0;
  const driver = c.driver;
  const get = driver.get.bind(driver);
  driver.get = (key: string) => {
    if (key === packumentKey("npm", "native-addon")) reads++;
    return get(key);
  };
  const lines = Array.from(
    { length: 200 },
    (_, i) => JSON.stringify({ name: "native-addon", version: i % 2 ? "1.0.0" : "1.1.0" }),
  );
  const events = await run(c, lines, { window: 16 });
  assert.equal(events.length, 200);
  assert.equal(reads, 1);
});

Deno.test("compileEnrichment() rejects bad expressions and options", () => {
  assert.throws(
    () => compileEnrichment({ prefix: PREFIX, add: ["time[.version"] }),
    ViewExpressionError,
  );
  assert.throws(() => compileEnrichment({ prefix: PREFIX, add: [] }), /no field to add/);
  assert.throws(
    () => compileEnrichment({ prefix: PREFIX, add: ["a as x", "b as x"] }),
    /two added fields are named 'x'/,
  );
  assert.throws(
    () => compileEnrichment({ prefix: PREFIX, add: ADD, onMissing: "ignore" as "skip" }),
    /'onMissing' must be skip, null or error/,
  );
  assert.throws(() => compileEnrichment({ prefix: PREFIX, add: ADD, window: 0 }), RangeError);
});
