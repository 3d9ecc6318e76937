import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { contractHelpers, runDriverContract } from "../_support/driver_contract.ts";
import { S3_DEFAULT_PART_BYTES, S3Driver, signS3Request } from "../../drivers/s3.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_support/s3rver.ts";

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
      await assert.rejects(
        wrongSecret.get("k"),
        (error: Error) =>
          /^Cannot get key "k": S3 answered HTTP 403: SignatureDoesNotMatch/.test(error.message),
      );
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
        /^Error: Cannot get key "k": S3 answered HTTP 404: NoSuchBucket/,
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
        fetch: counting,
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

Deno.test("signS3Request matches a hand-built Signature Version 4", async () => {
  const credentials = {
    accessKeyId: "AKIDEXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    sessionToken: "token/with+chars=",
  };
  const body = encoder.encode("hello, s3");
  const payloadHash = createHash("sha256").update(body).digest("hex");
  const date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
  // The key "v1:a b/é~" with "/" kept and every other reserved byte encoded.
  const url = new URL(
    "http://127.0.0.1:9000/bucket/v1%3Aa%20b/%C3%A9~?uploadId=x%2By&partNumber=2",
  );
  const signed = await signS3Request({
    method: "PUT",
    url,
    payloadHash,
    credentials,
    region: "eu-west-3",
    date,
  });

  const canonical = "PUT\n" +
    "/bucket/v1%3Aa%20b/%C3%A9~\n" +
    "partNumber=2&uploadId=x%2By\n" +
    "host:127.0.0.1:9000\n" +
    `x-amz-content-sha256:${payloadHash}\n` +
    "x-amz-date:20240102T030405Z\n" +
    "x-amz-security-token:token/with+chars=\n" +
    "\n" +
    "host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n" +
    payloadHash;
  assert.equal(signed.canonicalRequest, canonical);
  const stringToSign = "AWS4-HMAC-SHA256\n20240102T030405Z\n20240102/eu-west-3/s3/aws4_request\n" +
    createHash("sha256").update(canonical).digest("hex");
  assert.equal(signed.stringToSign, stringToSign);
  let key = createHmac("sha256", "AWS4" + credentials.secretAccessKey).update("20240102").digest();
  for (const part of ["eu-west-3", "s3", "aws4_request"]) {
    key = createHmac("sha256", key).update(part).digest();
  }
  const signature = createHmac("sha256", key).update(stringToSign).digest("hex");
  assert.equal(signed.signature, signature);
  assert.equal(
    signed.headers["authorization"],
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/eu-west-3/s3/aws4_request, " +
      "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, " +
      `Signature=${signature}`,
  );
  assert.equal(signed.headers["x-amz-security-token"], credentials.sessionToken);
  assert.equal(signed.headers["host"], undefined);

  // A path as the URL parser leaves it (with `!*'()` and `:` raw) signs as S3 reads it: each
  // segment encoded once.
  const raw = await signS3Request({
    method: "GET",
    url: new URL("http://127.0.0.1:9000/bucket/a!b*c'(d):e"),
    payloadHash,
    credentials,
    region: "eu-west-3",
    date,
  });
  assert.equal(raw.canonicalRequest.split("\n")[1], "/bucket/a%21b%2Ac%27%28d%29%3Ae");
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
    fetch: fake,
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
    fetch: () => Promise.resolve(new Response(page, { status: 200 })),
  });
  await assert.rejects(listAll(driver), /goes on but gave no continuation token/);
});

Deno.test("s3 driver sends a request again after 5xx, network errors and timeouts, then gives up", async (t) => {
  /** A driver over a fetch that plays `script`, one entry per call. */
  function scripted(script: ("503" | "500" | "reset" | "hang" | "404" | "ok")[]) {
    const calls: string[] = [];
    const fake: typeof fetch = (_input, init) => {
      const step = script[calls.length] ?? "ok";
      calls.push(`${step} ${new Headers(init?.headers).get("x-amz-date")}`);
      switch (step) {
        case "reset":
          return Promise.reject(new TypeError("connection reset"));
        case "hang":
          return new Promise((_, reject) => {
            init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
          });
        case "ok":
          return Promise.resolve(new Response("value", { status: 200 }));
        case "404":
          return Promise.resolve(
            new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 }),
          );
        default:
          return Promise.resolve(new Response("busy", { status: Number(step) }));
      }
    };
    const driver = new S3Driver({
      endpoint: "http://127.0.0.1:1",
      bucket: "bucket",
      credentials: S3RVER_CREDENTIALS,
      fetch: fake,
      retries: 3,
      retryDelayMs: 1,
      timeoutMs: 50,
    });
    return { driver, calls };
  }

  await t.step("503, a reset and a hang, then the value", async () => {
    const { driver, calls } = scripted(["503", "reset", "hang", "ok"]);
    assert.deepEqual(await driver.get("k"), new TextEncoder().encode("value"));
    assert.equal(calls.length, 4);
  });

  await t.step("a 404 is an answer, sent once", async () => {
    const { driver, calls } = scripted(["404"]);
    assert.equal(await driver.get("k"), undefined);
    assert.equal(calls.length, 1);
  });

  await t.step("after its retries the last failure is the error", async () => {
    const busy = scripted(["503", "503", "503", "503", "ok"]);
    await assert.rejects(busy.driver.get("k"), /Cannot get key "k": S3 answered HTTP 503/);
    assert.equal(busy.calls.length, 4);
    const hung = scripted(["hang", "hang", "hang", "hang"]);
    await assert.rejects(hung.driver.get("k"), /no response headers within 50 ms/);
    assert.equal(hung.calls.length, 4);
  });

  await t.step("bad retry options are refused", () => {
    for (const bad of [{ retries: -1 }, { retryDelayMs: 1.5 }, { timeoutMs: NaN }]) {
      assert.throws(
        () =>
          new S3Driver({
            endpoint: "http://127.0.0.1:1",
            bucket: "bucket",
            credentials: S3RVER_CREDENTIALS,
            ...bad,
          }),
        RangeError,
      );
    }
  });
});
