import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { HttpClient } from "../../src/http/client.ts";
import { followChanges, type FollowEvent } from "../../src/jobs/follow_changes.ts";
import { channelTurns, nextTurn } from "../../src/jobs/follow_pages.ts";
import { indexRows } from "../../src/jobs/create_index.ts";
import { partitionKey } from "../../src/storage/keys.ts";
import { encodePartitionLines } from "../../src/couchdb/partition_lines.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

/** The feed `a`..`e` at seqs 1..5 (limit 2: pages after 0, 2 and 4). */
const ENTRIES = ["a", "b", "c", "d", "e"].map((id, i) => ({
  seq: i + 1,
  id,
  changes: [{ rev: `2-${id}` }],
}));

function feedPage(since: number, limit: number): string {
  const results = ENTRIES.filter((e) => e.seq > since).slice(0, limit);
  const lastSeq = results.at(-1)?.seq ?? since;
  return `{"results":[\n${results.map((e) => JSON.stringify(e)).join(",\n")}\n],\n` +
    `"last_seq":${lastSeq}}`;
}

async function cacheWith(rows: { id: string; rev: string }[]): Promise<Cache> {
  const cache = await Cache.open(new MemoryDriver());
  await cache.put(partitionKey("couch", "", ""), encodePartitionLines(rows), { status: 200 });
  return cache;
}

async function index(cache: Cache): Promise<string[]> {
  const rows = [];
  for await (const row of indexRows(cache, "couch")) rows.push(`${row.id},${row.rev}`);
  return rows;
}

/** Follows the feed from 0 once, 2 entries a page, into a cache holding `a` at 1-a. */
async function followOnce(
  client: HttpClient,
  onEvent?: (event: FollowEvent) => void,
  window = 0,
): Promise<{ summary: Awaited<ReturnType<typeof followChanges>>; cache: Cache }> {
  const cache = await cacheWith([{ id: "a", rev: "1-a" }]);
  const summary = await followChanges(client, cache, {
    origin: "http://couch.test/",
    originKey: "couch",
    since: 0,
    once: true,
    limit: 2,
    window,
    ...(onEvent ? { onEvent } : {}),
  });
  return { summary, cache };
}

function json(body: string): Response {
  return new Response(body, { headers: { "content-type": "application/json" } });
}

Deno.test("followChanges() asks for the next page off a full page's text, before parsing it", async () => {
  /** The `since` of every `_changes` request, in order. */
  const asked: string[] = [];
  let broken = true;
  const client = new HttpClient({
    fetch: (input) => {
      const url = new URL(String(input));
      if (!url.pathname.endsWith("/_changes")) {
        return Promise.resolve(Response.json({ update_seq: 5 }));
      }
      const since = url.searchParams.get("since")!;
      asked.push(since);
      const body = feedPage(Number(since), Number(url.searchParams.get("limit")));
      // The first answer after 2 has a broken entry (its end intact): asked for again.
      if (since === "2" && broken) {
        broken = false;
        return Promise.resolve(json(body.replace('"id":"c"', '"id":c"')));
      }
      return Promise.resolve(json(body));
    },
  });
  const { summary, cache } = await followOnce(client);
  // Page 4 was asked for from the broken answer's text, before it failed to parse, and used
  // once the page after 2 came right: no page twice but the broken one.
  assert.deepEqual(asked, ["0", "2", "4", "2", "5"]);
  assert.equal(summary.seen, 5);
  assert.deepEqual(await index(cache), ["a,2-a", "b,2-b", "c,2-c", "d,2-d", "e,2-e"]);
});

Deno.test("followChanges() drops a page asked for ahead when the page turns out short", async () => {
  let guessed: AbortSignal | undefined;
  let after1 = 0;
  /** The follower's round now, and when the guess was made. */
  let round = 0;
  let guessRound = 0;
  const client = new HttpClient({
    fetch: (input, init) => {
      const url = new URL(String(input));
      if (!url.pathname.endsWith("/_changes")) {
        return Promise.resolve(Response.json({ update_seq: 1 }));
      }
      const since = url.searchParams.get("since")!;
      if (since === "0") {
        // One entry, but two "seq" keys (a nested one): it looks full to the guess.
        return Promise.resolve(json(
          '{"results":[\n{"seq":1,"id":"a","changes":[{"rev":"2-a"}],"doc":{"seq":9}}\n],\n' +
            '"last_seq":1}',
        ));
      }
      after1++;
      if (guessed === undefined) {
        // The guess: answered only by its abort.
        guessed = init?.signal ?? undefined;
        guessRound = round;
        return new Promise((_, reject) => {
          guessed?.addEventListener("abort", () => reject(guessed?.reason));
        });
      }
      return Promise.resolve(json('{"results":[],"last_seq":1}'));
    },
  });
  // (A window of 1: the second round reads the page after 0 again, not the guessed one.)
  const { summary, cache } = await followOnce(client, (event) => {
    if (event.type === "round") round = event.round;
  }, 1);
  assert.ok(guessed, "the next page was guessed at and asked for");
  // (In the first round: its page may come in before its head, and the round event.)
  assert.ok(guessRound < 2, `guessed in round ${guessRound}`);
  assert.equal(guessed.aborted, true);
  // The guess, dropped as the second round started; that round guesses again, answered.
  assert.equal(after1, 2);
  assert.equal(summary.seen, 1);
  assert.equal(summary.pages, 2);
  assert.deepEqual(await index(cache), ["a,2-a"]);
});

Deno.test("followChanges() asks for a round's first page with the head, and once's second round before applying the first", async () => {
  /** `_changes` requests made by the time each head was answered. */
  const pagesAtHead: number[] = [];
  let pages = 0;
  /** Batches applied by the time each head was asked for. */
  const appliedAtHead: number[] = [];
  let applied = 0;
  /** The `_changes` pages asked for by the time the first batch was applied. */
  let askedAtApplied: string[] | undefined;
  const asked: string[] = [];
  const client = new HttpClient({
    fetch: (input) => {
      const url = new URL(String(input));
      if (url.pathname.endsWith("/_changes")) {
        pages++;
        asked.push(url.searchParams.get("since")!);
        const since = Number(url.searchParams.get("since"));
        return Promise.resolve(json(feedPage(since, Number(url.searchParams.get("limit")))));
      }
      // The head comes after a while; the first page is asked for meanwhile.
      appliedAtHead.push(applied);
      return new Promise((resolve) =>
        setTimeout(() => {
          pagesAtHead.push(pages);
          resolve(Response.json({ update_seq: 5 }));
        }, 20)
      );
    },
  });
  const { summary } = await followOnce(client, (event) => {
    if (event.type === "applied" && applied++ === 0) askedAtApplied = asked.slice();
  });
  assert.equal(summary.seen, 5);
  assert.equal(summary.rounds, 2);
  // Each round's first page was asked for before its head came (in the first round, the next
  // one too, off the first's text; none further while the first waits).
  assert.deepEqual(pagesAtHead, [2, 4]);
  // The second round (of once), its head and its page, was asked for before the first one's
  // changes were applied.
  assert.deepEqual(appliedAtHead, [0, 0]);
  assert.deepEqual(askedAtApplied, ["0", "2", "4", "5"]);
  assert.equal(applied, 1);
});

/** A feed whose `_changes` pages after `slowSince` and later heads are answered only after 50 ms
 * (or by their abort); it logs each request and whether it was made after `done` was set. */
function slowFeed(slowSince: string) {
  const log: { what: string; late: boolean; signal: AbortSignal | undefined }[] = [];
  let heads = 0;
  const state = { done: false };
  const client = new HttpClient({
    retries: 0,
    fetch: (input, init) => {
      const url = new URL(String(input));
      const signal = init?.signal ?? undefined;
      const isPage = url.pathname.endsWith("/_changes");
      const since = url.searchParams.get("since") ?? "";
      log.push({ what: isPage ? `page ${since}` : "head", late: state.done, signal });
      const answer = () =>
        isPage
          ? json(feedPage(Number(since), Number(url.searchParams.get("limit"))))
          : Response.json({ update_seq: 5 });
      if (isPage ? since !== slowSince : ++heads === 1) return Promise.resolve(answer());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve(answer()), 50);
        signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
    },
  });
  return { client, log, state };
}

/** Follows once from 0, 2 entries a page, each batch of `batchChanges` failing to apply. */
async function failingFollow(client: HttpClient, batchChanges: number): Promise<void> {
  await assert.rejects(
    followChanges(client, await cacheWith([{ id: "a", rev: "1-a" }]), {
      origin: "http://couch.test/",
      originKey: "couch",
      since: 0,
      once: true,
      limit: 2,
      window: 0,
      batchChanges,
      onApplied: () => Promise.reject(new Error("storage down")),
    }),
    /storage down/,
  );
}

Deno.test("followChanges() that fails leaves no request behind: a page or head asked for ahead is aborted", async () => {
  // Mid-round: the batch of the first page fails to apply while the next page is on its way.
  const mid = slowFeed("2");
  await failingFollow(mid.client, 1);
  mid.state.done = true;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(mid.log.filter((r) => r.late).map((r) => r.what), []);
  assert.equal(mid.log.find((r) => r.what === "page 2")?.signal?.aborted, true);

  // At the round's end: the second round's head and page are asked for, then the apply fails.
  const end = slowFeed("5");
  await failingFollow(end.client, 100);
  end.state.done = true;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(end.log.filter((r) => r.late).map((r) => r.what), []);
  // (A round asks for its head, then at once for its first page: the origin answers the head
  // first, and makes the page while the partitions are listed.)
  assert.deepEqual(end.log.map((r) => r.what), [
    "head",
    "page 0",
    "page 2",
    "page 4",
    "head",
    "page 5",
  ]);
  assert.ok(end.log.slice(-2).every((r) => r.signal?.aborted), "the early head and page aborted");
});

Deno.test("nextTurn() resolves once the event loop has run, after every microtask queued before it, and leaves no port open", async () => {
  const steps: string[] = [];
  const chain = (async () => {
    for (let i = 0; i < 50; i++) await Promise.resolve();
    steps.push("microtasks");
  })();
  await nextTurn();
  steps.push("turn");
  await chain;
  assert.deepEqual(steps, ["microtasks", "turn"]);
  // (Deno's own table of open resources: a port left open stays in it.)
  // deno-lint-ignore no-explicit-any
  const core = (Deno as any)[(Deno as any).internal].core;
  const before = Object.keys(core.resources()).length;
  for (let i = 0; i < 100; i++) await nextTurn();
  assert.ok(Object.keys(core.resources()).length - before < 5, "no port left open");
});

Deno.test("channelTurns(): a channel's turn on Deno and Node, a timer's on workerd and elsewhere", () => {
  assert.ok(channelTurns({ Deno: {}, MessageChannel }));
  assert.ok(channelTurns({ process: { versions: { node: "20.19.0" } }, MessageChannel }));
  // workerd delivers a message as a microtask; with Node compatibility it has a `process`.
  const workerd = { navigator: { userAgent: "Cloudflare-Workers" }, MessageChannel };
  assert.ok(!channelTurns(workerd));
  assert.ok(!channelTurns({ ...workerd, process: { versions: { node: "22.0.0" } } }));
  assert.ok(!channelTurns({ MessageChannel }));
  assert.ok(!channelTurns({ Deno: {} }));
});
