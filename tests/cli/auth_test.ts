import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { generatePackument } from "../_support/packuments.ts";
import { startRegistryFixture } from "../_support/registry_fixture.ts";

/** The environment of this process without npm's settings or this tool's. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const kept = Object.entries(Deno.env.toObject()).filter(([key]) =>
    !/^npm_config_/i.test(key) && !key.startsWith("ALL_DOCS_")
  );
  return { ...Object.fromEntries(kept), RUST_BACKTRACE: "0", NO_COLOR: "1", ...extra };
}

function base64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

Deno.test(".npmrc Basic auth (_auth, username + _password) goes to its registry only, unprinted", async () => {
  const body = (name: string, seed: number) => generatePackument(name, { versions: 2, seed });
  const open = await startRegistryFixture({
    packuments: new Map([["plain-y", body("plain-y", 1)]]),
    recordHeaders: true,
  });
  const legacy = await startRegistryFixture({
    packuments: new Map([["@legacy/x", body("@legacy/x", 2)]]),
    recordHeaders: true,
  });
  const pair = await startRegistryFixture({
    packuments: new Map([["@pair/x", body("@pair/x", 3)]]),
    recordHeaders: true,
  });
  const dir = await Deno.makeTempDir();
  try {
    const legacyAuth = base64("legacy-user:legacy-s3cret-pass");
    const password = "pair-s3cret-pässword";
    const lines = [
      `registry=${open.url}`,
      `@legacy:registry=${legacy.url}`,
      `@pair:registry=${pair.url}`,
      `//${new URL(legacy.url).host}/:_auth=${legacyAuth}`,
      `//${new URL(pair.url).host}/:username=pair-user`,
      `//${new URL(pair.url).host}/:_password=${base64(password)}`,
      // A top-level _auth names no registry: npm 9 refuses it; it is sent nowhere.
      `_auth=${base64("global-user:global-s3cret")}`,
    ];
    const npmrc = join(dir, "user.npmrc");
    await Deno.writeTextFile(npmrc, lines.join("\n") + "\n");
    const env = cleanEnv({ NPM_CONFIG_USERCONFIG: npmrc, ALL_DOCS_CACHE_DIR: dir });
    const fetched = await runCli(
      ["packument", "fetch", "@legacy/x", "@pair/x", "plain-y", "--json"],
      env,
      { clearEnv: true },
    );
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.deepEqual(legacy.requests.map((r) => [r.name, r.status]), [["@legacy/x", 200]]);
    assert.equal(legacy.requests[0]!.headers!["authorization"], `Basic ${legacyAuth}`);
    assert.deepEqual(pair.requests.map((r) => [r.name, r.status]), [["@pair/x", 200]]);
    assert.equal(
      pair.requests[0]!.headers!["authorization"],
      `Basic ${base64(`pair-user:${password}`)}`,
    );
    assert.deepEqual(open.requests.map((r) => [r.name, r.status]), [["plain-y", 200]]);
    assert.equal(open.requests[0]!.authorization, false);
    const secrets = [legacyAuth, "legacy-s3cret-pass", base64(password), password, "global-s3cret"];
    for (const secret of secrets) {
      assert.equal(fetched.stdout.includes(secret), false, secret);
      assert.equal(fetched.stderr.includes(secret), false, secret);
    }
  } finally {
    await open.close();
    await legacy.close();
    await pair.close();
    await Deno.remove(dir, { recursive: true });
  }
});
