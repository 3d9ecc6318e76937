import assert from "node:assert/strict";
import {
  hex,
  originFromKey,
  originKey,
  packumentKey,
  parseKey,
  partitionKey,
  unhex,
  validateOriginKey,
} from "../../src/storage/keys.ts";

Deno.test("hex() writes lowercase hex of UTF-8 bytes and unhex() reverses it", () => {
  assert.equal(hex(""), "");
  assert.equal(hex("@"), "40");
  assert.equal(hex("@babel/core"), "40626162656c2f636f7265");
  assert.equal(hex("é"), "c3a9");
  assert.equal(hex("😀"), "f09f9880");
  for (const text of ["", "a", "@scope/name", "12.15rk..", "é😀\u0000\uffff", "A".repeat(214)]) {
    assert.equal(unhex(hex(text)), text);
  }
});

Deno.test("unhex() rejects odd length, upper case and invalid UTF-8", () => {
  assert.throws(() => unhex("4"), TypeError);
  assert.throws(() => unhex("4A"), TypeError);
  assert.throws(() => unhex("zz"), TypeError);
  assert.throws(() => unhex("ff"), /not valid UTF-8/);
});

Deno.test("partitionKey() and packumentKey() follow the documented format", () => {
  assert.equal(partitionKey("npm", "@", "@a"), "v1:partition:npm:40:4061");
  assert.equal(partitionKey("npm", "", "a"), "v1:partition:npm::61");
  assert.equal(partitionKey("npm", "z", ""), "v1:partition:npm:7a:");
  assert.equal(packumentKey("npm", "@babel/core"), "v1:packument:npm:40626162656c2f636f7265");
  assert.equal(packumentKey("npm", "ms", "abbreviated"), "v1:corgi:npm:6d73");
  assert.notEqual(packumentKey("npm", "ms"), packumentKey("npm", "ms", "abbreviated"));
  assert.throws(() => packumentKey("a:b", "ms"), TypeError);
});

Deno.test("parseKey() recovers every part and rejects other shapes", () => {
  assert.deepEqual(parseKey("v1:partition:npm:40:4061"), {
    type: "partition",
    origin: "npm",
    startKey: "@",
    endKey: "@a",
  });
  assert.deepEqual(parseKey(partitionKey("o", "", "")), {
    type: "partition",
    origin: "o",
    startKey: "",
    endKey: "",
  });
  assert.deepEqual(parseKey(packumentKey("npm", "@babel/core")), {
    type: "packument",
    origin: "npm",
    name: "@babel/core",
    representation: "full",
  });
  assert.deepEqual(parseKey(packumentKey("x", "Ünïcode", "abbreviated")), {
    type: "packument",
    origin: "x",
    name: "Ünïcode",
    representation: "abbreviated",
  });
  for (
    const bad of [
      "",
      "v2:packument:npm:6d73",
      "v1:packument:npm:",
      "v1:packument:npm:6d7",
      "v1:partition:npm:40",
      "v1:other:npm:40",
      "v1:packument:np m:6d73",
    ]
  ) {
    assert.throws(() => parseKey(bad), TypeError, bad);
  }
});

Deno.test("originKey() is lossless: different origins never share a key", () => {
  const urls = [
    "https://replicate.example.test/",
    "https://replicate.example.test/registry",
    "http://replicate.example.test/",
    "https://replicate.example.test:8443/",
    "http://127.0.0.1:5984/registry",
    "http://127.0.0.1:5984/registry_x",
    "http://127.0.0.1:5984/registry%2Fx",
    "http://127.0.0.1:5984/registry/x",
    "https://http/",
    "http://xn--bcher-kva.example/",
  ];
  const keys = urls.map((u) => originKey(u));
  assert.equal(new Set(keys).size, urls.length);
  for (const [i, key] of keys.entries()) {
    assert.match(key, /^[A-Za-z0-9._-]+$/);
    assert.equal(originKey(originFromKey(key)), key, urls[i]);
  }
  assert.equal(originKey("https://replicate.example.test"), "replicate.example.test");
  assert.equal(originFromKey("replicate.example.test"), "https://replicate.example.test");
});

Deno.test("originKey() normalizes equivalent spellings of one origin", () => {
  assert.equal(
    originKey("HTTPS://Replicate.Example.Test:443/a/?q=1#f"),
    originKey("https://replicate.example.test/a"),
  );
  assert.throws(() => originKey("ftp://x/"), TypeError);
  assert.throws(() => originKey("not a url"), TypeError);
  assert.throws(() => originKey("https://user:pw@x/"), /credentials/);
});

Deno.test("validateOriginKey() accepts short safe names only", () => {
  assert.equal(validateOriginKey("npm"), "npm");
  assert.throws(() => validateOriginKey(""), TypeError);
  assert.throws(() => validateOriginKey("a:b"), TypeError);
  assert.throws(() => validateOriginKey("x".repeat(65)), TypeError);
});
