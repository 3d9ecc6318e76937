import assert from "node:assert/strict";
import { Lru } from "../../src/_util/lru.ts";

function bytes(n: number): Uint8Array {
  return new Uint8Array(n);
}

Deno.test("Lru forgets the least recently used entry past maxEntries", () => {
  const lru = new Lru<string, number>({ maxEntries: 3 });
  for (const [key, value] of [["a", 1], ["b", 2], ["c", 3]] as const) lru.set(key, value);
  assert.equal(lru.get("a"), 1, "a get is a use");
  lru.set("d", 4);
  assert.equal(lru.get("b"), undefined);
  assert.deepEqual(["a", "c", "d"].map((k) => lru.get(k)), [1, 3, 4]);
  assert.equal(lru.size, 3);
  assert.equal(lru.bytes, 0, "no sizeOf: sizes are 0");
});

Deno.test("Lru keeps its total size under maxBytes and skips values over maxEntryBytes", () => {
  const lru = new Lru<string, Uint8Array>({
    maxEntries: 10,
    maxBytes: 100,
    maxEntryBytes: 25,
    sizeOf: (value) => value.byteLength,
  });
  for (let i = 0; i < 5; i++) assert.ok(lru.set(`k${i}`, bytes(20)));
  assert.equal(lru.bytes, 100);
  lru.set("k5", bytes(20));
  assert.equal(lru.bytes, 100);
  assert.equal(lru.get("k0"), undefined, "the oldest went");
  assert.ok(!lru.set("big", bytes(26)), "over maxEntryBytes: not kept");
  assert.equal(lru.get("big"), undefined);
  assert.equal(lru.size, 5);
});

Deno.test("Lru.set() replaces a key and counts its size once", () => {
  const lru = new Lru<string, Uint8Array>({
    maxEntries: 2,
    maxBytes: 50,
    sizeOf: (value) => value.byteLength,
  });
  lru.set("a", bytes(10));
  lru.set("b", bytes(10));
  lru.set("a", bytes(30));
  assert.equal(lru.bytes, 40);
  assert.equal(lru.size, 2);
  lru.set("c", bytes(5));
  assert.equal(lru.get("b"), undefined, "replacing made 'a' the most recently used");
  assert.equal(lru.get("a")?.byteLength, 30);
  // A replacement too big to keep removes the old value.
  assert.ok(!lru.set("a", bytes(51)));
  assert.equal(lru.get("a"), undefined);
  assert.equal(lru.bytes, 5);
  assert.ok(lru.delete("c"));
  assert.ok(!lru.delete("c"));
  assert.equal(lru.bytes, 0);
});

Deno.test("Lru validates its bounds up front", () => {
  for (const maxEntries of [0, -1, 1.5, NaN]) {
    assert.throws(() => new Lru({ maxEntries }), {
      name: "RangeError",
      message: new RegExp(`'maxEntries' must be a positive integer, received ${maxEntries}`),
    });
  }
  assert.throws(() => new Lru({ maxEntries: 1, maxBytes: 0 }), /'maxBytes'/);
  assert.throws(() => new Lru({ maxEntries: 1, maxEntryBytes: -1 }), /'maxEntryBytes'/);
});
