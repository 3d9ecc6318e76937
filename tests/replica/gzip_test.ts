import assert from "node:assert/strict";
import { acceptsGzip, createReplicaApp } from "../../src/replica/app.ts";
import { Cache } from "../../src/storage/cache.ts";
import { gunzipStream } from "../../src/storage/encoding.ts";
import { packumentKey } from "../../src/storage/keys.ts";
import { readAll } from "../../src/_util/bytes.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

const encoder = new TextEncoder();
const FULL = "application/json";

function doc(name: string, versions: number): Uint8Array {
  const v: Record<string, unknown> = {};
  for (let i = 0; i < versions; i++) {
    v[`1.0.${i}`] = { name, version: `1.0.${i}`, dist: { tarball: `t/${i}`, shasum: "x" } };
  }
  return encoder.encode(JSON.stringify({ name, "dist-tags": { latest: "1.0.0" }, versions: v }));
}

async function replica() {
  const cache = await Cache.open(new MemoryDriver(), { bloom: false, inlineMax: 256 });
  const docs = { small: doc("small", 1), big: doc("big", 200), plain: doc("plain", 200) };
  for (const [name, bytes] of Object.entries(docs)) {
    await cache.put(packumentKey("npm", name), bytes, { status: 200, contentType: FULL }, {
      encoding: name === "plain" ? "identity" : "gzip",
    });
  }
  return { cache, docs, app: createReplicaApp({ cache, packumentOrigin: () => "npm" }) };
}

Deno.test("acceptsGzip() reads Accept-Encoding with q-values", () => {
  assert.equal(acceptsGzip(undefined), false);
  assert.equal(acceptsGzip("gzip, deflate, br"), true);
  assert.equal(acceptsGzip("br;q=1.0, gzip;q=0.5"), true);
  assert.equal(acceptsGzip("gzip;q=0"), false);
  assert.equal(acceptsGzip("identity"), false);
  assert.equal(acceptsGzip("*"), true);
  assert.equal(acceptsGzip("gzip;q=0, *"), false);
});

Deno.test("the replica sends a gzip body as stored to gzip clients, decoded to others", async () => {
  const { app, cache, docs } = await replica();
  for (const name of ["small", "big"] as const) {
    const info = (await cache.info(packumentKey("npm", name)))!;
    assert.equal(info.encoding, "gzip");
    const zipped = await app.request(`/${name}`, {
      headers: { accept: FULL, "accept-encoding": "gzip, deflate" },
    });
    assert.equal(zipped.status, 200);
    assert.equal(zipped.headers.get("content-encoding"), "gzip");
    assert.equal(zipped.headers.get("vary"), "Accept, Accept-Encoding");
    assert.equal(zipped.headers.get("etag"), `"${info.integrity}"`);
    assert.equal(zipped.headers.get("content-length"), String(info.size));
    const raw = new Uint8Array(await zipped.arrayBuffer());
    assert.equal(raw.length, info.size, "the stored bytes, not decoded");
    assert.deepEqual(
      await readAll(ReadableStream.from([raw]).pipeThrough(gunzipStream())),
      docs[name],
    );

    const plain = await app.request(`/${name}`, { headers: { accept: FULL } });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("content-encoding"), null);
    assert.equal(plain.headers.get("etag"), `"${info.integrity}.identity"`);
    assert.equal(plain.headers.get("content-length"), String(docs[name].length));
    assert.deepEqual(new Uint8Array(await plain.arrayBuffer()), docs[name]);

    // Each representation revalidates under its own ETag only.
    const notModified = await app.request(`/${name}`, {
      headers: { accept: FULL, "accept-encoding": "gzip", "if-none-match": `"${info.integrity}"` },
    });
    assert.equal(notModified.status, 304);
    const other = await app.request(`/${name}`, {
      headers: { accept: FULL, "if-none-match": `"${info.integrity}"` },
    });
    assert.equal(other.status, 200);
    await other.body?.cancel();
    const head = await app.request(`/${name}`, {
      method: "HEAD",
      headers: { accept: FULL, "accept-encoding": "gzip" },
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-encoding"), "gzip");
  }
  // Identity bodies go as they are to every client.
  const info = (await cache.info(packumentKey("npm", "plain")))!;
  const plain = await app.request("/plain", {
    headers: { accept: FULL, "accept-encoding": "gzip" },
  });
  assert.equal(plain.headers.get("content-encoding"), null);
  assert.equal(plain.headers.get("etag"), `"${info.integrity}"`);
  assert.deepEqual(new Uint8Array(await plain.arrayBuffer()), docs.plain);
});

Deno.test("the replica derives the abbreviated document from a gzip full one", async () => {
  const { app, docs } = await replica();
  for (const ae of ["gzip", "identity"]) {
    const response = await app.request("/big", {
      headers: { accept: "application/vnd.npm.install-v1+json", "accept-encoding": ae },
    });
    assert.equal(response.status, 200);
    const corgi = await response.json();
    const full = JSON.parse(new TextDecoder().decode(docs.big));
    assert.deepEqual(Object.keys(corgi.versions), Object.keys(full.versions));
  }
});
