import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";
import { checkServiceUrl, maskUrl } from "../../cli/options.ts";

Deno.test("maskUrl() hides passwords and tokens, keeping the user name", () => {
  assert.equal(maskUrl("https://user:s3cret@host/"), "https://user:***@host/");
  assert.equal(maskUrl("https://t0ken@host:8080/x"), "https://***@host:8080/x");
  assert.equal(maskUrl("https://u:p@ss@host/"), "https://u:***@host/");
  assert.equal(maskUrl("https://host/a@b"), "https://host/a@b");
  assert.equal(checkServiceUrl("--origin", "http://127.0.0.1:5984/db"), "http://127.0.0.1:5984/db");
});

Deno.test("origin and registry URLs are checked up front: exit 2, one line, the flag or variable named, secrets masked", async () => {
  // Any request at all reaches this server: none may.
  const fixture = await startRegistryFixture({ packuments: await loadFixturePackuments() });
  const dir = await Deno.makeTempDir();
  try {
    const host = new URL(fixture.url).host;
    const pivots = join(dir, "pivots.json");
    await Deno.writeTextFile(pivots, '["m"]');
    const refresh = ["partition", "refresh", "--pivots", pivots];
    const fetchMs = ["packument", "fetch", "ms"];
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        [...fetchMs, "--registry", `http://user:s3cret@${host}/`],
        {},
        /^error: Invalid --registry: credentials in the URL are not supported .*received 'http:\/\/user:\*\*\*@/,
      ],
      [
        fetchMs,
        { ALL_DOCS_REGISTRY: `http://s3cret@${host}/` },
        /^error: Invalid ALL_DOCS_REGISTRY: credentials .*received 'http:\/\/\*\*\*@/,
      ],
      [
        fetchMs,
        { npm_config_registry: `http://user:s3cret@${host}/`, ALL_DOCS_REGISTRY: "" },
        /^error: Invalid npm config 'registry': credentials .*'http:\/\/user:\*\*\*@/,
      ],
      [
        [...fetchMs, "--registry", `${fixture.url}?token=s3cret`],
        {},
        /^error: Invalid --registry: a query/,
      ],
      [
        [...refresh, "--origin", `${fixture.url}?x=1`],
        {},
        /^error: Invalid --origin: a query or fragment/,
      ],
      [
        [...refresh, "--origin", `${fixture.url}#top`],
        {},
        /^error: Invalid --origin: a query or fragment/,
      ],
      [refresh, { ALL_DOCS_ORIGIN: `${fixture.url}?` }, /^error: Invalid ALL_DOCS_ORIGIN: a query/],
      [
        [...refresh, "--origin", `ftp://${host}/`],
        {},
        /^error: Invalid --origin: expected an http\(s\) URL/,
      ],
      [
        [...refresh, "--origin", `http://admin:s3cret@${host}/`],
        {},
        /^error: Invalid --origin: credentials .*'http:\/\/admin:\*\*\*@/,
      ],
    ];
    for (const [args, env, pattern] of cases) {
      const run = await runCli(args, {
        ALL_DOCS_CACHE_DIR: dir,
        ALL_DOCS_REGISTRY: fixture.url,
        ...env,
      });
      const label = `${args.join(" ")} ${JSON.stringify(env)}`;
      assert.equal(run.code, 2, `${label}: ${run.stderr}`);
      const lines = run.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `${label}: ${run.stderr}`);
      assert.match(lines[0]!, pattern, label);
      assert.doesNotMatch(run.stderr + run.stdout, /s3cret/, label);
    }
    assert.equal(fixture.requests.length, 0);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
});
