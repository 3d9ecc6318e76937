import assert from "node:assert/strict";
import {
  compareCodePoints,
  defaultRev,
  failEvery,
  failNth,
  type Fault,
  generateNames,
  onlyPath,
  sortIds,
  startAllDocsFixture,
} from "./all_docs_fixture.ts";
import { POUCHDB_HIGH_KEY, startPouchdbServer } from "./pouchdb_server.ts";
import { start } from "./spawn.ts";

interface Page {
  total_rows: number;
  offset: number;
  rows: { id: string; key: string; value: { rev: string } }[];
}

/** A key as a query value: JSON, then percent-encoded, with `.` written as `%2E`. */
function q(key: string): string {
  return encodeURIComponent(JSON.stringify(key)).replaceAll(".", "%2E");
}

async function get(url: string, init: RequestInit = {}): Promise<{
  status: number;
  headers: Headers;
  text: string;
}> {
  const response = await fetch(url, init);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

async function page(url: string): Promise<Page> {
  // pouchdb-server answers text/plain unless JSON is asked for.
  const response = await get(url, { headers: { accept: "application/json" } });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.headers.get("content-type"), "application/json");
  return JSON.parse(response.text) as Page;
}

function ids(p: Page): string[] {
  return p.rows.map((row) => row.id);
}

/** Code-point order the slow, obvious way: arrays of code points, compared one by one. */
function referenceCompare(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

/** Lists a whole range with startkey paging; returns every id once, in order. */
async function pageAll(origin: string, limit: number, extra = ""): Promise<string[]> {
  const out: string[] = [];
  let startkey: string | undefined;
  for (;;) {
    const start = startkey === undefined ? "" : `&startkey=${q(startkey)}`;
    const p = await page(`${origin}/_all_docs?limit=${limit}${extra}${start}`);
    const rows = startkey === undefined ? p.rows : p.rows.slice(1);
    if (startkey !== undefined) assert.equal(p.rows[0]?.id, startkey);
    for (const row of rows) out.push(row.id);
    const last = p.rows[p.rows.length - 1];
    if (p.rows.length < limit || last === undefined) return out;
    startkey = last.id;
  }
}

const ORDER_SAMPLE = [
  "b",
  "B",
  "a",
  "A",
  "~",
  "-",
  "1",
  "12.15rk..",
  "@x/y",
  "@scope/name",
  "\ufffd",
  "😀",
  "\ue000",
  "é",
  "aa",
  "a.b",
];

Deno.test("compareCodePoints() and sortIds() order by code point", () => {
  const alphabet = ["a", "B", "é", "\ue000", "\ufffd", "\uffff", "😀", "\u{10ffff}", "@", "1", ""];
  const words: string[] = [];
  let seed = 7;
  for (let i = 0; i < 2000; i++) {
    let w = "";
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    for (let len = seed % 5; len > 0; len--) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      w += alphabet[seed % alphabet.length];
    }
    words.push(w);
  }
  for (let i = 1; i < words.length; i++) {
    const a = words[i - 1]!;
    const b = words[i]!;
    assert.equal(
      Math.sign(compareCodePoints(a, b)),
      Math.sign(referenceCompare(a, b)),
      `${a} ${b}`,
    );
  }
  const sorted = sortIds(words.slice());
  assert.deepEqual(sorted, [...new Set(words)].sort(referenceCompare));
  // Already sorted input comes back as is, without a copy.
  assert.equal(sortIds(sorted), sorted);
  // "😀" (U+1F600) is after U+FFFD in code-point order, before it in UTF-16 order.
  assert.ok(compareCodePoints("😀", "\ufffd") > 0);
  assert.ok("😀" < "\ufffd");
});

Deno.test("generateNames() is deterministic, unique, sorted and realistic", () => {
  for (const count of [0, 1, 7, 100, 1000, 25_000]) {
    const names = generateNames(count);
    assert.equal(names.length, count);
    assert.equal(new Set(names).size, count);
    assert.deepEqual(generateNames(count), names);
    for (let i = 1; i < names.length; i++) {
      assert.ok(compareCodePoints(names[i - 1]!, names[i]!) < 0, `${names[i - 1]} ${names[i]}`);
    }
  }
  const names = generateNames(1000);
  const has = (test: (name: string) => boolean): boolean => names.some(test);
  assert.ok(has((n) => /^@[a-z-]+\/[a-z]/.test(n)), "scoped");
  assert.ok(has((n) => /^[0-9]/.test(n)), "digits first");
  assert.ok(has((n) => /^[A-Z]/.test(n)), "upper case");
  assert.ok(has((n) => n.includes("..")), "..");
  assert.ok(has((n) => /^[a-z]+\.[a-z]/.test(n)), "dotted");
  assert.ok(has((n) => n.charCodeAt(0) > 0x7f && n.codePointAt(0)! <= 0xffff), "non-ASCII");
  assert.ok(has((n) => n.codePointAt(0)! > 0xffff), "astral");
  const scoped = names.filter((n) => n.startsWith("@")).length;
  assert.ok(scoped > 200 && scoped < 500, `scoped share ${scoped}`);
});

Deno.test("GET / describes the database", async () => {
  const fixture = await startAllDocsFixture({ ids: ["a", "b", "c"] });
  try {
    const response = await get(`${fixture.origin}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.deepEqual(JSON.parse(response.text), {
      db_name: "registry",
      engine: "npm-replicate",
      doc_count: 3,
      update_seq: 3,
    });
    assert.equal((await get(`${fixture.origin}/nope`)).status, 404);
    assert.equal((await get(`${fixture.origin}/_all_docs`, { method: "POST" })).status, 405);
  } finally {
    await fixture.close();
  }
});

Deno.test("_all_docs rejects what the real endpoint rejects with 400", async (t) => {
  const fixture = await startAllDocsFixture({ ids: ["a", "b", "12.15rk.."] });
  try {
    const cases: [string, string][] = [
      ["limit above 10000", "limit=10001"],
      ["negative limit", "limit=-1"],
      ["non-numeric limit", "limit=ten"],
      ["fractional limit", "limit=1.5"],
      ["include_docs", "include_docs=true"],
      ["skip", "skip=1"],
      ["skip=0", "skip=0"],
      ["unquoted startkey", "startkey=express"],
      ["unquoted endkey", "endkey=b"],
      ["non-string key", "startkey=1"],
      ["old start_key spelling", "start_key=%22a%22"],
      ["old end_key spelling", "end_key=%22a%22"],
      ["unknown parameter", "stale=ok"],
      ["repeated parameter", "limit=1&limit=2"],
      ["bad descending", "descending=yes"],
      ["bad inclusive_end", "inclusive_end=0"],
      ["`..` in a query value", "startkey=%2212.15rk..%22"],
      ["`..` anywhere in the target", "endkey=%22b%22&x=.."],
      ["start after end", "startkey=%22b%22&endkey=%22a%22"],
      ["start before end when descending", "descending=true&startkey=%22a%22&endkey=%22b%22"],
      ["keys with startkey", "keys=%5B%22a%22%5D&startkey=%22a%22"],
      ["keys not an array", "keys=%22a%22"],
      ["key with startkey", "key=%22a%22&startkey=%22a%22"],
    ];
    for (const [name, query] of cases) {
      await t.step(name, async () => {
        const response = await get(`${fixture.origin}/_all_docs?${query}`);
        assert.equal(response.status, 400, `${query}: ${response.text}`);
        assert.equal(response.headers.get("content-type"), "application/json");
        assert.equal(JSON.parse(response.text).error, "bad_request");
      });
    }
    await t.step("the same values, written correctly, are accepted", async () => {
      for (
        const query of [
          "limit=10000",
          "limit=0",
          "include_docs=false",
          "startkey=%22express%22",
          "startkey=%2212%2E15rk%2E%2E%22",
          "descending=false&inclusive_end=true",
          "startkey=%22a%22&endkey=%22a%22&inclusive_end=false",
        ]
      ) {
        const response = await get(`${fixture.origin}/_all_docs?${query}`);
        assert.equal(response.status, 200, `${query}: ${response.text}`);
      }
    });
    assert.ok(fixture.requests.every((r) => r.fault === undefined));
  } finally {
    await fixture.close();
  }
});

Deno.test("limit defaults to 1000 and may be raised to 10000", async () => {
  const fixture = await startAllDocsFixture({ count: 12_345 });
  try {
    const first = await page(`${fixture.origin}/_all_docs`);
    assert.equal(first.rows.length, 1000);
    assert.equal(first.total_rows, 12_345);
    assert.equal(first.offset, 0);
    assert.deepEqual(ids(first), fixture.ids.slice(0, 1000));
    const big = await page(`${fixture.origin}/_all_docs?limit=10000`);
    assert.equal(big.rows.length, 10_000);
    assert.deepEqual(ids(big), fixture.ids.slice(0, 10_000));
    const none = await page(`${fixture.origin}/_all_docs?limit=0`);
    assert.deepEqual(none.rows, []);
    // Rows carry id, key and value.rev, the rev being the expected one.
    assert.deepEqual(first.rows[5], {
      id: fixture.ids[5],
      key: fixture.ids[5],
      value: { rev: fixture.rows[5]!.rev },
    });
    assert.match(fixture.rows[5]!.rev, /^[0-9]+-[0-9a-f]{32}$/);
    assert.equal(fixture.rows[5]!.rev, defaultRev(fixture.ids[5]!));
  } finally {
    await fixture.close();
  }
});

Deno.test("paging with startkey = last id repeats that row first", async () => {
  const fixture = await startAllDocsFixture({ count: 250 });
  try {
    const first = await page(`${fixture.origin}/_all_docs?limit=100`);
    const last = first.rows[99]!.id;
    const second = await page(`${fixture.origin}/_all_docs?limit=100&startkey=${q(last)}`);
    assert.equal(second.rows[0]!.id, last);
    assert.equal(second.offset, 99);
    assert.deepEqual(ids(second), fixture.ids.slice(99, 199));
    assert.deepEqual(await pageAll(fixture.origin, 100), fixture.ids);
    // A startkey between ids starts at the next one.
    const between = await page(`${fixture.origin}/_all_docs?limit=1&startkey=${q(last + "\0")}`);
    assert.deepEqual(ids(between), [fixture.ids[100]]);
    assert.equal(between.offset, 100);
    // Past the end: no rows, offset = total.
    const past = await page(`${fixture.origin}/_all_docs?startkey=${q("\u{10ffff}\u{10ffff}")}`);
    assert.deepEqual(past.rows, []);
    assert.equal(past.offset, 250);
  } finally {
    await fixture.close();
  }
});

Deno.test("endkey is inclusive unless inclusive_end=false", async () => {
  const fixture = await startAllDocsFixture({ ids: ["a", "b", "c", "d", "e"] });
  try {
    const base = `${fixture.origin}/_all_docs?startkey=${q("b")}&endkey=${q("d")}`;
    assert.deepEqual(ids(await page(base)), ["b", "c", "d"]);
    assert.deepEqual(ids(await page(`${base}&inclusive_end=false`)), ["b", "c"]);
    assert.deepEqual(ids(await page(`${base}&inclusive_end=true`)), ["b", "c", "d"]);
    // An endkey that is not an id.
    const between = `${fixture.origin}/_all_docs?endkey=${q("cc")}`;
    assert.deepEqual(ids(await page(between)), ["a", "b", "c"]);
    assert.deepEqual(ids(await page(`${between}&inclusive_end=false`)), ["a", "b", "c"]);
    // Equal start and end with inclusive_end=false is empty, not an error.
    const empty = await page(
      `${fixture.origin}/_all_docs?startkey=${q("c")}&endkey=${q("c")}&inclusive_end=false`,
    );
    assert.deepEqual(empty.rows, []);
    assert.equal(empty.offset, 2);
    // key and keys.
    assert.deepEqual(ids(await page(`${fixture.origin}/_all_docs?key=${q("c")}`)), ["c"]);
    assert.deepEqual(ids(await page(`${fixture.origin}/_all_docs?key=${q("x")}`)), []);
    const keys = encodeURIComponent(JSON.stringify(["d", "x", "a"]));
    const listed = await page(`${fixture.origin}/_all_docs?keys=${keys}`);
    assert.deepEqual(listed.rows.map((r) => r.key), ["d", "x", "a"]);
    assert.deepEqual(listed.rows[1], { key: "x", error: "not_found" });
  } finally {
    await fixture.close();
  }
});

Deno.test("descending=true walks down from startkey", async () => {
  const fixture = await startAllDocsFixture({ ids: ["a", "b", "c", "d", "e"] });
  try {
    const all = await page(`${fixture.origin}/_all_docs?descending=true`);
    assert.deepEqual(ids(all), ["e", "d", "c", "b", "a"]);
    assert.equal(all.offset, 0);
    const range = await page(
      `${fixture.origin}/_all_docs?descending=true&startkey=${q("d")}&endkey=${q("b")}`,
    );
    assert.deepEqual(ids(range), ["d", "c", "b"]);
    assert.equal(range.offset, 1);
    const exclusive = await page(
      `${fixture.origin}/_all_docs?descending=true&startkey=${q("d")}&endkey=${
        q("b")
      }&inclusive_end=false`,
    );
    assert.deepEqual(ids(exclusive), ["d", "c"]);
    const between = await page(
      `${fixture.origin}/_all_docs?descending=true&startkey=${q("cc")}&limit=2`,
    );
    assert.deepEqual(ids(between), ["c", "b"]);
    assert.equal(between.offset, 2);
  } finally {
    await fixture.close();
  }
});

Deno.test("keys sort by code point: digits, @, upper, lower, non-ASCII, U+FFFD, astral", async () => {
  const fixture = await startAllDocsFixture({ ids: [...ORDER_SAMPLE, "a", "a"] });
  try {
    const expected = [
      "-",
      "1",
      "12.15rk..",
      "@scope/name",
      "@x/y",
      "A",
      "B",
      "a",
      "a.b",
      "aa",
      "b",
      "~",
      "é",
      "\ue000",
      "\ufffd",
      "😀",
    ];
    assert.deepEqual(fixture.ids, expected);
    assert.deepEqual(fixture.rows.map((r) => r.id), expected);
    assert.deepEqual(ids(await page(`${fixture.origin}/_all_docs`)), expected);
    const high = await page(`${fixture.origin}/_all_docs?startkey=${q("\ufffd")}`);
    assert.deepEqual(ids(high), ["\ufffd", "😀"]);
    const astral = await page(`${fixture.origin}/_all_docs?startkey=${q("\ud83d")}`);
    assert.deepEqual(ids(astral), ["😀"]);
  } finally {
    await fixture.close();
  }
});

Deno.test("%2E decodes to a dot, and ids with dots and .. are served", async () => {
  const fixture = await startAllDocsFixture({ ids: ["12.15rk..", "a.b", "a..", "ab", "."] });
  try {
    const dotted = await page(`${fixture.origin}/_all_docs?key=%2212%2E15rk%2E%2E%22`);
    assert.deepEqual(ids(dotted), ["12.15rk.."]);
    const lower = await page(`${fixture.origin}/_all_docs?startkey=%22a%2e%22&endkey=%22a%2Eb%22`);
    assert.deepEqual(ids(lower), ["a..", "a.b"]);
    assert.deepEqual(ids(await page(`${fixture.origin}/_all_docs?key=${q(".")}`)), ["."]);
    assert.deepEqual(await pageAll(fixture.origin, 2), [".", "12.15rk..", "a..", "a.b", "ab"]);
  } finally {
    await fixture.close();
  }
});

Deno.test("each fault kind is observable by a client", async (t) => {
  let current: Fault | undefined;
  const fixture = await startAllDocsFixture({ count: 3000, faults: () => current });
  const url = `${fixture.origin}/_all_docs?limit=2000`;
  // A client without a connection pool: every request opens a new connection.
  const fresh = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    await t.step("status 429 carries Retry-After", async () => {
      current = { kind: "status", status: 429, retryAfter: "2" };
      const response = await get(url);
      assert.equal(response.status, 429);
      assert.equal(response.headers.get("retry-after"), "2");
      current = { kind: "status", status: 503 };
      const unavailable = await get(url);
      assert.equal(unavailable.status, 503);
      assert.equal(unavailable.headers.get("retry-after"), null);
    });
    await t.step("reset: fetch rejects", async () => {
      current = { kind: "reset" };
      await assert.rejects(fetch(url, { client: fresh }), TypeError);
      current = { kind: "reset", partialHeaders: true };
      await assert.rejects(fetch(url, { client: fresh }), TypeError);
      // Deno's fetch may resend a request once, by itself, when a reused keep-alive connection
      // closes before the response head: it still rejects when the resent request is reset too.
      const before = fixture.requests.length;
      current = { kind: "reset" };
      await assert.rejects(fetch(url), TypeError);
      assert.ok(fixture.requests.length - before >= 1);
    });
    await t.step("truncate: headers arrive, the body is short or fails", async () => {
      current = { kind: "truncate" };
      const response = await fetch(url);
      current = undefined;
      assert.equal(response.status, 200);
      const length = Number(response.headers.get("content-length"));
      assert.ok(length > 100_000);
      let received = -1;
      try {
        received = (await response.arrayBuffer()).byteLength;
      } catch {
        // The usual outcome: the body stream errors.
      }
      assert.ok(received < length, `received ${received} of ${length}`);
    });
    await t.step("bad-json: 200 whose body does not parse", async () => {
      current = { kind: "bad-json" };
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      await assert.rejects(response.json(), SyntaxError);
    });
    await t.step("content-type: 200 with an HTML page", async () => {
      current = { kind: "content-type" };
      const response = await get(url);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(response.text, /<html>/);
    });
    await t.step("out-of-order: the page's rows, shuffled", async () => {
      current = { kind: "out-of-order" };
      const shuffled = ids(await page(url));
      assert.notDeepEqual(shuffled, fixture.ids.slice(0, 2000));
      assert.deepEqual(shuffled.slice().sort(compareCodePoints), fixture.ids.slice(0, 2000));
    });
    await t.step("delay: answered normally afterwards", async () => {
      current = { kind: "delay", ms: 50 };
      assert.deepEqual(ids(await page(url)), fixture.ids.slice(0, 2000));
    });
    await t.step("the log records every request, its status and its fault", () => {
      current = undefined;
      const statusOf: Record<Fault["kind"], number> = {
        "status": -1,
        "reset": 0,
        "truncate": 200,
        "bad-json": 200,
        "content-type": 200,
        "out-of-order": 200,
        "delay": 200,
      };
      fixture.requests.forEach((r, i) => {
        assert.equal(r.n, i);
        assert.equal(r.url, url);
        assert.equal(r.method, "GET");
        assert.ok(r.fault !== undefined);
        const expected = r.fault.kind === "status" ? r.fault.status : statusOf[r.fault.kind];
        assert.equal(r.status, expected);
      });
      const kinds = [...new Set(fixture.requests.map((r) => r.fault?.kind))];
      assert.deepEqual(kinds, [
        "status",
        "reset",
        "truncate",
        "bad-json",
        "content-type",
        "out-of-order",
        "delay",
      ]);
    });
    await t.step("after all that, the server still serves", async () => {
      current = undefined;
      assert.deepEqual(await pageAll(fixture.origin, 1000), fixture.ids);
    });
  } finally {
    fresh.close();
    await fixture.close();
  }
});

Deno.test("failNth(), failEvery() and onlyPath() build plans", async () => {
  const nth = failNth([1, 3], { kind: "status", status: 500 });
  const every = failEvery(3, { kind: "reset" });
  const request = (n: number, path = "/_all_docs") => ({
    n,
    path,
    url: new URL(`http://127.0.0.1${path}`),
  });
  assert.deepEqual([0, 1, 2, 3, 4].map((n) => nth(request(n))?.kind ?? "-"), [
    "-",
    "status",
    "-",
    "status",
    "-",
  ]);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => every(request(n))?.kind ?? "-"), [
    "-",
    "-",
    "reset",
    "-",
    "-",
    "reset",
  ]);
  assert.throws(() => failEvery(0, { kind: "reset" }), RangeError);
  const scoped = onlyPath("/_all_docs", failNth([0], { kind: "bad-json" }));
  assert.equal(scoped(request(0, "/")), undefined);
  assert.equal(scoped(request(1))?.kind, "bad-json");
  assert.equal(scoped(request(2)), undefined);

  // Served: every second request is a 429, and a client that retries gets everything.
  const fixture = await startAllDocsFixture({
    count: 500,
    faults: failEvery(2, { kind: "status", status: 429, retryAfter: "0" }),
  });
  try {
    const out: string[] = [];
    let startkey: string | undefined;
    for (let attempts = 0; attempts < 100; attempts++) {
      const start = startkey === undefined ? "" : `&startkey=${q(startkey)}`;
      const response = await get(`${fixture.origin}/_all_docs?limit=100${start}`);
      if (response.status === 429) continue;
      const p = JSON.parse(response.text) as Page;
      out.push(...(startkey === undefined ? ids(p) : ids(p).slice(1)));
      if (p.rows.length < 100) break;
      startkey = p.rows[p.rows.length - 1]!.id;
    }
    assert.deepEqual(out, fixture.ids);
    assert.deepEqual(fixture.requests.slice(0, 4).map((r) => r.status), [200, 429, 200, 429]);
  } finally {
    await fixture.close();
  }
});

Deno.test("ETag and If-None-Match when etags is on", async () => {
  const off = await startAllDocsFixture({ ids: ["a", "b"] });
  try {
    const response = await get(`${off.origin}/_all_docs`, { headers: { "if-none-match": "*" } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("etag"), null);
  } finally {
    await off.close();
  }
  const fixture = await startAllDocsFixture({ ids: ["a", "b"], etags: true });
  try {
    const url = `${fixture.origin}/_all_docs`;
    const first = await get(url);
    const tag = first.headers.get("etag");
    assert.match(tag ?? "", /^"[0-9a-f]{32}"$/);
    assert.equal((await get(url)).headers.get("etag"), tag);
    const cached = await get(url, { headers: { "if-none-match": tag! } });
    assert.equal(cached.status, 304);
    assert.equal(cached.text, "");
    assert.equal(cached.headers.get("etag"), tag);
    fixture.setRev("a", "2-00000000000000000000000000000000");
    const changed = await get(url, { headers: { "if-none-match": tag! } });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get("etag"), tag);
    assert.deepEqual(fixture.requests.map((r) => r.status), [200, 200, 304, 200]);
  } finally {
    await fixture.close();
  }
});

Deno.test("setRev(), add() and remove() change what is served", async () => {
  const fixture = await startAllDocsFixture({
    ids: ["a", "c"],
    revFor: (id) => `1-${id.padEnd(32, "0")}`,
  });
  try {
    assert.deepEqual(fixture.rows, [
      { id: "a", rev: `1-a${"0".repeat(31)}` },
      { id: "c", rev: `1-c${"0".repeat(31)}` },
    ]);
    fixture.setRev("a", "2-x");
    assert.equal(fixture.add("b"), true);
    assert.equal(fixture.add("b"), false);
    assert.equal(fixture.add("d", "7-d"), true);
    assert.equal(fixture.remove("c"), true);
    assert.equal(fixture.remove("c"), false);
    assert.throws(() => fixture.setRev("zz", "1-z"), RangeError);
    const expected = [
      { id: "a", rev: "2-x" },
      { id: "b", rev: `1-b${"0".repeat(31)}` },
      { id: "d", rev: "7-d" },
    ];
    assert.deepEqual(fixture.rows, expected);
    const served = await page(`${fixture.origin}/_all_docs`);
    assert.deepEqual(served.rows.map((r) => ({ id: r.id, rev: r.value.rev })), expected);
    assert.equal(served.total_rows, 3);
    const info = JSON.parse((await get(`${fixture.origin}/`)).text);
    assert.equal(info.doc_count, 3);
    assert.equal(info.update_seq, 2 + 4);
  } finally {
    await fixture.close();
  }
});

Deno.test("the request log records each request's headers, faulted ones too", async () => {
  const fixture = await startAllDocsFixture({
    ids: ["a", "b"],
    faults: failNth([1, 2], { kind: "status", status: 503 }),
  });
  try {
    const url = `${fixture.origin}/_all_docs?limit=1`;
    await page(url);
    const faulted = await get(url, {
      headers: { "NPM-Replication-Opt-In": "true", "X-Trace": "two" },
    });
    assert.equal(faulted.status, 503);
    const root = await get(`${fixture.origin}/`, { headers: { "x-trace": "three" } });
    assert.equal(root.status, 503);
    const plain = await get(`${fixture.origin}/`);
    assert.equal(plain.status, 200);
    assert.equal(fixture.requests.length, 4);
    const [first, second, third, fourth] = fixture.requests;
    assert.equal(first!.headers["accept"], "application/json");
    assert.equal(first!.headers["npm-replication-opt-in"], undefined);
    assert.match(first!.headers["host"] ?? "", /^127\.0\.0\.1:\d+$/);
    assert.equal(second!.headers["npm-replication-opt-in"], "true", "names are lower-cased");
    assert.equal(second!.headers["x-trace"], "two");
    assert.equal(second!.fault?.kind, "status");
    assert.equal(third!.headers["x-trace"], "three");
    assert.equal(third!.headers["npm-replication-opt-in"], undefined);
    assert.equal(fourth!.headers["x-trace"], undefined);
    assert.equal(fourth!.fault, undefined);
  } finally {
    await fixture.close();
  }
});

Deno.test("close() ends open keep-alive connections and the listener", async () => {
  const fixture = await startAllDocsFixture({
    ids: ["a"],
    faults: failNth([1], { kind: "delay", ms: 60_000 }),
  });
  await page(`${fixture.origin}/_all_docs`);
  const hanging = fetch(`${fixture.origin}/_all_docs`).then(
    (response) => response.body?.cancel(),
    () => "rejected",
  );
  while (fixture.requests.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  await fixture.close();
  assert.equal(await hanging, "rejected");
  await assert.rejects(fetch(`${fixture.origin}/`));
});

Deno.test("1,000,000 ids are served and paged completely", async () => {
  const fixture = await startAllDocsFixture({ count: 1_000_000 });
  try {
    let count = 0;
    let previous: string | undefined;
    let startkey: string | undefined;
    let mismatch = -1;
    for (;;) {
      const start = startkey === undefined ? "" : `&startkey=${q(startkey)}`;
      const p = await page(`${fixture.origin}/_all_docs?limit=10000${start}`);
      assert.equal(p.total_rows, 1_000_000);
      const rows = startkey === undefined ? p.rows : p.rows.slice(1);
      for (const row of rows) {
        if (mismatch < 0 && row.id !== fixture.ids[count]) mismatch = count;
        if (previous !== undefined) assert.ok(compareCodePoints(previous, row.id) < 0);
        previous = row.id;
        count++;
      }
      const last = p.rows[p.rows.length - 1];
      if (p.rows.length < 10_000 || last === undefined) break;
      startkey = last.id;
    }
    assert.equal(count, 1_000_000);
    assert.equal(mismatch, -1);
    assert.equal(fixture.requests.length, 101);
  } finally {
    await fixture.close();
  }
});

/** Runs the fixture as its own process with `args`; returns the ids it serves. */
async function standalone(args: string[]): Promise<{ ids: string[] }> {
  const server = start(Deno.execPath(), [
    "run",
    "-A",
    new URL("./all_docs_fixture.ts", import.meta.url).pathname,
    ...args,
  ]);
  try {
    const said = await server.line();
    const match = /^listening (http:\/\/127\.0\.0\.1:[0-9]+)$/.exec(said);
    if (match === null) throw new Error(`no "listening" line: ${said}\n${server.output()}`);
    return { ids: await pageAll(match[1]!, 10_000) };
  } finally {
    const { code, stderr } = await server.stop();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /^serving [0-9]+ ids, ready in [0-9]+ ms$/m);
  }
}

Deno.test("standalone: --port 0 --ids FILE prints where it listens", async () => {
  const dir = await Deno.makeTempDir({ prefix: "all_docs_fixture_" });
  try {
    const expected = ["12.15rk..", "@x/y", "a", "b", "\ufffd", "😀"];
    await Deno.writeTextFile(`${dir}/ids.txt`, "b\r\na\n😀\n@x/y\n\n12.15rk..\na\n\ufffd");
    assert.deepEqual((await standalone(["--port", "0", "--ids", `${dir}/ids.txt`])).ids, expected);
    await Deno.writeTextFile(`${dir}/ids.json`, ` ${JSON.stringify(expected.toReversed())}`);
    assert.deepEqual((await standalone(["--ids", `${dir}/ids.json`])).ids, expected);
    assert.deepEqual((await standalone(["--count", "2500"])).ids, generateNames(2500));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pouchdb-server 4.2.0 serves the loaded ids, in UTF-16 order", async (t) => {
  const sample = ["A", "a", "B", "b", "@x/y", "1", "~", "-", "Ab", "aa", "12.15rk..", "ÿ", "Ā"];
  const loaded = [...new Set([...generateNames(25_000), ...sample])];
  const started = performance.now();
  const server = await startPouchdbServer({ ids: loaded });
  const ready = performance.now() - started;
  try {
    console.log(
      `pouchdb-server: ${loaded.length} docs ready in ${Math.round(ready)} ms ` +
        `(start ${Math.round(server.timings.start)}, load ${Math.round(server.timings.load)}, ` +
        `read back ${Math.round(server.timings.readBack)})`,
    );
    const utf16 = loaded.slice().sort();
    const codePoint = loaded.slice().sort(compareCodePoints);

    await t.step("paging with startkey, limit=10000 and a high endkey lists every id", async () => {
      const listed = await pageAll(server.origin, 10_000, `&endkey=${q(POUCHDB_HIGH_KEY)}`);
      assert.equal(listed.length, loaded.length);
      assert.deepEqual(listed, server.rows.map((r) => r.id));
      assert.deepEqual(new Set(listed), new Set(loaded));
      assert.ok(server.rows.every((r) => /^1-[0-9a-f]{32}$/.test(r.rev)));
    });
    await t.step("the order is UTF-16 code-unit order, not code-point order", () => {
      const order = server.rows.map((r) => r.id);
      assert.deepEqual(order, utf16);
      assert.notDeepEqual(order, codePoint);
      // Restricted to ASCII ids the two orders agree: upper case before lower case.
      const ascii = (id: string) => /^[ -~]*$/.test(id);
      assert.deepEqual(order.filter(ascii), codePoint.filter(ascii));
      const sampleOrder = order.filter((id) => sample.includes(id));
      assert.deepEqual(sampleOrder, [
        "-",
        "1",
        "12.15rk..",
        "@x/y",
        "A",
        "Ab",
        "B",
        "a",
        "aa",
        "b",
        "~",
        "ÿ",
        "Ā",
      ]);
      // Astral ids sort before U+E000..U+FFFF there; after them in code-point order.
      assert.ok(order.indexOf("😀") < order.indexOf("\ufffd"));
      assert.ok(codePoint.indexOf("😀") > codePoint.indexOf("\ufffd"));
    });
    await t.step("without an endkey the listing stops at U+00FF", async () => {
      const listed = await pageAll(server.origin, 10_000);
      assert.deepEqual(listed, utf16.filter((id) => id <= "\u00ff"));
      assert.ok(listed.length < loaded.length);
      assert.ok(listed.includes("ÿ") && !listed.includes("Ā"));
    });
    await t.step("its leniency differs from the strict fixture", async () => {
      for (const query of ["skip=1&limit=1", "startkey=express&limit=1", "limit=10001"]) {
        const response = await get(`${server.origin}/_all_docs?${query}`);
        assert.equal(response.status, 200, query);
      }
      const reversed = await get(
        `${server.origin}/_all_docs?startkey=${q("b")}&endkey=${q("a")}`,
        { headers: { accept: "application/json" } },
      );
      assert.equal(reversed.status, 200);
      assert.deepEqual(JSON.parse(reversed.text).rows, []);
    });
  } finally {
    await server.close();
  }
});
