import assert from "node:assert/strict";
import { runCli, startCli } from "../_support/run_cli.ts";
import { api, json, TOKEN, withOrigins } from "../_support/worker_e2e.ts";

const AUDIENCE = "https://all-docs-worker.example/";
const EMAIL = "push@all-docs.iam.gserviceaccount.com";

function b64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** A key pair, its JWKS, and a Google-style identity token signed with it. */
async function oidcFixture() {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const { n, e } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const jwks = { keys: [{ kty: "RSA", n, e, alg: "RS256", use: "sig", kid: "k1" }] };
  const part = (value: unknown) => b64url(new TextEncoder().encode(JSON.stringify(value)));
  const now = Math.floor(Date.now() / 1000);
  const signed = `${part({ alg: "RS256", kid: "k1", typ: "JWT" })}.${
    part({
      iss: "https://accounts.google.com",
      aud: AUDIENCE,
      email: EMAIL,
      email_verified: true,
      iat: now,
      exp: now + 3600,
    })
  }`;
  const signature = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    pair.privateKey,
    new TextEncoder().encode(signed),
  );
  return { jwks, token: `${signed}.${b64url(new Uint8Array(signature))}` };
}

Deno.test("worker start runs a Cloud Tasks push with the token, and a Pub/Sub push with OIDC", () =>
  withOrigins({ count: 10 }, async (origins) => {
    const oidc = await oidcFixture();
    let keyFetches = 0;
    const keys = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
      keyFetches++;
      return Response.json(oidc.jwks);
    });
    const env = {
      ...origins.env,
      ALL_DOCS_WORKER_OIDC_JWKS_URL: `http://127.0.0.1:${keys.addr.port}/certs`,
      ALL_DOCS_WORKER_OIDC_EMAIL: EMAIL,
    };
    const child = startCli(
      ["worker", "start", "--queue", "memory", "--port", "0", "--oidc-audience", AUDIENCE],
      env,
    );
    try {
      const line = await child.line();
      const match = /^listening (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
      if (!match) assert.fail(`unexpected first line: ${JSON.stringify(line)}\n${child.output()}`);
      const url: string = match[1]!;
      const registry = origins.registry.url;
      const task = await fetch(new URL("-/worker/push/cloud-tasks", url), {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          "content-type": "application/octet-stream",
          "user-agent": "Google-Cloud-Tasks",
          "x-cloudtasks-queuename": "all-docs-packuments",
          "x-cloudtasks-taskname": "24179357165914612751",
          "x-cloudtasks-taskretrycount": "0",
          "x-cloudtasks-taskexecutioncount": "0",
          "x-cloudtasks-tasketa": "1767225600.481307",
        },
        body: JSON.stringify({ type: "packument", payload: { registry, names: ["pkg-1"] } }),
      });
      assert.equal(task.status, 200);
      assert.equal((await json(task)).outcome, "ack");
      const item = { type: "packument", payload: { registry, names: ["@gen/pkg-5"] } };
      const message = await fetch(new URL("-/worker/push/pubsub", url), {
        method: "POST",
        headers: { authorization: `Bearer ${oidc.token}`, "content-type": "application/json" },
        body: JSON.stringify({
          message: { data: btoa(JSON.stringify(item)), messageId: "7", message_id: "7" },
          subscription: "projects/all-docs/subscriptions/worker-push",
          deliveryAttempt: 1,
        }),
      });
      assert.equal(message.status, 200);
      assert.equal((await json(message)).outcome, "ack");
      assert.equal(keyFetches, 1);
      // The OIDC token opens the push routes only.
      const stats = await api(url, "-/worker/stats", {}, oidc.token);
      assert.equal(stats.status, 401);
      await stats.body?.cancel();
      // The items' effect: the packuments are cached, byte for byte.
      for (const name of ["pkg-1", "@gen/pkg-5"]) {
        const response = await fetch(new URL(name.replace("/", "%2f"), url), {
          headers: { accept: "application/json" },
        });
        assert.equal(response.status, 200, name);
        const body = new Uint8Array(await response.arrayBuffer());
        assert.deepEqual(body, origins.registry.expectedBody(name, "full"), name);
      }
      assert.ok(!child.output().includes(oidc.token), "the OIDC token was logged");
    } finally {
      const exit = await child.stop();
      await keys.shutdown();
      assert.equal(exit.code, 0, exit.stderr);
    }
  }));

Deno.test("worker start refuses OIDC settings without an audience, or a bad email", async () => {
  const env = { ALL_DOCS_WORKER_TOKEN: TOKEN, ALL_DOCS_STORAGE: "memory" };
  const noAudience = await runCli(
    ["worker", "start", "--queue", "memory", "--oidc-email", EMAIL],
    env,
  );
  assert.equal(noAudience.code, 2);
  assert.match(noAudience.stderr, /needs an audience: give --oidc-audience AUD/);
  const badEmail = await runCli(
    ["worker", "start", "--queue", "memory", "--oidc-audience", AUDIENCE, "--oidc-email", "nobody"],
    env,
  );
  assert.equal(badEmail.code, 2);
  assert.match(badEmail.stderr, /Invalid --oidc-email: expected an email address/);
});
