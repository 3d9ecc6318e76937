// Runs s3rver (from tests/peers) for the tests, started by tests/_support/s3rver.ts:
//
//   node s3rver_peer.cjs <s3rver dir> <port> <data dir> <bucket>
//
// Four things are changed around the real s3rver, because of what it does not do:
//
// 1. s3rver 3.7.1 never checks Signature Version 4 signatures (only that the access key id
//    exists). A middleware in front of it recomputes every SigV4 signature with node:crypto from
//    the request as received and answers 403 SignatureDoesNotMatch when it differs.
// 2. Its filesystem store keeps keys as file paths: keys holding NUL or longer than a file name,
//    or "." segments, cannot be stored, and listing walks directories, which is not UTF-8 byte
//    order. It is replaced by an in-memory store that keeps keys as given and lists them in
//    UTF-8 byte order, like S3.
// 3. It has no AbortMultipartUpload. A DELETE with ?uploadId that s3rver refuses as not allowed
//    (after its own checks) aborts the upload in the store instead.
// 4. It ignores conditional writes. A PutObject (or CompleteMultipartUpload) with
//    `If-None-Match: *` is refused with 412 PreconditionFailed when the key exists, as S3 does:
//    once the body is read, the store checks for the key and stores the object in one
//    synchronous step, so of racing conditional writes to one key exactly one succeeds. Any
//    other `If-None-Match` value, and `If-Match` on a write, are answered 501 NotImplemented
//    rather than ignored.
//
// GET /__peer/state (unsigned) answers {objects: [keys], uploads: [keys]} for the tests.
"use strict";

const crypto = require("node:crypto");
const path = require("node:path");
const { Readable } = require("node:stream");

const [s3rverDir, port, directory, bucketName] = process.argv.slice(2);
const S3rver = require(s3rverDir);
const S3Object = require(path.join(s3rverDir, "lib/models/object.js"));
const S3Bucket = require(path.join(s3rverDir, "lib/models/bucket.js"));
const S3Error = require(path.join(s3rverDir, "lib/models/error.js"));

const SECRETS = new Map([["S3RVER", "S3RVER"]]);

function readBody(stream) {
  if (Buffer.isBuffer(stream)) return Promise.resolve(stream);
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on("data", (chunk) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

function md5(buffer) {
  return crypto.createHash("md5").update(buffer).digest("hex");
}

function byteOrder(a, b) {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

class MemoryStore {
  constructor() {
    this.buckets = new Map();
    this.uploads = new Map();
  }
  reset() {
    this.buckets.clear();
    this.uploads.clear();
  }
  listBuckets() {
    return Promise.resolve(
      [...this.buckets.entries()].map(([name, b]) => new S3Bucket(name, b.created)),
    );
  }
  getBucket(name) {
    const b = this.buckets.get(name);
    return Promise.resolve(b === undefined ? null : new S3Bucket(name, b.created));
  }
  putBucket(name) {
    if (!this.buckets.has(name)) {
      this.buckets.set(name, { created: new Date(), objects: new Map() });
    }
    return this.getBucket(name);
  }
  deleteBucket(name) {
    this.buckets.delete(name);
    return Promise.resolve();
  }
  listObjects(bucket, options) {
    const { delimiter = "", startAfter = "", prefix = "", maxKeys = Infinity } = options;
    const objects = this.buckets.get(bucket).objects;
    const keys = [...objects.keys()]
      .filter((key) => key.startsWith(prefix) && byteOrder(key, startAfter) > 0)
      .sort(byteOrder);
    const out = [];
    const commonPrefixes = new Set();
    let isTruncated = false;
    for (const key of keys) {
      if (delimiter) {
        const at = key.slice(prefix.length).indexOf(delimiter);
        if (at !== -1) {
          commonPrefixes.add(key.slice(0, prefix.length + at + 1));
          continue;
        }
      }
      if (out.length >= maxKeys) {
        isTruncated = true;
        break;
      }
      out.push(key);
    }
    return Promise.resolve({
      objects: out.map((key) => new S3Object(bucket, key, null, objects.get(key).metadata)),
      commonPrefixes: [...commonPrefixes].sort(byteOrder),
      isTruncated,
    });
  }
  existsObject(bucket, key) {
    return Promise.resolve(this.buckets.get(bucket).objects.has(key));
  }
  getObject(bucket, key) {
    const stored = this.buckets.get(bucket).objects.get(key);
    if (stored === undefined) return Promise.resolve(null);
    // A stream, as s3rver destroys it for HEAD.
    const content = Readable.from([Buffer.from(stored.content)]);
    return Promise.resolve(new S3Object(bucket, key, content, stored.metadata));
  }
  /** Stores `object`; with `ifAbsent`, refuses (412) when its key exists. */
  async putObject(object, ifAbsent = false) {
    const content = await readBody(object.content);
    const objects = this.buckets.get(object.bucket).objects;
    // From here to the set below nothing awaits: the check and the write are one step.
    if (ifAbsent && objects.has(object.key)) {
      throw new S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        { Condition: "If-None-Match" },
      );
    }
    const hash = md5(content);
    const metadata = {
      ...object.metadata,
      etag: JSON.stringify(hash),
      "last-modified": new Date().toUTCString(),
      "content-length": content.length,
    };
    objects.set(object.key, { content, metadata });
    return { size: content.length, md5: hash };
  }
  copyObject() {
    return Promise.reject(new S3Error("NotImplemented"));
  }
  deleteObject(bucket, key) {
    this.buckets.get(bucket).objects.delete(key);
    return Promise.resolve();
  }
  initiateUpload(bucket, key, uploadId, metadata) {
    const kept = {};
    for (const name of S3Object.ALLOWED_METADATA) {
      if (name in metadata) kept[name] = metadata[name];
    }
    this.uploads.set(uploadId, { bucket, key, metadata: kept, parts: new Map() });
    return Promise.resolve();
  }
  async putPart(bucket, uploadId, partNumber, content) {
    const upload = this.uploads.get(uploadId);
    if (upload === undefined || upload.bucket !== bucket) throw new S3Error("NoSuchUpload");
    const body = await readBody(content);
    const hash = md5(body);
    upload.parts.set(Number(partNumber), body);
    return { size: body.length, md5: hash };
  }
  async putObjectMultipart(bucket, uploadId, parts) {
    const upload = this.uploads.get(uploadId);
    if (upload === undefined || upload.bucket !== bucket) throw new S3Error("NoSuchUpload");
    const buffers = [];
    for (const part of [...parts].sort((a, b) => a.number - b.number)) {
      const body = upload.parts.get(part.number);
      if (body === undefined || md5(body) !== part.etag) throw new S3Error("InvalidPart");
      buffers.push(body);
    }
    const object = new S3Object(bucket, upload.key, Buffer.concat(buffers), upload.metadata);
    const result = await this.putObject(object);
    this.uploads.delete(uploadId);
    return result;
  }
  abortUpload(bucket, key, uploadId) {
    const upload = this.uploads.get(uploadId);
    if (upload === undefined || upload.bucket !== bucket || upload.key !== key) return false;
    this.uploads.delete(uploadId);
    return true;
  }
  getSubresource() {
    return Promise.resolve(null);
  }
  putSubresource() {
    return Promise.resolve();
  }
  deleteSubresource() {
    return Promise.resolve();
  }
}

function rfc3986(text) {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

function hmac(key, data) {
  return crypto.createHmac("sha256", key).update(data, "utf8").digest();
}

function answerError(ctx, status, code, message) {
  ctx.status = status;
  ctx.type = "application/xml";
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${message}</Message></Error>`;
}

/** Recomputes the SigV4 signature of a request from what was received. */
function checkSigV4(ctx) {
  const header = ctx.get("authorization");
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/
      .exec(header);
  if (match === null) return "malformed Authorization header";
  const [, accessKeyId, day, region, signedHeaders, signature] = match;
  const secret = SECRETS.get(accessKeyId);
  if (secret === undefined) return "unknown access key";
  const date = ctx.get("x-amz-date");
  if (!date.startsWith(day)) return "x-amz-date does not match the credential scope";
  const [rawPath, rawQuery = ""] = ctx.req.url.split("?");
  const uri = rawPath.split("/").map((s) => rfc3986(decodeURIComponent(s))).join("/");
  const query = rawQuery === "" ? "" : rawQuery.split("&")
    .map((pair) => {
      const [name, value = ""] = pair.split("=");
      return [rfc3986(decodeURIComponent(name)), rfc3986(decodeURIComponent(value))];
    })
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
  const names = signedHeaders.split(";");
  for (const required of ["host", "x-amz-date", "x-amz-content-sha256"]) {
    if (!names.includes(required)) return `${required} is not signed`;
  }
  const headers = names.map((name) => `${name}:${ctx.get(name).trim().replace(/\s+/g, " ")}\n`);
  const canonical = [
    ctx.method,
    uri,
    query,
    headers.join(""),
    signedHeaders,
    ctx.get("x-amz-content-sha256"),
  ].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = [
    "AWS4-HMAC-SHA256",
    date,
    scope,
    crypto.createHash("sha256").update(canonical, "utf8").digest("hex"),
  ].join("\n");
  let key = hmac("AWS4" + secret, day);
  key = hmac(key, region);
  key = hmac(key, "s3");
  key = hmac(key, "aws4_request");
  const expected = crypto.createHmac("sha256", key).update(toSign, "utf8").digest("hex");
  return expected === signature ? undefined : "signature does not match";
}

const store = new MemoryStore();
const server = new S3rver({
  port: Number(port),
  address: "127.0.0.1",
  silent: process.env.S3RVER_PEER_LOG !== "1",
  directory,
  configureBuckets: [{ name: bucketName, configs: [] }],
});
server.store = server.context.store = store;

// Run first: the test hook, then signature checks.
server.middleware.unshift(async (ctx, next) => {
  if (ctx.path === "/__peer/state") {
    const bucket = store.buckets.get(bucketName);
    ctx.type = "application/json";
    ctx.body = JSON.stringify({
      objects: [...bucket.objects.keys()].sort(byteOrder),
      uploads: [...store.uploads.values()].map((u) => u.key),
    });
    return;
  }
  if (!ctx.get("authorization").startsWith("AWS4-HMAC-SHA256 ")) {
    return answerError(ctx, 403, "AccessDenied", "Only Signature Version 4 is accepted here");
  }
  const problem = checkSigV4(ctx);
  if (problem === "unknown access key") {
    return answerError(ctx, 403, "InvalidAccessKeyId", "The AWS Access Key Id does not exist");
  }
  if (problem !== undefined) {
    return answerError(ctx, 403, "SignatureDoesNotMatch", `SigV4 check failed: ${problem}`);
  }
  // A conditional write: this request sees a store whose writes are conditional (a
  // CompleteMultipartUpload writes through putObject too).
  const write = (ctx.method === "PUT" || ctx.method === "POST") && ctx.path.split("/").length > 2;
  if (write && ctx.get("if-match") !== "") {
    return answerError(ctx, 501, "NotImplemented", "If-Match is not implemented by this peer");
  }
  const noneMatch = ctx.get("if-none-match");
  if (write && noneMatch !== "") {
    if (noneMatch.trim() !== "*") {
      return answerError(ctx, 501, "NotImplemented", "If-None-Match takes only *");
    }
    ctx.store = Object.create(store, {
      putObject: { value: (object) => store.putObject(object, true) },
    });
  }
  await next();
});

// Just before the router: AbortMultipartUpload, which s3rver refuses as MethodNotAllowed.
const routes = server.middleware.pop();
server.use(async (ctx, next) => {
  try {
    await next();
  } catch (error) {
    if (error.code === "MethodNotAllowed" && ctx.method === "DELETE" && "uploadId" in ctx.query) {
      const key = ctx.params.key;
      if (!store.abortUpload(ctx.params.bucket, key, ctx.query.uploadId)) {
        throw new S3Error("NoSuchUpload", "The specified upload does not exist.");
      }
      ctx.status = 204;
      ctx.body = null;
      return;
    }
    throw error;
  }
});
server.use(routes);

server.run().then(() => {
  process.stdout.write(`listening on ${port}\n`);
}, (error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
// Everything is in memory: exit at once rather than wait for idle keep-alive connections.
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
