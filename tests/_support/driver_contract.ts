/**
 * The contract every {@linkcode StorageDriver} must meet, as a set of test steps to run against a
 * driver factory. Expected results are computed independently of the drivers (by sorting on
 * UTF-8 bytes), so a driver that orders by UTF-16 code units, loses bytes or exposes partial
 * values fails.
 *
 * Use it from a test: `Deno.test("memory", (t) => runDriverContract(t, makeDriver))`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ListOptions, type StorageDriver, StorageError } from "../../src/storage/driver.ts";
import { readAll } from "../../src/_util/bytes.ts";
import { bytesToHex } from "../../src/_util/hex.ts";
import { Cache } from "../../src/storage/cache.ts";
import { gunzipStream, gzipStream } from "../../src/storage/encoding.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Compares strings by their UTF-8 bytes, independently of the drivers' own comparison. */
export function byteOrder(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

/** `keys` sorted by UTF-8 bytes, without duplicates. */
function sorted(keys: Iterable<string>): string[] {
  return [...new Set(keys)].sort(byteOrder);
}

/** What `list(options)` must return for the stored `keys`, computed from first principles. */
function expectedList(keys: readonly string[], options: ListOptions): string[] {
  const out = sorted(keys).filter((key) =>
    key.startsWith(options.prefix ?? "") &&
    (options.start === undefined || byteOrder(key, options.start) >= 0) &&
    (options.end === undefined || byteOrder(key, options.end) < 0)
  );
  return options.limit === undefined ? out : out.slice(0, options.limit);
}

/** All keys `list(options)` yields. */
function listAll(driver: StorageDriver, options?: ListOptions): Promise<string[]> {
  return Array.fromAsync(driver.list(options));
}

/** A stream that yields `chunks`. */
function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}

/** The value stored for a key in the ordering tests. */
function valueFor(key: string): Uint8Array {
  return encoder.encode(`value of ${JSON.stringify(key)}`);
}

/** Asserts `actual` holds exactly `length` bytes equal to `byte`, without printing them. */
function assertFilled(actual: Uint8Array | undefined, byte: number, length: number): void {
  assert.ok(actual !== undefined, "value is missing");
  assert.equal(actual.byteLength, length, "value length");
  for (let i = 0; i < actual.byteLength; i++) {
    if (actual[i] !== byte) assert.fail(`byte ${i} is ${actual[i]}, expected ${byte}`);
  }
}

/** Asserts two byte arrays are equal, without printing them. */
function assertBytes(actual: Uint8Array | undefined, expected: Uint8Array, what: string): void {
  assert.ok(actual !== undefined, `${what}: value is missing`);
  assert.ok(actual instanceof Uint8Array, `${what}: value is not a Uint8Array`);
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length`);
  for (let i = 0; i < expected.byteLength; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** A deterministic pseudo-random byte sequence that can be replayed in any chunking. */
class ByteSource {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(length: number): Uint8Array {
    const out = new Uint8Array(length);
    let s = this.#state;
    for (let i = 0; i < length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = s >>> 24;
    }
    this.#state = s;
    return out;
  }
}

/** A stream of `total` pseudo-random bytes from `seed`, in pieces of `piece` bytes. */
function randomStream(seed: number, total: number, piece: number): ReadableStream<Uint8Array> {
  const source = new ByteSource(seed);
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller): void {
      if (sent >= total) {
        controller.close();
        return;
      }
      const length = Math.min(piece, total - sent);
      sent += length;
      controller.enqueue(source.next(length));
    },
  }, { highWaterMark: 0 });
}

/** Asserts a stream holds exactly the `total` bytes of `randomStream(seed, ...)`. */
async function assertRandomStream(
  stream: ReadableStream<Uint8Array>,
  seed: number,
  total: number,
): Promise<void> {
  const source = new ByteSource(seed);
  let offset = 0;
  for await (const chunk of stream) {
    assert.ok(offset + chunk.byteLength <= total, "stream is longer than the value");
    const expected = source.next(chunk.byteLength);
    for (let i = 0; i < chunk.byteLength; i++) {
      if (chunk[i] !== expected[i]) assert.fail(`byte ${offset + i} differs`);
    }
    offset += chunk.byteLength;
  }
  assert.equal(offset, total, "stream length");
}

/** A string of exactly `bytes` UTF-8 bytes, mixing 1- to 4-byte characters. */
function multiByteKey(bytes: number): string {
  const pieces = ["é", "中", "\u{1F600}", "a"];
  let out = "";
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const piece = pieces[i % pieces.length]!;
    const length = encoder.encode(piece).byteLength;
    if (size + length > bytes) {
      out += "z".repeat(bytes - size);
      break;
    }
    out += piece;
    size += length;
  }
  return out;
}

/** A segment of 4 + 64 bytes: its remainder goes through two fan-out levels and a 64-byte one. */
const DEEP = "xxxx" + "y".repeat(64);

/** Keys whose order and prefix relations tell a correct driver from a wrong one. */
const ORDER_KEYS: readonly string[] = [
  "",
  "a",
  "a:",
  "a:b",
  "a::",
  "a:b:c",
  "ab",
  "a-",
  "a0",
  "a9",
  "a_",
  "a.",
  "a%",
  "a/",
  "a\\",
  "a b",
  "aA",
  "A",
  "Z",
  "z",
  "@",
  "@scope/pkg",
  "@a:b",
  "0",
  "9",
  "00",
  "~",
  " ",
  "\t",
  "\u0000",
  "\u0001",
  "a\u0000",
  "é",
  "aé",
  "\uE000",
  "\uFFFD",
  "a\uFFFD",
  "\uFFFF",
  "\u{10000}",
  "\u{1F600}",
  "a\u{1F600}",
  "\u{10FFFF}",
  "中文",
  ":",
  "::",
  ":a",
  "ab-",
  "ab0",
  "ab:",
  "ab:0",
  "ab:x",
  "abz",
  "abc",
  "abc:d",
  "ab:c:d",
  "abcd",
  "abcde",
  "abcde:f",
  "abcd-",
  "abcd0",
  "abcd:",
  "ABCD",
  ".",
  "..",
  "%2e",
  "CON",
  "aux",
  DEEP,
  DEEP + "0",
  DEEP + "-",
  DEEP + ":",
  DEEP + ":z",
  DEEP + "z",
  DEEP + "-" + "q".repeat(70),
  DEEP + "q".repeat(70) + ":" + "r".repeat(3),
];

/** The hex of a string's UTF-8 bytes, as the real key format writes package names. */
function hex(text: string): string {
  return bytesToHex(encoder.encode(text));
}

/** Package names shaped like the registry's. */
function packageNames(): string[] {
  const names = [
    "a",
    "lodash",
    "lodash.merge",
    "react",
    "react-dom",
    "@babel/core",
    "@babel/cli",
    "@types/node",
    "@a/b",
    "JSONStream",
    "_private",
    "0",
    "9to5",
    "zod",
    "x",
  ];
  const source = new ByteSource(42);
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._";
  for (let i = 0; i < 140; i++) {
    const bytes = source.next(12);
    let name = "";
    const length = 1 + (bytes[0]! % 10);
    for (let j = 0; j < length; j++) name += alphabet[bytes[j + 1]! % alphabet.length];
    names.push(i % 4 === 0 ? `@s${bytes[11]! % 5}/${name}` : name);
  }
  return [...new Set(names)];
}

/** Real-format keys: packuments and partitions of several prefix lengths. */
function realKeys(): { packuments: string[]; partitions: string[]; others: string[] } {
  const names = packageNames();
  const packuments = names.map((name) => `v1:packument:npm:${hex(name)}`);
  const partitions: string[] = [];
  for (const [i, name] of names.entries()) {
    const chars = [...name];
    const head = chars.slice(0, i % 2 === 0 ? 1 : 2).join("");
    const rest = chars.slice(head.length, head.length + 2).join("");
    partitions.push(`v1:partition:npm:${hex(head)}:${hex(rest)}`);
  }
  partitions.push("v1:partition:npm:40:", "v1:partition:npm:40:4061", "v1:partition:npm:4061:62");
  const others = ["v1:partition", "v1:partitio", "v1:partitions:npm:40:", "v2:partition:npm:40:"];
  return { packuments, partitions: [...new Set(partitions)], others };
}

/** Puts `keys` with their ordering-test values, a few at a time. */
async function putKeys(driver: StorageDriver, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 25) {
    await Promise.all(keys.slice(i, i + 25).map((key) => driver.put(key, valueFor(key))));
  }
}

/** A stream that pauses after `before` bytes until `resume` resolves, then sends the rest. */
function pausingStream(
  byte: number,
  piece: number,
  before: number,
  total: number,
  paused: () => void,
  resume: Promise<void>,
): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      if (sent === before) {
        paused();
        await resume;
      }
      if (sent >= total) {
        controller.close();
        return;
      }
      const length = Math.min(piece, total - sent, sent < before ? before - sent : Infinity);
      sent += length;
      controller.enqueue(new Uint8Array(length).fill(byte));
    },
  }, { highWaterMark: 0 });
}

/** A stream that sends `before` bytes, then errors with `message`. */
function failingStream(byte: number, before: number, message: string): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller): void {
      if (sent) {
        controller.error(new Error(message));
        return;
      }
      sent = true;
      controller.enqueue(new Uint8Array(before).fill(byte));
    },
  }, { highWaterMark: 0 });
}

/**
 * Runs the storage driver contract as steps of `t`, each on a fresh driver from `makeDriver`
 * that is closed afterwards.
 *
 * @param t The test context to add steps to.
 * @param makeDriver Creates a fresh, empty driver.
 * @returns A promise that resolves when every step has run.
 */
export async function runDriverContract(
  t: Deno.TestContext,
  makeDriver: () => Promise<StorageDriver>,
): Promise<void> {
  async function step(name: string, fn: (driver: StorageDriver) => Promise<void>): Promise<void> {
    await t.step(name, async () => {
      const driver = await makeDriver();
      try {
        await fn(driver);
      } finally {
        await driver.close();
      }
    });
  }

  await step("keys list in code-point (UTF-8 byte) order", async (driver) => {
    const expected = sorted(ORDER_KEYS);
    // The reference must differ from UTF-16 order, or this step could not catch that bug.
    assert.notDeepEqual(expected, [...expected].sort());
    await putKeys(driver, ORDER_KEYS);
    const keys = await listAll(driver);
    assert.deepEqual(keys, expected);
    const at = (key: string): number => keys.indexOf(key);
    assert.ok(at("\uFFFD") < at("\u{1F600}"), "U+FFFD sorts before U+1F600");
    assert.ok(at("\uE000") < at("\u{10000}"), "U+E000 sorts before U+10000");
    assert.ok(at("A") < at("Z") && at("Z") < at("a"), "upper case sorts before lower case");
    assert.ok(at("@") < at("A") && at("0") < at("@"), "digits, then @, then letters");
    assert.ok(at("a") < at("a:") && at("a:") < at("a:b") && at("a:b") < at("ab"));
    assert.ok(at("ab0") < at("ab:") && at("ab:x") < at("abz"), "digits sort before :");
    for (const key of ORDER_KEYS) {
      assertBytes(await driver.get(key), valueFor(key), JSON.stringify(key));
    }
  });

  await step("list by prefix", async (driver) => {
    await putKeys(driver, ORDER_KEYS);
    const prefixes = [
      "",
      "a",
      "a:",
      "a:b",
      "ab",
      "ab:",
      "abc",
      "abcd",
      "A",
      "@",
      ":",
      "\u0000",
      "\u{1F600}",
      "\uFFFD",
      "x",
      "xxxx",
      DEEP,
      DEEP + ":",
      DEEP + "q",
      "zzz",
      "nothing",
    ];
    for (const prefix of prefixes) {
      assert.deepEqual(
        await listAll(driver, { prefix }),
        expectedList(ORDER_KEYS, { prefix }),
        `prefix ${JSON.stringify(prefix)}`,
      );
    }
  });

  await step("list by start and end", async (driver) => {
    await putKeys(driver, ORDER_KEYS);
    const bounds = [
      undefined,
      "",
      "a",
      "a:",
      "a:a",
      "ab:",
      "ab0",
      "abz",
      "b",
      "\uFFFD",
      "\u{1F600}",
      DEEP + ":",
    ];
    for (const start of bounds) {
      for (const end of bounds) {
        const options: ListOptions = {};
        if (start !== undefined) options.start = start;
        if (end !== undefined) options.end = end;
        assert.deepEqual(
          await listAll(driver, options),
          expectedList(ORDER_KEYS, options),
          `range ${JSON.stringify(options)}`,
        );
      }
    }
  });

  await step("list with limit", async (driver) => {
    await putKeys(driver, ORDER_KEYS);
    for (const limit of [0, 1, 2, 5, ORDER_KEYS.length, ORDER_KEYS.length + 10]) {
      for (const prefix of [undefined, "a", "ab"]) {
        const options: ListOptions = { limit };
        if (prefix !== undefined) options.prefix = prefix;
        assert.deepEqual(
          await listAll(driver, options),
          expectedList(ORDER_KEYS, options),
          `limit ${JSON.stringify(options)}`,
        );
      }
    }
    // Stopping early must not break the driver.
    for await (const _ of driver.list()) break;
    assert.equal((await listAll(driver)).length, ORDER_KEYS.length);
  });

  await step("list with prefix, range and limit combined", async (driver) => {
    await putKeys(driver, ORDER_KEYS);
    for (const prefix of ["", "a", "ab", "a:", "\u{1F600}"]) {
      for (const start of [undefined, "a:", "ab", "ab:0", "zz"]) {
        for (const end of [undefined, "ab:", "abz", "b", ""]) {
          for (const limit of [undefined, 2]) {
            const options: ListOptions = { prefix };
            if (start !== undefined) options.start = start;
            if (end !== undefined) options.end = end;
            if (limit !== undefined) options.limit = limit;
            assert.deepEqual(
              await listAll(driver, options),
              expectedList(ORDER_KEYS, options),
              `options ${JSON.stringify(options)}`,
            );
          }
        }
      }
    }
  });

  await step("overwrite and delete", async (driver) => {
    await driver.put("k", encoder.encode("one"));
    await driver.put("k:x", encoder.encode("other"));
    await driver.put("k", encoder.encode("two"));
    assert.equal(decoder.decode(await driver.get("k")), "two");
    assert.deepEqual(await listAll(driver), ["k", "k:x"]);
    await driver.delete("k");
    assert.equal(await driver.get("k"), undefined);
    assert.equal(await driver.getStream("k"), undefined);
    assert.equal(await driver.has("k"), false);
    assert.deepEqual(await listAll(driver), ["k:x"]);
    await driver.delete("k");
    await driver.delete("never-written");
    await driver.delete("");
    await driver.put("k", encoder.encode("three"));
    assert.equal(decoder.decode(await driver.get("k")), "three");
    assert.equal(decoder.decode(await driver.get("k:x")), "other");
    // Overwrite a large value with a small one and back.
    await driver.put("big", new Uint8Array(200_000).fill(7));
    await driver.put("big", new Uint8Array(10).fill(8));
    assertFilled(await driver.get("big"), 8, 10);
    await driver.put("big", new Uint8Array(150_000).fill(9));
    assertFilled(await driver.get("big"), 9, 150_000);
    await driver.delete("big");
    assert.equal(await driver.has("big"), false);
  });

  await step("get, getStream and has on missing keys", async (driver) => {
    for (const key of ["missing", "", "a:b:c", "\u{1F600}"]) {
      assert.equal(await driver.get(key), undefined);
      assert.equal(await driver.getStream(key), undefined);
      assert.equal(await driver.has(key), false);
    }
    await driver.put("present", new Uint8Array([1]));
    assert.equal(await driver.get("presen"), undefined);
    assert.equal(await driver.get("present:"), undefined);
    assert.equal(await driver.has("presentx"), false);
    assert.deepEqual(await listAll(driver, { prefix: "missing" }), []);
  });

  await step("values are copied in and out", async (driver) => {
    const value = new Uint8Array([1, 2, 3]);
    await driver.put("k", value);
    value[0] = 9;
    const first = await driver.get("k");
    assertBytes(first, new Uint8Array([1, 2, 3]), "after changing the input");
    first![1] = 9;
    assertBytes(await driver.get("k"), new Uint8Array([1, 2, 3]), "after changing the output");
  });

  await step("a view stores the bytes it shows, not its whole buffer", async (driver) => {
    const buffer = new Uint8Array(600 * 1024).map((_, i) => i % 251);
    // Small (one blocking write on the fs driver) and large (past 256 KiB: a streamed write).
    const small = buffer.subarray(10, 20);
    const large = buffer.subarray(1000, 1000 + 300 * 1024);
    await driver.put("view:small", small);
    await driver.put("view:large", large);
    assertBytes(await driver.get("view:small"), small.slice(), "small view");
    assertBytes(await driver.get("view:large"), large.slice(), "large view");
  });

  await step("a 20 MB value round-trips through streams", async (driver) => {
    const total = 20 * 1024 * 1024;
    await driver.put("big:value", randomStream(1, total, 100_003));
    assert.equal(await driver.has("big:value"), true);
    const stream = await driver.getStream("big:value");
    assert.ok(stream !== undefined);
    await assertRandomStream(stream, 1, total);
    const whole = await driver.get("big:value");
    assert.ok(whole !== undefined);
    await assertRandomStream(streamOf(whole), 1, total);
    assert.deepEqual(await listAll(driver), ["big:value"]);
  });

  await step("binary safety: all byte values and empty values", async (driver) => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    await driver.put("all", all);
    assertBytes(await driver.get("all"), all, "get");
    assertBytes(await readAll((await driver.getStream("all"))!), all, "getStream");
    await driver.put("all:bytewise", streamOf(...Array.from(all, (b) => new Uint8Array([b]))));
    assertBytes(await driver.get("all:bytewise"), all, "bytewise stream");
    const repeated = new Uint8Array(256 * 300);
    for (let i = 0; i < repeated.length; i++) repeated[i] = (i * 7) & 0xff;
    await driver.put("all:repeated", repeated);
    assertBytes(await driver.get("all:repeated"), repeated, "repeated");

    await driver.put("empty", new Uint8Array(0));
    await driver.put("empty:stream", streamOf());
    await driver.put("empty:chunks", streamOf(new Uint8Array(0), new Uint8Array(0)));
    for (const key of ["empty", "empty:stream", "empty:chunks"]) {
      assert.equal(await driver.has(key), true, key);
      assertBytes(await driver.get(key), new Uint8Array(0), key);
      assertBytes(await readAll((await driver.getStream(key))!), new Uint8Array(0), key);
    }
    assert.deepEqual(await listAll(driver, { prefix: "empty" }), [
      "empty",
      "empty:chunks",
      "empty:stream",
    ]);
  });

  await step("100 concurrent puts of distinct keys", async (driver) => {
    const keys = Array.from({ length: 100 }, (_, i) => `c:${i}`);
    const size = (i: number): number => (i % 10 === 0 ? 70_000 + i : 100 + i);
    await Promise.all(keys.map((key, i) => {
      const value = new Uint8Array(size(i)).fill(i);
      return driver.put(key, i % 3 === 0 ? streamOf(value) : value);
    }));
    for (const [i, key] of keys.entries()) assertFilled(await driver.get(key), i, size(i));
    assert.deepEqual(await listAll(driver), sorted(keys));
  });

  await step("100 concurrent puts of the same key leave one whole value", async (driver) => {
    const size = (i: number): number => 1000 + i * 997;
    await driver.put("same", new Uint8Array(5).fill(255));
    await Promise.all(Array.from({ length: 100 }, (_, i) => {
      const value = new Uint8Array(size(i)).fill(i);
      return driver.put("same", i % 2 === 0 ? streamOf(value) : value);
    }));
    const final = await driver.get("same");
    assert.ok(final !== undefined && final.byteLength > 0);
    const writer = final[0]!;
    assert.ok(writer < 100, "the value is one of the written ones");
    assertFilled(final, writer, size(writer));
    assertFilled(await readAll((await driver.getStream("same"))!), writer, size(writer));
    assert.deepEqual(await listAll(driver), ["same"]);
  });

  await step("a put in progress or failed never exposes a partial value", async (driver) => {
    const key = "atomic:k";
    await driver.put(key, new Uint8Array(100_000).fill(0x11));
    let paused!: () => void;
    const reached = new Promise<void>((resolve) => (paused = resolve));
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    const total = 3 * 1024 * 1024;
    const putting = driver.put(
      key,
      pausingStream(0x22, 256 * 1024, 1536 * 1024, total, paused, resumed),
    );
    await reached;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assertFilled(await driver.get(key), 0x11, 100_000);
    assertFilled(await readAll((await driver.getStream(key))!), 0x11, 100_000);
    assert.equal(await driver.has(key), true);
    assert.deepEqual(await listAll(driver), [key]);
    resume();
    await putting;
    assertFilled(await driver.get(key), 0x22, total);

    await assert.rejects(driver.put(key, failingStream(0x33, 1024 * 1024, "boom")), /boom/);
    assertFilled(await driver.get(key), 0x22, total);
    assertFilled(await readAll((await driver.getStream(key))!), 0x22, total);
    await assert.rejects(driver.put("atomic:new", failingStream(0x44, 200_000, "bang")), /bang/);
    assert.equal(await driver.has("atomic:new"), false);
    assert.equal(await driver.get("atomic:new"), undefined);
    await assert.rejects(driver.put("atomic:small", failingStream(0x44, 10, "tiny")), /tiny/);
    assert.equal(await driver.has("atomic:small"), false);
    assert.deepEqual(await listAll(driver), [key]);
  });

  await step("keys up to the length limit work, longer ones are a RangeError", async (driver) => {
    const max = driver.limits.maxKeyBytes;
    assert.ok(Number.isInteger(max) && max >= 256, `maxKeyBytes is ${max}`);
    const ascii = "k".repeat(max);
    const multi = multiByteKey(max);
    const colons = "ABCDE:".repeat(Math.ceil(max / 6)).slice(0, max);
    const shapes = [ascii, multi, colons];
    for (const key of shapes) {
      assert.equal(encoder.encode(key).byteLength, max);
      await driver.put(key, valueFor(key));
      assertBytes(await driver.get(key), valueFor(key), "long key");
      assert.equal(await driver.has(key), true);
      assertBytes(await readAll((await driver.getStream(key))!), valueFor(key), "long key");
    }
    assert.deepEqual(await listAll(driver), sorted(shapes));
    for (const key of shapes) await driver.delete(key);
    assert.deepEqual(await listAll(driver), []);

    const over = [
      "k".repeat(max + 1),
      "k".repeat(max - 1) + "é",
      "k".repeat(max - 3) + "\u{1F600}",
      multiByteKey(max + 1),
    ];
    for (const key of over) {
      assert.equal(encoder.encode(key).byteLength, max + 1);
      await assert.rejects(driver.put(key, new Uint8Array(1)), RangeError);
      await assert.rejects(driver.get(key), RangeError);
      await assert.rejects(driver.getStream(key), RangeError);
      await assert.rejects(driver.has(key), RangeError);
      await assert.rejects(driver.delete(key), RangeError);
    }
    await assert.rejects(driver.put("k".repeat(max * 4), new Uint8Array(1)), RangeError);

    const p = "p".repeat(max - 1);
    const long = [
      p + "a",
      p + "b",
      p + "0",
      p + ":",
      p + "\u0000",
      p,
      "p".repeat(max - 2) + "é",
      "p".repeat(max - 4) + "\u{1F600}",
      "p".repeat(max - 2) + ":a",
      "p".repeat(max >> 1) + ":" + "q".repeat(max - (max >> 1) - 1),
      "p".repeat(max >> 1) + "-" + "q".repeat(max - (max >> 1) - 1),
      "p".repeat(max - 3) + "\uFFFD",
    ];
    await putKeys(driver, long);
    assert.deepEqual(await listAll(driver), sorted(long));
    assert.deepEqual(await listAll(driver, { prefix: p }), expectedList(long, { prefix: p }));
    const range = { start: p + "0", end: p + "b" };
    assert.deepEqual(await listAll(driver, range), expectedList(long, range));
  });

  await step("keys that are not valid Unicode are a TypeError", async (driver) => {
    for (const key of ["\uD800", "a\uDFFFb", "\uDC00\uD800", "ok:\uD83D"]) {
      await assert.rejects(driver.put(key, new Uint8Array(1)), TypeError);
      await assert.rejects(driver.get(key), TypeError);
      await assert.rejects(driver.getStream(key), TypeError);
      await assert.rejects(driver.has(key), TypeError);
      await assert.rejects(driver.delete(key), TypeError);
    }
    await assert.rejects(driver.put(42 as unknown as string, new Uint8Array(1)), TypeError);
    await assert.rejects(listAll(driver, { prefix: "\uD800" }), TypeError);
    await assert.rejects(listAll(driver, { start: "a\uDC00" }), TypeError);
    await assert.rejects(listAll(driver, { limit: -1 }), RangeError);
    assert.deepEqual(await listAll(driver), []);
  });

  await step("real key shapes list in order under their prefixes", async (driver) => {
    const { packuments, partitions, others } = realKeys();
    const all = [...packuments, ...partitions, ...others];
    await putKeys(driver, all);
    for (
      const options of [
        { prefix: "v1:partition:" },
        { prefix: "v1:packument:npm:" },
        { prefix: "v1:partition:npm:40:" },
        { prefix: "v1:partition:npm:40" },
        { prefix: "v1:partition:npm:4" },
        { prefix: "v1:" },
        { prefix: "v1:packument:npm:", start: "v1:packument:npm:6", end: "v1:packument:npm:7" },
        { prefix: "v1:partition:", limit: 17 },
        {},
      ] satisfies ListOptions[]
    ) {
      const expected = expectedList(all, options);
      assert.deepEqual(await listAll(driver, options), expected, JSON.stringify(options));
    }
    const listed = await listAll(driver, { prefix: "v1:partition:" });
    assert.equal(listed.length, partitions.length);
    assert.ok(
      listed.indexOf("v1:partition:npm:4061:62") < listed.indexOf("v1:partition:npm:40:"),
      "a longer hex segment with a digit sorts before the shorter one followed by :",
    );
  });

  await step("a stream that fails a put rejects it with the stream's own error", async (driver) => {
    for (const size of [10, 300_000]) {
      const error = await driver.put("k", failingStream(0x55, size, "source failed")).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(error instanceof Error, `size ${size}: the put rejects`);
      assert.equal(error.message, "source failed", `size ${size}: the stream's error, unwrapped`);
      assert.ok(!(error instanceof StorageError), `size ${size}: not a storage failure`);
    }
    assert.equal(await driver.has("k"), false);
  });

  await step("a closed driver rejects further calls with a TypeError (misuse)", async (driver) => {
    await driver.put("k", new Uint8Array(1));
    await driver.close();
    await assert.rejects(driver.get("k"), TypeError);
    await assert.rejects(driver.put("k", new Uint8Array(1)), TypeError);
    await assert.rejects(listAll(driver), TypeError);
  });

  // The optional putIfAbsent: checked on the drivers that have it.
  const probe = await makeDriver();
  const hasPutIfAbsent = typeof probe.putIfAbsent === "function";
  await probe.close();
  if (!hasPutIfAbsent) return;

  await step("putIfAbsent stores only when the key is absent", async (driver) => {
    const putIfAbsent = driver.putIfAbsent!.bind(driver);
    assert.equal(await putIfAbsent("c:1", encoder.encode("first")), true);
    assert.equal(await putIfAbsent("c:1", encoder.encode("second")), false);
    assert.equal(decoder.decode(await driver.get("c:1")), "first");
    await driver.put("c:1", encoder.encode("replaced"));
    assert.equal(await putIfAbsent("c:1", encoder.encode("third")), false);
    assert.equal(decoder.decode(await driver.get("c:1")), "replaced");
    await driver.delete("c:1");
    assert.equal(await putIfAbsent("c:1", new Uint8Array(0)), true);
    assert.deepEqual(await driver.get("c:1"), new Uint8Array(0));
    assert.equal(await putIfAbsent("c:2", new Uint8Array(60 * 1024).fill(7)), true);
    assert.equal((await driver.get("c:2"))!.byteLength, 60 * 1024);
    assert.deepEqual(await listAll(driver), ["c:1", "c:2"]);
    await assert.rejects(putIfAbsent("bad\ud800", new Uint8Array(1)), TypeError);
  });

  await step("putIfAbsent: of racing calls for one key, exactly one wins", async (driver) => {
    for (const key of ["race", "v1:checkpoint:o:s:000001:claim:0"]) {
      const won = await Promise.all(
        Array.from({ length: 20 }, (_, i) => driver.putIfAbsent!(key, encoder.encode(`w${i}`))),
      );
      assert.equal(won.filter(Boolean).length, 1, `${key}: ${won}`);
      assert.equal(decoder.decode(await driver.get(key)), `w${won.indexOf(true)}`);
    }
  });

  await step("putIfAbsent on a closed driver is a TypeError", async (driver) => {
    await driver.close();
    await assert.rejects(driver.putIfAbsent!("k", new Uint8Array(1)), TypeError);
  });

  await step("a cache over it round-trips gzip and identity records mixed", async (driver) => {
    const cache = await Cache.open(driver, { bloom: false, inlineMax: 1024 });
    // Small and large (stored apart) bodies, each stored identity, gzip, and as gzip bytes given.
    const doc = (n: number) =>
      encoder.encode(JSON.stringify({ name: `p${n}`, pad: "x".repeat(n * 700), n }));
    const docs = [0, 1, 5, 40, 300].map(doc);
    const gzipped = (bytes: Uint8Array) =>
      readAll(ReadableStream.from([bytes]).pipeThrough(gzipStream()));
    const written = new Map<string, { bytes: Uint8Array; encoding: "identity" | "gzip" }>();
    let i = 0;
    for (const bytes of docs) {
      for (const mode of ["identity", "gzip", "given"] as const) {
        const key = `v1:packument:npm:${hex(`p${i++}`)}`;
        if (mode === "given") {
          await cache.put(key, ReadableStream.from([await gzipped(bytes)]), { status: 200 }, {
            encoding: "gzip",
            bodyEncoding: "gzip",
          });
        } else await cache.put(key, bytes, { status: 200 }, { encoding: mode });
        written.set(key, { bytes, encoding: mode === "identity" ? "identity" : "gzip" });
      }
    }
    for (const [key, { bytes, encoding }] of written) {
      for (const verify of ["before", "while"] as const) {
        const entry = await cache.get(key, { verify });
        assert.ok(entry, `${key} reads`);
        assert.equal(entry.info.encoding ?? "identity", encoding, `${key} encoding`);
        assertBytes(await entry.bytes(), bytes, `${key} decoded (${verify})`);
        assertBytes(await readAll(entry.stream()), bytes, `${key} streamed (${verify})`);
      }
      const stored = await cache.get(key, { decode: false });
      const raw = await stored!.bytes();
      assert.equal(raw.length, stored!.info.size, `${key} stored size`);
      if (encoding === "gzip") {
        assertBytes(
          await readAll(ReadableStream.from([raw]).pipeThrough(gunzipStream())),
          bytes,
          `${key} stored gzip decodes`,
        );
        assert.ok(bytes.length < 2000 || raw.length < bytes.length / 4, `${key} compressed`);
      } else assertBytes(raw, bytes, `${key} stored identity`);
    }
    assert.equal(cache.stats.corrupt, 0);
  });
}

/** What {@linkcode assertStorageError} expects of the error. */
export interface ExpectedStorageError {
  /** The driver name. */
  driver: string;
  /** The key, when the failure was about one (`undefined` for a listing). */
  key?: string | undefined;
  /** The system error code or HTTP status, when one is expected. */
  code?: string | number;
  /** Whether the error must carry the underlying error as `cause`.
   * @default {true} */
  hasCause?: boolean;
}

/**
 * Asserts that `promise` rejects with a {@linkcode StorageError} (a service or disk failure,
 * not misuse) naming the driver, the key and the code.
 *
 * @param promise The call that must fail.
 * @param expected What the error must say.
 * @returns The error, for further checks.
 */
export async function assertStorageError(
  promise: Promise<unknown>,
  expected: ExpectedStorageError,
): Promise<StorageError> {
  const error = await promise.then(() => undefined, (error: unknown) => error);
  assert.ok(error instanceof StorageError, `expected a StorageError, received ${error}`);
  assert.equal(error.name, "StorageError");
  assert.equal(error.driver, expected.driver);
  if ("key" in expected) assert.equal(error.key, expected.key);
  if (expected.code !== undefined) assert.equal(error.code, expected.code);
  if (expected.hasCause ?? true) assert.ok(error.cause !== undefined, "the cause is kept");
  assert.match(error.message, /^Cannot /);
  return error;
}

/** Helpers shared with the driver tests. */
export const contractHelpers: {
  readAll: (stream: ReadableStream<Uint8Array>) => Promise<Uint8Array>;
  sorted: (keys: Iterable<string>) => string[];
  failingStream: (byte: number, before: number, message: string) => ReadableStream<Uint8Array>;
  streamOf: (...chunks: Uint8Array[]) => ReadableStream<Uint8Array>;
  hex: (text: string) => string;
  listAll: (driver: StorageDriver, options?: ListOptions) => Promise<string[]>;
} = { readAll, sorted, failingStream, streamOf, hex, listAll };
