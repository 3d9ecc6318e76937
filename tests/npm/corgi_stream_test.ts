import assert from "node:assert/strict";
import { abbreviatePackument } from "../../src/npm/corgi.ts";
import { abbreviatedStream, planAbbreviation } from "../../src/npm/corgi_stream.ts";
import { generatePackument, loadFixturePackuments, prng } from "../_support/packuments.ts";

const encoder = new TextEncoder();

/** A stream of `bytes` cut into pieces of the sizes `cut` picks (1 byte and up). */
function pieces(bytes: Uint8Array, cut: () => number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      const size = Math.max(1, cut());
      // A fresh copy each time: the walker must not rely on a chunk outliving its push.
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

async function derive(bytes: Uint8Array, cut: () => number): Promise<string> {
  const plan = await planAbbreviation(pieces(bytes, cut));
  return await new Response(abbreviatedStream(pieces(bytes, cut), plan)).text();
}

function expected(bytes: Uint8Array): string {
  return JSON.stringify(abbreviatePackument(JSON.parse(new TextDecoder().decode(bytes))));
}

Deno.test("abbreviatedStream() gives the bytes of abbreviatePackument() for every fixture, however cut", async () => {
  const fixtures = await loadFixturePackuments();
  assert.ok(fixtures.size >= 5);
  const random = prng(11);
  for (const [name, bytes] of fixtures) {
    const want = expected(bytes);
    assert.equal(await derive(bytes, () => 64 * 1024), want, `${name} in 64 KiB pieces`);
    assert.equal(
      await derive(bytes, () => Math.floor(random() * 4096)),
      want,
      `${name} in random pieces`,
    );
  }
});

Deno.test("abbreviatedStream() matches JSON.parse on escapes, whitespace, repeated keys and odd values, cut at every byte", async () => {
  const texts = [
    // Escapes (quotes and backslashes at chunk edges), multi-byte UTF-8, pretty-printing.
    JSON.stringify(
      {
        name: 'q"uo\\te\u00e9\u{1f600}',
        "dist-tags": { latest: "1.0.0", "\\": '"' },
        time: { created: "2020-01-01T00:00:00.000Z", "1.0.0": "2021-01-01T00:00:00.000Z" },
        versions: {
          "1.0.0": { name: "x", dist: { tarball: 'a\\"b' }, readme: '}"{[', bin: { "a}": "[" } },
          "2.0.0": "not an object",
          "3.0.0": { version: "3.0.0", deprecated: "é\n\t", scripts: { a: "]" } },
        },
        readme: '\\\\\\"',
      },
      null,
      2,
    ),
    // A version named __proto__ is a version like any other.
    '{"name":"p","versions":{"__proto__":{"version":"proto","scripts":{}},"1":{}}}',
    // Keys like array indexes come first in a JavaScript object, in numeric order.
    '{"name":"i","versions":{"a":{},"10":{"os":[]},"2":{},"01":{},"4294967295":{},"2":{"cpu":[]}}}',
    // Repeated keys: the last one counts, at the place of the first (as JSON.parse does).
    '{"versions":{"1.0.0":{"version":"old"}},"name":"a","name":"b","dist-tags":[1],' +
    '"versions":{"2.0.0":{"version":"2"},"1.0.0":{"version":"first"},"3.0.0":1,' +
    '"1.0.0":{"version":"last","os":["x"]},"3.0.0":{"cpu":[]}},"time":{"modified":"m"}}',
    // Numbers and literals of every shape, empty containers, a top-level scalar last.
    '{ "name" : "n" , "versions" : { "1" : { "dist" : { "n" : [ -1.5e+3 , 0 , true , null ] } ,' +
    ' "engines" : { } } , "2" : { } } , "versions2" : 12 , "z" : false }',
    // versions that is not an object, and no versions at all.
    '{"name":"n","versions":[{"a":1}],"dist-tags":"x"}',
    '{"name":"n"}',
  ];
  for (const text of texts) {
    const bytes = encoder.encode(text);
    const want = expected(bytes);
    for (let size = 1; size <= 9; size++) {
      assert.equal(await derive(bytes, () => size), want, `${text} in pieces of ${size}`);
    }
    assert.equal(await derive(bytes, () => bytes.length), want, text);
  }
});

Deno.test("abbreviatedStream() matches on generated documents with many versions", async () => {
  const random = prng(5);
  for (const versions of [1, 40, 400]) {
    const bytes = encoder.encode(generatePackument("gen", { versions, seed: versions }));
    assert.equal(
      await derive(bytes, () => 1 + Math.floor(random() * 70000)),
      expected(bytes),
      `${versions} versions`,
    );
  }
});

Deno.test("planAbbreviation() refuses what abbreviatePackument() refuses", async () => {
  for (const text of ['{"name":1}', "[1]", '"x"', '{"name":"a"', '{"name":"a"}x', "<html>", ""]) {
    await assert.rejects(
      planAbbreviation(pieces(encoder.encode(text), () => 3)),
      TypeError,
      text,
    );
    assert.throws(() => abbreviatePackument(JSON.parse(text === "" ? "null" : text)));
  }
});
