/**
 * The cloudflare_r2 driver, run where it runs in production: inside workerd, over Miniflare's R2
 * binding. Miniflare's proxy (`getR2Bucket`) runs only the binding in workerd, and R2's `put`
 * refuses a stream of unknown length (what the driver is for), so the driver itself runs in
 * workerd: a test Worker (the driver bundled with `deno bundle`) exposes its methods over HTTP,
 * and {@linkcode RemoteDriver} is a `StorageDriver` in Deno that calls them, so the contract
 * suite runs unchanged. Values and streams go over HTTP both ways, so a
 * 100 MB body streams from Deno through the driver in workerd into R2 and back.
 *
 * Fakes of the binding (in Deno) check what workerd cannot show: the errors, the multipart
 * parts and their aborts, and a claim whose answer was lost.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CloudflareR2Driver,
  R2_MAX_KEY_BYTES,
  R2_MIN_PART_BYTES,
  type R2BucketLike,
  type R2MultipartUploadLike,
  type R2ObjectLike,
  type R2ObjectsLike,
  type R2PutOptionsLike,
  type R2UploadedPartLike,
} from "../../drivers/cloudflare_r2.ts";
import {
  type ListOptions,
  type StorageDriver,
  StorageError,
  type StorageLimits,
  type StorageValue,
} from "../../src/storage/driver.ts";
import { assertStorageError, byteOrder, runDriverContract } from "../_support/driver_contract.ts";
import { type Child, run, start } from "../_support/spawn.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PEERS = fileURLToPath(new URL("../peers/", import.meta.url));
const DRIVER = new URL("../../drivers/cloudflare_r2.ts", import.meta.url).href;
const MiB = 1024 * 1024;

/** The test Worker: each driver method as a route, the driver's errors as JSON 500s. */
const WORKER = `
import { CloudflareR2Driver } from ${JSON.stringify(DRIVER)};

const drivers = new Map();
let next = 0;
const empty = () => new ReadableStream({ start: (c) => c.close() });

async function route(path, args, request, env) {
  if (path === "/new") {
    const driver = new CloudflareR2Driver(env.BODIES, args.options);
    drivers.set(++next, driver);
    return Response.json({ id: next, limits: driver.limits, claims: typeof driver.putIfAbsent });
  }
  if (path === "/clear") {
    let cursor;
    do {
      const page = await env.BODIES.list(cursor === undefined ? {} : { cursor });
      if (page.objects.length > 0) await env.BODIES.delete(page.objects.map((o) => o.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor !== undefined);
    return new Response(null, { status: 204 });
  }
  const driver = drivers.get(args.id);
  switch (path) {
    case "/get": {
      const value = await driver.get(args.key);
      return value === undefined ? new Response(null, { status: 404 }) : new Response(value);
    }
    case "/stream": {
      const stream = await driver.getStream(args.key);
      return stream === undefined ? new Response(null, { status: 404 }) : new Response(stream);
    }
    case "/put":
      await driver.put(
        args.key,
        args.whole ? new Uint8Array(await request.arrayBuffer()) : request.body ?? empty(),
      );
      return new Response(null, { status: 204 });
    case "/putIfAbsent": {
      const won = await driver.putIfAbsent(args.key, new Uint8Array(await request.arrayBuffer()));
      return Response.json({ won });
    }
    case "/delete":
      await driver.delete(args.key);
      return new Response(null, { status: 204 });
    case "/has":
      return Response.json({ has: await driver.has(args.key) });
    case "/list":
      return Response.json(await Array.fromAsync(driver.list(args.options)));
    case "/close":
      await driver.close();
      return new Response(null, { status: 204 });
  }
  return new Response("no such route", { status: 400 });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      return await route(url.pathname, JSON.parse(url.searchParams.get("args")), request, env);
    } catch (error) {
      const { name, message, driver, key, code } = error;
      return Response.json({ name, message, driver, key, code }, { status: 500 });
    }
  },
};
`;

/** The Node script that serves the bundled Worker on 127.0.0.1 until its stdin closes. */
const RUNNER = `
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
const [peers, scriptPath] = process.argv.slice(2);
const require = createRequire(peers);
const { Miniflare } = await import(pathToFileURL(require.resolve("miniflare")).href);
const mf = new Miniflare({
  modules: true,
  scriptPath,
  compatibilityDate: "2026-04-01",
  r2Buckets: ["BODIES"],
  host: "127.0.0.1",
  port: 0,
});
const url = await mf.ready;
process.stdout.write(url.href + "\\n");
process.stdin.resume();
process.stdin.on("end", () => mf.dispose().then(() => process.exit(0)));
`;

/** Miniflare running the test Worker, and the workerd process under it. */
interface Workerd {
  base: string;
  child: Child;
}

/** Bundles the test Worker and starts it in Miniflare; `fn` gets its URL. */
async function withWorkerd(fn: (workerd: Workerd) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "r2-driver-" });
  try {
    await Deno.writeTextFile(join(dir, "entry.js"), WORKER);
    const bundled = await run(Deno.execPath(), [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--format",
      "esm",
      "--output",
      join(dir, "worker.js"),
      join(dir, "entry.js"),
    ]);
    assert.equal(bundled.code, 0, `deno bundle failed:\n${bundled.stderr}`);
    await Deno.writeTextFile(join(dir, "run.mjs"), RUNNER);
    // workerd logs the puts the contract aborts on purpose: its stderr is kept, not shown.
    const child = start("node", [join(dir, "run.mjs"), PEERS, join(dir, "worker.js")], {
      cwd: dir,
      stdin: true,
    });
    try {
      const base = (await child.line()).trim();
      assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      await fn({ base, child });
    } finally {
      // The runner disposes of workerd and exits when its stdin closes.
      await child.closeStdin();
      await child.wait();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** An error the Worker sent back, as the error the driver threw in workerd. */
function revive(body: Record<string, unknown>): Error {
  const message = String(body.message);
  switch (body.name) {
    case "TypeError":
      return new TypeError(message);
    case "RangeError":
      return new RangeError(message);
    case "StorageError":
      return new StorageError(message, {
        driver: body.driver as string,
        ...(typeof body.key === "string" ? { key: body.key } : {}),
        ...(body.code === undefined ? {} : { code: body.code as string | number }),
        cause: new Error("thrown inside workerd"),
      });
  }
  return new Error(message);
}

/** A {@linkcode StorageDriver} in Deno whose every call runs a CloudflareR2Driver in workerd. */
class RemoteDriver implements StorageDriver {
  readonly name = "cloudflare_r2";
  readonly putIfAbsent?: (key: string, value: Uint8Array) => Promise<boolean>;

  private constructor(
    readonly base: string,
    readonly id: number,
    readonly limits: StorageLimits,
    claims: boolean,
  ) {
    if (claims) {
      this.putIfAbsent = async (key, value) => {
        const body = value as Uint8Array<ArrayBuffer>;
        const response = await this.#call("/putIfAbsent", { key }, { method: "POST", body });
        return (await response.json()).won;
      };
    }
  }

  /** Makes a driver in workerd with `options`. */
  static async open(base: string, options: Record<string, unknown>): Promise<RemoteDriver> {
    const response = await call(base, "/new", { options });
    const { id, limits, claims } = await response.json();
    return new RemoteDriver(base, id, limits, claims === "function");
  }

  #call(path: string, args: Record<string, unknown>, init?: RequestInit): Promise<Response> {
    return call(this.base, path, { id: this.id, ...args }, init);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const response = await this.#call("/get", { key });
    if (response.status === 404) return void await response.body?.cancel();
    return new Uint8Array(await response.arrayBuffer());
  }

  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const response = await this.#call("/stream", { key });
    if (response.status === 404) return void await response.body?.cancel();
    return response.body ?? ReadableStream.from([]);
  }

  async put(key: string, value: StorageValue): Promise<void> {
    if (value instanceof Uint8Array) {
      const body = value as Uint8Array<ArrayBuffer>;
      await (await this.#call("/put", { key, whole: true }, { method: "PUT", body })).body
        ?.cancel();
      return;
    }
    // A source that fails aborts the request; the put rejects with the source's own error.
    const reader = value.getReader();
    let failed: { error: unknown } | undefined;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller): Promise<void> {
        try {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          failed = { error };
          controller.error(error);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
    try {
      await (await this.#call("/put", { key }, { method: "PUT", body })).body?.cancel();
    } catch (error) {
      throw failed === undefined ? error : failed.error;
    }
    if (failed !== undefined) throw failed.error;
  }

  async delete(key: string): Promise<void> {
    await (await this.#call("/delete", { key })).body?.cancel();
  }

  async has(key: string): Promise<boolean> {
    return (await (await this.#call("/has", { key })).json()).has;
  }

  async *list(options?: ListOptions): AsyncIterable<string> {
    yield* await (await this.#call("/list", { options })).json() as string[];
  }

  async close(): Promise<void> {
    await (await this.#call("/close", {})).body?.cancel();
  }
}

/** Requests to the test Worker in flight at most: more make Miniflare reset connections. */
const IN_FLIGHT = 8;
let inFlight = 0;
const waiting: (() => void)[] = [];

/**
 * Sends one request to the test Worker over the test's own transport: at most
 * {@linkcode IN_FLIGHT} at once, and a request without a streamed body, other than a claim, sent
 * again (twice at most) when the connection is reset before an answer (Miniflare does so on a
 * loaded machine). Only the transport is retried: the driver under test sees each call once.
 */
async function send(url: URL, path: string, init?: RequestInit): Promise<Response> {
  while (inFlight >= IN_FLIGHT) await new Promise<void>((resolve) => waiting.push(resolve));
  inFlight++;
  try {
    const again = path !== "/putIfAbsent" && !(init?.body instanceof ReadableStream);
    for (let attempt = 1;; attempt++) {
      try {
        return await fetch(url, init);
      } catch (error) {
        if (!again || attempt >= 3 || !(error instanceof TypeError)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  } finally {
    inFlight--;
    waiting.shift()?.();
  }
}

/** Calls a route of the test Worker; a driver error comes back as that error. */
async function call(
  base: string,
  path: string,
  args: Record<string, unknown>,
  init?: RequestInit,
): Promise<Response> {
  const url = new URL(path, base);
  // JSON escapes lone surrogates, so a key the driver must refuse still travels.
  url.searchParams.set("args", JSON.stringify(args));
  const response = await send(url, path, init);
  if (response.status === 500) throw revive(await response.json());
  assert.ok(response.status < 300 || response.status === 404, `${path}: ${response.status}`);
  return response;
}

Deno.test("cloudflare_r2 driver: the storage contract in workerd, Miniflare's R2", async (t) => {
  await withWorkerd(async ({ base }) => {
    await t.step("with a key prefix per step and small list pages", async (t) => {
      let n = 0;
      await runDriverContract(
        t,
        () => RemoteDriver.open(base, { keyPrefix: `c${n++}:`, pageSize: 7 }),
      );
    });
    await t.step("without a key prefix, the smallest parts, on an emptied bucket", async (t) => {
      await runDriverContract(t, async () => {
        await (await call(base, "/clear", {})).body?.cancel();
        return await RemoteDriver.open(base, { partSize: R2_MIN_PART_BYTES });
      });
    });
  });
});

Deno.test("cloudflare_r2 driver: list under a prefix holding U+0000, inside workerd", async () => {
  await withWorkerd(async ({ base }) => {
    for (const keyPrefix of ["", "p\u0000:"]) {
      await (await call(base, "/clear", {})).body?.cancel();
      const driver = await RemoteDriver.open(base, { keyPrefix, pageSize: 2 });
      const keys = ["", "\u0000", "\u0000\u0000", "\u0000a", "\u0000b", "\u0000c:d", "\u0001", "a"];
      for (const key of keys) await driver.put(key, encoder.encode(key));
      const list = (options: ListOptions) => Array.fromAsync(driver.list(options));
      assert.deepEqual(await list({}), [...keys].sort(byteOrder));
      assert.deepEqual(await list({ prefix: "\u0000" }), keys.slice(1, 6));
      assert.deepEqual(await list({ prefix: "\u0000", start: "\u0000a" }), keys.slice(3, 6));
      assert.deepEqual(await list({ prefix: "\u0000", limit: 3 }), keys.slice(1, 4));
      assert.deepEqual(await list({ prefix: "\u0000c" }), ["\u0000c:d"]);
      assert.deepEqual(await list({ prefix: "\u0000\u0000" }), ["\u0000\u0000"]);
      await driver.close();
    }
  });
});

/** The pid of the workerd process Miniflare started under `parent`. */
async function workerdPid(parent: number): Promise<number> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    // pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
    const [, comm, rest] = /^\d+ \((.*)\) (.*)$/s.exec(stat) ?? [];
    if (comm === "workerd" && Number(rest?.split(" ")[1]) === parent) return Number(entry.name);
  }
  throw new Error(`no workerd process under ${parent}`);
}

/** A process's memory: VmRSS and VmHWM (the peak since its last reset), in bytes. */
async function memory(pid: number | "self"): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (field: string) =>
    Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** Resets a process's VmHWM to its current RSS (Linux: writing 5 to clear_refs). */
async function resetPeak(pid: number | "self"): Promise<void> {
  await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
}

/** `total` bytes in chunks of 1 MiB, each different, hashed (SHA-256) as they are read. */
function generated(total: number): { stream: ReadableStream<Uint8Array>; digest: () => string } {
  const block = new Uint8Array(MiB);
  for (let i = 0; i < MiB; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
  const hash = createHash("sha256");
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller): void {
      if (sent >= total) {
        controller.close();
        return;
      }
      const chunk = block.slice(0, Math.min(MiB, total - sent));
      new DataView(chunk.buffer).setFloat64(0, sent);
      sent += chunk.byteLength;
      hash.update(chunk);
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return { stream, digest: () => hash.digest("hex") };
}

Deno.test("cloudflare_r2 driver: 100 MB streams through workerd in bounded memory", async () => {
  await withWorkerd(async ({ base, child }) => {
    const workerd = await workerdPid(child.pid);
    const driver = await RemoteDriver.open(base, {});
    // Warm up both ends (the Worker's first requests, Deno's fetch).
    await driver.put("warm", new Uint8Array(MiB));
    await (await driver.getStream("warm"))!.pipeTo(new WritableStream());
    const total = 100 * 1000 * 1000;
    const before = { deno: await memory("self"), workerd: await memory(workerd) };
    await resetPeak("self");
    await resetPeak(workerd);

    const source = generated(total);
    await driver.put("big", source.stream);
    const hash = createHash("sha256");
    let read = 0;
    for await (const chunk of (await driver.getStream("big"))!) {
      hash.update(chunk);
      read += chunk.byteLength;
    }
    assert.equal(read, total);
    assert.equal(hash.digest("hex"), source.digest());

    // Measured on this machine: Deno about 65 MiB, workerd about 90 MiB (its R2 simulator
    // included); a driver that held the whole body would take workerd past 260 MiB.
    const growth = {
      deno: (await memory("self")).peak - before.deno.rss,
      workerd: (await memory(workerd)).peak - before.workerd.rss,
    };
    const shown = `Deno ${(growth.deno / MiB).toFixed(1)} MiB, workerd ${
      (growth.workerd / MiB).toFixed(1)
    } MiB`;
    assert.ok(growth.workerd < 200 * MiB, `workerd's peak RSS grew too much: ${shown}`);
    assert.ok(growth.deno < 160 * MiB, `Deno's peak RSS grew too much: ${shown}`);
    assert.deepEqual(await Array.fromAsync(driver.list()), ["big", "warm"]);
    await driver.close();
  });
});

Deno.test("cloudflare_r2 driver: of 20 drivers racing for a key in workerd, one wins", async () => {
  await withWorkerd(async ({ base }) => {
    const drivers = await Promise.all(
      Array.from({ length: 20 }, () => RemoteDriver.open(base, { keyPrefix: "claims:" })),
    );
    for (
      const key of ["a", "v1:checkpoint:o:s:000001:claim:0", "v1:checkpoint:o:s:000001:claim:1"]
    ) {
      const won = await Promise.all(
        drivers.map((driver, i) => driver.putIfAbsent!(key, encoder.encode(`writer ${i}`))),
      );
      assert.equal(won.filter(Boolean).length, 1, `${key}: ${won}`);
      const value = await drivers[0]!.get(key);
      assert.equal(decoder.decode(value), `writer ${won.indexOf(true)}`);
      assert.equal(await drivers[1]!.putIfAbsent!(key, new Uint8Array(1)), false);
    }
    for (const driver of drivers) await driver.close();
  });
});

/** A multipart upload as {@linkcode FakeR2} saw it. */
interface FakeUpload {
  key: string;
  parts: Uint8Array[];
  completed: boolean;
  aborted: boolean;
}

/**
 * An in-memory stand-in for an R2 bucket with R2's rules that matter here: keys sorted by
 * UTF-8 bytes, `list` paged by cursor, conditional puts, and multipart uploads whose parts
 * (all but the last of one size, at least 5 MiB) become the object only on `complete`. An
 * operation named in `failures` throws that error instead; with `loseAnswers`, a put stores
 * its value and then throws, as when the answer is lost.
 */
class FakeR2 implements R2BucketLike {
  objects = new Map<string, { value: Uint8Array; customMetadata?: Record<string, string> }>();
  uploads: FakeUpload[] = [];
  failures: Record<string, Error | undefined> = {};
  loseAnswers = false;

  #fail(op: string): void {
    const error = this.failures[op];
    if (error !== undefined) throw error;
  }

  #object(key: string): R2ObjectLike {
    const customMetadata = this.objects.get(key)!.customMetadata;
    return customMetadata === undefined ? { key } : { key, customMetadata };
  }

  get(key: string) {
    this.#fail("get");
    const stored = this.objects.get(key);
    if (stored === undefined) return Promise.resolve(null);
    return Promise.resolve({
      ...this.#object(key),
      body: ReadableStream.from([stored.value.slice()]),
      arrayBuffer: () => Promise.resolve(stored.value.slice().buffer),
    });
  }

  head(key: string): Promise<R2ObjectLike | null> {
    this.#fail("head");
    return Promise.resolve(this.objects.has(key) ? this.#object(key) : null);
  }

  put(key: string, value: Uint8Array, options?: R2PutOptionsLike): Promise<R2ObjectLike | null> {
    this.#fail("put");
    if (options?.onlyIf !== undefined) {
      assert.deepEqual(options.onlyIf, { etagDoesNotMatch: "*" });
      if (this.objects.has(key)) return Promise.resolve(null);
    }
    const stored: { value: Uint8Array; customMetadata?: Record<string, string> } = {
      value: value.slice(),
    };
    if (options?.customMetadata !== undefined) stored.customMetadata = options.customMetadata;
    this.objects.set(key, stored);
    if (this.loseAnswers) throw new Error("put: Network connection lost.");
    return Promise.resolve(this.#object(key));
  }

  delete(key: string): Promise<void> {
    this.#fail("delete");
    this.objects.delete(key);
    return Promise.resolve();
  }

  list(
    options: { prefix?: string; cursor?: string; startAfter?: string; limit?: number },
  ): Promise<R2ObjectsLike> {
    this.#fail("list");
    const after = options.cursor === undefined
      ? options.startAfter
      : decodeURIComponent(options.cursor);
    const keys = [...this.objects.keys()].sort(byteOrder).filter((key) =>
      key.startsWith(options.prefix ?? "") && (after === undefined || byteOrder(key, after) > 0)
    );
    const page = keys.slice(0, options.limit ?? 1000);
    const truncated = page.length < keys.length;
    const objects = page.map((key) => ({ key }));
    return Promise.resolve(
      truncated ? { objects, truncated, cursor: encodeURIComponent(page.at(-1)!) } : {
        objects,
        truncated,
      },
    );
  }

  createMultipartUpload(key: string): Promise<R2MultipartUploadLike> {
    this.#fail("create");
    const upload: FakeUpload = { key, parts: [], completed: false, aborted: false };
    this.uploads.push(upload);
    return Promise.resolve({
      uploadPart: (partNumber: number, value: Uint8Array): Promise<R2UploadedPartLike> => {
        this.#fail("uploadPart");
        assert.equal(partNumber, upload.parts.length + 1);
        upload.parts.push(value.slice());
        return Promise.resolve({ partNumber, etag: `etag-${partNumber}` });
      },
      complete: (parts: R2UploadedPartLike[]): Promise<unknown> => {
        this.#fail("complete");
        assert.deepEqual(parts.map((p) => p.partNumber), upload.parts.map((_, i) => i + 1));
        const sizes = upload.parts.map((part) => part.byteLength);
        for (const size of sizes.slice(0, -1)) assert.equal(size, sizes[0], `part sizes ${sizes}`);
        assert.ok(sizes[0]! >= R2_MIN_PART_BYTES && sizes.at(-1)! <= sizes[0]!, `${sizes}`);
        const value = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
        let offset = 0;
        for (const part of upload.parts) {
          value.set(part, offset);
          offset += part.byteLength;
        }
        this.objects.set(key, { value });
        upload.completed = true;
        return Promise.resolve({ key });
      },
      abort: (): Promise<void> => {
        upload.aborted = true;
        return Promise.resolve();
      },
    });
  }
}

/** `total` bytes `i & 0xff` at offset `i`, in chunks of `piece`, failing at `failAt` if given. */
function counted(total: number, piece: number, failAt?: number) {
  let sent = 0;
  let cancelled: unknown;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller): void {
      if (failAt !== undefined && sent >= failAt) {
        controller.error(new Error("source failed"));
        return;
      }
      if (sent >= total) {
        controller.close();
        return;
      }
      const chunk = new Uint8Array(Math.min(piece, total - sent));
      for (let i = 0; i < chunk.length; i++) chunk[i] = (sent + i) & 0xff;
      sent += chunk.length;
      controller.enqueue(chunk);
    },
    cancel(reason): void {
      cancelled = reason;
    },
  }, { highWaterMark: 0 });
  return { stream, cancelled: () => cancelled };
}

/** Asserts `value` holds `total` bytes `i & 0xff`. */
function assertCounted(value: Uint8Array | undefined, total: number): void {
  assert.equal(value?.byteLength, total);
  const at = value!.findIndex((byte, i) => byte !== (i & 0xff));
  assert.equal(at, -1, `byte ${at} differs`);
}

Deno.test("cloudflare_r2 driver: streams go up in equal parts, one part in memory", async () => {
  const r2 = new FakeR2();
  const driver = new CloudflareR2Driver(r2, { partSize: R2_MIN_PART_BYTES });
  const part = R2_MIN_PART_BYTES;
  // Within one part, or exactly one: one put, no upload.
  for (const total of [0, 1000, part]) {
    await driver.put(`k${total}`, counted(total, 65_537).stream);
    assertCounted(r2.objects.get(`k${total}`)?.value, total);
  }
  assert.equal(r2.uploads.length, 0);
  // Longer: equal parts and a shorter (or equal) last one, whatever the chunks.
  for (
    const [total, piece] of [[2 * part + 3, 65_537], [2 * part, 3 * MiB], [part + 1, 11 * MiB]]
  ) {
    await driver.put("big", counted(total!, piece!).stream);
    assertCounted(r2.objects.get("big")?.value, total!);
    const upload = r2.uploads.at(-1)!;
    assert.ok(upload.completed && !upload.aborted);
    assert.deepEqual(
      upload.parts.map((p) => p.byteLength),
      total === 2 * part + 3 ? [part, part, 3] : total === 2 * part ? [part, part] : [part, 1],
    );
  }
});

Deno.test("cloudflare_r2 driver: a failed put aborts its upload, the old value stays", async () => {
  const r2 = new FakeR2();
  const driver = new CloudflareR2Driver(r2, { partSize: R2_MIN_PART_BYTES });
  await driver.put("k", encoder.encode("old"));

  // The source fails in the third part: its own error, the upload aborted.
  const failing = counted(20 * MiB, MiB, 12 * MiB);
  await assert.rejects(driver.put("k", failing.stream), { message: "source failed" });
  assert.deepEqual(r2.uploads.map((u) => [u.parts.length, u.completed, u.aborted]), [[
    2,
    false,
    true,
  ]]);
  assert.equal(decoder.decode(await driver.get("k")), "old");

  // R2 fails a part: a StorageError, the upload aborted, the source cancelled.
  r2.failures.uploadPart = new Error("uploadPart: We encountered an internal error. (10001)");
  const source = counted(20 * MiB, MiB);
  await assertStorageError(driver.put("k", source.stream), {
    driver: "cloudflare_r2",
    key: "k",
    code: 10001,
  });
  assert.deepEqual(r2.uploads.at(-1)!.aborted, true);
  assert.ok(source.cancelled() instanceof StorageError, "the source is cancelled");
  r2.failures = { complete: new Error("complete: The upload failed. (10048)") };
  await assertStorageError(driver.put("k", counted(11 * MiB, MiB).stream), {
    driver: "cloudflare_r2",
    key: "k",
    code: 10048,
  });
  assert.deepEqual(r2.uploads.at(-1)!.aborted, true);
  assert.equal(decoder.decode(await driver.get("k")), "old");
});

Deno.test("cloudflare_r2 driver: binding failures are StorageErrors naming R2's code", async () => {
  const r2 = new FakeR2();
  const driver = new CloudflareR2Driver(r2);
  await driver.put("k", new Uint8Array([1]));
  const internal = new Error("get: We encountered an internal error. Please try again. (10001)");
  r2.failures = { get: internal, head: internal, delete: internal, list: internal, put: internal };
  const expected = { driver: "cloudflare_r2", key: "k", code: 10001 };
  const error = await assertStorageError(driver.get("k"), expected);
  assert.equal(error.cause, internal);
  assert.match(error.message, /^Cannot get key "k": R2 failed: get: We encountered/);
  await assertStorageError(driver.getStream("k"), expected);
  await assertStorageError(driver.has("k"), expected);
  await assertStorageError(driver.delete("k"), expected);
  await assertStorageError(driver.put("k", new Uint8Array(1)), expected);
  await assertStorageError(driver.putIfAbsent("new", new Uint8Array(1)), {
    ...expected,
    key: "new",
  });
  await assertStorageError(Array.fromAsync(driver.list()), { ...expected, key: undefined });
  // An error object's own code wins; one without a code has none.
  r2.failures = { get: Object.assign(new Error("get: throttled"), { code: 10058 }) };
  await assertStorageError(driver.get("k"), { ...expected, code: 10058 });
  r2.failures = { get: new Error("no code here") };
  assert.equal(
    (await assertStorageError(driver.get("k"), { driver: "cloudflare_r2" })).code,
    undefined,
  );
});

Deno.test("cloudflare_r2 driver: putIfAbsent tells a lost answer from a lost race", async () => {
  const r2 = new FakeR2();
  const one = new CloudflareR2Driver(r2);
  const two = new CloudflareR2Driver(r2);
  // The put landed and its answer was lost: the writer token says it was this call's.
  r2.loseAnswers = true;
  assert.equal(await one.putIfAbsent("claim", encoder.encode("one")), true);
  assert.equal(await two.putIfAbsent("claim", encoder.encode("two")), false);
  r2.loseAnswers = false;
  assert.equal(decoder.decode(await two.get("claim")), "one");
  // R2 refuses a write (a key takes about one write a second) while another writer holds it.
  r2.failures.put = new Error(
    "put: Reduce your concurrent request rate for the same object. (10058)",
  );
  assert.equal(await two.putIfAbsent("claim", encoder.encode("two")), false);
  // Refused with nobody holding the key: the outcome is unknown, so it is an error.
  await assertStorageError(two.putIfAbsent("other", encoder.encode("two")), {
    driver: "cloudflare_r2",
    key: "other",
    code: 10058,
  });
  assert.equal(r2.objects.has("other"), false);
});

Deno.test("cloudflare_r2 driver: options and values are checked up front", async () => {
  const r2 = new FakeR2();
  assert.equal(new CloudflareR2Driver(r2).limits.maxKeyBytes, R2_MAX_KEY_BYTES);
  assert.equal(new CloudflareR2Driver(r2, { keyPrefix: "é:" }).limits.maxKeyBytes, 1021);
  assert.throws(() => new CloudflareR2Driver(r2, { keyPrefix: "k".repeat(1024) }), RangeError);
  assert.throws(() => new CloudflareR2Driver(r2, { keyPrefix: "\ud800" }), TypeError);
  assert.throws(() => new CloudflareR2Driver(null as unknown as R2BucketLike), TypeError);
  for (const partSize of [R2_MIN_PART_BYTES - 1, 5 * MiB + 0.5, 6 * 1024 * MiB, Infinity]) {
    assert.throws(() => new CloudflareR2Driver(r2, { partSize }), /'partSize' must be/);
  }
  for (const pageSize of [0, 1001, 1.5]) {
    assert.throws(() => new CloudflareR2Driver(r2, { pageSize }), /'pageSize' must be/);
  }
  const driver = new CloudflareR2Driver(r2);
  await assert.rejects(driver.put("k", "text" as unknown as Uint8Array), TypeError);
  await assert.rejects(driver.putIfAbsent("k", ReadableStream.from([]) as never), TypeError);
  assert.equal(r2.objects.size, 0);
});

Deno.test("cloudflare_r2 driver: the storage contract over a paging fake R2", async (t) => {
  await runDriverContract(
    t,
    () => Promise.resolve(new CloudflareR2Driver(new FakeR2(), { pageSize: 3 })),
  );
});
