/**
 * Writing a value to S3: bytes, and a stream up to one part, in one PUT; a longer stream as a
 * multipart upload, one part in memory at a time, aborted (best effort) when it fails; bytes
 * only when the key is absent, in one conditional PUT.
 *
 * @module
 */

import type { S3Requests } from "./_s3_requests.ts";
import { completeUploadXml, xmlFirst } from "./_s3_xml.ts";

const encoder = new TextEncoder();

/** What an upload of a stream needs. */
export interface StreamUpload {
  /** The bucket's requests. */
  requests: S3Requests;
  /** The driver's key, for messages. */
  key: string;
  /** The object key in the bucket. */
  stored: string;
  /** The part size, in bytes. */
  partSize: number;
  /** Throws when the driver was closed meanwhile. */
  assertOpen: () => void;
}

/** A stream being cut into parts, with what was read past the last part. */
interface PartSource {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  rest: Uint8Array | undefined;
  /** The one part buffer of an upload, filled again for every part once the last was sent. */
  buffer: Uint8Array | undefined;
}

/** Stores `bytes` as the object `stored` with one PUT. */
export async function putObject(
  requests: S3Requests,
  key: string,
  stored: string,
  bytes: Uint8Array,
): Promise<void> {
  const response = await requests.send("put", key, "PUT", stored, {}, bytes);
  await requests.expect(response, "put", key, [200]);
  await response.body?.cancel();
}

/** The metadata header naming the writer of a conditional PUT (see {@linkcode putObjectIfAbsent}). */
export const S3_WRITER_HEADER = "x-amz-meta-all-docs-writer";

/**
 * Stores `bytes` as the object `stored` only when it is absent: one PutObject with
 * `If-None-Match: *`, which S3 refuses with 412 PreconditionFailed when the object exists, and
 * with 409 ConditionalRequestConflict when another write or delete of it is in flight. Both
 * refusals are answers (the client retries neither) and mean "lost": the request changed
 * nothing and another writer is at the key, so the caller reads again rather than
 * hammering it (a 409 whose other write then fails leaves the key absent for a later call).
 *
 * The client sends a PUT again after a network error, a timeout or a 5xx, and the first
 * attempt may have stored the object before its answer was lost: the retry is then refused.
 * So every write carries a random token in its metadata ({@linkcode S3_WRITER_HEADER}), and a
 * refusal is checked with a HEAD: an object that carries this call's token was stored by it.
 *
 * @returns Whether this call stored the object.
 */
export async function putObjectIfAbsent(
  requests: S3Requests,
  key: string,
  stored: string,
  bytes: Uint8Array,
): Promise<boolean> {
  const token = crypto.randomUUID();
  const headers = { "if-none-match": "*", [S3_WRITER_HEADER]: token };
  const response = await requests.send("put", key, "PUT", stored, {}, bytes, { headers });
  if (response.status !== 412 && response.status !== 409) {
    await requests.expect(response, "put", key, [200]);
    await response.body?.cancel();
    return true;
  }
  await response.body?.cancel();
  const head = await requests.send("put", key, "HEAD", stored);
  await head.body?.cancel();
  if (head.status === 404) return false;
  await requests.expect(head, "put", key, [200]);
  return head.headers.get(S3_WRITER_HEADER) === token;
}

/**
 * Stores a stream: in one PUT when it ends within one part, otherwise as a multipart upload
 * that becomes the object only when it completes. A failure (of the stream or a request)
 * cancels the stream, aborts the upload and rethrows, so the old value stays.
 */
export async function putStream(
  upload: StreamUpload,
  stream: ReadableStream<Uint8Array>,
): Promise<void> {
  const { requests, key, stored } = upload;
  const reader = stream.getReader();
  const source: PartSource = { reader, rest: undefined, buffer: undefined };
  let uploadId: string | undefined;
  try {
    let part = await readPart(source, upload.partSize);
    if (part.done) {
      upload.assertOpen();
      await putObject(requests, key, stored, part.bytes);
      return;
    }
    uploadId = await startUpload(requests, key, stored);
    const etags: string[] = [];
    while (true) {
      upload.assertOpen();
      etags.push(await uploadPart(requests, key, stored, uploadId, etags.length + 1, part.bytes));
      if (part.done) break;
      part = await readPart(source, upload.partSize);
      if (part.done && part.bytes.byteLength === 0) break;
    }
    await completeUpload(requests, key, stored, uploadId, etags);
    uploadId = undefined;
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    if (uploadId !== undefined) await abortUpload(requests, stored, uploadId);
    throw error;
  } finally {
    reader.releaseLock();
  }
}

/**
 * Reads up to one part; `done` when the stream ended within it. The bytes live in the
 * upload's one buffer, so each part must be sent before the next is read.
 */
async function readPart(
  source: PartSource,
  partSize: number,
): Promise<{ bytes: Uint8Array; done: boolean }> {
  const part = source.buffer ??= new Uint8Array(partSize);
  let length = 0;
  while (length < partSize) {
    let chunk: Uint8Array;
    if (source.rest !== undefined) {
      chunk = source.rest;
      source.rest = undefined;
    } else {
      const { done, value } = await source.reader.read();
      if (done) return { bytes: part.subarray(0, length), done: true };
      chunk = value;
    }
    const take = Math.min(chunk.byteLength, partSize - length);
    part.set(chunk.subarray(0, take), length);
    length += take;
    // Keep the rest for the next part.
    if (take < chunk.byteLength) source.rest = chunk.subarray(take);
  }
  // A full part: look one chunk ahead, so a stream of exactly one part is one PUT.
  if (source.rest === undefined) {
    const { done, value } = await source.reader.read();
    if (done) return { bytes: part, done: true };
    source.rest = value;
  }
  return { bytes: part, done: false };
}

async function startUpload(requests: S3Requests, key: string, stored: string): Promise<string> {
  // A repeated CreateMultipartUpload leaves at most an unused upload behind (a bucket
  // lifecycle rule removes those): worth it to survive a dropped connection.
  const response = await requests.send(
    "put",
    key,
    "POST",
    stored,
    { uploads: "" },
    undefined,
    { idempotent: true },
  );
  await requests.expect(response, "put", key, [200]);
  const uploadId = xmlFirst(await requests.text(response, "put", key), "UploadId");
  if (uploadId === undefined || uploadId === "") {
    throw requests.failure("put", key, "S3 returned no multipart UploadId");
  }
  return uploadId;
}

async function uploadPart(
  requests: S3Requests,
  key: string,
  stored: string,
  uploadId: string,
  number: number,
  bytes: Uint8Array,
): Promise<string> {
  const query = { partNumber: String(number), uploadId };
  const response = await requests.send("put", key, "PUT", stored, query, bytes);
  await requests.expect(response, "put", key, [200]);
  await response.body?.cancel();
  const etag = response.headers.get("etag");
  if (etag === null) throw requests.failure("put", key, "S3 returned no ETag for part");
  return etag;
}

async function completeUpload(
  requests: S3Requests,
  key: string,
  stored: string,
  uploadId: string,
  etags: string[],
): Promise<void> {
  const body = encoder.encode(completeUploadXml(etags));
  // Completing the same parts again makes the same object.
  const response = await requests.send("put", key, "POST", stored, { uploadId }, body, {
    idempotent: true,
  });
  await requests.expect(response, "put", key, [200]);
  // S3 may answer 200 with an error document when completing fails late.
  const text = await requests.text(response, "put", key);
  if (/<Error>/.test(text)) {
    throw requests.failure(
      "put",
      key,
      `S3 failed to complete the upload: ${xmlFirst(text, "Code") ?? "unknown error"}`,
    );
  }
}

/** Aborts a multipart upload, best effort: the original error is what the caller sees. */
async function abortUpload(requests: S3Requests, stored: string, uploadId: string): Promise<void> {
  try {
    const response = await requests.send("put", stored, "DELETE", stored, { uploadId });
    await response.body?.cancel();
  } catch {
    // Ignore: the put already failed.
  }
}
