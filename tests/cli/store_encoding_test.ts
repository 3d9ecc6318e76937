import assert from "node:assert/strict";
import { join } from "node:path";
import { BODY_PREFIX, originKey, packumentKey } from "../../src/storage/keys.ts";
import { decodeRecord, encodeRecord } from "../../src/storage/record.ts";
import { createStorageDriver } from "../../drivers/select.deno.ts";
import { runCli } from "../_support/run_cli.ts";
import { generatePackument } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";

/** Documents big enough to be stored apart from their records, and small ones stored inline. */
function documents(): Map<string, string> {
  const docs = new Map<string, string>();
  for (let i = 0; i < 12; i++) {
    docs.set(`pkg-${i}`, generatePackument(`pkg-${i}`, { versions: i % 2 ? 300 : 2, seed: i }));
  }
  return docs;
}

for (const sendsGzip of [true, false]) {
  Deno.test(
    `packument fetch-list stores gzip by default and --store-encoding identity keeps raw bodies (registry ${
      sendsGzip ? "sends" : "does not send"
    } gzip)`,
    async () => {
      const docs = documents();
      const fixture = await startRegistryFixture({ packuments: docs, gzip: sendsGzip });
      const dir = await Deno.makeTempDir();
      try {
        const env = { ALL_DOCS_REGISTRY: fixture.url, ALL_DOCS_CACHE_DIR: dir };
        const names = [...docs.keys()];
        const list = join(dir, "names.txt");
        await Deno.writeTextFile(list, names.slice(0, 6).join("\n"));
        const first = await runCli(["packument", "fetch-list", list, "--quiet"], env);
        assert.equal(first.code, 0, first.stderr);
        assert.ok(fixture.requests.every((r) => r.gzip === (sendsGzip || undefined)));
        await Deno.writeTextFile(list, names.slice(6).join("\n"));
        const second = await runCli(
          ["packument", "fetch-list", list, "--quiet", "--store-encoding", "identity"],
          env,
        );
        assert.equal(second.code, 0, second.stderr);

        const driver = await createStorageDriver({ storage: "fs", cacheDir: dir });
        let raw = 0;
        let stored = 0;
        try {
          for (const [i, name] of names.entries()) {
            const key = packumentKey(originKey(fixture.url), name);
            const { header } = decodeRecord(key, (await driver.get(key))!);
            assert.equal(header.encoding, i < 6 ? "gzip" : undefined, name);
            if (i < 6) {
              assert.equal(header.decodedSize, docs.get(name)!.length);
              raw += header.decodedSize!;
              stored += header.size;
            }
          }
        } finally {
          await driver.close();
        }
        assert.ok(stored < raw * 0.25, `${stored} bytes stored for ${raw}`);

        for (const name of names) {
          const shown = await runCli(["packument", "show", name], env);
          assert.equal(shown.code, 0, shown.stderr);
          assert.equal(shown.stdout, docs.get(name), `${name} shows the document as fetched`);
        }
        const stats = JSON.parse((await runCli(["cache", "stats", "--json"], env)).stdout);
        assert.equal(stats.gzipEntries, 6);
        assert.equal(stats.decodedBytes, [...docs.values()].reduce((n, d) => n + d.length, 0));
        assert.ok(stats.bytes < stats.decodedBytes && stats.ratio < 1, JSON.stringify(stats));
        const exported = await runCli(["cache", "export"], env);
        assert.equal(exported.code, 0, exported.stderr);
        const bodies = exported.stdout.trim().split("\n").map((l) => JSON.parse(l).body);
        assert.deepEqual(
          bodies.map((b) => b.name).sort(),
          names.slice().sort(),
        );
        const verify = await runCli(["cache", "verify", "--json"], env);
        assert.equal(verify.code, 0, verify.stdout);
        assert.equal(JSON.parse(verify.stdout).checked, 12);
      } finally {
        await fixture.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

Deno.test("a gzip body that does not decode is found by cache verify and never shown", async () => {
  const docs = documents();
  const fixture = await startRegistryFixture({ packuments: docs });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_REGISTRY: fixture.url, ALL_DOCS_CACHE_DIR: dir };
    assert.equal((await runCli(["packument", "fetch", "pkg-1", "pkg-2"], env)).code, 0);
    const driver = await createStorageDriver({ storage: "fs", cacheDir: dir });
    try {
      for (const name of ["pkg-1", "pkg-2"]) {
        // The document stored inline and relabelled gzip: its bytes hash right, do not decode.
        const key = packumentKey(originKey(fixture.url), name);
        const { header } = decodeRecord(key, (await driver.get(key))!);
        assert.equal(header.encoding, "gzip");
        const plain = new TextEncoder().encode(docs.get(name)!);
        const forged = { ...header, body: null, size: plain.length, integrity: await sri(plain) };
        await driver.put(key, encodeRecord(forged, plain));
        if (header.body !== null) await driver.delete(header.body);
      }
      const bodies = await Array.fromAsync(driver.list({ prefix: BODY_PREFIX }));
      assert.deepEqual(bodies, []);
    } finally {
      await driver.close();
    }
    const verify = await runCli(["cache", "verify", "--json"], env);
    assert.equal(verify.code, 1);
    const report = JSON.parse(verify.stdout);
    assert.deepEqual(
      report.corrupt.map((c: { reason: string }) => c.reason),
      ["body is not valid gzip", "body is not valid gzip"],
    );
    const shown = await runCli(["packument", "show", "pkg-1"], env);
    assert.notEqual(shown.code, 0);
    assert.equal(shown.stdout, "");
    assert.match(shown.stderr, /corrupt/);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function sri(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}
