import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli, watchPeakRss } from "../_support/run_cli.ts";
import { createHash } from "node:crypto";
import { type Exit, run } from "../_support/spawn.ts";
import {
  abbreviate,
  generatePackument,
  generatePackumentChunks,
  loadFixturePackuments,
} from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { Cache } from "../../src/storage/cache.ts";
import { originKey, packumentKey } from "../../src/storage/keys.ts";
import { createStorageDriver } from "../../drivers/select.deno.ts";

const peers = new URL("../peers/", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A running `cli.ts serve`. */
interface Served {
  url: string;
  pid: number;
  /** Stops it with SIGTERM; resolves to its exit code and stderr. */
  stop(): Promise<Exit>;
}

async function startServe(args: string[], env: Record<string, string>): Promise<Served> {
  const child = startCli(["serve", ...args], env);
  const line = await child.line();
  const match = /^listening (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
  if (match === null) {
    await child.stop();
    assert.fail(`unexpected first line: ${JSON.stringify(line)}`);
  }
  return { url: match[1]!, pid: child.pid, stop: () => child.stop() };
}

const PACOTE_SCRIPT = `
import { createRequire } from "node:module";
const [peers, registry, name, metadata, cache] = process.argv.slice(2);
const pacote = createRequire(peers)("pacote");
const packument = await pacote.packument(name, {
  registry,
  fullMetadata: metadata === "full",
  cache,
  preferOnline: true,
});
process.stdout.write(JSON.stringify(packument));
`;

Deno.test("serve answers npm, npm ping and pacote from a cache filled by the CLI", async (t) => {
  const fixtures = await loadFixturePackuments();
  const scoped = generatePackument("@scope/pkg", { versions: 4, seed: 3 });
  const packuments = new Map<string, string | Uint8Array>(fixtures);
  packuments.set("@scope/pkg", scoped);
  const registry = await startRegistryFixture({ packuments });
  const allDocs = await startAllDocsFixture({ count: 3_000 });
  const dir = await Deno.makeTempDir();
  const env = {
    ALL_DOCS_CACHE_DIR: join(dir, "cache"),
    ALL_DOCS_REGISTRY: registry.url,
    ALL_DOCS_ORIGIN: allDocs.origin,
  };
  let served: Served | undefined;
  let originsOpen = true;
  try {
    const fetched = await runCli(["packument", "fetch", "ms", "chalk", "@scope/pkg"], env);
    assert.equal(fetched.code, 0, fetched.stderr);
    const pivots = join(dir, "pivots.json");
    await Deno.writeTextFile(pivots, JSON.stringify([allDocs.ids[1000], allDocs.ids[2000]]));
    const refreshed = await runCli(["partition", "refresh", "--pivots", pivots], env);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    // From here on, nothing may reach the origins.
    originsOpen = false;
    await registry.close();
    await allDocs.close();

    served = await startServe(["--port", "0"], env);
    const url = served.url;
    // Two files: npm 11 refuses one file as both --userconfig and --globalconfig.
    const userNpmrc = join(dir, "user-npmrc");
    const globalNpmrc = join(dir, "global-npmrc");
    await Deno.writeTextFile(userNpmrc, "");
    await Deno.writeTextFile(globalNpmrc, "");
    const npmEnv = {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: dir,
      npm_config_update_notifier: "false",
      NO_UPDATE_NOTIFIER: "1",
      NO_PROXY: "127.0.0.1",
      no_proxy: "127.0.0.1",
    };
    const npmArgs = [
      "--registry",
      url,
      "--userconfig",
      userNpmrc,
      "--globalconfig",
      globalNpmrc,
      "--cache",
      join(dir, "npm-cache"),
    ];

    await t.step("npm view (plain and scoped names)", async () => {
      for (const name of ["ms", "@scope/pkg"]) {
        const view = await run("npm", ["view", name, "--json", ...npmArgs], { env: npmEnv });
        assert.equal(view.code, 0, view.stderr);
        const shown = JSON.parse(view.stdout);
        const full = JSON.parse(decoder.decode(registry.expectedBody(name, "full")));
        assert.equal(shown.name, name);
        assert.deepEqual(shown["dist-tags"], full["dist-tags"]);
        assert.deepEqual([...shown.versions].sort(), Object.keys(full.versions).sort());
        assert.equal(shown.version, full["dist-tags"].latest);
      }
      const missing = await run("npm", ["view", "not-cached", "--json", ...npmArgs], {
        env: npmEnv,
      });
      assert.notEqual(missing.code, 0);
      assert.match(missing.stdout + missing.stderr, /E404/);
    });

    await t.step("npm ping", async () => {
      const ping = await run("npm", ["ping", ...npmArgs], { env: npmEnv });
      assert.equal(ping.code, 0, ping.stderr);
      assert.match(ping.stderr + ping.stdout, /PONG/);
    });

    await t.step("pacote.packument, abbreviated and full", async () => {
      const script = join(dir, "packument.mjs");
      await Deno.writeTextFile(script, PACOTE_SCRIPT);
      for (const name of ["chalk", "@scope/pkg"]) {
        const full = JSON.parse(decoder.decode(registry.expectedBody(name, "full")));
        const results: Record<string, Record<string, unknown>> = {};
        for (const metadata of ["corgi", "full"]) {
          const result = await run("node", [
            script,
            join(peers, "package.json"),
            url,
            name,
            metadata,
            join(dir, `pacote-${metadata}`),
          ], { env: { PATH: npmEnv.PATH, HOME: dir, NO_PROXY: "127.0.0.1" } });
          assert.equal(result.code, 0, result.stderr);
          results[metadata] = JSON.parse(result.stdout);
        }
        const corgi = results["corgi"]!;
        const expected = abbreviate(full) as Record<string, unknown>;
        assert.deepEqual(corgi["versions"], expected["versions"], name);
        assert.deepEqual(corgi["dist-tags"], full["dist-tags"]);
        assert.equal(corgi["time"], undefined, "the abbreviated document has no time");
        const fullResult = results["full"]!;
        assert.deepEqual(fullResult["versions"], full.versions, name);
        assert.deepEqual(fullResult["time"], full.time, name);
      }
    });

    await t.step("_all_docs and database info from the cached partitions", async () => {
      const info = await (await fetch(url)).json();
      assert.equal(info.doc_count, 3_000);
      const page = await (await fetch(`${url}_all_docs?limit=2`)).json();
      assert.equal(page.total_rows, 3_000);
      assert.equal(page.rows.length, 2);
    });

    const { code, stderr } = await served.stop();
    served = undefined;
    assert.equal(code, 0, stderr);
    const lines = stderr.trim().split("\n").map((line) => JSON.parse(line));
    assert.ok(lines.length >= 6, stderr);
    for (const line of lines) {
      assert.deepEqual(Object.keys(line).slice(0, 5), ["method", "path", "status", "bytes", "ms"]);
    }
    assert.ok(lines.some((l) => l.path === "/@scope%2fpkg" && l.status === 200), stderr);
    assert.ok(lines.some((l) => l.path.startsWith("/-/ping") && l.status === 200), stderr);
    // pacote asks for gzip: its full document went out as stored, gzip bytes not decoded.
    const driver = await createStorageDriver({ storage: "fs", cacheDir: env.ALL_DOCS_CACHE_DIR });
    try {
      const cache = await Cache.open(driver, { bloom: false });
      const info = await cache.info(packumentKey(originKey(registry.url), "chalk"));
      assert.equal(info?.encoding, "gzip");
      assert.ok(
        lines.some((l) => l.path === "/chalk" && l.status === 200 && l.bytes === info!.size),
        `chalk sent as its ${info!.size} stored gzip bytes: ${stderr}`,
      );
    } finally {
      await driver.close();
    }
  } finally {
    await served?.stop();
    if (originsOpen) {
      await registry.close();
      await allDocs.close();
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve --quiet logs nothing; bad --port and non-loopback --hostname exit 2", async () => {
  const dir = await Deno.makeTempDir();
  const env = { ALL_DOCS_CACHE_DIR: dir };
  try {
    const served = await startServe(["--port", "0", "--quiet"], env);
    const response = await fetch(`${served.url}-/ping`);
    assert.deepEqual(await response.json(), {});
    const stopped = await served.stop();
    assert.equal(stopped.code, 0);
    assert.equal(stopped.stderr, "");
    for (const host of ["0.0.0.0", "::", "192.0.2.1", "example.test"]) {
      const refused = await runCli(["serve", "--port", "0", "--hostname", host], env);
      assert.equal(refused.code, 2, host);
      assert.match(refused.stderr, /not a loopback address: add --public/);
      assert.equal(refused.stdout, "");
    }
    for (const port of ["65536", "-1", "abc", "1.5", ""]) {
      const bad = await runCli(["serve", `--port=${port}`], env);
      assert.equal(bad.code, 2, port);
      assert.match(bad.stderr, /Invalid --port/);
    }
    const extra = await runCli(["serve", "now"], env);
    assert.equal(extra.code, 2);
    const help = await runCli(["serve", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: _all_docs serve \[--port N\]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve derives the corgi of a 110 MB document for 16 concurrent requests in under 300 MB", async () => {
  const big = { versions: 4000, seed: 7, targetBytes: 110 * 1024 * 1024 };
  const registry = await startRegistryFixture({
    packuments: new Map([["huge", () => generatePackumentChunks("huge", big)]]),
  });
  const dir = await Deno.makeTempDir();
  const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_REGISTRY: registry.url };
  let served: Served | undefined;
  try {
    const fetched = await runCli(["packument", "fetch", "huge"], env);
    assert.equal(fetched.code, 0, fetched.stderr);
    await registry.close();
    const want = createHash("sha256")
      .update(JSON.stringify(abbreviate(JSON.parse(generatePackument("huge", big)))))
      .digest("hex");

    served = await startServe(["--port", "0", "--quiet"], env);
    const watch = watchPeakRss(served.pid);
    const corgi = { accept: "application/vnd.npm.install-v1+json" };
    const url = `${served.url}huge`;
    const answers = await Promise.all(Array.from({ length: 16 }, async () => {
      const response = await fetch(url, { headers: corgi });
      const hash = createHash("sha256");
      for await (const chunk of response.body!) hash.update(chunk);
      return { response, sha256: hash.digest("hex") };
    }));
    const etag = answers[0]!.response.headers.get("etag")!;
    for (const { response, sha256 } of answers) {
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/vnd.npm.install-v1+json");
      assert.equal(response.headers.get("etag"), etag);
      assert.equal(sha256, want);
    }
    const head = await fetch(url, { method: "HEAD", headers: corgi });
    assert.equal(head.headers.get("etag"), etag);
    assert.equal(
      head.headers.get("content-length"),
      answers[0]!.response.headers.get("content-length"),
    );
    const revalidated = await fetch(url, { headers: { ...corgi, "if-none-match": etag } });
    assert.equal(revalidated.status, 304);
    await revalidated.body?.cancel();
    const peak = await watch.stop();
    assert.ok(peak > 16 * 1024 * 1024, `peak RSS was read: ${peak} bytes`);
    assert.ok(peak < 300 * 1024 * 1024, `serve peaked at ${(peak / 2 ** 20).toFixed(1)} MiB`);
  } finally {
    await served?.stop();
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
