import assert from "node:assert/strict";
import {
  GOOGLE_ISSUERS,
  JWKS_REFETCH_INTERVAL_MS,
  OIDC_CLOCK_SKEW_SECONDS,
  OidcError,
  type OidcOptions,
  OidcVerifier,
} from "../../src/worker/oidc.ts";
import { createWorkerApp } from "../../src/worker/api.ts";
import { Worker } from "../../src/worker/worker.ts";
import type { PackumentPayload } from "../../src/worker/items.ts";
import { MemoryQueue } from "../../queues/memory.ts";

const AUDIENCE = "https://all-docs-worker-abc123-uc.a.run.app/-/worker/push/cloud-tasks";
const EMAIL = "tasks-invoker@all-docs.iam.gserviceaccount.com";
const NOW_MS = 1_767_225_600_000;
const NOW = NOW_MS / 1000;
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Keys and tokens made here, with WebCrypto

interface Signer {
  kid: string;
  jwk: Record<string, string>;
  privateKey: CryptoKey;
}

async function signer(kid: string): Promise<Signer> {
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
  const exported = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const jwk = { kty: "RSA", n: exported.n!, e: exported.e!, alg: "RS256", use: "sig", kid };
  return { kid, jwk, privateKey: pair.privateKey };
}

function b64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

function part(value: unknown): string {
  return b64url(encoder.encode(JSON.stringify(value)));
}

/** Google-style claims of a Cloud Tasks / Pub/Sub push token, issued at NOW. */
function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    aud: AUDIENCE,
    azp: "104857193527193847561",
    email: EMAIL,
    email_verified: true,
    exp: NOW + 3600,
    iat: NOW,
    iss: "https://accounts.google.com",
    sub: "104857193527193847561",
    ...extra,
  };
}

async function sign(
  key: Signer,
  body: Record<string, unknown> = claims(),
  header: Record<string, unknown> = {},
): Promise<string> {
  const signed = `${part({ alg: "RS256", kid: key.kid, typ: "JWT", ...header })}.${part(body)}`;
  const signature = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    key.privateKey,
    encoder.encode(signed),
  );
  return `${signed}.${b64url(new Uint8Array(signature))}`;
}

/** A key server the test controls, through an injected fetch. */
function keyServer(keys: Signer[], init: ResponseInit = {}) {
  const state = { keys, fetches: 0, fail: false };
  const fetch = (input: RequestInfo | URL): Promise<Response> => {
    assert.equal(String(input), "http://127.0.0.1:9/certs");
    state.fetches++;
    if (state.fail) return Promise.resolve(new Response("down", { status: 502 }));
    return Promise.resolve(Response.json({ keys: state.keys.map((k) => k.jwk) }, init));
  };
  return { state, fetch: fetch as typeof globalThis.fetch };
}

function verifierWith(
  fetch: typeof globalThis.fetch,
  clock: { ms: number },
  options: Partial<OidcOptions> = {},
) {
  return new OidcVerifier({
    audience: AUDIENCE,
    jwksUrl: "http://127.0.0.1:9/certs",
    fetch,
    clock: { now: () => clock.ms },
    ...options,
  });
}

async function refusal(verifier: OidcVerifier, token: string): Promise<OidcError> {
  try {
    await verifier.verify(token);
  } catch (error) {
    assert.ok(error instanceof OidcError, String(error));
    assert.ok(!error.message.includes(token), "the message holds the token");
    return error;
  }
  assert.fail("the token was accepted");
}

const [KEY_A, KEY_B, KEY_C] = await Promise.all([signer("a1"), signer("b2"), signer("c3")]);

// ---------------------------------------------------------------------------------------------
// OidcVerifier

Deno.test("OidcVerifier accepts a valid token and returns its claims", async () => {
  const server = keyServer([KEY_A, KEY_B]);
  const verifier = verifierWith(server.fetch, { ms: NOW_MS }, { serviceAccountEmail: EMAIL });
  const verified = await verifier.verify(await sign(KEY_B));
  assert.equal(verified.email, EMAIL);
  assert.equal(verified.aud, AUDIENCE);
  // The other Google issuer spelling, an audience array, an upper-case email.
  await verifier.verify(await sign(KEY_A, claims({ iss: "accounts.google.com" })));
  await verifier.verify(await sign(KEY_A, claims({ aud: ["other", AUDIENCE] })));
  await verifier.verify(await sign(KEY_A, claims({ email: EMAIL.toUpperCase() })));
  // Clock skew: just expired, issued a little ahead.
  await verifier.verify(await sign(KEY_A, claims({ exp: NOW - OIDC_CLOCK_SKEW_SECONDS + 1 })));
  await verifier.verify(await sign(KEY_A, claims({ iat: NOW + OIDC_CLOCK_SKEW_SECONDS })));
  assert.equal(server.state.fetches, 1);
  assert.deepEqual(GOOGLE_ISSUERS, ["https://accounts.google.com", "accounts.google.com"]);
});

Deno.test("OidcVerifier refuses tokens that fail a check, saying which", async (t) => {
  const server = keyServer([KEY_A]);
  const verifier = verifierWith(server.fetch, { ms: NOW_MS }, { serviceAccountEmail: EMAIL });
  const valid = await sign(KEY_A);
  const [header, body] = valid.split(".") as [string, string, string];
  const cases: [string, () => Promise<string>, RegExp][] = [
    ["expired", () => sign(KEY_A, claims({ exp: NOW - OIDC_CLOCK_SKEW_SECONDS })), /expired/],
    ["no expiry", () => sign(KEY_A, claims({ exp: undefined })), /no expiry/],
    ["issued in the future", () => sign(KEY_A, claims({ iat: NOW + 3600 })), /future/],
    ["no issue time", () => sign(KEY_A, claims({ iat: "now" })), /no issue time/],
    ["not valid yet", () => sign(KEY_A, claims({ nbf: NOW + 600 })), /not valid yet/],
    ["a wrong audience", () => sign(KEY_A, claims({ aud: "https://elsewhere" })), /audience/],
    ["no audience", () => sign(KEY_A, claims({ aud: undefined })), /audience/],
    ["a wrong issuer", () => sign(KEY_A, claims({ iss: "https://evil" })), /issuer/],
    ["a wrong email", () => sign(KEY_A, claims({ email: "me@example.com" })), /email/],
    ["no email", () => sign(KEY_A, claims({ email: undefined })), /email/],
    [
      "an unverified email",
      () => sign(KEY_A, claims({ email_verified: false })),
      /email is not verified/,
    ],
    ["a bad signature", () => sign(KEY_C, claims(), { kid: "a1" }), /signature/],
    ["claims swapped after signing", async () => {
      const other = await sign(KEY_A, claims({ email: "me@example.com" }));
      return `${header}.${other.split(".")[1]}.${valid.split(".")[2]}`;
    }, /signature/],
    ["an unknown kid", () => sign(KEY_C), /key \('kid'\) is not in the key set/],
    ["no kid", () => sign(KEY_A, claims(), { kid: undefined }), /names no key/],
    ["alg none", () => Promise.resolve(`${part({ alg: "none" })}.${body}.`), /not a JWT/],
    [
      "alg none, signed",
      () =>
        Promise.resolve(
          `${part({ alg: "none", kid: "a1" })}.${body}.${b64url(new Uint8Array([1]))}`,
        ),
      /RS256/,
    ],
    ["HS256", () => sign(KEY_A, claims(), { alg: "HS256" }), /RS256/],
    ["crit", () => sign(KEY_A, claims(), { crit: ["exp"] }), /critical/],
    ["two parts", () => Promise.resolve(`${header}.${body}`), /three base64url parts/],
    [
      "not JSON",
      () => Promise.resolve(`${b64url(encoder.encode("{x"))}.${body}.AA`),
      /base64url JSON/,
    ],
    ["an array header", () => Promise.resolve(`${part([])}.${body}.AA`), /not a JSON object/],
    ["too long", () => Promise.resolve(`${header}.${"A".repeat(9000)}.AA`), /too long/],
  ];
  for (const [name, make, reason] of cases) {
    await t.step(name, async () => {
      const error = await refusal(verifier, await make());
      assert.equal(error.unavailable, false);
      assert.match(error.message, reason);
    });
  }
  await t.step("the email is not checked without serviceAccountEmail", async () => {
    const lenient = verifierWith(server.fetch, { ms: NOW_MS });
    await lenient.verify(await sign(KEY_A, claims({ email: undefined })));
  });
});

Deno.test("OidcVerifier fetches the key set again for an unknown kid at most once a minute", async () => {
  const server = keyServer([KEY_A]);
  const clock = { ms: NOW_MS };
  const verifier = verifierWith(server.fetch, clock);
  await verifier.verify(await sign(KEY_A));
  assert.equal(server.state.fetches, 1);
  // Made-up key ids do not make it fetch more than once a minute.
  for (let i = 0; i < 5; i++) await refusal(verifier, await sign(KEY_B));
  assert.equal(server.state.fetches, 1);
  // The keys rotate: the new key is fetched once the minute has passed.
  server.state.keys = [KEY_A, KEY_B];
  clock.ms += JWKS_REFETCH_INTERVAL_MS - 1;
  await refusal(verifier, await sign(KEY_B, claims({ iat: clock.ms / 1000 })));
  assert.equal(server.state.fetches, 1);
  clock.ms += 1;
  const fresh = claims({ iat: clock.ms / 1000, exp: clock.ms / 1000 + 3600 });
  await verifier.verify(await sign(KEY_B, fresh));
  assert.equal(server.state.fetches, 2);
  await verifier.verify(await sign(KEY_A, fresh));
  assert.equal(server.state.fetches, 2);
});

Deno.test("OidcVerifier refreshes by Cache-Control max-age and keeps its keys when that fails", async () => {
  const server = keyServer([KEY_A], { headers: { "cache-control": "public, max-age=300" } });
  const clock = { ms: NOW_MS };
  const verifier = verifierWith(server.fetch, clock);
  const token = await sign(KEY_A);
  await verifier.verify(token);
  clock.ms += 299_000;
  await verifier.verify(token);
  assert.equal(server.state.fetches, 1);
  clock.ms += 1000;
  server.state.fail = true;
  await verifier.verify(token);
  assert.equal(server.state.fetches, 2);
  // Concurrent tokens share one fetch.
  server.state.fail = false;
  clock.ms += JWKS_REFETCH_INTERVAL_MS;
  await Promise.all([verifier.verify(token), verifier.verify(token), verifier.verify(token)]);
  assert.equal(server.state.fetches, 3);
});

Deno.test("OidcVerifier says 'unavailable' when no keys could be fetched", async () => {
  const server = keyServer([KEY_A]);
  server.state.fail = true;
  const clock = { ms: NOW_MS };
  const verifier = verifierWith(server.fetch, clock);
  const token = await sign(KEY_A);
  const error = await refusal(verifier, token);
  assert.equal(error.unavailable, true);
  assert.match(error.message, /Cannot fetch the OIDC keys from http:\/\/127\.0\.0\.1:9\/certs/);
  assert.match(error.message, /answered 502/);
  server.state.fail = false;
  assert.equal((await refusal(verifier, token)).unavailable, true);
  assert.equal(server.state.fetches, 1);
  clock.ms += JWKS_REFETCH_INTERVAL_MS;
  await verifier.verify(token);
  // A key set without a usable key is no key set.
  const empty = verifierWith(
    () => Promise.resolve(Response.json({ keys: [{ ...KEY_A.jwk, kty: "EC" }] })),
    clock,
  );
  assert.match((await refusal(empty, token)).message, /no RS256 signing key/);
  const thrown = verifierWith(() => Promise.reject(new TypeError("connection refused")), clock);
  assert.match((await refusal(thrown, token)).message, /connection refused/);
});

Deno.test("OidcVerifier validates its options", () => {
  const bad: [Partial<OidcOptions>, RegExp][] = [
    [{ audience: "" }, /'audience' must be a non-empty string, received ""/],
    [{ audience: 42 as unknown as string }, /'audience'.*received 42/],
    [{ issuers: [] }, /'issuers' must be a non-empty array/],
    [{ issuers: [""] }, /'issuers'/],
    [{ jwksUrl: "ftp://127.0.0.1/certs" }, /'jwksUrl' must be an absolute http\(s\) URL/],
    [{ jwksUrl: "certs" }, /'jwksUrl'/],
    [{ serviceAccountEmail: "nobody" }, /'serviceAccountEmail' must be an email address/],
    [{ fetch: "no" as unknown as typeof fetch }, /'fetch' must be a function/],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => new OidcVerifier({ audience: AUDIENCE, ...options }),
      (error: unknown) => error instanceof TypeError && message.test(error.message),
      JSON.stringify(options),
    );
  }
  assert.throws(
    () =>
      createWorkerApp({
        worker: new Worker(new MemoryQueue(), { handlers: {} }),
        token: undefined,
        push: { oidc: { audience: "" } },
      }),
    /Cannot verify OIDC tokens: 'audience'/,
  );
});

// ---------------------------------------------------------------------------------------------
// The push routes with OIDC, the key set served from 127.0.0.1

async function withKeyServer(fn: (url: string, fetches: () => number) => Promise<void>) {
  let fetches = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    fetches++;
    assert.equal(new URL(request.url).pathname, "/oauth2/v3/certs");
    return Response.json({ keys: [KEY_A.jwk, KEY_B.jwk] }, {
      headers: { "cache-control": "public, max-age=20000, must-revalidate, no-transform" },
    });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/oauth2/v3/certs`, () => fetches);
  } finally {
    await server.shutdown();
  }
}

Deno.test("push routes accept an OIDC token or the worker token, and refuse the rest with 401", () =>
  withKeyServer(async (jwksUrl, fetches) => {
    const TOKEN = "worker-token-for-oidc-test";
    const seen: string[][] = [];
    const lines: string[] = [];
    const worker = new Worker(new MemoryQueue(), {
      handlers: {
        packument: (item) => {
          seen.push((item.payload as PackumentPayload).names);
          return Promise.resolve();
        },
      },
    });
    const app = createWorkerApp({
      worker,
      token: TOKEN,
      log: (line) => lines.push(line),
      push: { oidc: { audience: AUDIENCE, jwksUrl, serviceAccountEmail: EMAIL } },
    });
    const item = {
      type: "packument",
      payload: { registry: "http://127.0.0.1:4873/", names: ["ms"] },
    };
    const tasks = (authorization?: string) =>
      app.request("/-/worker/push/cloud-tasks", {
        method: "POST",
        headers: {
          "user-agent": "Google-Cloud-Tasks",
          "x-cloudtasks-taskretrycount": "0",
          ...(authorization === undefined ? {} : { authorization }),
        },
        body: JSON.stringify(item),
      });
    const pubsub = (authorization?: string) =>
      app.request("/-/worker/push/pubsub", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(authorization === undefined ? {} : { authorization }),
        },
        body: JSON.stringify({
          message: { data: btoa(JSON.stringify(item)), messageId: "1", message_id: "1" },
          subscription: "projects/all-docs/subscriptions/worker-push",
          deliveryAttempt: 1,
        }),
      });
    const now = Math.floor(Date.now() / 1000);
    const live = { iat: now, exp: now + 3600 };
    const valid = await sign(KEY_A, claims(live));

    for (const response of [await tasks(`Bearer ${valid}`), await pubsub(`Bearer ${valid}`)]) {
      assert.equal(response.status, 200);
      assert.equal((await response.json()).outcome, "ack");
    }
    const byToken = await tasks(`Bearer ${TOKEN}`);
    assert.equal(byToken.status, 200);
    await byToken.body?.cancel();
    assert.equal(seen.length, 3);

    const refused: Record<string, string | undefined> = {
      "no header": undefined,
      "expired": await sign(KEY_A, claims({ iat: now - 7200, exp: now - 3600 })),
      "wrong audience": await sign(KEY_A, claims({ ...live, aud: "https://elsewhere.run.app" })),
      "wrong issuer": await sign(KEY_A, claims({ ...live, iss: "https://issuer.example" })),
      "bad signature": await sign(KEY_C, claims(live), { kid: "a1" }),
      "unknown kid": await sign(KEY_C, claims(live)),
      "wrong email": await sign(
        KEY_B,
        claims({ ...live, email: "someone@all-docs.iam.gserviceaccount.com" }),
      ),
      "a wrong worker token": "not-the-worker-token",
    };
    for (const [name, credentials] of Object.entries(refused)) {
      for (const send of [tasks, pubsub]) {
        const response = await send(
          credentials === undefined ? undefined : `Bearer ${credentials}`,
        );
        assert.equal(response.status, 401, name);
        assert.equal(
          response.headers.get("www-authenticate"),
          credentials === undefined ? "Bearer" : 'Bearer error="invalid_token"',
          name,
        );
        const text = await response.text();
        assert.equal(JSON.parse(text).error, "unauthorized", name);
        if (credentials !== undefined) assert.ok(!text.includes(credentials), name);
      }
    }
    assert.equal(seen.length, 3);
    // The key set was fetched once: the unknown kid came within the minute.
    assert.equal(fetches(), 1);
    // Other routes take the worker token only.
    const stats = await app.request("/-/worker/stats", {
      headers: { authorization: `Bearer ${valid}` },
    });
    assert.equal(stats.status, 401);
    await stats.body?.cancel();
    // Tokens are never logged.
    assert.ok(lines.length > 0);
    for (const line of lines) {
      assert.ok(!line.includes(valid) && !line.includes(TOKEN), line);
      for (const credentials of Object.values(refused)) {
        if (credentials !== undefined) assert.ok(!line.includes(credentials), line);
      }
    }
  }));

Deno.test("push routes with OIDC and no worker token need the OIDC token; 503 without keys", async () => {
  const worker = new Worker(new MemoryQueue(), {
    handlers: { packument: () => Promise.resolve() },
  });
  const app = createWorkerApp({
    worker,
    token: undefined,
    push: {
      oidc: {
        audience: AUDIENCE,
        jwksUrl: "http://127.0.0.1:9/certs",
        fetch: () => Promise.resolve(new Response("unavailable", { status: 503 })),
      },
    },
  });
  const post = (headers: Record<string, string>) =>
    app.request("/-/worker/push/cloud-tasks", {
      method: "POST",
      headers,
      body: JSON.stringify({
        type: "packument",
        payload: { registry: "http://127.0.0.1:4873/", names: ["ms"] },
      }),
    });
  const none = await post({});
  assert.equal(none.status, 401);
  await none.body?.cancel();
  const now = Math.floor(Date.now() / 1000);
  const token = await sign(KEY_A, claims({ iat: now, exp: now + 3600 }));
  const unavailable = await post({ authorization: `Bearer ${token}` });
  assert.equal(unavailable.status, 503);
  assert.equal(unavailable.headers.get("retry-after"), "10");
  const body = await unavailable.json();
  assert.equal(body.error, "oidc_keys_unavailable");
  assert.match(body.reason, /answered 503/);
  // The other routes stay open, as without OIDC.
  const stats = await app.request("/-/worker/stats");
  assert.equal(stats.status, 200);
  await stats.body?.cancel();
});
