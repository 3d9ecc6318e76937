import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { mapReduce } from "../../src/views/map_reduce.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { EXAMPLE_PACKUMENTS, seed } from "./seed.ts";

const PREFIX = "v1:packument:npm:";
const scan = { importModule: (url: string) => import(url) };

function moduleUrl(source: string): string {
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

async function cache(): Promise<Cache> {
  const c = await Cache.open(new MemoryDriver(), { bloom: false });
  await seed(c, "npm", EXAMPLE_PACKUMENTS);
  return c;
}

const EDGES = moduleUrl(`
  export function map(doc, emit) {
    const latest = doc.versions[doc["dist-tags"].latest];
    for (const dep of Object.keys(latest.dependencies ?? {})) emit(dep, doc.name);
  }
`);

Deno.test("mapReduce() without reduce: every pair, sorted by key, name order within a key", async () => {
  const lines = await Array.fromAsync(
    mapReduce(await cache(), { prefix: PREFIX, module: EDGES, scan }),
  );
  assert.deepStrictEqual(lines, [
    '{"key":"debug","value":"tidy-lib"}',
    '{"key":"left-pad","value":"sketchy-helper"}',
    '{"key":"ms","value":"sketchy-helper"}',
    '{"key":"ms","value":"tidy-lib"}',
    '{"key":"nan","value":"native-addon"}',
    '{"key":"node-gyp","value":"native-addon"}',
    '{"key":"prebuild-install","value":"prebuilt-addon"}',
  ]);
});

Deno.test("mapReduce() with reduce: one line per key", async () => {
  const reduce = (_key: unknown, values: unknown[]) => values.length;
  const lines = await Array.fromAsync(
    mapReduce(await cache(), { prefix: PREFIX, module: EDGES, reduce, scan }),
  );
  assert.deepStrictEqual(lines, [
    '{"key":"debug","value":1}',
    '{"key":"left-pad","value":1}',
    '{"key":"ms","value":2}',
    '{"key":"nan","value":1}',
    '{"key":"node-gyp","value":1}',
    '{"key":"prebuild-install","value":1}',
  ]);
});

Deno.test("mapReduce() keys of any JSON type, in collation order; equal objects group", async () => {
  const module = moduleUrl(`
    export async function map(doc, emit) {
      await null;
      emit(doc.name.length % 4 ? [doc.name.length, "odd"] : doc.name.length, 1);
      emit({ b: 1, a: doc.name.length > 9 }, doc.name);
      emit(null);
      emit(doc.name === "tidy-lib" ? true : "s");
    }
  `);
  const reduce = async (key: unknown, values: unknown[]) => {
    await null;
    return { key, n: values.length };
  };
  const lines = await Array.fromAsync(
    mapReduce(await cache(), { prefix: PREFIX, module, reduce, scan }),
  );
  assert.deepStrictEqual(lines.map((l) => JSON.parse(l).key), [
    null,
    true,
    8,
    12,
    16,
    "s",
    [14, "odd"],
    { a: false, b: 1 },
    { a: true, b: 1 },
  ]);
  assert.deepStrictEqual(JSON.parse(lines[0]!).value, { key: null, n: 5 });
  assert.deepStrictEqual(JSON.parse(lines.at(-1)!).value, { key: { a: true, b: 1 }, n: 4 });
});

Deno.test("mapReduce() over an empty origin gives nothing", async () => {
  const lines = await Array.fromAsync(
    mapReduce(await cache(), { prefix: "v1:packument:none:", module: EDGES, scan }),
  );
  assert.deepStrictEqual(lines, []);
});

Deno.test("mapReduce() a module without map is refused", async () => {
  const c = await cache();
  await assert.rejects(
    () =>
      Array.fromAsync(
        mapReduce(c, {
          prefix: PREFIX,
          module: moduleUrl("export const x = 1;"),
          scan,
        }),
      ),
    /exports no map\(doc, emit\) function/,
  );
});
