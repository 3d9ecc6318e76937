import assert from "node:assert/strict";
import { documentNeeds, parsePartial } from "../../src/views/partial_json.ts";
import { compileSelect, compileWhere } from "../../src/views/expressions.ts";
import { generatePackument, loadFixturePackuments, prng } from "../_support/packuments.ts";
import { EXAMPLE_PACKUMENTS } from "./seed.ts";

const encoder = new TextEncoder();

/** The records a select and a where give from a full parse and from a partial one. */
function both(text: string, select: string, where?: string): [unknown, unknown] {
  const s = compileSelect(select);
  const w = where === undefined ? () => true : compileWhere(where);
  // As a scan parses a whole document: decoded (a byte order mark dropped), then JSON.parse.
  const full = JSON.parse(new TextDecoder().decode(encoder.encode(text)));
  const need = documentNeeds(select, where);
  const partial = need === undefined ? full : parsePartial(encoder.encode(text), need);
  return [w(full) ? s.project(full) : "filtered", w(partial) ? s.project(partial) : "filtered"];
}

const SELECTS = [
  "name",
  "name, versions | keys | length as n, time.modified",
  "versions | keys, versions | length",
  "versions | values | length",
  "versions[dist-tags.latest].dependencies | keys as deps, name",
  'time["1.0.0"], time | keys | sort | last',
  "dist-tags, dist-tags.latest",
  "maintainers[0].name, maintainers | length, maintainers.name",
  "versions | keys | first as first, versions | entries | length",
  "missing.deeper, name.length, readme | length",
  '["__proto__"].x, constructor, ["dup"]',
  '["é"], ["a\\"b"], ["k\\\\"], ["\\u00e9t\\u00e9"]',
];

const WHERES = [
  undefined,
  "versions | keys | length > 1",
  'license = "MIT" || license = null',
  "versions[dist-tags.latest].scripts.install != null",
  "!(time.modified < '2000')",
];

Deno.test("parsePartial() reads as JSON.parse through the paths it was made for", async () => {
  const texts = [
    ...[...(await loadFixturePackuments()).values()].map((b) => new TextDecoder().decode(b)),
    ...Object.values(EXAMPLE_PACKUMENTS).map((d) => JSON.stringify(d)),
    ...Object.values(EXAMPLE_PACKUMENTS).map((d) => JSON.stringify(d, null, 2)),
    generatePackument("gen", { versions: 40, seed: 3 }),
    generatePackument("@s/gen", { versions: 3, seed: 4, targetBytes: 20000 }),
    '{"__proto__":{"x":1},"constructor":2,"dup":1,"dup":{"a":[1,{"b":"}"}]}}',
    '{"\\u00e9t\\u00e9":1,"é":"\\"quoted\\\\","a\\"b":[],"k\\\\":{"}":"{"}}',
    '\ufeff  {\n\t"name" : "bom" ,\r\n "versions" : { "1" : { } , "2":null } }  \n',
    '{"name":"x","versions":[1,2,3],"time":"not an object","dist-tags":{"latest":2}}',
    '{"name":null,"versions":{},"time":{},"maintainers":"a"}',
    '{"name":-1.5e+3,"versions":{"a":true,"b":false,"c":null,"d":-0,"e":12e-1}}',
  ];
  let checked = 0;
  for (const text of texts) {
    for (const select of SELECTS) {
      for (const where of WHERES) {
        const [full, partial] = both(text, select, where);
        assert.deepStrictEqual(partial, full, `${select} | ${where} of ${text.slice(0, 60)}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 1000);
});

Deno.test("parsePartial() matches JSON.parse on random documents and paths", () => {
  const random = prng(7);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const keys = ["a", "b", "c", "dist-tags", "é", "x y", 'q"', "0", "10", "__proto__"];
  const value = (depth: number): unknown => {
    const r = random();
    if (depth > 3 || r < 0.3) {
      return pick([null, true, false, 0, -2.5, 1e21, "", "s", 'q"\\', "\u2028", "}{][,:"]);
    }
    if (r < 0.55) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
    const out: Record<string, unknown> = {};
    for (let i = 0; i < Math.floor(random() * 5); i++) {
      Object.defineProperty(out, pick(keys), {
        value: value(depth + 1),
        enumerable: true,
        configurable: true,
        writable: true,
      });
    }
    return out;
  };
  const path = (): string => {
    const steps: string[] = [];
    for (let i = 0; i < 1 + Math.floor(random() * 3); i++) {
      const key = pick(keys);
      steps.push(i === 0 && /^[a-z]+$/.test(key) ? key : `[${JSON.stringify(key)}]`);
    }
    const transforms = random() < 0.5
      ? ` | ${pick(["keys", "length", "values", "sort", "first"])}`
      : "";
    return steps.join("") + transforms;
  };
  for (let round = 0; round < 500; round++) {
    const doc = { a: value(0), b: value(0), [pick(keys)]: value(0) };
    const pretty = random() < 0.3;
    const text = pretty ? JSON.stringify(doc, null, 1) : JSON.stringify(doc);
    const paths = Array.from({ length: 1 + Math.floor(random() * 3) }, path);
    const select = paths.map((p, i) => `${p} as f${i}`).join(", ");
    const where = random() < 0.5 ? `${path()} != null || ${path()} = 0` : undefined;
    const [full, partial] = both(text, select, where);
    assert.deepStrictEqual(partial, full, `${select} | ${where} of ${text}`);
  }
});

Deno.test("documentNeeds() asks for keys, members or everything", () => {
  assert.equal(documentNeeds(undefined, "a"), undefined, "no select: the whole document");
  assert.equal(documentNeeds("a | values, b", undefined)?.fields.get("a")?.all, true);
  const needs = documentNeeds(
    "versions | keys, versions['1'].x, time | length",
    "dist-tags.latest",
  )!;
  const versions = needs.fields.get("versions")!;
  assert.deepStrictEqual([versions.all, versions.keys, [...versions.fields.keys()]], [false, true, [
    "1",
  ]]);
  assert.equal(needs.fields.get("time")?.keys, true);
  assert.equal(needs.fields.get("dist-tags")?.fields.get("latest")?.all, true);
  const ref = documentNeeds("versions[dist-tags.latest].x", undefined)!;
  assert.equal(ref.fields.get("versions")?.all, true);
  assert.equal(ref.fields.get("dist-tags")?.fields.get("latest")?.all, true);
  assert.equal(documentNeeds("maintainers[0]", undefined)?.fields.get("maintainers")?.all, true);
});

Deno.test("parsePartial() rejects what is not JSON as far as it reads", () => {
  const need = documentNeeds("name, versions | keys", undefined)!;
  for (
    const bad of [
      "",
      "{",
      '{"name":"x"',
      '{"name":"x",}',
      '{"name" "x"}',
      '{name:"x"}',
      '{"name":"x"} trailing',
      '{"versions":{"a":{"b":[1,2}}',
      '{"versions":{"a":"unterminated}}',
      '{"name":tru}',
      '{"name":}',
    ]
  ) {
    assert.throws(() => parsePartial(encoder.encode(bad), need), SyntaxError, bad);
  }
  assert.deepStrictEqual(
    parsePartial(encoder.encode("[1]"), need),
    [1],
    "not an object: parsed whole",
  );
  assert.deepStrictEqual(parsePartial(encoder.encode(" {} "), need), {});
});
