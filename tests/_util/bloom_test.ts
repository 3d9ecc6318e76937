import assert from "node:assert/strict";
import { BloomFilter } from "../../src/_util/bloom.ts";

const encoder = new TextEncoder();

function hex(text: string): string {
  return Array.from(encoder.encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The i-th package name: a mix of plain and scoped names, like the npm registry. */
function packageName(i: number): string {
  return i % 3 === 0 ? `@scope${i % 97}/name-${i}` : `pkg-${i}`;
}

/** Keys shaped like real packument cache keys; `offset` picks a disjoint range of names. */
function cacheKeys(count: number, offset = 0): string[] {
  const keys: string[] = [];
  for (let i = offset; i < offset + count; i++) {
    keys.push(`v1:packument:npm:${hex(packageName(i))}`);
  }
  return keys;
}

const ADDED = cacheKeys(100_000);
/** Never added: other names, and corgi keys for the added names. */
const ABSENT = [
  ...cacheKeys(50_000, 1_000_000),
  ...ADDED.slice(0, 50_000).map((key) => key.replace("v1:packument:", "v1:corgi:")),
];

function measuredFalsePositiveRate(filter: BloomFilter): number {
  let positives = 0;
  for (const key of ABSENT) if (filter.has(key)) positives++;
  return positives / ABSENT.length;
}

Deno.test("BloomFilter sizes bits and hashes from the options", () => {
  const filter = new BloomFilter({ expectedItems: 1000, falsePositiveRate: 0.01 });
  // m = ceil(-1000 ln 0.01 / (ln 2)^2) = 9586, k = round(9586 / 1000 ln 2) = 7.
  assert.equal(filter.bitCount, 9586);
  assert.equal(filter.hashCount, 7);
  assert.equal(filter.size, 0);

  const defaults = new BloomFilter();
  assert.equal(defaults.bitCount, Math.ceil(-1_000_000 * Math.log(0.01) / Math.LN2 ** 2));
  assert.equal(defaults.hashCount, 7);

  // A huge rate still sets at least one bit per key.
  assert.equal(new BloomFilter({ expectedItems: 10, falsePositiveRate: 0.99 }).hashCount, 1);
});

Deno.test("BloomFilter has no false negatives", () => {
  const filter = new BloomFilter({ expectedItems: ADDED.length, falsePositiveRate: 0.01 });
  for (const key of ADDED) filter.add(key);
  assert.equal(filter.size, ADDED.length);
  for (const key of ADDED) assert.ok(filter.has(key), key);
});

Deno.test("BloomFilter keeps close to the configured false positive rate", () => {
  for (const rate of [0.01, 0.001]) {
    const filter = new BloomFilter({ expectedItems: ADDED.length, falsePositiveRate: rate });
    for (const key of ADDED) filter.add(key);
    const measured = measuredFalsePositiveRate(filter);
    const estimated = filter.estimatedFalsePositiveRate();
    console.log(
      `rate ${rate}: m=${filter.bitCount} k=${filter.hashCount} measured=${measured} ` +
        `estimated=${estimated.toFixed(6)}`,
    );
    assert.ok(measured <= rate * 1.5, `measured ${measured} for configured ${rate}`);
    assert.ok(measured > 0, `measured ${measured} for configured ${rate}`);
    assert.ok(
      estimated <= measured * 2 && estimated >= measured / 2,
      `estimated ${estimated}, measured ${measured}`,
    );
  }
});

Deno.test("BloomFilter estimates the false positive rate from its fill", () => {
  const filter = new BloomFilter({ expectedItems: 1000, falsePositiveRate: 0.01 });
  assert.equal(filter.estimatedFalsePositiveRate(), 0);
  filter.add("a");
  const once = filter.estimatedFalsePositiveRate();
  assert.equal(once, (filter.hashCount / filter.bitCount) ** filter.hashCount);
  // Adding the same key again sets no new bits.
  filter.add("a");
  assert.equal(filter.size, 2);
  assert.equal(filter.estimatedFalsePositiveRate(), once);
});

Deno.test("BloomFilter answers false for keys never added to an empty filter", () => {
  const filter = new BloomFilter({ expectedItems: 10 });
  assert.equal(filter.has(""), false);
  assert.equal(filter.has("v1:packument:npm:6d73"), false);
});

Deno.test("BloomFilter handles empty, odd-length and non-ASCII keys", () => {
  const keys = ["", "a", "ab", "abc", "é", "日本語", "😀", "\ud800", "\udc00", "a\u0000b"];
  const filter = new BloomFilter({ expectedItems: 100, falsePositiveRate: 1e-9 });
  for (const key of keys) filter.add(key);
  for (const key of keys) assert.ok(filter.has(key), JSON.stringify(key));
  // Lone surrogates are distinct keys (TextEncoder would map both to U+FFFD).
  const one = new BloomFilter({ expectedItems: 100, falsePositiveRate: 1e-9 });
  one.add("\ud800");
  assert.equal(one.has("\udc00"), false);
  assert.equal(one.has("\ufffd"), false);
});

Deno.test("BloomFilter round trips through bytes", () => {
  for (const bits of [{ expectedItems: 5_000, falsePositiveRate: 0.001 }, { expectedItems: 1 }]) {
    const filter = new BloomFilter(bits);
    const keys = ADDED.slice(0, bits.expectedItems);
    for (const key of keys) filter.add(key);
    const bytes = filter.toBytes();
    assert.equal(bytes.length, 24 + Math.ceil(filter.bitCount / 32) * 4);
    const copy = BloomFilter.fromBytes(bytes);
    assert.equal(copy.bitCount, filter.bitCount);
    assert.equal(copy.hashCount, filter.hashCount);
    assert.equal(copy.size, filter.size);
    assert.equal(copy.estimatedFalsePositiveRate(), filter.estimatedFalsePositiveRate());
    for (const key of keys) assert.ok(copy.has(key), key);
    for (const key of ABSENT.slice(0, 20_000)) assert.equal(copy.has(key), filter.has(key), key);
    assert.deepEqual(copy.toBytes(), bytes);
    // The copy is independent and keeps working.
    copy.add("new key");
    assert.ok(copy.has("new key"));
    assert.equal(copy.size, filter.size + 1);
  }
});

Deno.test("BloomFilter reads bytes at an offset into a larger buffer", () => {
  const filter = new BloomFilter({ expectedItems: 100 });
  filter.add("x");
  const bytes = filter.toBytes();
  const backing = new Uint8Array(bytes.length + 3);
  backing.set(bytes, 3);
  const copy = BloomFilter.fromBytes(backing.subarray(3));
  assert.ok(copy.has("x"));
  assert.equal(copy.size, 1);
});

Deno.test("BloomFilter serialization and hashing are stable", async () => {
  // Pins the hash functions and the byte layout: persisted filters must keep working.
  const filter = new BloomFilter({ expectedItems: 50, falsePositiveRate: 0.01 });
  for (const key of cacheKeys(50)) filter.add(key);
  const bytes = filter.toBytes();
  assert.deepEqual(
    Array.from(bytes.subarray(0, 24)),
    [0x41, 0x44, 0x42, 0x46, 1, 0, 0, 0, 224, 1, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 73, 64],
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  assert.equal(
    Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    "f2a0bcbc7ac00b6b0d105fc1b10c0612d81cf3cfaf4eb2b08175e9bd4dca0add",
  );
});

Deno.test("BloomFilter.fromBytes rejects bytes that are not a filter", () => {
  const good = new BloomFilter({ expectedItems: 10 }).toBytes();
  const mutate = (edit: (bytes: Uint8Array, view: DataView) => void) => {
    const bytes = good.slice();
    edit(bytes, new DataView(bytes.buffer));
    return bytes;
  };
  assert.throws(() => BloomFilter.fromBytes(new Uint8Array(10)), {
    name: "TypeError",
    message: "Cannot read bloom filter: 'bytes' must be at least 24 bytes, received 10",
  });
  assert.throws(() => BloomFilter.fromBytes(mutate((b) => b[0] = 0)), {
    message: "Cannot read bloom filter: 'bytes' does not start with the 'ADBF' magic",
  });
  assert.throws(() => BloomFilter.fromBytes(mutate((b) => b[4] = 2)), {
    message: "Cannot read bloom filter: unsupported format version, received 2",
  });
  assert.throws(() => BloomFilter.fromBytes(mutate((_, v) => v.setUint32(8, 0, true))), {
    message: "Cannot read bloom filter: 'bitCount' must be positive, received 0",
  });
  assert.throws(() => BloomFilter.fromBytes(mutate((_, v) => v.setUint32(12, 0, true))), {
    message: "Cannot read bloom filter: 'hashCount' must be positive, received 0",
  });
  assert.throws(() => BloomFilter.fromBytes(mutate((_, v) => v.setFloat64(16, -1, true))), {
    message: "Cannot read bloom filter: 'size' must be a non-negative integer, received -1",
  });
  assert.throws(() => BloomFilter.fromBytes(good.subarray(0, good.length - 4)), {
    message: `Cannot read bloom filter: 'bytes' must be ${good.length} bytes for 96 bits, ` +
      `received ${good.length - 4}`,
  });
});

Deno.test("BloomFilter validates its options", () => {
  const cases: [unknown, string][] = [
    [{ expectedItems: 0 }, "'expectedItems' must be a positive integer, received 0"],
    [{ expectedItems: -5 }, "'expectedItems' must be a positive integer, received -5"],
    [{ expectedItems: 1.5 }, "'expectedItems' must be a positive integer, received 1.5"],
    [{ expectedItems: NaN }, "'expectedItems' must be a positive integer, received NaN"],
    [{ expectedItems: Infinity }, "'expectedItems' must be a positive integer, received Infinity"],
    [{ expectedItems: "10" }, "'expectedItems' must be a positive integer, received '10'"],
    [{ falsePositiveRate: 2 }, "'falsePositiveRate' must be between 0 and 1, received 2"],
    [{ falsePositiveRate: 0 }, "'falsePositiveRate' must be between 0 and 1, received 0"],
    [{ falsePositiveRate: 1 }, "'falsePositiveRate' must be between 0 and 1, received 1"],
    [{ falsePositiveRate: -0.1 }, "'falsePositiveRate' must be between 0 and 1, received -0.1"],
    [{ falsePositiveRate: NaN }, "'falsePositiveRate' must be between 0 and 1, received NaN"],
    [{ falsePositiveRate: "0.1" }, "'falsePositiveRate' must be between 0 and 1, received '0.1'"],
    [
      { expectedItems: 1e9, falsePositiveRate: 0.001 },
      "'expectedItems' 1000000000 at 'falsePositiveRate' 0.001 needs 14377587567 bits, " +
      "more than the maximum of 4294967295",
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new BloomFilter(options as ConstructorParameters<typeof BloomFilter>[0]),
      { name: "RangeError", message: `Cannot create bloom filter: ${message}` },
      JSON.stringify(options),
    );
  }
  // Undefined options fall back to the defaults.
  assert.equal(new BloomFilter({}).bitCount, new BloomFilter().bitCount);
});
