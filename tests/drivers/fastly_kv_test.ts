import assert from "node:assert/strict";
import {
  assertStorageError,
  contractHelpers,
  runDriverContract,
} from "../_support/driver_contract.ts";
import {
  FASTLY_KV_MAX_KEY_BYTES,
  FASTLY_KV_MAX_VALUE_BYTES,
  FastlyKvDriver,
  type FastlyKvListResult,
  type FastlyKvStoreLike,
} from "../../drivers/fastly_kv.ts";

const { listAll, streamOf } = contractHelpers;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An entry as `KVStore.get` gives it (`KVStoreEntry`): a body readable once. */
class StandInEntry {
  #bytes: Uint8Array;
  #used = false;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  get bodyUsed(): boolean {
    return this.#used;
  }
  get body(): ReadableStream<Uint8Array> {
    this.#use();
    return ReadableStream.from([this.#bytes.slice()]);
  }
  text(): Promise<string> {
    this.#use();
    return Promise.resolve(decoder.decode(this.#bytes));
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    this.#use();
    return Promise.resolve(this.#bytes.slice().buffer);
  }
  #use(): void {
    if (this.#used) throw new TypeError("body already used");
    this.#used = true;
  }
}

/**
 * An in-memory stand-in for a Fastly `KVStore` that enforces what `@fastly/js-compute` 3.46.0
 * and Fastly's documentation say: keys of 1 to 1024 UTF-8 bytes, not `.` or `..`, not starting
 * with `.well-known/acme-challenge/`, holding none of `#;?^|\n\r`; values up to 25 MB; `list`
 * pages of at most 1000 keys with a base64 cursor that is `undefined` after the last page. It
 * lists in no particular order (reversed insertion order here), since Fastly documents none.
 */
class StandInKvStore implements FastlyKvStoreLike {
  readonly data: Map<string, Uint8Array> = new Map();
  calls = 0;
  fail: Error | undefined;

  get(key: string): Promise<StandInEntry | null> {
    this.#call(key);
    const value = this.data.get(key);
    return Promise.resolve(value === undefined ? null : new StandInEntry(value));
  }

  put(key: string, value: Uint8Array): Promise<undefined> {
    this.#call(key);
    if (value.byteLength > FASTLY_KV_MAX_VALUE_BYTES) {
      return Promise.reject(new Error(`value of ${value.byteLength} bytes is over 25 MB`));
    }
    // A put replaces the whole value at once, from a copy.
    this.data.delete(key);
    this.data.set(key, value.slice());
    return Promise.resolve(undefined);
  }

  delete(key: string): Promise<undefined> {
    this.#call(key);
    this.data.delete(key);
    return Promise.resolve(undefined);
  }

  list(options: { prefix?: string; cursor?: string; limit?: number } = {}) {
    this.#call();
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new TypeError(`limit must be from 1 to 1000, received ${limit}`);
    }
    const keys = [...this.data.keys()].reverse().filter((k) => k.startsWith(options.prefix ?? ""));
    const from = options.cursor === undefined ? 0 : Number(atob(options.cursor));
    const list = keys.slice(from, from + limit);
    const next = from + list.length;
    const result: FastlyKvListResult = {
      list,
      cursor: next < keys.length ? btoa(String(next)) : undefined,
    };
    return Promise.resolve(result);
  }

  #call(key?: string): void {
    this.calls++;
    if (this.fail !== undefined) throw this.fail;
    if (key === undefined) return;
    if (key === "" || key === "." || key === "..") throw new TypeError(`key ${key} refused`);
    if (key.startsWith(".well-known/acme-challenge/")) throw new TypeError("acme key refused");
    if (/[#;?^|\n\r]/.test(key)) throw new TypeError(`key ${JSON.stringify(key)} refused`);
    if (encoder.encode(key).byteLength > FASTLY_KV_MAX_KEY_BYTES) {
      throw new TypeError("key longer than 1024 bytes");
    }
  }
}

Deno.test("fastly_kv driver (over a stand-in KV Store) meets the contract", async (t) => {
  await runDriverContract(
    t,
    () => Promise.resolve(new FastlyKvDriver(new StandInKvStore(), { keyPrefix: "t:" })),
  );
});

Deno.test("fastly_kv driver with small list pages meets the contract", async (t) => {
  await runDriverContract(
    t,
    () =>
      Promise.resolve(new FastlyKvDriver(new StandInKvStore(), { keyPrefix: "t:", pageSize: 7 })),
  );
});

Deno.test("FastlyKvDriver escapes the characters Fastly refuses, and only those", async () => {
  const store = new StandInKvStore();
  const driver = new FastlyKvDriver(store);
  const keys = ["a#b", "%", "%1", "x;y?z^w|v\nu\rt", "v1:packument:npm:40626162656c", "a.b/c"];
  for (const key of keys) await driver.put(key, encoder.encode(key));
  assert.deepEqual([...store.data.keys()], [
    "a%1b",
    "%0",
    "%01",
    "x%2y%3z%4w%5v%6u%7t",
    "v1:packument:npm:40626162656c",
    "a.b/c",
  ]);
  for (const key of keys) assert.equal(decoder.decode(await driver.get(key)), key);
  assert.deepEqual(await listAll(driver), contractHelpers.sorted(keys));
  assert.deepEqual(await listAll(driver, { prefix: "%" }), ["%", "%1"]);
  assert.deepEqual(await listAll(driver, { prefix: "a#" }), ["a#b"]);
});

Deno.test("FastlyKvDriver refuses keys Fastly refuses unless a keyPrefix allows them", async () => {
  const driver = new FastlyKvDriver(new StandInKvStore());
  for (const key of ["", ".", "..", ".well-known/acme-challenge/x"]) {
    await assert.rejects(driver.put(key, new Uint8Array(1)), TypeError);
    await assert.rejects(driver.get(key), TypeError);
  }
  const prefixed = new FastlyKvDriver(new StandInKvStore(), { keyPrefix: "p/" });
  for (const key of ["", ".", "..", ".well-known/acme-challenge/x"]) {
    await prefixed.put(key, encoder.encode(key));
    assert.equal(decoder.decode(await prefixed.get(key)), key);
  }
  assert.throws(() => new FastlyKvDriver(new StandInKvStore(), { keyPrefix: "a#" }), TypeError);
  assert.throws(
    () => new FastlyKvDriver(new StandInKvStore(), { keyPrefix: ".well-known/acme-challenge/" }),
    TypeError,
  );
  assert.equal(driver.limits.maxKeyBytes, 512);
  assert.equal(prefixed.limits.maxKeyBytes, 511);
});

Deno.test("FastlyKvDriver validates its options up front", () => {
  const store = new StandInKvStore();
  for (const pageSize of [0, 1001, 1.5]) {
    assert.throws(() => new FastlyKvDriver(store, { pageSize }), /'pageSize'.*received/);
  }
  for (const maxValueBytes of [0, 100_000_001, Number.NaN]) {
    assert.throws(() => new FastlyKvDriver(store, { maxValueBytes }), /'maxValueBytes'/);
  }
  assert.throws(() => new FastlyKvDriver(store, { keyPrefix: "k".repeat(1023) }), RangeError);
});

Deno.test("FastlyKvDriver refuses a value over the limit before writing anything", async () => {
  const store = new StandInKvStore();
  const driver = new FastlyKvDriver(store, { maxValueBytes: 1000 });
  await driver.put("k", new Uint8Array(1000).fill(1));
  const calls = store.calls;
  await assert.rejects(driver.put("k", new Uint8Array(1001)), RangeError);
  await assert.rejects(
    driver.put("k", streamOf(new Uint8Array(600), new Uint8Array(600))),
    /limit of 1000 bytes, received more than 1000/,
  );
  assert.equal(store.calls, calls, "nothing reached the store");
  assert.deepEqual(await driver.get("k"), new Uint8Array(1000).fill(1));
  // The default is Fastly's documented 25 MB, which the stand-in enforces too.
  const big = new FastlyKvDriver(new StandInKvStore());
  await assert.rejects(big.put("k", new Uint8Array(FASTLY_KV_MAX_VALUE_BYTES + 1)), RangeError);
});

Deno.test("FastlyKvDriver: store failures are StorageErrors", async () => {
  const store = new StandInKvStore();
  const driver = new FastlyKvDriver(store, { keyPrefix: "f:" });
  await driver.put("k", new Uint8Array(1));
  store.fail = new Error("KV Store unreachable");
  const error = await assertStorageError(driver.get("k"), { driver: "fastly_kv", key: "k" });
  assert.equal(error.cause, store.fail);
  await assertStorageError(driver.has("k"), { driver: "fastly_kv", key: "k" });
  await assertStorageError(driver.getStream("k"), { driver: "fastly_kv", key: "k" });
  await assertStorageError(driver.put("k", new Uint8Array(1)), { driver: "fastly_kv", key: "k" });
  await assertStorageError(driver.delete("k"), { driver: "fastly_kv", key: "k" });
  await assertStorageError(listAll(driver), { driver: "fastly_kv", key: undefined });
});
