import assert from "node:assert/strict";
import {
  type AllDocsFixture,
  applyRandomChanges,
  onlyPath,
  startAllDocsFixture,
} from "./all_docs_fixture.ts";
import { NPM_LATE_RATE, revGeneration } from "./changes_fixture.ts";
import { start } from "./spawn.ts";

interface Entry {
  seq: number | string;
  id: string;
  changes: { rev: string }[];
  deleted?: boolean;
}

interface Feed {
  results: Entry[];
  last_seq: number | string;
  pending: number;
}

async function get(url: string): Promise<{ status: number; type: string | null; json: unknown }> {
  const response = await fetch(url);
  const text = await response.text();
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    json: JSON.parse(text),
  };
}

async function feed(fixture: AllDocsFixture, query: string): Promise<Feed> {
  const response = await get(`${fixture.origin}/_changes?${query}`);
  assert.equal(response.status, 200, JSON.stringify(response.json));
  assert.equal(response.type, "application/json");
  return response.json as Feed;
}

/** Reads the whole feed from `since` in pages of `limit`; returns every entry and the end. */
async function readAll(
  fixture: AllDocsFixture,
  since: number | string,
  limit: number,
): Promise<{ entries: Entry[]; last: number | string }> {
  const entries: Entry[] = [];
  let at = since;
  for (;;) {
    const page = await feed(fixture, `since=${encodeURIComponent(String(at))}&limit=${limit}`);
    entries.push(...page.results);
    at = page.last_seq;
    if (page.results.length < limit) return { entries, last: at };
  }
}

/** The state a reader builds from entries: id -> rev, deletions removed. */
function replay(entries: Entry[], into = new Map<string, string>()): Map<string, string> {
  for (const entry of entries) {
    if (entry.deleted) into.delete(entry.id);
    else into.set(entry.id, entry.changes[0]!.rev);
  }
  return into;
}

function rowsOf(fixture: AllDocsFixture): Map<string, string> {
  return new Map(fixture.rows.map((row) => [row.id, row.rev]));
}

Deno.test("_changes numbers the initial documents 1 to N in id order and pages with limit", async () => {
  const fixture = await startAllDocsFixture({ ids: ["c", "a", "b", "@x/y"] });
  try {
    const info = await get(`${fixture.origin}/`);
    assert.equal((info.json as { update_seq: number }).update_seq, 4);
    const first = await feed(fixture, "since=0&limit=3");
    assert.deepEqual(first.results.map((e) => [e.seq, e.id]), [[1, "@x/y"], [2, "a"], [3, "b"]]);
    assert.equal(first.last_seq, 3, "a full page ends at its last entry");
    assert.equal(first.pending, 1);
    assert.equal(first.results[0]!.changes[0]!.rev, fixture.revOf("@x/y"));
    const rest = await feed(fixture, "since=3&limit=3");
    assert.deepEqual(rest.results.map((e) => e.id), ["c"]);
    assert.equal(rest.last_seq, 4, "a short page ends at the head");
    const none = await feed(fixture, "since=4");
    assert.deepEqual(none.results, []);
    assert.equal(none.last_seq, 4);
    // No limit: 1000 entries at most; feed=normal is the one feed that exists.
    assert.equal((await feed(fixture, "feed=normal")).results.length, 4);
  } finally {
    await fixture.close();
  }
});

Deno.test("_changes records creations, updates and deletions; the feed replays to _all_docs", async () => {
  const fixture = await startAllDocsFixture({ count: 500 });
  try {
    const before = (await readAll(fixture, 0, 100)).entries;
    assert.equal(before.length, 500);
    const id = fixture.ids[10]!;
    const rev = fixture.update(id);
    assert.equal(revGeneration(rev), revGeneration(before[10]!.changes[0]!.rev) + 1);
    assert.ok(fixture.add("zzz-created"));
    const gone = fixture.ids[20]!;
    const goneRev = fixture.revOf(gone)!;
    assert.ok(fixture.remove(gone));
    assert.equal(fixture.changes.head, 503);
    assert.equal(
      ((await get(`${fixture.origin}/`)).json as { update_seq: number }).update_seq,
      503,
    );
    const tail = await feed(fixture, "since=500");
    assert.deepEqual(tail.results.map((e) => [e.seq, e.id, e.deleted ?? false]), [
      [501, id, false],
      [502, "zzz-created", false],
      [503, gone, true],
    ]);
    assert.equal(tail.results[0]!.changes[0]!.rev, rev);
    assert.equal(revGeneration(tail.results[2]!.changes[0]!.rev), revGeneration(goneRev) + 1);
    // A document appears once, at its latest change.
    const all = (await readAll(fixture, 0, 77)).entries;
    assert.equal(all.length, 501);
    assert.equal(all.filter((e) => e.id === id).length, 1);
    assert.deepEqual(replay(all), rowsOf(fixture));
    // Recreated, it continues the tombstone's generation.
    assert.ok(fixture.add(gone));
    assert.equal(revGeneration(fixture.revOf(gone)!), revGeneration(goneRev) + 2);
    // Many random changes: replaying the feed still gives exactly _all_docs.
    const applied = applyRandomChanges(fixture, 2000, { creates: 0.1, deletes: 0.1, seed: 7 });
    assert.ok(applied.created > 100 && applied.deleted > 100 && applied.updated > 1000);
    assert.deepEqual(replay((await readAll(fixture, 0, 1000)).entries), rowsOf(fixture));
    const incremental = replay(before);
    replay((await readAll(fixture, 500, 333)).entries, incremental);
    assert.deepEqual(incremental, rowsOf(fixture));
  } finally {
    await fixture.close();
  }
});

Deno.test("_changes rejects with 400 what npm rejects", async (t) => {
  const fixture = await startAllDocsFixture({ ids: ["a", "b"] });
  try {
    const cases: [string, string][] = [
      ["limit above 10000", "limit=10001"],
      ["negative limit", "limit=-1"],
      ["fractional limit", "limit=1.5"],
      ["continuous feed", "feed=continuous"],
      ["longpoll feed", "feed=longpoll"],
      ["eventsource feed", "feed=eventsource"],
      ["heartbeat", "heartbeat=10000"],
      ["since=now", "since=now"],
      ["malformed since", "since=abc"],
      ["negative since", "since=-1"],
      ["include_docs", "include_docs=true"],
      ["unknown parameter", "style=all_docs"],
      ["repeated parameter", "since=1&since=2"],
    ];
    for (const [name, query] of cases) {
      await t.step(name, async () => {
        const response = await get(`${fixture.origin}/_changes?${query}`);
        assert.equal(response.status, 400, `${query}: ${JSON.stringify(response.json)}`);
        assert.equal((response.json as { error: string }).error, "bad_request");
      });
    }
    assert.equal((await feed(fixture, "since=0&limit=10000")).results.length, 2);
  } finally {
    await fixture.close();
  }
});

Deno.test("_changes holds back late entries once, behind a last_seq it passes", async () => {
  const fixture = await startAllDocsFixture({
    count: 10_000,
    changes: { lateRate: NPM_LATE_RATE, lateWithin: 32_768 },
  });
  try {
    applyRandomChanges(fixture, 8192, { creates: 0, deletes: 0 });
    const live = [...fixture.changes.entries()].map((e) => e.seq);
    const first = await readAll(fixture, 0, 2000);
    assert.equal(first.last, fixture.changes.head, "the reader reached the head");
    const seen = new Set(first.entries.map((e) => e.seq as number));
    const missed = live.filter((seq) => !seen.has(seq));
    assert.deepEqual(missed, fixture.changes.withheld);
    // About 4 in 1024 (a document shows once: about 10,000 entries, about 39 late expected).
    assert.ok(live.length > 9000 && live.length < 11_000, `${live.length} entries`);
    assert.ok(missed.length >= 15 && missed.length <= 70, `${missed.length} late`);
    for (const seq of missed) assert.ok(fixture.changes.isLate(seq));
    // Each was behind a last_seq already served, and shows in every later read of the window.
    const again = await readAll(fixture, 0, 2000);
    assert.deepEqual(again.entries.map((e) => e.seq), live);
    assert.equal(fixture.changes.withheld.length, missed.length, "held back only once");
    assert.deepEqual(replay(again.entries), rowsOf(fixture));
  } finally {
    await fixture.close();
  }
});

Deno.test("_changes holds back only entries near the head: older history reads whole", async () => {
  const fixture = await startAllDocsFixture({
    count: 2000,
    changes: { lateRate: 0.05, lateWithin: 500 },
  });
  try {
    const { entries } = await readAll(fixture, 0, 300);
    const withheld = fixture.changes.withheld;
    assert.ok(withheld.length > 5, `${withheld.length} held back`);
    assert.ok(withheld.every((seq) => seq > 1500), "only within 500 of the head");
    const seen = new Set(entries.map((e) => e.seq));
    for (let seq = 1; seq <= 1500; seq++) assert.ok(seen.has(seq), `seq ${seq}`);
  } finally {
    await fixture.close();
  }
});

Deno.test("_changes with opaque sequences accepts only what it issued", async () => {
  const fixture = await startAllDocsFixture({ count: 50, changes: { seqs: "opaque" } });
  try {
    const info = (await get(`${fixture.origin}/`)).json as { update_seq: string };
    assert.match(info.update_seq, /^50-g1AAAAB[0-9a-f]{16}$/);
    const page = await feed(fixture, "since=0&limit=20");
    assert.equal(typeof page.last_seq, "string");
    assert.equal(page.results[19]!.seq, page.last_seq);
    const { entries, last } = await readAll(fixture, page.last_seq, 20);
    assert.equal(entries.length, 30);
    assert.equal(last, info.update_seq);
    const forged = String(page.last_seq).replace(/g1AAAAB./, "g1AAAABx");
    assert.equal((await get(`${fixture.origin}/_changes?since=${forged}`)).status, 400);
  } finally {
    await fixture.close();
  }
});

Deno.test("_changes takes the fault plan: 429 with Retry-After", async () => {
  const fixture = await startAllDocsFixture({
    ids: ["a"],
    faults: onlyPath(
      "/_changes",
      ({ n }) => n === 0 ? { kind: "status", status: 429, retryAfter: "1" } : undefined,
    ),
  });
  try {
    const refused = await fetch(`${fixture.origin}/_changes?since=0`);
    await refused.body?.cancel();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.equal((await feed(fixture, "since=0")).results.length, 1);
  } finally {
    await fixture.close();
  }
});

Deno.test("standalone: --changes N applies N changes after the initial documents", async () => {
  const server = start(Deno.execPath(), [
    "run",
    "-A",
    new URL("./all_docs_fixture.ts", import.meta.url).pathname,
    "--count",
    "300",
    "--changes",
    "100",
    "--seqs",
    "opaque",
  ]);
  try {
    const said = await server.line();
    const origin = /^listening (http:\/\/127\.0\.0\.1:[0-9]+)$/.exec(said)?.[1];
    assert.ok(origin, said);
    const info = (await get(`${origin}/`)).json as { update_seq: string };
    assert.match(info.update_seq, /^400-/);
    const tail = (await get(`${origin}/_changes?since=${info.update_seq}`)).json as Feed;
    assert.deepEqual(tail.results, []);
  } finally {
    const { code, stderr } = await server.stop();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /^serving \d+ ids \(300 at seq 1\.\.300, then \d+ updated, /m);
  }
});
