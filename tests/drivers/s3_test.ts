import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { contractHelpers, runDriverContract } from "../_support/driver_contract.ts";
import { S3_DEFAULT_PART_BYTES, S3Driver, StorageError } from "../../drivers/s3.ts";
import { HttpClient, HttpError } from "../../src/http/client.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_support/s3rver.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const { readAll, listAll } = contractHelpers;
const encoder = new TextEncoder();

Deno.test("s3 driver against s3rver meets the contract", async (t) => {
  const server = await startS3rver();
  try {
    let n = 0;
    await runDriverContract(t, () =>
      Promise.resolve(
        new S3Driver({
          endpoint: server.endpoint,
          bucket: server.bucket,
          prefix: `contract-${n++}:`,
          credentials: S3RVER_CREDENTIALS,
          // Small pages, so listings go through several ListObjectsV2 continuations.
          pageSize: 7,
        }),
      ));
  } finally {
    await server.close();
  }
});

/** A stream of `total` bytes where byte `i` is `(i * 31 + i >> 11) & 0xff`, in odd pieces. */
function patternStream(total: number, failAt?: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller): void {
      if (failAt !== undefined && sent >= failAt) {
        controller.error(new Error("stream broke"));
        return;
      }
      if (sent >= total) {
        controller.close();
        return;
      }
      const length = Math.min(1_000_003, total - sent);
      const chunk = new Uint8Array(length);
      for (let i = 0; i < length; i++) chunk[i] = patternByte(sent + i);
      sent += length;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

function patternByte(i: number): number {
  return (i * 31 + (i >> 11)) & 0xff;
}

Deno.test("s3 driver", async (t) => {
  const server = await startS3rver("s3-driver-test");
  const driver = (prefix: string, credentials = S3RVER_CREDENTIALS): S3Driver =>
    new S3Driver({ endpoint: server.endpoint, bucket: server.bucket, prefix, credentials });
  try {
    await t.step("wrong credentials are refused with a clear error", async () => {
      const good = driver("creds:");
      await good.put("k", encoder.encode("v"));
      const wrongSecret = driver("creds:", { accessKeyId: "S3RVER", secretAccessKey: "nope" });
      await assert.rejects(wrongSecret.get("k"), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.match(
          error.message,
          /^Cannot get key "k": S3 answered HTTP 403: SignatureDoesNotMatch/,
        );
        assert.equal(error.code, 403);
        assert.equal(error.driver, "s3");
        assert.equal(error.key, "k");
        return true;
      });
      await assert.rejects(
        wrongSecret.put("k", encoder.encode("changed")),
        /Cannot put key "k": S3 answered HTTP 403: SignatureDoesNotMatch/,
      );
      await assert.rejects(listAll(wrongSecret), /Cannot list key "": S3 answered HTTP 403/);
      const unknownKey = driver("creds:", { accessKeyId: "NOBODY", secretAccessKey: "S3RVER" });
      await assert.rejects(unknownKey.has("k"), /Cannot check key "k": S3 answered HTTP 403/);
      assert.equal(new TextDecoder().decode(await good.get("k")), "v");
    });

    await t.step("a missing bucket is an error, not an empty store", async () => {
      const lost = new S3Driver({
        endpoint: server.endpoint,
        bucket: "no-such-bucket",
        credentials: S3RVER_CREDENTIALS,
      });
      await assert.rejects(
        lost.get("k"),
        /^StorageError: Cannot get key "k": S3 answered HTTP 404: NoSuchBucket/,
      );
      await assert.rejects(lost.getStream("k"), /HTTP 404: NoSuchBucket/);
      await assert.rejects(lost.delete("k"), /Cannot delete key "k": S3 answered HTTP 404/);
      await assert.rejects(listAll(lost), /Cannot list key "": S3 answered HTTP 404/);
      await assert.rejects(
        lost.has("k"),
        /Cannot check key "k": S3 answered HTTP 404: NoSuchBucket/,
      );
      await assert.rejects(
        Array.fromAsync(lost.list({ start: "k" })),
        /S3 answered HTTP 404: NoSuchBucket/,
      );
      // The bucket itself is fine: an absent key is just absent.
      assert.equal(await driver("present:").has("absent"), false);
    });

    await t.step("a stream larger than one part round-trips through multipart", async () => {
      const d = driver("multi:");
      const total = 2 * S3_DEFAULT_PART_BYTES + 12_345;
      await d.put("big", patternStream(total));
      const stream = await d.getStream("big");
      assert.ok(stream !== undefined);
      const bytes = await readAll(stream);
      assert.equal(bytes.byteLength, total);
      for (let i = 0; i < total; i++) {
        if (bytes[i] !== patternByte(i)) assert.fail(`byte ${i} differs`);
      }
      assert.deepEqual((await server.state()).uploads, []);
      assert.ok((await server.state()).objects.includes("multi:big"));
    });

    await t.step("a stream of exactly one part is one PUT; of two parts, two parts", async () => {
      const sent: string[] = [];
      const counting: typeof fetch = (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        sent.push(`${init?.method ?? "GET"} ${url.search}`);
        return fetch(input, init);
      };
      const d = new S3Driver({
        endpoint: server.endpoint,
        bucket: server.bucket,
        prefix: "exact:",
        credentials: S3RVER_CREDENTIALS,
        http: { fetch: counting },
      });
      await d.put("one", patternStream(S3_DEFAULT_PART_BYTES));
      assert.deepEqual(sent, ["PUT "]);
      sent.length = 0;
      await d.put("two", patternStream(2 * S3_DEFAULT_PART_BYTES));
      assert.deepEqual(sent.map((line) => line.replace(/uploadId=[^&]*/, "uploadId=U")), [
        "POST ?uploads=",
        "PUT ?partNumber=1&uploadId=U",
        "PUT ?partNumber=2&uploadId=U",
        "POST ?uploadId=U",
      ]);
      for (const [key, size] of [["one", 1], ["two", 2]] as const) {
        const bytes = (await d.get(key))!;
        assert.equal(bytes.byteLength, size * S3_DEFAULT_PART_BYTES);
        assert.equal(bytes[bytes.byteLength - 1], patternByte(bytes.byteLength - 1));
      }
    });

    await t.step("a stream failing after a part leaves no object and no upload", async () => {
      const d = driver("fail:");
      await assert.rejects(
        d.put("broken", patternStream(3 * S3_DEFAULT_PART_BYTES, S3_DEFAULT_PART_BYTES + 5)),
        /stream broke/,
      );
      assert.equal(await d.has("broken"), false);
      const state = await server.state();
      assert.deepEqual(state.uploads, []);
      assert.equal(state.objects.filter((key) => key.startsWith("fail:")).length, 0);
      // An upload that fails after the old value is stored keeps the old value.
      await d.put("kept", encoder.encode("old"));
      await assert.rejects(
        d.put("kept", patternStream(3 * S3_DEFAULT_PART_BYTES, 2 * S3_DEFAULT_PART_BYTES + 1)),
        /stream broke/,
      );
      assert.equal(new TextDecoder().decode(await d.get("kept")), "old");
      assert.deepEqual((await server.state()).uploads, []);
    });

    await t.step("keys are stored verbatim under the prefix", async () => {
      const d = driver("raw/");
      const keys = ["a b", "é/中", "%2e", "x+y=z&w", "semi;colon", "\u0000", "~tilde", "a/"];
      for (const key of keys) await d.put(key, encoder.encode(key));
      const objects = (await server.state()).objects.filter((k) => k.startsWith("raw/"));
      assert.deepEqual(objects.sort(), keys.map((key) => "raw/" + key).sort());
      for (const key of keys) assert.equal(new TextDecoder().decode(await d.get(key)), key);
      // With a prefix ending in "/", a "." segment cannot be addressed in a URL.
      await assert.rejects(d.put(".", new Uint8Array(1)), TypeError);
      await assert.rejects(d.get("../x"), TypeError);
      const bare = new S3Driver({
        endpoint: server.endpoint,
        bucket: server.bucket,
        credentials: S3RVER_CREDENTIALS,
      });
      await assert.rejects(bare.put("", new Uint8Array(1)), TypeError);
      assert.equal(bare.limits.maxKeyBytes, 1024);
      assert.equal(d.limits.maxKeyBytes, 1020);
    });
  } finally {
    await server.close();
  }
});

/** Signature Version 4 recomputed with node:crypto from a request as sent, as S3 does. */
function expectedSignature(
  method: string,
  url: URL,
  headers: Headers,
  secretAccessKey: string,
): { authorization: string; canonical: string } {
  const rfc3986 = (text: string) =>
    encodeURIComponent(text).replace(
      /[!'()*]/g,
      (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
    );
  const auth =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([^,]+), Signature=[0-9a-f]{64}$/
      .exec(headers.get("authorization") ?? "");
  assert.ok(auth, `authorization header: ${headers.get("authorization")}`);
  const [, accessKeyId, day, region, signedHeaders] = auth;
  const query = url.search === "" ? "" : url.search.slice(1).split("&")
    .map((pair) => pair.split("=").map((part) => rfc3986(decodeURIComponent(part ?? ""))))
    .map(([name, value = ""]) => `${name}=${value}`)
    .sort()
    .join("&");
  const canonical = [
    method,
    url.pathname.split("/").map((part) => rfc3986(decodeURIComponent(part))).join("/"),
    query,
    signedHeaders!.split(";")
      .map((name) => `${name}:${name === "host" ? url.host : headers.get(name)}\n`)
      .join(""),
    signedHeaders,
    headers.get("x-amz-content-sha256"),
  ].join("\n");
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    headers.get("x-amz-date"),
    `${day}/${region}/s3/aws4_request`,
    createHash("sha256").update(canonical).digest("hex"),
  ].join("\n");
  let key = createHmac("sha256", "AWS4" + secretAccessKey).update(day!).digest();
  for (const part of [region!, "s3", "aws4_request"]) {
    key = createHmac("sha256", key).update(part).digest();
  }
  const signature = createHmac("sha256", key).update(stringToSign).digest("hex");
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${day}/${region}/s3/aws4_request, ` +
      `SignedHeaders=${signedHeaders}, Signature=${signature}`,
    canonical,
  };
}

Deno.test("s3 driver signs requests with Signature Version 4 as S3 reads them", async () => {
  const credentials = {
    accessKeyId: "AKIDEXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    sessionToken: "token/with+chars=",
  };
  const sent: { method: string; url: URL; headers: Headers; body: unknown }[] = [];
  const driver = new S3Driver({
    endpoint: "http://127.0.0.1:9000",
    bucket: "bucket",
    prefix: "v1:",
    region: "eu-west-3",
    credentials,
    http: {
      fetch: (input, init) => {
        sent.push({
          method: init.method ?? "GET",
          url: new URL(input),
          headers: new Headers(init.headers),
          body: init.body,
        });
        return Promise.resolve(new Response("", { status: 200 }));
      },
    },
  });
  const body = encoder.encode("hello, s3");
  // Raw !*'() (which the URL parser leaves as they are), a space, "+", "%", a slash and UTF-8.
  await driver.put("a!b*c'(d) e+f%/é~", body);
  await driver.delete("x");
  await Array.fromAsync(driver.list({ prefix: "p q" }));
  assert.equal(await driver.putIfAbsent!("claim", body), true);

  assert.equal(sent.length, 4);
  const [put, del, list, conditional] = sent;
  assert.equal(conditional!.method, "PUT");
  assert.equal(conditional!.headers.get("if-none-match"), "*");
  const writer = conditional!.headers.get("x-amz-meta-all-docs-writer") ?? "";
  assert.match(writer, /^[0-9a-f-]{36}$/);
  assert.equal(put!.url.pathname, "/bucket/v1%3Aa%21b%2Ac%27%28d%29%20e%2Bf%25/%C3%A9~");
  assert.equal(
    put!.headers.get("x-amz-content-sha256"),
    createHash("sha256").update(body).digest("hex"),
  );
  assert.equal(put!.headers.get("x-amz-security-token"), credentials.sessionToken);
  assert.match(put!.headers.get("x-amz-date") ?? "", /^\d{8}T\d{6}Z$/);
  assert.equal(
    del!.headers.get("x-amz-content-sha256"),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(list!.url.searchParams.get("prefix"), "v1:p q");
  for (const request of sent) {
    const expected = expectedSignature(
      request.method,
      request.url,
      request.headers,
      credentials.secretAccessKey,
    );
    assert.equal(request.headers.get("authorization"), expected.authorization, expected.canonical);
    const signed = expected.authorization.split("SignedHeaders=")[1]!.split(",")[0]!.split(";");
    for (const name of ["host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"]) {
      assert.ok(signed.includes(name), `${name} is signed`);
    }
    if (request === conditional) {
      // A proxy must not be able to strip the condition and turn the claim into an overwrite.
      assert.ok(signed.includes("if-none-match"), "if-none-match is signed");
      assert.ok(signed.includes("x-amz-meta-all-docs-writer"), "the writer token is signed");
    }
  }
  const canonicalPath = expectedSignature(put!.method, put!.url, put!.headers, "x").canonical
    .split("\n")[1];
  assert.equal(canonicalPath, "/bucket/v1%3Aa%21b%2Ac%27%28d%29%20e%2Bf%25/%C3%A9~");
});

Deno.test("s3 driver's signatures are accepted by a peer that checks them, for any key", async () => {
  const server = await startS3rver("s3-signing-test");
  try {
    const driver = new S3Driver({
      endpoint: server.endpoint,
      bucket: server.bucket,
      prefix: "sig/",
      credentials: S3RVER_CREDENTIALS,
    });
    const keys = ["a!b*c'(d):e", "x+y z", "100%", "semi;colon=eq&amp", "é/中/~", "(", "*"];
    for (const key of keys) await driver.put(key, encoder.encode(key));
    for (const key of keys) {
      assert.equal(new TextDecoder().decode(await driver.get(key)), key);
      assert.equal(await driver.has(key), true);
    }
    assert.deepEqual(await listAll(driver), [...keys].sort());
    assert.deepEqual(await Array.fromAsync(driver.list({ start: "a!b*c'(d):e", limit: 2 })), [
      "a!b*c'(d):e",
      "semi;colon=eq&amp",
    ]);
    for (const key of keys) await driver.delete(key);
    assert.deepEqual(await listAll(driver), []);
  } finally {
    await server.close();
  }
});

Deno.test("s3 driver rejects bad options before any request", () => {
  const base = {
    endpoint: "http://127.0.0.1:1",
    bucket: "bucket",
    credentials: S3RVER_CREDENTIALS,
  };
  assert.throws(() => new S3Driver({ ...base, endpoint: "not a url" }), /not a URL/);
  assert.throws(() => new S3Driver({ ...base, endpoint: "ftp://127.0.0.1" }), /http or https/);
  assert.throws(() => new S3Driver({ ...base, bucket: "No_Such" }), /bucket/);
  assert.throws(() => new S3Driver({ ...base, partSize: 1024 }), RangeError);
  assert.throws(() => new S3Driver({ ...base, pageSize: 0 }), RangeError);
  assert.throws(() => new S3Driver({ ...base, pageSize: 1001 }), RangeError);
  assert.throws(
    () => new S3Driver({ ...base, credentials: { accessKeyId: "", secretAccessKey: "x" } }),
    /accessKeyId/,
  );
  assert.throws(() => new S3Driver({ ...base, prefix: "p".repeat(1024) }), RangeError);
  assert.throws(
    () => new S3Driver({ ...base, conditionalWrites: "yes" as unknown as boolean }),
    new TypeError("Cannot use S3 option: 'conditionalWrites' must be a boolean, received \"yes\""),
  );
});

Deno.test("S3Driver.putIfAbsent: absent with conditionalWrites false; values checked before any request", async () => {
  let requests = 0;
  const base = {
    endpoint: "http://127.0.0.1:1",
    bucket: "bucket",
    credentials: S3RVER_CREDENTIALS,
    http: { fetch: () => (requests++, Promise.resolve(new Response(null, { status: 200 }))) },
  };
  assert.equal(new S3Driver({ ...base, conditionalWrites: false }).putIfAbsent, undefined);
  const driver = new S3Driver({ ...base, conditionalWrites: true });
  await assert.rejects(
    driver.putIfAbsent!("k", new Uint8Array(S3_DEFAULT_PART_BYTES + 1)),
    new RangeError(
      `Cannot put key if absent: the value exceeds ${S3_DEFAULT_PART_BYTES} bytes (one PUT), ` +
        `received ${S3_DEFAULT_PART_BYTES + 1}`,
    ),
  );
  await assert.rejects(
    driver.putIfAbsent!("k", "text" as unknown as Uint8Array),
    new TypeError('Cannot put key if absent: the value must be a Uint8Array, received "text"'),
  );
  await assert.rejects(driver.putIfAbsent!("bad\ud800", new Uint8Array(1)), TypeError);
  assert.equal(requests, 0);
  assert.equal(await driver.putIfAbsent!("k", new Uint8Array(S3_DEFAULT_PART_BYTES)), true);
  assert.equal(requests, 1, "one PUT, never a multipart upload");
});

Deno.test("S3Driver.putIfAbsent: of concurrent calls through separate drivers, exactly one stores", async () => {
  const server = await startS3rver("s3-claims-test");
  try {
    const drivers = Array.from({ length: 24 }, () =>
      new S3Driver({
        endpoint: server.endpoint,
        bucket: server.bucket,
        prefix: "claims:",
        credentials: S3RVER_CREDENTIALS,
      }));
    for (const key of ["one", "v1:checkpoint:o:s:000001:claim:0", "big"]) {
      const size = key === "big" ? 300_000 : 0;
      const won = await Promise.all(drivers.map((driver, i) => {
        const value = new Uint8Array(size + 4);
        value.set(encoder.encode(`w${String(i).padStart(2, "0")}`));
        return driver.putIfAbsent!(key, value);
      }));
      assert.equal(won.filter(Boolean).length, 1, `${key}: ${won}`);
      const stored = (await drivers[0]!.get(key))!;
      assert.equal(stored.byteLength, size + 4);
      const winner = won.indexOf(true);
      assert.equal(
        new TextDecoder().decode(stored.subarray(0, 3)),
        `w${String(winner).padStart(2, "0")}`,
      );
      // Once stored, every further call loses and changes nothing.
      assert.equal(await drivers[5]!.putIfAbsent!(key, encoder.encode("late")), false);
      assert.equal((await drivers[0]!.get(key))!.byteLength, size + 4);
    }
    // A plain put is not conditional: it still replaces.
    await drivers[1]!.put("one", encoder.encode("replaced"));
    assert.equal(new TextDecoder().decode(await drivers[2]!.get("one")), "replaced");
  } finally {
    await server.close();
  }
});

Deno.test("S3Driver.putIfAbsent: its own write whose answer was lost counts as won, once", async () => {
  const server = await startS3rver("s3-lost-answer-test");
  try {
    const seen: string[] = [];
    let lose = true;
    // The first conditional PUT reaches s3rver and is stored, then its answer is lost.
    const lossy: typeof fetch = async (input, init) => {
      const request = new Request(input, init);
      const conditional = request.headers.get("if-none-match") !== null;
      const response = await fetch(request);
      seen.push(`${request.method}${conditional ? " if-none-match" : ""} ${response.status}`);
      if (conditional && lose) {
        lose = false;
        await response.body?.cancel();
        throw new TypeError("connection reset by peer");
      }
      return response;
    };
    const make = (fetchImpl: typeof fetch) =>
      new S3Driver({
        endpoint: server.endpoint,
        bucket: server.bucket,
        prefix: "lost:",
        credentials: S3RVER_CREDENTIALS,
        http: { fetch: fetchImpl, backoffBase: 1 },
      });
    const driver = make(lossy);
    assert.equal(await driver.putIfAbsent!("claim", encoder.encode("mine")), true);
    assert.deepEqual(seen, ["PUT if-none-match 200", "PUT if-none-match 412", "HEAD 200"]);
    // Another writer's refusal is still a loss, though its HEAD finds an object too.
    const other = make((input, init) => fetch(input, init));
    assert.equal(await other.putIfAbsent!("claim", encoder.encode("theirs")), false);
    assert.equal(new TextDecoder().decode(await other.get("claim")), "mine");
  } finally {
    await server.close();
  }
});

Deno.test("s3 driver decodes url-encoded listings and pages with continuation tokens", async () => {
  const requests: URL[] = [];
  const pages = [
    "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>" +
    "<Contents><Key>p%3Aa+b%2Bc%C3%A9</Key></Contents>" +
    "<NextContinuationToken>tok/1=</NextContinuationToken></ListBucketResult>",
    "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>" +
    "<Contents><Key>p%3Ad%26e%3C</Key></Contents></ListBucketResult>",
  ];
  const fake: typeof fetch = (input) => {
    requests.push(new URL(input instanceof Request ? input.url : String(input)));
    return Promise.resolve(new Response(pages[requests.length - 1]!, { status: 200 }));
  };
  const driver = new S3Driver({
    endpoint: "http://127.0.0.1:1",
    bucket: "bucket",
    prefix: "p:",
    credentials: S3RVER_CREDENTIALS,
    http: { fetch: fake },
  });
  assert.deepEqual(await listAll(driver), ["a b+cé", "d&e<"]);
  assert.equal(requests.length, 2);
  assert.equal(requests[0]!.searchParams.get("encoding-type"), "url");
  assert.equal(requests[0]!.searchParams.get("prefix"), "p:");
  assert.equal(requests[0]!.searchParams.get("continuation-token"), null);
  assert.equal(requests[1]!.searchParams.get("continuation-token"), "tok/1=");
  assert.equal(requests[1]!.pathname, "/bucket");
});

Deno.test("s3 driver refuses a listing that says it goes on but gives no token", async () => {
  const page = "<ListBucketResult><IsTruncated>true</IsTruncated>" +
    "<Contents><Key>a</Key></Contents></ListBucketResult>";
  const driver = new S3Driver({
    endpoint: "http://127.0.0.1:1",
    bucket: "bucket",
    credentials: S3RVER_CREDENTIALS,
    http: { fetch: () => Promise.resolve(new Response(page, { status: 200 })) },
  });
  await assert.rejects(listAll(driver), (error: unknown) => {
    assert.ok(error instanceof StorageError);
    assert.match(error.message, /goes on but gave no continuation token/);
    return true;
  });
});

Deno.test("s3 driver sends requests through HttpClient: retries with jitter and Retry-After, then a StorageError", async (t) => {
  type Step =
    | "503"
    | "503-retry-after"
    | "500"
    | "reset"
    | "hang"
    | "404"
    | "403"
    | "412"
    | "409"
    | "ok";
  /** A driver over a fetch that plays `script`, one entry per call, with a recording clock. */
  function scripted(script: Step[]) {
    const calls: string[] = [];
    const clock = new FakeClock();
    const fake: typeof fetch = (_input, init) => {
      const step = script[calls.length] ?? "ok";
      calls.push(`${init?.method} ${step}`);
      switch (step) {
        case "reset":
          return Promise.reject(new TypeError("connection reset"));
        case "hang":
          return new Promise((_, reject) => {
            init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
          });
        case "ok":
          return Promise.resolve(
            new Response("<R><UploadId>u1</UploadId></R>", {
              status: 200,
              headers: { etag: '"e"' },
            }),
          );
        case "404":
          return Promise.resolve(
            new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 }),
          );
        case "403":
          return Promise.resolve(
            new Response("<Error><Code>AccessDenied</Code><Message>no</Message></Error>", {
              status: 403,
            }),
          );
        case "503-retry-after":
          return Promise.resolve(
            new Response("slow down", { status: 503, headers: { "retry-after": "2" } }),
          );
        default:
          return Promise.resolve(new Response("busy", { status: Number(step) }));
      }
    };
    const driver = new S3Driver({
      endpoint: "http://127.0.0.1:1",
      bucket: "bucket",
      credentials: S3RVER_CREDENTIALS,
      http: {
        fetch: fake,
        retries: 3,
        backoffBase: 100,
        timeout: 50,
        random: () => 0.5,
        clock,
      },
    });
    return { driver, calls, sleeps: clock.sleeps };
  }

  await t.step("503, a reset and a hang, then the value, after jittered backoffs", async () => {
    const { driver, calls, sleeps } = scripted(["503", "reset", "hang", "ok"]);
    assert.deepEqual(await driver.get("k"), encoder.encode("<R><UploadId>u1</UploadId></R>"));
    assert.equal(calls.length, 4);
    // random() * min(backoffMax, 100 * 2 ** (n - 1)), with random() = 0.5.
    assert.deepEqual(sleeps, [50, 100, 200]);
  });

  await t.step("a 503 with Retry-After waits what S3 asked for", async () => {
    const { driver, sleeps } = scripted(["503-retry-after", "ok"]);
    assert.equal(await driver.has("k"), true);
    assert.deepEqual(sleeps, [2000]);
  });

  await t.step("a 404 is an answer, sent once", async () => {
    const { driver, calls } = scripted(["404"]);
    assert.equal(await driver.get("k"), undefined);
    assert.equal(calls.length, 1);
  });

  await t.step("a 403 is a StorageError at once", async () => {
    const { driver, calls } = scripted(["403"]);
    await assert.rejects(driver.delete("k"), (error: unknown) => {
      assert.ok(error instanceof StorageError);
      assert.equal(error.message, 'Cannot delete key "k": S3 answered HTTP 403: AccessDenied (no)');
      assert.equal(error.code, 403);
      return true;
    });
    assert.equal(calls.length, 1);
  });

  await t.step("after its retries the last failure is a StorageError", async () => {
    const busy = scripted(["503", "503", "503", "503", "ok"]);
    await assert.rejects(busy.driver.get("k"), (error: unknown) => {
      assert.ok(error instanceof StorageError);
      assert.equal(error.message, 'Cannot get key "k": S3 answered HTTP 503 after 4 attempts');
      assert.equal(error.code, 503);
      assert.equal(error.key, "k");
      assert.ok(error.cause instanceof HttpError);
      return true;
    });
    assert.equal(busy.calls.length, 4);
    const hung = scripted(["hang", "hang", "hang", "hang"]);
    await assert.rejects(hung.driver.get("k"), (error: unknown) => {
      assert.ok(error instanceof StorageError);
      assert.match(
        error.message,
        /^Cannot get key "k": S3 request failed: .*no response headers within 50 ms/,
      );
      assert.equal(error.code, undefined);
      return true;
    });
    assert.equal(hung.calls.length, 4);
    const reset = scripted(["reset", "reset", "reset", "reset"]);
    await assert.rejects(reset.driver.put("k", encoder.encode("v")), StorageError);
    assert.deepEqual(reset.calls, ["PUT reset", "PUT reset", "PUT reset", "PUT reset"]);
  });

  await t.step(
    "putIfAbsent: 412 and 409 are answers, never retried; a 503 is retried",
    async () => {
      const exists = scripted(["412", "ok"]);
      assert.equal(await exists.driver.putIfAbsent!("k", encoder.encode("v")), false);
      // The HEAD finds another writer's object (no token of this call): lost.
      assert.deepEqual(exists.calls, ["PUT 412", "HEAD ok"]);
      assert.deepEqual(exists.sleeps, []);
      const conflict = scripted(["409", "404"]);
      assert.equal(await conflict.driver.putIfAbsent!("k", encoder.encode("v")), false);
      assert.deepEqual(conflict.calls, ["PUT 409", "HEAD 404"]);
      const busy = scripted(["503", "ok"]);
      assert.equal(await busy.driver.putIfAbsent!("k", encoder.encode("v")), true);
      assert.deepEqual(busy.calls, ["PUT 503", "PUT ok"]);
      const refused = scripted(["403"]);
      await assert.rejects(
        refused.driver.putIfAbsent!("k", encoder.encode("v")),
        new StorageError('Cannot put key "k": S3 answered HTTP 403: AccessDenied (no)', {
          driver: "s3",
          key: "k",
          code: 403,
        }),
      );
      assert.deepEqual(refused.calls, ["PUT 403"]);
    },
  );

  await t.step("the multipart POSTs are sent again too", async () => {
    const { driver, calls } = scripted(["503", "ok", "ok", "ok", "500", "ok"]);
    await driver.put("big", patternStream(S3_DEFAULT_PART_BYTES + 1));
    assert.deepEqual(calls, [
      "POST 503",
      "POST ok",
      "PUT ok",
      "PUT ok",
      "POST 500",
      "POST ok",
    ]);
  });

  await t.step("client options are checked, and a client can be given", async () => {
    const base = {
      endpoint: "http://127.0.0.1:1",
      bucket: "bucket",
      credentials: S3RVER_CREDENTIALS,
    };
    assert.throws(
      () => new S3Driver({ ...base, http: { retries: -1 } }),
      new RangeError(
        "Cannot create HTTP client: 'retries' must be a non-negative integer, received -1",
      ),
    );
    assert.throws(() => new S3Driver({ ...base, http: { timeout: NaN } }), RangeError);
    const client = new HttpClient({
      fetch: () => Promise.resolve(new Response(null, { status: 200 })),
    });
    assert.throws(
      () => new S3Driver({ ...base, client, http: {} }),
      new TypeError("Cannot use S3 client: give 'client' or 'http', not both"),
    );
    assert.throws(
      () => new S3Driver({ ...base, client: {} as HttpClient }),
      new TypeError("Cannot use S3 client: 'client' must be an HttpClient"),
    );
    const driver = new S3Driver({ ...base, client });
    assert.equal(await driver.has("k"), true);
    assert.equal(client.stats.requests, 1);
  });
});
