import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  abbreviate,
  CORGI_VERSION_FIELDS,
  FIXTURE_PACKUMENTS_DIR,
  generatePackument,
  generatePackumentChunks,
  loadFixturePackuments,
  modifiedOf,
  TARBALL_HOST,
} from "./packuments.ts";
import {
  CORGI_TYPE,
  failEvery,
  failNth,
  type Fault,
  nameFromPath,
  onlyName,
  onlyPath,
  packumentPath,
  type PackumentSource,
  representationFor,
  startRegistryFixture,
} from "./registry_fixture.ts";
import { startVerdaccio, type Verdaccio } from "./verdaccio.ts";
import { start } from "./spawn.ts";

const JSON_TYPE = "application/json";
/** The `Accept` header npm itself sends for installs. */
const NPM_ACCEPT = `${CORGI_TYPE}; q=1.0, ${JSON_TYPE}; q=0.8, */*`;
const decoder = new TextDecoder();

interface Got {
  status: number;
  headers: Headers;
  bytes: Uint8Array;
}

async function get(
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<Got> {
  const response = await fetch(url, { method, headers });
  return {
    status: response.status,
    headers: response.headers,
    bytes: new Uint8Array(await response.arrayBuffer()),
  };
}

function text(got: Got): string {
  return decoder.decode(got.bytes);
}

/**
 * A request written by hand over TCP (`fetch` always adds `Accept: *\/*`, and normalises
 * nothing else we need), with `Connection: close`; returns status, headers and the raw body.
 */
async function raw(
  base: string,
  path: string,
  headers: string[] = [],
): Promise<{ status: number; headers: Map<string, string>; body: Uint8Array }> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    const head = [`GET ${path} HTTP/1.1`, `host: ${url.host}`, "connection: close", ...headers];
    await conn.write(new TextEncoder().encode(head.join("\r\n") + "\r\n\r\n"));
    const parts: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      parts.push(buf.slice(0, n));
    }
    const all = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    const text = decoder.decode(all);
    const end = text.indexOf("\r\n\r\n");
    assert.ok(end > 0, `no response head: ${JSON.stringify(text.slice(0, 200))}`);
    const lines = text.slice(0, end).split("\r\n");
    const map = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      map.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    const headBytes = new TextEncoder().encode(text.slice(0, end + 4)).length;
    return { status: Number(lines[0]!.split(" ")[1]), headers: map, body: all.subarray(headBytes) };
  } finally {
    conn.close();
  }
}

function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------------------------

Deno.test("packuments: fixtures, generator and abbreviation", async (t) => {
  await t.step(
    "fixture files load as exact bytes and point tarballs at the test host",
    async () => {
      const docs = await loadFixturePackuments();
      assert.ok(docs.size >= 5, `only ${docs.size} fixtures`);
      for (const [name, bytes] of docs) {
        const file = new URL(`${encodeURIComponent(name)}.json`, FIXTURE_PACKUMENTS_DIR);
        assert.deepEqual(bytes, await Deno.readFile(file));
        assert.ok(bytes.length < 200_000, `${name} is ${bytes.length} bytes`);
        const doc = JSON.parse(decoder.decode(bytes));
        assert.equal(doc.name, name);
        for (const manifest of Object.values(doc.versions) as { dist: { tarball: string } }[]) {
          assert.equal(new URL(manifest.dist.tarball).host, TARBALL_HOST);
        }
      }
    },
  );

  await t.step("generated documents are deterministic, realistic and chunk-equal", () => {
    const a = generatePackument("@scope/widget", { versions: 12 });
    assert.equal(a, generatePackument("@scope/widget", { versions: 12 }));
    assert.equal(
      a,
      Array.from(generatePackumentChunks("@scope/widget", { versions: 12 })).join(""),
    );
    assert.notEqual(a, generatePackument("@scope/widget", { versions: 12, seed: 1 }));
    const doc = JSON.parse(a);
    assert.equal(doc._id, "@scope/widget");
    assert.equal(doc.name, "@scope/widget");
    assert.match(doc._rev, /^[0-9]+-[0-9a-f]{32}$/);
    assert.equal(Object.keys(doc.versions).length, 12);
    assert.ok(doc.versions[doc["dist-tags"].latest], "latest names a version");
    assert.ok(doc.time.created && doc.time.modified);
    assert.equal(typeof doc.readme, "string");
    type Manifest = {
      name: string;
      version: string;
      description: unknown;
      dependencies: unknown;
      scripts: unknown;
      maintainers: unknown;
      dist: { tarball: string; shasum: string; integrity: string };
    };
    for (const [version, manifest] of Object.entries(doc.versions) as [string, Manifest][]) {
      assert.equal(manifest.name, "@scope/widget");
      assert.equal(manifest.version, version);
      assert.equal(typeof manifest.description, "string");
      assert.equal(typeof manifest.dependencies, "object");
      assert.equal(typeof manifest.scripts, "object");
      assert.ok(Array.isArray(manifest.maintainers));
      assert.equal(
        manifest.dist.tarball,
        `https://${TARBALL_HOST}/@scope/widget/-/widget-${version}.tgz`,
      );
      assert.match(manifest.dist.shasum, /^[0-9a-f]{40}$/);
      assert.match(manifest.dist.integrity, /^sha512-[A-Za-z0-9+/]{86}==$/);
      assert.ok(doc.time[version], `time of ${version}`);
    }
  });

  await t.step("targetBytes pads to exactly that many bytes", () => {
    for (const [versions, target] of [[3, 50_000], [20, 60_000], [40, 2_000_000]]) {
      const text = generatePackument("pad-me", { versions: versions!, targetBytes: target! });
      assert.equal(new TextEncoder().encode(text).length, target);
      assert.equal(Object.keys(JSON.parse(text).versions).length, versions);
    }
    const small = generatePackument("pad-me", { versions: 3 });
    assert.equal(generatePackument("pad-me", { versions: 3, targetBytes: 10 }), small);
  });

  await t.step("abbreviate keeps only install fields", () => {
    const full = {
      _id: "x",
      _rev: "1-0",
      name: "x",
      "dist-tags": { latest: "1.0.0" },
      time: { created: "2020-01-01T00:00:00.000Z", "1.0.0": "2021-01-01T00:00:00.000Z" },
      readme: "hi",
      versions: {
        "1.0.0": {
          name: "x",
          version: "1.0.0",
          description: "gone",
          scripts: { test: "gone" },
          dependencies: { a: "1" },
          peerDependenciesMeta: { b: { optional: true } },
          dist: { tarball: `https://${TARBALL_HOST}/x/-/x-1.0.0.tgz` },
          deprecated: "old",
          _hasShrinkwrap: false,
          funding: "https://example.test",
        },
      },
    };
    assert.deepEqual(abbreviate(full), {
      name: "x",
      "dist-tags": { latest: "1.0.0" },
      versions: {
        "1.0.0": {
          name: "x",
          version: "1.0.0",
          deprecated: "old",
          dependencies: { a: "1" },
          peerDependenciesMeta: { b: { optional: true } },
          dist: { tarball: `https://${TARBALL_HOST}/x/-/x-1.0.0.tgz` },
          _hasShrinkwrap: false,
          funding: "https://example.test",
        },
      },
      modified: "2021-01-01T00:00:00.000Z",
    });
    assert.equal(
      modifiedOf({ time: { modified: "2022-02-02T00:00:00.000Z" } }),
      "2022-02-02T00:00:00.000Z",
    );
    assert.throws(() => abbreviate([]), TypeError);
  });
});

Deno.test("registry fixture: representations, ETags, 304 and 404", async (t) => {
  const packuments = await loadFixturePackuments();
  const registry = await startRegistryFixture({ packuments });
  const url = `${registry.url}ms`;
  const fileBytes = packuments.get("ms")!;
  try {
    let fullTag = "";
    let corgiTag = "";
    await t.step("Accept: application/json gets the exact full document", async () => {
      const got = await get(url, { accept: JSON_TYPE });
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-type"), JSON_TYPE);
      assert.deepEqual(got.bytes, fileBytes);
      assert.deepEqual(got.bytes, registry.expectedBody("ms", "full"));
      assert.equal(got.headers.get("content-length"), String(fileBytes.length));
      assert.equal(got.headers.get("cache-control"), "public, max-age=300");
      const modified = modifiedOf(JSON.parse(decoder.decode(fileBytes)))!;
      assert.equal(got.headers.get("last-modified"), new Date(modified).toUTCString());
      fullTag = got.headers.get("etag")!;
      assert.match(fullTag, /^"[0-9a-f]+"$/);
      assert.equal(fullTag, registry.etag("ms", "full"));
    });

    await t.step("no Accept at all gets the full document", async () => {
      const got = await raw(registry.url, "/ms");
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-type"), JSON_TYPE);
      assert.deepEqual(got.body, fileBytes);
      assert.equal(registry.requests.at(-1)!.accept, null);
      assert.equal(registry.requests.at(-1)!.representation, "full");
    });

    await t.step("the corgi type, npm's header and */* get the abbreviated document", async () => {
      const expected = registry.expectedBody("ms", "corgi");
      assert.equal(
        decoder.decode(expected),
        JSON.stringify(abbreviate(JSON.parse(decoder.decode(fileBytes)))),
      );
      for (const accept of [CORGI_TYPE, NPM_ACCEPT, "*/*", `${JSON_TYPE}, */*`]) {
        const got = await get(url, { accept });
        assert.equal(got.status, 200, accept);
        assert.equal(got.headers.get("content-type"), CORGI_TYPE, accept);
        assert.deepEqual(got.bytes, expected, accept);
        corgiTag = got.headers.get("etag")!;
        assert.equal(corgiTag, registry.etag("ms", "corgi"));
      }
      const plain = await get(url); // fetch's own default is `Accept: */*`
      assert.equal(plain.headers.get("content-type"), CORGI_TYPE);
      const corgi = JSON.parse(decoder.decode(expected));
      const full = JSON.parse(decoder.decode(fileBytes));
      assert.deepEqual(Object.keys(corgi).sort(), ["dist-tags", "modified", "name", "versions"]);
      assert.deepEqual(Object.keys(corgi.versions), Object.keys(full.versions));
      for (const manifest of Object.values(corgi.versions) as Record<string, unknown>[]) {
        for (const key of Object.keys(manifest)) assert.ok(CORGI_VERSION_FIELDS.includes(key), key);
      }
      assert.ok(expected.length < fileBytes.length);
    });

    await t.step("ETags differ by representation and are stable", async () => {
      assert.notEqual(fullTag, corgiTag);
      for (let i = 0; i < 3; i++) {
        assert.equal((await get(url, { accept: JSON_TYPE })).headers.get("etag"), fullTag);
        assert.equal((await get(url, { accept: CORGI_TYPE })).headers.get("etag"), corgiTag);
      }
    });

    await t.step("If-None-Match with the current ETag answers 304 with an empty body", async () => {
      for (const tag of [fullTag, `W/${fullTag}`, `"nope", ${fullTag}`, "*"]) {
        const got = await get(url, { accept: JSON_TYPE, "if-none-match": tag });
        assert.equal(got.status, 304, tag);
        assert.equal(got.bytes.length, 0);
        assert.equal(got.headers.get("etag"), fullTag);
      }
      const corgi304 = await raw(registry.url, "/ms", [
        `accept: ${CORGI_TYPE}`,
        `if-none-match: ${corgiTag}`,
      ]);
      assert.equal(corgi304.status, 304);
      assert.equal(corgi304.body.length, 0);
      // The other representation's tag does not match.
      const other = await get(url, { accept: JSON_TYPE, "if-none-match": corgiTag });
      assert.equal(other.status, 200);
      assert.equal(registry.requests.at(-1)!.ifNoneMatch, corgiTag);
    });

    await t.step("HEAD sends the headers only", async () => {
      const got = await get(url, { accept: JSON_TYPE }, "HEAD");
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-length"), String(fileBytes.length));
      assert.equal(got.bytes.length, 0);
    });

    await t.step("unknown names and other paths answer 404 JSON", async () => {
      for (const path of ["no-such-package", "@nope%2fnothing", "ms/1.0.0", ""]) {
        const got = await get(`${registry.url}${path}`, { accept: JSON_TYPE });
        assert.equal(got.status, 404, path);
        assert.equal(got.headers.get("content-type"), JSON_TYPE);
        assert.deepEqual(JSON.parse(text(got)), { error: "Not found" });
      }
      const ping = await get(`${registry.url}-/ping`);
      assert.equal(ping.status, 200);
    });

    await t.step("set changes the body and the ETag, remove makes it 404", async () => {
      const next = generatePackument("ms", { versions: 4 });
      registry.set("ms", next);
      const got = await get(url, { accept: JSON_TYPE, "if-none-match": fullTag });
      assert.equal(got.status, 200);
      assert.equal(text(got), next);
      assert.notEqual(got.headers.get("etag"), fullTag);
      assert.equal(
        got.headers.get("last-modified"),
        new Date(JSON.parse(next).time.modified).toUTCString(),
      );
      const corgi = await get(url, { accept: CORGI_TYPE });
      assert.notEqual(corgi.headers.get("etag"), corgiTag);
      assert.deepEqual(Object.keys(JSON.parse(text(corgi)).versions).length, 4);
      assert.equal(registry.remove("ms"), true);
      assert.equal(registry.remove("ms"), false);
      assert.equal((await get(url)).status, 404);
      assert.throws(() => registry.expectedBody("ms", "full"), RangeError);
    });

    await t.step("the request log records each request", () => {
      const record = registry.requests[0]!;
      assert.equal(record.n, 0);
      assert.equal(record.method, "GET");
      assert.equal(record.path, "/ms");
      assert.equal(record.name, "ms");
      assert.equal(record.accept, JSON_TYPE);
      assert.equal(record.representation, "full");
      assert.equal(record.status, 200);
      assert.equal(record.authorization, false);
      assert.equal("ifNoneMatch" in record, false);
      assert.equal(registry.requests.filter((r) => r.status === 304).length, 5);
    });
  } finally {
    await registry.close();
  }
  const short = await startRegistryFixture({ packuments, maxAge: 60 });
  try {
    const got = await get(`${short.url}left-pad`);
    assert.equal(got.headers.get("cache-control"), "public, max-age=60");
  } finally {
    await short.close();
  }
});

Deno.test("registry fixture: scoped name spellings", async () => {
  const name = "@scope/name";
  const body = generatePackument(name, { versions: 3 });
  const registry = await startRegistryFixture({ packuments: new Map([[name, body]]) });
  try {
    assert.equal(packumentPath(name), "/@scope%2fname");
    for (const path of ["/@scope%2fname", "/@scope%2Fname", "/@scope/name", "/%40scope%2fname"]) {
      assert.equal(nameFromPath(path), name, path);
      const got = await raw(registry.url, path, [`accept: ${JSON_TYPE}`]);
      assert.equal(got.status, 200, path);
      assert.equal(decoder.decode(got.body), body, path);
      assert.equal(registry.requests.at(-1)!.name, name);
    }
    for (const path of ["/@scope", "/@scope%2f", "/@scope/name/1.0.0", "/-/ping", "/"]) {
      assert.equal(nameFromPath(path), null, path);
    }
    assert.equal((await get(`${registry.url}@scope%2fother`)).status, 404);
  } finally {
    await registry.close();
  }
});

Deno.test("registry fixture: a bearer token can be required", async () => {
  const token = "t0ken-that-must-never-be-logged";
  const registry = await startRegistryFixture({ packuments: await loadFixturePackuments(), token });
  try {
    const none = await get(`${registry.url}ms`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.equal(none.headers.get("content-type"), JSON_TYPE);
    const wrong = await get(`${registry.url}ms`, { authorization: "Bearer nope" });
    assert.equal(wrong.status, 401);
    const basic = await get(`${registry.url}ms`, { authorization: `Basic ${btoa(`u:${token}`)}` });
    assert.equal(basic.status, 401);
    const good = await get(`${registry.url}ms`, { authorization: `Bearer ${token}` });
    assert.equal(good.status, 200);
    const unknown = await get(`${registry.url}nope`, { authorization: `Bearer ${token}` });
    assert.equal(unknown.status, 404);
    assert.equal((await get(`${registry.url}-/ping`)).status, 200);
    assert.deepEqual(
      registry.requests.map((r) => [r.status, r.authorization]),
      [[401, false], [401, true], [401, true], [200, true], [404, true], [200, false]],
    );
    assert.equal(JSON.stringify(registry.requests).includes(token), false);
  } finally {
    await registry.close();
  }
});

Deno.test("registry fixture: with etags off, only Last-Modified and If-Modified-Since", async () => {
  const packuments = await loadFixturePackuments();
  const registry = await startRegistryFixture({ packuments, etags: false });
  const url = `${registry.url}ms`;
  try {
    const modified = new Date(modifiedOf(JSON.parse(decoder.decode(packuments.get("ms")!)))!);
    const lastModified = modified.toUTCString();
    assert.equal(registry.lastModified("ms"), lastModified);
    const full = await get(url, { accept: JSON_TYPE });
    assert.equal(full.status, 200);
    assert.deepEqual(full.bytes, packuments.get("ms"));
    assert.equal(full.headers.get("etag"), null);
    assert.equal(full.headers.get("last-modified"), lastModified);
    const corgi = await get(url, { accept: CORGI_TYPE });
    assert.equal(corgi.headers.get("etag"), null);
    assert.equal(corgi.headers.get("last-modified"), lastModified);
    // The date itself, or any later one, means "not modified"; an earlier one does not.
    const later = new Date(modified.getTime() + 86_400_000).toUTCString();
    for (const [accept, since] of [[JSON_TYPE, lastModified], [CORGI_TYPE, later]] as const) {
      const got = await get(url, { accept, "if-modified-since": since });
      assert.equal(got.status, 304, `${accept} ${since}`);
      assert.equal(got.bytes.length, 0);
      assert.equal(got.headers.get("last-modified"), lastModified);
      assert.equal(got.headers.get("etag"), null);
      assert.equal(registry.requests.at(-1)!.ifModifiedSince, since);
    }
    const earlier = new Date(modified.getTime() - 1_000).toUTCString();
    assert.equal((await get(url, { accept: JSON_TYPE, "if-modified-since": earlier })).status, 200);
    // A date that does not parse is ignored, and so is an ETag in this mode.
    assert.equal((await get(url, { accept: JSON_TYPE, "if-modified-since": "soon" })).status, 200);
    assert.equal((await get(url, { accept: JSON_TYPE, "if-none-match": "*" })).status, 200);
    // A document modified later is sent again to a client holding the old date.
    const next = JSON.parse(generatePackument("ms", { versions: 2 }));
    next.time.modified = new Date(modified.getTime() + 2 * 86_400_000).toISOString();
    registry.set("ms", JSON.stringify(next));
    const changed = await get(url, { accept: JSON_TYPE, "if-modified-since": later });
    assert.equal(changed.status, 200);
    assert.equal(changed.headers.get("last-modified"), new Date(next.time.modified).toUTCString());
  } finally {
    await registry.close();
  }
  // With ETags on (the default), If-Modified-Since alone never answers 304.
  const tagged = await startRegistryFixture({ packuments });
  try {
    const since = tagged.lastModified("ms")!;
    const got = await get(`${tagged.url}ms`, { accept: JSON_TYPE, "if-modified-since": since });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("etag"), tagged.etag("ms", "full"));
    assert.equal(tagged.requests[0]!.ifModifiedSince, since);
  } finally {
    await tagged.close();
  }
});

Deno.test("registry fixture: recordHeaders logs the request headers as sent", async () => {
  const token = "recorded-t0ken";
  const packuments = await loadFixturePackuments();
  const recording = await startRegistryFixture({ packuments, token, recordHeaders: true });
  const plain = await startRegistryFixture({ packuments, token });
  try {
    for (const registry of [recording, plain]) {
      const got = await raw(registry.url, "/ms", [
        `accept: ${JSON_TYPE}`,
        `authorization: Bearer ${token}`,
        "x-one: a",
        "X-One: b",
      ]);
      assert.equal(got.status, 200);
    }
    const headers = recording.requests[0]!.headers!;
    assert.equal(headers["authorization"], `Bearer ${token}`);
    assert.equal(headers["accept"], JSON_TYPE);
    assert.equal(headers["x-one"], "a, b");
    assert.equal(headers["connection"], "close");
    assert.equal(recording.requests[0]!.authorization, true);
    // Without the option, the value is never kept.
    assert.equal(plain.requests[0]!.authorization, true);
    assert.equal("headers" in plain.requests[0]!, false);
    assert.equal(JSON.stringify(plain.requests).includes(token), false);
  } finally {
    await recording.close();
    await plain.close();
  }
});

Deno.test("registry fixture: every fault kind is observable from a client", async (t) => {
  const packuments = await loadFixturePackuments();
  const faults: Record<string, Fault> = {
    "left-pad": { kind: "status", status: 429, retryAfter: "7" },
    "is-number": { kind: "status", status: 503 },
    chalk: { kind: "reset" },
    debug: { kind: "reset", partialHeaders: true },
    ms: { kind: "truncate" },
    "trunc-100": { kind: "truncate", bytes: 100 },
    "bad-json": { kind: "bad-json" },
    "html-page": { kind: "content-type" },
    slow: { kind: "delay", ms: 20 },
    shuffled: { kind: "out-of-order" },
  };
  const all = new Map<string, Uint8Array | string>(packuments);
  for (const name of ["trunc-100", "bad-json", "html-page", "slow", "shuffled"]) {
    all.set(name, generatePackument(name, { versions: 5 }));
  }
  const registry = await startRegistryFixture({
    packuments: all,
    // Each name's first request gets its fault; the second is served normally.
    faults: (request) => {
      const fault = request.name === null ? undefined : faults[request.name];
      if (fault === undefined) return undefined;
      const seen = registry.requests.filter((r) => r.name === request.name).length;
      return seen === 0 ? fault : undefined;
    },
  });
  const fetchOf = (name: string) =>
    fetch(`${registry.url}${name}`, { headers: { accept: JSON_TYPE } });
  try {
    await t.step("status: 429 with Retry-After, and 503", async () => {
      const limited = await fetchOf("left-pad");
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get("retry-after"), "7");
      await limited.body?.cancel();
      const down = await fetchOf("is-number");
      assert.equal(down.status, 503);
      assert.equal(typeof (await down.json()).error, "string");
    });

    await t.step("reset, with and without half a status line", async () => {
      // A client without a connection pool: every request opens a new connection. (Deno's
      // pooled fetch resends a request once, by itself, when a reused keep-alive connection
      // closes before the response head; see below.)
      const fresh = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
      try {
        await assert.rejects(fetch(`${registry.url}chalk`, { client: fresh }), TypeError);
        await assert.rejects(fetch(`${registry.url}debug`, { client: fresh }), TypeError);
      } finally {
        fresh.close();
      }
    });

    await t.step("truncate: Content-Length promises more than arrives", async () => {
      const cases: [string, number][] = [["ms", packuments.get("ms")!.length / 2], [
        "trunc-100",
        100,
      ]];
      for (const [name, most] of cases) {
        const response = await fetchOf(name);
        assert.equal(response.status, 200);
        const length = Number(response.headers.get("content-length"));
        assert.equal(length, registry.expectedBody(name, "full").length);
        let received = 0;
        await assert.rejects(async () => {
          for await (const chunk of response.body!) received += chunk.length;
        });
        assert.ok(received <= most && received < length, `${name}: ${received}`);
      }
    });

    await t.step("bad-json and content-type", async () => {
      const bad = await fetchOf("bad-json");
      assert.equal(bad.status, 200);
      assert.equal(bad.headers.get("content-type"), JSON_TYPE);
      await assert.rejects(bad.json(), SyntaxError);
      const html = await fetchOf("html-page");
      assert.equal(html.status, 200);
      assert.match(html.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(await html.text(), /<html>/);
    });

    await t.step("delay and out-of-order still serve the document", async () => {
      for (const name of ["slow", "shuffled"]) {
        const got = await fetchOf(name);
        assert.equal(got.status, 200);
        assert.equal(await got.text(), all.get(name));
      }
    });

    await t.step(
      "after its fault every name is served normally, and the log says which",
      async () => {
        for (const name of Object.keys(faults)) {
          const got = await fetchOf(name);
          assert.equal(got.status, 200, name);
          assert.deepEqual(
            new Uint8Array(await got.arrayBuffer()),
            registry.expectedBody(name, "full"),
          );
        }
        for (const [name, fault] of Object.entries(faults)) {
          const records = registry.requests.filter((r) => r.name === name);
          assert.equal(records.length, 2, name);
          assert.deepEqual(records[0]!.fault, fault);
          assert.equal("fault" in records[1]!, false);
        }
        assert.equal(registry.requests.find((r) => r.name === "chalk")!.status, 0);
      },
    );
  } finally {
    await registry.close();
  }

  await t.step("onlyName, failNth, failEvery and onlyPath aim faults", async () => {
    const scoped = await startRegistryFixture({
      packuments: new Map<string, PackumentSource>([
        ["@x/y", generatePackument("@x/y", { versions: 2 })],
        ...packuments,
      ]),
      faults: onlyName("@x/y", failNth([1], { kind: "status", status: 500 })),
    });
    const every = await startRegistryFixture({
      packuments,
      faults: onlyPath("/ms", failEvery(2, { kind: "status", status: 502 })),
    });
    try {
      const statuses: number[] = [];
      for (const path of ["@x%2fy", "ms", "@x/y", "@x%2Fy", "@x%2fy"]) {
        statuses.push((await get(`${scoped.url}${path}`)).status);
      }
      assert.deepEqual(statuses, [200, 200, 500, 200, 200]);
      const everyStatuses: number[] = [];
      for (const path of ["ms", "ms", "chalk", "ms", "ms"]) {
        everyStatuses.push((await get(`${every.url}${path}`)).status);
      }
      assert.deepEqual(everyStatuses, [200, 502, 200, 200, 502]);
    } finally {
      await Promise.all([scoped.close(), every.close()]);
    }
  });
});

Deno.test("registry fixture: a generated 110 MB document is streamed exactly", async () => {
  const name = "huge-packument";
  const options = { versions: 2000, targetBytes: 110_000_000 };
  const registry = await startRegistryFixture({
    packuments: new Map([[name, () => generatePackumentChunks(name, options)]]),
    faults: onlyName(name, failNth([2], { kind: "truncate", bytes: 3_000_000 })),
  });
  try {
    const response = await fetch(`${registry.url}${name}`, { headers: { accept: JSON_TYPE } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), "110000000");
    assert.ok(response.headers.get("last-modified"));
    const hash = createHash("sha256");
    let length = 0;
    for await (const chunk of response.body!) {
      hash.update(chunk);
      length += chunk.length;
    }
    assert.equal(length, 110_000_000);
    const whole = generatePackument(name, options);
    assert.equal(hash.digest("hex"), sha256Hex(whole));
    const modified = /"time":\{"created":"[^"]+","modified":"([^"]+)"/.exec(whole)![1]!;
    assert.equal(response.headers.get("last-modified"), new Date(modified).toUTCString());
    const head = await get(`${registry.url}${name}`, { accept: JSON_TYPE }, "HEAD");
    assert.equal(head.headers.get("etag"), response.headers.get("etag"));
    // A truncated big body stops short of its Content-Length.
    const cut = await fetch(`${registry.url}${name}`, { headers: { accept: JSON_TYPE } });
    assert.equal(cut.headers.get("content-length"), "110000000");
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of cut.body!) received += chunk.length;
    });
    assert.ok(received <= 3_000_000, `received ${received}`);
    assert.deepEqual(registry.requests.map((r) => r.fault?.kind), [
      undefined,
      undefined,
      "truncate",
    ]);
  } finally {
    await registry.close();
  }
});

Deno.test("registry fixture: standalone mode serves generated packuments", async () => {
  const dir = await Deno.makeTempDir({ prefix: "registry_fixture_" });
  const names = ["alpha", "@scope/beta", "gamma", "delta"];
  await Deno.writeTextFile(`${dir}/names.txt`, names.join("\r\n") + "\n");
  const child = start(Deno.execPath(), [
    "run",
    "-A",
    new URL("./registry_fixture.ts", import.meta.url).pathname,
    "--port",
    "0",
    "--names",
    `${dir}/names.txt`,
    "--big",
    "1",
  ]);
  try {
    const out = await child.line();
    const match = /^listening (http:\/\/127\.0\.0\.1:[0-9]+\/)$/.exec(out);
    assert.ok(match, `unexpected output: ${out}`);
    const url = match[1]!;
    const sizes: number[] = [];
    for (const name of names) {
      const got = await get(`${url}${packumentPath(name).slice(1)}`, { accept: JSON_TYPE });
      assert.equal(got.status, 200, name);
      assert.equal(JSON.parse(text(got)).name, name);
      sizes.push(got.bytes.length);
      const again = await get(`${url}${packumentPath(name).slice(1)}`, { accept: JSON_TYPE });
      assert.deepEqual(again.bytes, got.bytes);
    }
    // "alpha" (index 0) is the big one; the others are a few KB.
    assert.ok(sizes[0]! >= 2_000_000 && sizes[0]! <= 8_000_000, `big: ${sizes[0]}`);
    for (const size of sizes.slice(1)) assert.ok(size > 1000 && size < 20_000, `small: ${size}`);
  } finally {
    await child.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pure helpers: representationFor", () => {
  assert.equal(representationFor(null), "full");
  assert.equal(representationFor(JSON_TYPE), "full");
  assert.equal(representationFor("text/html"), "full");
  assert.equal(representationFor(CORGI_TYPE), "corgi");
  assert.equal(representationFor(NPM_ACCEPT), "corgi");
  assert.equal(representationFor("*/*"), "corgi");
  assert.equal(representationFor("Application/VND.npm.install-v1+JSON"), "corgi");
});

// ---------------------------------------------------------------------------------------------

interface VerdaccioDoc {
  name: string;
  versions: Record<string, Record<string, unknown>>;
  "dist-tags": Record<string, string>;
  time?: Record<string, string>;
}

Deno.test("verdaccio 6.8.0: publish with npm, then full, corgi, ETag/304 and auth", async (t) => {
  const [open, closed] = await Promise.all([
    startVerdaccio(),
    startVerdaccio({ privateAccess: true }),
  ]);
  const servers: Verdaccio[] = [open, closed];
  try {
    await t.step("publish two versions of an unscoped and one of a scoped package", async () => {
      await open.publish(await open.packageDir({ name: "vd-demo", version: "1.0.0" }));
      await open.publish(
        await open.packageDir({
          name: "vd-demo",
          version: "1.1.0",
          description: "second",
          dependencies: { "vd-dep": "^1.0.0" },
          scripts: { test: "node index.js" },
        }),
      );
      await open.publish(await open.packageDir({ name: "@vd/scoped", version: "1.0.0" }));
      await closed.publish(await closed.packageDir({ name: "vd-private", version: "0.1.0" }));
      const npmrc = await Deno.readTextFile(open.npmrc);
      assert.ok(npmrc.includes(`//${new URL(open.url).host}/:_authToken=${open.token}`));
    });

    let fullTag = "";
    await t.step("full and corgi documents differ; versions match", async () => {
      const full = await get(`${open.url}vd-demo`, { accept: JSON_TYPE });
      assert.equal(full.status, 200);
      assert.match(full.headers.get("content-type") ?? "", /^application\/json/);
      const fullDoc = JSON.parse(text(full)) as VerdaccioDoc;
      assert.deepEqual(Object.keys(fullDoc.versions).sort(), ["1.0.0", "1.1.0"]);
      assert.equal(fullDoc["dist-tags"].latest, "1.1.0");
      assert.ok(fullDoc.time?.modified);
      assert.equal(fullDoc.versions["1.1.0"]!.description, "second");

      const corgi = await get(`${open.url}vd-demo`, { accept: CORGI_TYPE });
      assert.equal(corgi.status, 200);
      assert.match(
        corgi.headers.get("content-type") ?? "",
        /^application\/vnd\.npm\.install-v1\+json/,
      );
      const corgiDoc = JSON.parse(text(corgi)) as VerdaccioDoc & { modified?: string };
      assert.notDeepEqual(corgi.bytes, full.bytes);
      assert.deepEqual(Object.keys(corgiDoc.versions).sort(), ["1.0.0", "1.1.0"]);
      const slim = corgiDoc.versions["1.1.0"]!;
      assert.deepEqual(slim.dependencies, { "vd-dep": "^1.0.0" });
      assert.equal(slim.scripts, undefined);
      assert.equal(slim._id, undefined);
      assert.equal(slim.hasInstallScript, false);
      // Unlike the registry, verdaccio keeps `description` and adds the whole `time` (for pnpm).
      assert.equal(slim.description, "second");
      assert.equal(typeof corgiDoc.modified, "string");
      assert.deepEqual(corgiDoc.time, fullDoc.time);
      assert.equal("readme" in corgiDoc, false);
      // npm's own header also gets corgi; `*/*` alone (fetch's default) does not.
      const npm = await get(`${open.url}vd-demo`, { accept: NPM_ACCEPT });
      assert.deepEqual(npm.bytes, corgi.bytes);
      const star = await get(`${open.url}vd-demo`);
      assert.deepEqual(star.bytes, full.bytes);

      fullTag = full.headers.get("etag") ?? "";
      assert.match(fullTag, /^"[0-9a-f]{32}"$/);
      assert.equal(fullTag, `"${createHash("md5").update(full.bytes).digest("hex")}"`);
      assert.notEqual(corgi.headers.get("etag"), fullTag);
      assert.equal(full.headers.get("last-modified"), null);
      assert.equal(full.headers.get("cache-control"), null);
      // Compressed for fetch's Accept-Encoding, so sent chunked without Content-Length.
      assert.ok(["br", "gzip"].includes(full.headers.get("content-encoding") ?? ""));
      assert.equal(full.headers.get("content-length"), null);
      const again = await get(`${open.url}vd-demo`, { accept: JSON_TYPE });
      assert.equal(again.headers.get("etag"), fullTag);
    });

    await t.step("If-None-Match answers 304", async () => {
      const same = await get(`${open.url}vd-demo`, { accept: JSON_TYPE, "if-none-match": fullTag });
      assert.equal(same.status, 304);
      assert.equal(same.bytes.length, 0);
      const weak = await get(`${open.url}vd-demo`, {
        accept: JSON_TYPE,
        "if-none-match": `W/${fullTag}`,
      });
      assert.equal(weak.status, 304);
      const stale = await get(`${open.url}vd-demo`, { accept: JSON_TYPE, "if-none-match": '"x"' });
      assert.equal(stale.status, 200);
    });

    await t.step("scoped spellings and 404", async () => {
      for (const path of ["@vd%2fscoped", "@vd%2Fscoped", "@vd/scoped"]) {
        const got = await get(`${open.url}${path}`, { accept: JSON_TYPE });
        assert.equal(got.status, 200, path);
        assert.deepEqual(Object.keys((JSON.parse(text(got)) as VerdaccioDoc).versions), ["1.0.0"]);
      }
      const missing = await get(`${open.url}vd-missing`, { accept: JSON_TYPE });
      assert.equal(missing.status, 404);
      assert.equal(typeof JSON.parse(text(missing)).error, "string");
    });

    await t.step("privateAccess: refused without a token, served with one", async () => {
      const anonymous = await get(`${closed.url}vd-private`, { accept: JSON_TYPE });
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.headers.get("www-authenticate"), "Basic, Bearer");
      assert.match(JSON.parse(text(anonymous)).error, /authorization required/);
      const wrong = await get(`${closed.url}vd-private`, { authorization: "Bearer nope" });
      assert.equal(wrong.status, 401);
      const authed = await get(`${closed.url}vd-private`, {
        accept: JSON_TYPE,
        authorization: `Bearer ${closed.token}`,
      });
      assert.equal(authed.status, 200);
      assert.deepEqual(Object.keys((JSON.parse(text(authed)) as VerdaccioDoc).versions), ["0.1.0"]);
    });
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
});
