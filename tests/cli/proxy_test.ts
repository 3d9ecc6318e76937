/**
 * Proxies on Node: the npm build's CLI (`node bin.js`, built into `.tmp/npm-proxy-test` so it
 * does not race the npm build test over `npm/`) sends its registry requests through
 * `HTTP_PROXY` or `.npmrc` `proxy`, and straight to the hosts `NO_PROXY` / `noproxy` name.
 *
 * @module
 */

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { generatePackument } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { ROOT, run, type RunResult } from "../_support/spawn.ts";

const OUT = join(ROOT, ".tmp", "npm-proxy-test");

/** A forward proxy for http:// targets (absolute-URI requests), logging what it forwards. */
async function startProxy(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const upstream = http.request(
      req.url!,
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** This process's environment without proxy, npm or tool settings. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const kept = Object.entries(Deno.env.toObject()).filter(([key]) =>
    !/^(npm_config_|all_docs_)/i.test(key) && !/^(https?|no|all)_proxy$/i.test(key)
  );
  return { ...Object.fromEntries(kept), ...extra };
}

let built: Promise<void> | undefined;
function buildOnce(): Promise<void> {
  return built ??= (async () => {
    const build = await run(Deno.execPath(), ["run", "-A", "scripts/build_npm.ts", "--out", OUT]);
    assert.equal(build.code, 0, build.stderr);
  })();
}

function nodeCli(args: string[], env: Record<string, string>): Promise<RunResult> {
  return run("node", [join(OUT, "bin.js"), ...args], { env: cleanEnv(env), clearEnv: true });
}

Deno.test("Node CLI: HTTP_PROXY and .npmrc proxy carry the registry requests; NO_PROXY and noproxy bypass them", async () => {
  await buildOnce();
  const names = ["proxied-a", "proxied-b"];
  const registry = await startRegistryFixture({
    packuments: new Map(
      names.map((name, i) => [name, generatePackument(name, { versions: 2, seed: i })]),
    ),
  });
  const proxy = await startProxy();
  const dir = await Deno.makeTempDir();
  try {
    const npmrc = join(dir, "user.npmrc");
    await Deno.writeTextFile(npmrc, "");
    const base = { NPM_CONFIG_USERCONFIG: npmrc, ALL_DOCS_REGISTRY: registry.url };
    const fetch = async (env: Record<string, string>, cache: string) => {
      const result = await nodeCli([
        "packument",
        "fetch",
        ...names,
        "--json",
        "--timeout",
        "5000",
        "--retries",
        "0",
      ], {
        ...base,
        ALL_DOCS_CACHE_DIR: join(dir, cache),
        ...env,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, "");
      return result;
    };
    const registryPaths = (from: number) =>
      names.map((name) => `GET ${registry.url}${name}`).sort().concat([String(from)]);

    // HTTP_PROXY, NO_PROXY unset: every registry request goes through the proxy.
    await fetch({ HTTP_PROXY: proxy.url }, "env");
    assert.deepEqual(proxy.seen.slice().sort().concat(["0"]), registryPaths(0));
    assert.equal(registry.requests.length, 2);

    // NO_PROXY naming the registry's host: straight to it.
    proxy.seen.length = 0;
    await fetch({ HTTP_PROXY: proxy.url, NO_PROXY: "127.0.0.1" }, "env-noproxy");
    assert.deepEqual(proxy.seen, []);
    assert.equal(registry.requests.length, 4);

    // Lower case works too.
    await fetch({ http_proxy: proxy.url }, "lower");
    assert.equal(proxy.seen.length, 2);
    proxy.seen.length = 0;

    // .npmrc proxy, no environment variable.
    await Deno.writeTextFile(npmrc, `proxy=${proxy.url}/\n`);
    await fetch({}, "npmrc");
    assert.equal(proxy.seen.length, 2);
    proxy.seen.length = 0;

    // .npmrc noproxy wins over it.
    await Deno.writeTextFile(npmrc, `proxy=${proxy.url}/\nnoproxy=localhost,127.0.0.1\n`);
    await fetch({}, "npmrc-noproxy");
    assert.deepEqual(proxy.seen, []);
    assert.equal(registry.requests.length, 10);
  } finally {
    await proxy.close();
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Node CLI: an unreadable .npmrc cafile exits 2 with one line, before any request", async () => {
  await buildOnce();
  const registry = await startRegistryFixture({ packuments: new Map() });
  const dir = await Deno.makeTempDir();
  try {
    const npmrc = join(dir, "user.npmrc");
    await Deno.writeTextFile(npmrc, `cafile=${join(dir, "missing.pem")}\n`);
    const result = await nodeCli(["packument", "fetch", "some-name"], {
      NPM_CONFIG_USERCONFIG: npmrc,
      ALL_DOCS_REGISTRY: registry.url,
      ALL_DOCS_CACHE_DIR: dir,
    });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: Cannot read npm config 'cafile' \(.*missing\.pem\)/);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.equal(registry.requests.length, 0);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
