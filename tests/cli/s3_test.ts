import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runCli, runCliMeasured } from "../_support/run_cli.ts";
import { generateNames, startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { generatePackumentChunks, loadFixturePackuments } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_support/s3rver.ts";

Deno.test("cli --storage s3: fetch into s3rver, show byte for byte, stats count it", async () => {
  const packuments = await loadFixturePackuments();
  const fixture = await startRegistryFixture({ packuments });
  const server = await startS3rver("cli-cache");
  const dir = await Deno.makeTempDir();
  try {
    const env = {
      ALL_DOCS_REGISTRY: fixture.url,
      ALL_DOCS_CACHE_DIR: dir,
      ALL_DOCS_S3_URL: `${server.endpoint}/${server.bucket}/runs/one%3A`,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: "us-east-1",
    };
    const fetched = await runCli(["packument", "fetch", "ms", "chalk", "--storage", "s3"], env);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stdout, /^fetched 2, /);

    const objects = (await server.state()).objects;
    assert.ok(objects.length >= 2, JSON.stringify(objects));
    assert.ok(objects.every((key) => key.startsWith("runs/one:v1:")), JSON.stringify(objects));
    assert.deepEqual(Array.from(Deno.readDirSync(dir)), [], "nothing is written to --cache-dir");

    for (const name of ["ms", "chalk"]) {
      const shown = await runCliMeasured(["packument", "show", name, "--storage", "s3"], env);
      assert.equal(shown.code, 0, shown.stderr);
      const expected = fixture.expectedBody(name, "full");
      assert.equal(shown.stdoutBytes, expected.byteLength, name);
      assert.equal(shown.stdoutSha256, createHash("sha256").update(expected).digest("hex"), name);
    }

    const stats = await runCli(["cache", "stats", "--json"], { ...env, ALL_DOCS_STORAGE: "s3" });
    assert.equal(stats.code, 0, stats.stderr);
    const parsed = JSON.parse(stats.stdout);
    assert.equal(parsed.storage.kind, "s3");
    assert.equal(parsed.storage.location, `${server.endpoint}/${server.bucket}/runs/one:`);
    assert.equal(parsed.types.packument, 2);
    assert.equal(parsed.entries, 2);
    assert.ok(!stats.stdout.includes(S3RVER_CREDENTIALS.secretAccessKey), "no secret in stats");

    // Wrong credentials: a clear failure, not a silent miss.
    const refused = await runCli(["packument", "show", "ms", "--storage", "s3"], {
      ...env,
      AWS_SECRET_ACCESS_KEY: "wrong",
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /S3 answered HTTP 403: SignatureDoesNotMatch/);
  } finally {
    await server.close();
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli --storage s3 settings are usage errors before any request", async () => {
  const fixture = await startRegistryFixture({});
  const server = await startS3rver("cli-usage");
  const dir = await Deno.makeTempDir();
  try {
    const good = {
      ALL_DOCS_REGISTRY: fixture.url,
      ALL_DOCS_CACHE_DIR: dir,
      ALL_DOCS_S3_URL: `${server.endpoint}/${server.bucket}`,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    };
    const without = (name: keyof typeof good): Record<string, string> => {
      const env: Record<string, string> = { ...good };
      delete env[name];
      return env;
    };
    const cases: [Record<string, string>, RegExp][] = [
      [without("ALL_DOCS_S3_URL"), /^error: --storage s3 needs ALL_DOCS_S3_URL/],
      [{ ...good, ALL_DOCS_S3_URL: "not a url" }, /^error: Invalid ALL_DOCS_S3_URL: not a URL/],
      [{ ...good, ALL_DOCS_S3_URL: "ftp://127.0.0.1/b" }, /^error: Invalid ALL_DOCS_S3_URL/],
      [
        { ...good, ALL_DOCS_S3_URL: `${server.endpoint}/` },
        /^error: Invalid ALL_DOCS_S3_URL: .*bucket/,
      ],
      [{ ...good, ALL_DOCS_S3_URL: `${server.endpoint}/Bad_Bucket` }, /bucket/],
      [{ ...good, ALL_DOCS_S3_URL: `${server.endpoint}/b?x=1` }, /query/],
      [
        { ...good, ALL_DOCS_S3_URL: `http://user:s3cret-pw@127.0.0.1:1/bucket` },
        /^error: Invalid ALL_DOCS_S3_URL: credentials go in AWS_ACCESS_KEY_ID.*'http:\/\/\*\*\*@127/,
      ],
      [{ ...good, ALL_DOCS_S3_URL: `${server.endpoint}/bucket/a/../b` }, /'\.' or '\.\.'/],
      [{ ...good, ALL_DOCS_S3_URL: `${server.endpoint}/x/%2E%2E/bucket` }, /'\.' or '\.\.'/],
      [{ ...good, ALL_DOCS_S3_URL: `${server.endpoint}/bucket\\p` }, /backslashes/],
      [{ ...good, ALL_DOCS_S3_URL: `${server.endpoint}/bucket/%E0%A4%A` }, /prefix/],
      [without("AWS_ACCESS_KEY_ID"), /^error: --storage s3 needs AWS_ACCESS_KEY_ID and AWS_SECRET/],
      [without("AWS_SECRET_ACCESS_KEY"), /^error: --storage s3 needs AWS_ACCESS_KEY_ID and/],
      [{ ...good, AWS_REGION: "Not A Region" }, /^error: Invalid AWS_REGION/],
    ];
    // This process's environment without AWS_* and ALL_DOCS_* settings, so none leaks in.
    const base = Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([key]) =>
        !key.startsWith("AWS_") && !key.startsWith("ALL_DOCS_")
      ),
    );
    for (const [env, message] of cases) {
      const result = await runCli(["packument", "fetch", "ms", "--storage", "s3"], {
        ...base,
        ...env,
      }, { clearEnv: true });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.ok(!result.stderr.includes("s3cret-pw"), "no password in the message");
    }
    assert.equal(fixture.requests.length, 0, "no registry request was sent");
    assert.deepEqual(await server.state(), { objects: [], uploads: [] });
  } finally {
    await server.close();
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli --storage s3: a 110 MB packument fetches and shows with peak memory under 200 MB", async () => {
  const big = { versions: 4000, seed: 7, targetBytes: 110 * 1024 * 1024 };
  const fixture = await startRegistryFixture({
    packuments: new Map([["huge", () => generatePackumentChunks("huge", big)]]),
  });
  const server = await startS3rver("big-cache");
  const dir = await Deno.makeTempDir();
  try {
    const env = {
      ALL_DOCS_REGISTRY: fixture.url,
      ALL_DOCS_CACHE_DIR: dir,
      ALL_DOCS_STORAGE: "s3",
      ALL_DOCS_S3_URL: `${server.endpoint}/${server.bucket}`,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    };
    const fetched = await runCliMeasured(["packument", "fetch", "huge"], env);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.ok(fetched.peakRss > 0, "peak memory was read");
    assert.ok(fetched.peakRss < 200 * 1024 * 1024, `fetch peak ${fetched.peakRss} bytes`);
    assert.deepEqual((await server.state()).uploads, [], "no upload left open");
    const shown = await runCliMeasured(["packument", "show", "huge"], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdoutBytes, big.targetBytes);
    const expected = createHash("sha256");
    for (const piece of generatePackumentChunks("huge", big)) expected.update(piece);
    assert.equal(shown.stdoutSha256, expected.digest("hex"));
    assert.ok(shown.peakRss < 200 * 1024 * 1024, `show peak ${shown.peakRss} bytes`);
  } finally {
    await server.close();
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli --storage s3: partition refresh, status and create-index over a bucket", async () => {
  const origin = await startAllDocsFixture({ ids: generateNames(9000) });
  const server = await startS3rver("partitions");
  const dir = await Deno.makeTempDir();
  try {
    const pivots = join(dir, "pivots.json");
    await Deno.writeTextFile(pivots, JSON.stringify([origin.ids[3000], origin.ids[6000]]));
    const env = {
      ALL_DOCS_ORIGIN: origin.origin,
      ALL_DOCS_CACHE_DIR: dir,
      ALL_DOCS_STORAGE: "s3",
      ALL_DOCS_S3_URL: `${server.endpoint}/${server.bucket}/mirror/`,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    };
    const refresh = await runCli(
      ["partition", "refresh", "--pivots", pivots, "--limit", "1000"],
      env,
    );
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.match(refresh.stdout, /^partitions 3 \(fetched 3, .*rows 9000,/);
    const status = JSON.parse((await runCli(["partition", "status", "--json"], env)).stdout);
    assert.equal(status[0].done, 3);
    assert.equal(status[0].rows, 9000);
    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.code, 0, index.stderr);
    assert.equal(index.stdout, origin.rows.map((r) => `${r.id},${r.rev}\n`).join(""));
    // Each range (about 130 KB) is a separate body; a second pass replaces them all, and the
    // old ones are gone from the bucket.
    const again = await runCli(
      ["partition", "refresh", "--pivots", pivots, "--limit", "1000"],
      env,
    );
    assert.equal(again.code, 0, again.stderr);
    const objects = (await server.state()).objects;
    assert.ok(objects.every((key) => key.startsWith("mirror/v1:")), JSON.stringify(objects));
    const bodies = objects.filter((key) => key.startsWith("mirror/v1:body:"));
    assert.equal(bodies.length, 3, JSON.stringify(bodies));
    assert.equal((await runCli(["cache", "create-index"], env)).stdout, index.stdout);
  } finally {
    await server.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
