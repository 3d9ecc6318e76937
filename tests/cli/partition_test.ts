import { duration } from "../../cli/io.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { compareKeys } from "../../src/storage/driver.ts";
import { Cache } from "../../src/storage/cache.ts";
import { originKey as deriveOriginKey } from "../../src/storage/keys.ts";
import { partitionSetId, rangesFromPivots } from "../../src/couchdb/pivots.ts";
import { createStorageDriver } from "../../drivers/select.deno.ts";
import { runCli, runCliMeasured, startCli } from "../_support/run_cli.ts";
import {
  type AllDocsFixture,
  type AllDocsRow,
  startAllDocsFixture,
} from "../_support/all_docs_fixture.ts";

async function withFixture(
  options: Parameters<typeof startAllDocsFixture>[0],
  fn: (fixture: AllDocsFixture, dir: string) => Promise<void>,
): Promise<void> {
  const fixture = await startAllDocsFixture(options);
  const dir = await Deno.makeTempDir();
  try {
    await fn(fixture, dir);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function indexText(fixture: AllDocsFixture): string {
  return fixture.rows.map((r) => `${r.id},${r.rev}\n`).join("");
}

/** The size of a cached partition holding `rows`: one `["id","rev"]` line each. */
function partitionBytes(rows: readonly AllDocsRow[]): number {
  return new TextEncoder().encode(rows.map((r) => JSON.stringify([r.id, r.rev]) + "\n").join(""))
    .length;
}

/** The rows of the fixture in `[startKey, endKey)` (`""` is an open end). */
function rowsIn(fixture: AllDocsFixture, startKey: string, endKey: string): AllDocsRow[] {
  return fixture.rows.filter((r) =>
    compareKeys(r.id, startKey) >= 0 && (endKey === "" || compareKeys(r.id, endKey) < 0)
  );
}

/** How `partition list` shows an age of `s` seconds: `42s`, `3m05s`, `2h05m`. */
/** Every whole number from `lo` to `hi`. */
function between(lo: number, hi: number): number[] {
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

Deno.test("partition refresh rejects every bad pivot list with status 2 before any request", () =>
  withFixture({ count: 100 }, async (fixture, dir) => {
    const files: [string, string, RegExp][] = [
      ["not-array.json", '{"a":1}', /expected an array of strings/],
      ["bad.json", "[", /not JSON/],
      ["empty.json", '["a", ""]', /index 1: pivots must not be empty/],
      ["dup.json", '["a", "b", "b"]', /index 2: duplicate of index 1, received "b"/],
      [
        "order.json",
        '["b", "a"]',
        /index 1: pivots must increase in code-point order, received "a" after "b"/,
      ],
      ["number.json", '["a", 7]', /index 1: expected a string, received 7/],
      ["order.txt", "# c\nb\na\n", /index 1: .*received "a" after "b"/],
      ["module.ts", 'export default ["z", "y"];', /index 1: .*received "y" after "z"/],
      ["module.js", 'export const pivots = ["q", "p"];', /index 1: .*received "p" after "q"/],
      [
        "empty.js",
        'export default ["", "a"];',
        /index 0: pivots must not be empty \(in .*empty\.js\)/,
      ],
      ["syntax.js", "export const pivots = [;", /Cannot load pivots module '.*syntax\.js'/],
      ["none.mjs", "export const other = 1;", /expected an array of strings, received undefined/],
      ["pivots.csv", "a,b", /Unknown pivots file type '\.csv'/],
    ];
    for (const [name, text, message] of files) {
      const file = join(dir, name);
      await Deno.writeTextFile(file, text);
      const result = await runCli(["partition", "refresh", "--pivots", file, "--cache-dir", dir], {
        ALL_DOCS_ORIGIN: fixture.origin,
      });
      assert.equal(result.code, 2, `${name}: ${result.stderr}`);
      assert.match(result.stderr, message, name);
    }
    const missing = await runCli(["partition", "refresh", "--pivots", join(dir, "nope.json")], {
      ALL_DOCS_ORIGIN: fixture.origin,
      ALL_DOCS_CACHE_DIR: dir,
    });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot read pivots file/);
    const noPivots = await runCli([
      "partition",
      "refresh",
      "--origin",
      fixture.origin,
      "--cache-dir",
      dir,
    ]);
    assert.equal(noPivots.code, 2);
    assert.match(noPivots.stderr, /Missing --pivots FILE/);
    await Deno.writeTextFile(join(dir, "ok.json"), '["m"]');
    const noOrigin = await runCli(["partition", "refresh", "--pivots", join(dir, "ok.json")], {
      ALL_DOCS_CACHE_DIR: dir,
      ALL_DOCS_ORIGIN: "",
    });
    assert.equal(noOrigin.code, 2);
    assert.match(noOrigin.stderr, /Missing origin: set --origin URL or ALL_DOCS_ORIGIN/);
    assert.equal(fixture.requests.length, 0, "no request was sent");
  }));

Deno.test("partition refresh, status, list and cache create-index work end to end", () =>
  withFixture({ count: 12_000 }, async (fixture, dir) => {
    const pivots = [fixture.ids[100]!, fixture.ids[11_000]!];
    const pivotsFile = join(dir, "pivots.ts");
    await Deno.writeTextFile(pivotsFile, `export const pivots = ${JSON.stringify(pivots)};`);
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    const originKey = deriveOriginKey(fixture.origin);
    const setId = partitionSetId(originKey, pivots);
    const ranges = rangesFromPivots(pivots, originKey);

    const emptyStatus = await runCli(["partition", "status"], env);
    assert.equal(emptyStatus.stdout, "no partition sets recorded\n");
    const emptyList = await runCli(["partition", "list"], env);
    assert.equal(emptyList.stdout, "no cached partitions\n");

    const refreshStarted = Date.now();
    const refresh = await runCli(["partition", "refresh", "--pivots", pivotsFile], env);
    const refreshEnded = Date.now();
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.match(
      refresh.stdout,
      /^partitions 3 \(fetched 3, unchanged 0, skipped 0, failed 0\), rows 12000, requests \d+, retries 0, [\d.]+ s\n$/,
    );
    const pages = fixture.requests.filter((r) => new URL(r.url).pathname === "/_all_docs");
    assert.ok(pages.length >= 4, `${pages.length} page requests`);
    for (const r of pages) assert.equal(r.headers["npm-replication-opt-in"], "true", r.url);
    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.code, 0);
    assert.equal(index.stdout, indexText(fixture));

    const status = JSON.parse((await runCli(["partition", "status", "--json"], env)).stdout);
    assert.deepEqual(status, [{
      setId,
      origin: fixture.origin,
      originKey,
      partitions: 3,
      pass: 1,
      pending: 0,
      "in-progress": 0,
      done: 3,
      failed: [],
      rows: 12_000,
      missing: [],
    }]);
    const plainStatus = await runCli(["partition", "status"], env);
    assert.equal(plainStatus.code, 0);
    assert.equal(
      plainStatus.stdout,
      `set ${setId} (${fixture.origin}), pass 1: 3/3 done, 0 in progress, 0 pending, 0 failed, ` +
        `12000 rows\n`,
    );

    // Make two of the partitions look fetched long ago: 2h05m30s and 50h00m30s.
    const backdated = [Date.now() - 7530_000, Date.now() - 180_030_000];
    const driver = await createStorageDriver({ storage: "fs", cacheDir: dir });
    try {
      const cache = await Cache.open(driver);
      for (const [i, fetchedAt] of backdated.entries()) {
        assert.ok(await cache.refresh(ranges[i]!.key, { fetchedAt }));
      }
    } finally {
      await driver.close();
    }
    const listStarted = Date.now();
    const listRun = await runCli(["partition", "list", "--json"], env);
    const plainList = await runCli(["partition", "list"], env);
    const listEnded = Date.now();
    assert.equal(listRun.code, 0, listRun.stderr);
    // Listed in range order (not storage order, where an open start comes after a digit).
    const list = listRun.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(list.map((item) => item.key), ranges.map((r) => r.key));
    const expectedRows = ranges.map((r) => rowsIn(fixture, r.startKey, r.endKey));
    assert.deepEqual(expectedRows.map((rows) => rows.length), [100, 10_900, 1000]);
    assert.deepEqual(
      list.map(({ ageSeconds: _, ...item }) => item),
      ranges.map((r, i) => ({
        key: r.key,
        origin: originKey,
        startKey: r.startKey,
        endKey: r.endKey,
        rows: expectedRows[i]!.length,
        bytes: partitionBytes(expectedRows[i]!),
      })),
    );
    // An age is whole seconds from when the range was fetched to when the list ran.
    const fetchedBetween = [...backdated.map((t) => [t, t]), [refreshStarted, refreshEnded]];
    const ages = fetchedBetween.map(([early, late]) =>
      between(Math.round((listStarted - late!) / 1000), Math.round((listEnded - early!) / 1000))
    );
    list.forEach((item, i) => {
      assert.ok(ages[i]!.includes(item.ageSeconds), `${item.ageSeconds} s not in ${ages[i]}`);
    });
    assert.ok(list[0].ageSeconds >= 7530 && list[1].ageSeconds >= 180_030);

    // What a person sees: start, end, rows and age, one partition a line.
    const shown = ages.map((range) => range.map((seconds) => duration(seconds * 1000)));
    assert.equal(plainList.code, 0, plainList.stderr);
    const listed = plainList.stdout.split("\n");
    assert.equal(listed.pop(), "");
    assert.equal(listed.length, 3);
    const lines = ranges.map((r, i) => {
      const head =
        `${JSON.stringify(r.startKey).padEnd(24)} ${JSON.stringify(r.endKey).padEnd(24)} ` +
        `${String(expectedRows[i]!.length).padStart(9)} rows  `;
      const matching = listed.filter((line) => line.startsWith(head));
      assert.equal(matching.length, 1, `one line starts with ${JSON.stringify(head)}`);
      const line = matching[0]!;
      assert.ok(line.endsWith(" old"), line);
      assert.ok(shown[i]!.includes(line.slice(head.length, -" old".length)), line);
      return line;
    });
    assert.match(lines[0]!, /^"" {23}"[^"]+" +100 rows {2}2h\d\dm old$/);
    assert.match(lines[1]!, /^"[^"]+" +"[^"]+" +10900 rows {2}50h\d\dm old$/);
    assert.match(lines[2]!, /^"[^"]+" +"" +1000 rows {2}[\dhms]+ old$/);

    const again = await runCli(["partition", "refresh", "--pivots", pivotsFile, "--json"], env);
    const events = again.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.equal(events[0].type, "start");
    assert.equal(events[0].pass, 2);
    const summary = events.at(-1);
    assert.equal(summary.type, "summary");
    assert.equal(summary.fetched, 3);
    assert.equal(summary.rows, 12_000);
    const plainAgain = await runCli(["partition", "status"], env);
    assert.match(
      plainAgain.stdout,
      /, pass 2: 3\/3 done, 0 in progress, 0 pending, 0 failed, 12000 rows\n$/,
    );
  }));

Deno.test("cache create-index prints each id once, with the newest revision, from overlapping pivot sets", () => {
  /** `startkey` values (`""` for none) that answer 503. */
  const failing = new Set<string>();
  return withFixture({
    count: 6000,
    faults: ({ url }) =>
      failing.has(url.searchParams.get("startkey") ?? "")
        ? { kind: "status", status: 503 }
        : undefined,
  }, async (fixture, dir) => {
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_RETRIES: "0" };
    // Two sets over the whole key space: A as a default export of a .js module, B as a named one.
    const fileA = join(dir, "a.js");
    await Deno.writeTextFile(
      fileA,
      `export default ${JSON.stringify([fixture.ids[2000], fixture.ids[4000]])};\n`,
    );
    const fileB = join(dir, "b.js");
    await Deno.writeTextFile(
      fileB,
      `export const pivots = ${JSON.stringify([1000, 3000, 5000].map((i) => fixture.ids[i]))};\n`,
    );
    const refresh = async (file: string, code = 0) => {
      const result = await runCli(
        ["partition", "refresh", "--pivots", file, "--max-attempts", "1", "--json"],
        env,
      );
      assert.equal(result.code, code, result.stderr);
      return JSON.parse(result.stdout.trim().split("\n").at(-1)!);
    };
    /** Runs create-index; checks one line per id in code-point order; gives the revisions. */
    const createIndex = async () => {
      const result = await runCli(["cache", "create-index"], env);
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.split("\n");
      assert.equal(lines.pop(), "");
      assert.equal(lines.length, fixture.ids.length, "one line per id");
      const rows = lines.map((line) => {
        const comma = line.lastIndexOf(",");
        return { id: line.slice(0, comma), rev: line.slice(comma + 1) };
      });
      for (let i = 1; i < rows.length; i++) {
        assert.ok(
          compareKeys(rows[i - 1]!.id, rows[i]!.id) < 0,
          `${rows[i - 1]!.id} before ${rows[i]!.id}`,
        );
      }
      assert.deepEqual(rows.map((r) => r.id), fixture.ids);
      return { text: result.stdout, revs: rows.map((r) => r.rev) };
    };
    const revsNow = () => fixture.rows.map((r) => r.rev);
    const setRevs = (positions: number[], rev: string) => {
      for (const i of positions) fixture.setRev(fixture.ids[i]!, rev);
    };
    const revB = `20-${"b".repeat(32)}`;
    const revB2 = `21-${"b".repeat(32)}`;
    const revA = `30-${"a".repeat(32)}`;

    const a1 = await refresh(fileA);
    assert.equal(a1.rows, 6000);
    const atA = revsNow();
    assert.deepEqual((await createIndex()).revs, atA);

    // B, after changes all over, while its ranges from "" and from ids[3000] fail: ids there are
    // cached by A alone, the rest by both.
    setRevs([500, 1500, 2500, 3500, 4500, 5500], revB);
    failing.add("").add(JSON.stringify(fixture.ids[3000]));
    const b1 = await refresh(fileB, 1);
    assert.notEqual(b1.setId, a1.setId);
    assert.deepEqual(b1.failed.map((f: { index: number }) => f.index).sort(), [0, 2]);
    assert.equal(b1.rows, 3000);
    const atB = revsNow();
    const fromB = (i: number) => (i >= 1000 && i < 3000) || i >= 5000;
    const partial = await createIndex();
    assert.deepEqual(partial.revs, atB.map((rev, i) => fromB(i) ? rev : atA[i]));
    assert.equal(partial.revs[1500], revB, "B fetched ids[1500] last");
    assert.equal(partial.revs[500], atA[500], "only A cached ids[500]");
    assert.notEqual(atA[500], revB);

    // B's failed ranges, after another change: now B, fetched after A, wins everywhere.
    failing.clear();
    setRevs([600, 3600], revB2);
    const b2 = await refresh(fileB);
    assert.equal(b2.pass, 1);
    assert.equal(b2.fetched, 2);
    const list = (await runCli(["partition", "list", "--json"], env)).stdout.trim().split("\n");
    assert.equal(list.length, 7, "both sets are cached side by side");
    const afterB = await createIndex();
    assert.equal(afterB.text, indexText(fixture));
    for (const i of [500, 1500, 2500, 3500, 4500, 5500]) assert.equal(afterB.revs[i], revB);
    for (const i of [600, 3600]) assert.equal(afterB.revs[i], revB2);

    // A again, after more changes: A's newer revisions win over B's.
    setRevs([500, 700, 2700, 4700, 5999], revA);
    const a2 = await refresh(fileA);
    assert.equal(a2.pass, 2);
    const afterA = await createIndex();
    assert.equal(afterA.text, indexText(fixture));
    for (const i of [500, 700, 2700, 4700, 5999]) assert.equal(afterA.revs[i], revA);
    for (const i of [1500, 2500, 3500, 4500, 5500]) assert.equal(afterA.revs[i], revB);
  });
});

Deno.test("partition refresh killed with SIGKILL resumes without redoing finished partitions", () =>
  withFixture(
    { count: 20_000, faults: () => ({ kind: "delay", ms: 40 }) },
    async (fixture, dir) => {
      const pivots = Array.from({ length: 9 }, (_, i) => fixture.ids[(i + 1) * 2000]!);
      const pivotsFile = join(dir, "pivots.json");
      await Deno.writeTextFile(pivotsFile, JSON.stringify(pivots));
      const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
      const args = ["partition", "refresh", "--pivots", pivotsFile, "--limit", "500"];
      const child = startCli([...args, "--json", "--parallel", "2"], env);
      const finished = (line: string) => line.includes('"partition-done"');
      let done = 0;
      while (done < 3) if (finished(await child.line())) done++;
      const killed = await child.stop("SIGKILL");
      assert.equal(killed.signal, "SIGKILL");
      // Partitions it reported done before the kill landed count too (complete lines only).
      done += killed.stdout.split("\n").slice(0, -1).filter(finished).length;
      assert.ok(done >= 3 && done < 10, `${done} partitions finished before the kill`);

      const resumed = await runCli([...args, "--json"], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      const events = resumed.stdout.trim().split("\n").map((l) => JSON.parse(l));
      const summary = events.at(-1);
      assert.equal(summary.pass, 1, "the resumed run continues the same pass");
      assert.ok(summary.skipped >= done, `skipped ${summary.skipped}, finished before ${done}`);
      assert.equal(summary.skipped + summary.fetched, 10);
      const index = await runCli(["cache", "create-index"], env);
      assert.equal(index.stdout, indexText(fixture));
      const verify = await runCli(["cache", "verify", "--json"], env);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.deepEqual(JSON.parse(verify.stdout).corrupt, []);
    },
  ));

Deno.test("partition refresh exits 1 listing a partition that ran out of attempts; --fresh starts over", () =>
  withFixture(
    {
      count: 3000,
      faults: ({ url }) =>
        url.searchParams.get("startkey") === null ? { kind: "status", status: 500 } : undefined,
    },
    async (fixture, dir) => {
      const pivotsFile = join(dir, "pivots.txt");
      await Deno.writeTextFile(pivotsFile, `${fixture.ids[1000]}\n${fixture.ids[2000]}\n`);
      const env = {
        ALL_DOCS_ORIGIN: fixture.origin,
        ALL_DOCS_CACHE_DIR: dir,
        ALL_DOCS_RETRIES: "0",
      };
      const args = ["partition", "refresh", "--pivots", pivotsFile, "--max-attempts", "1"];
      const failed = await runCli(args, env);
      assert.equal(failed.code, 1);
      assert.match(failed.stdout, /failed 1\)/);
      assert.match(failed.stderr, /^failed partition 0 \["", ".+"\): .*500/m);
      const status = JSON.parse((await runCli(["partition", "status", "--json"], env)).stdout);
      assert.equal(status[0].done, 2);
      assert.equal(status[0].failed.length, 1);
      assert.equal(status[0].failed[0].index, 0);
      assert.match(status[0].failed[0].error, /500/);
      assert.equal(status[0].rows, 2000);
      const pivots = [fixture.ids[1000]!, fixture.ids[2000]!];
      const setId = partitionSetId(deriveOriginKey(fixture.origin), pivots);
      assert.equal(status[0].setId, setId);
      const plain = await runCli(["partition", "status"], env);
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(
        plain.stdout,
        `set ${setId} (${fixture.origin}), pass 1: 2/3 done, 0 in progress, 0 pending, 1 failed, ` +
          `2000 rows\n`,
      );

      fixture.requests.length = 0;
      const fresh = await runCli([...args, "--fresh", "--json"], env);
      assert.equal(fresh.code, 1);
      const summary = JSON.parse(fresh.stdout.trim().split("\n").at(-1)!);
      assert.equal(summary.skipped, 0, "--fresh forgot the finished partitions");
      assert.equal(summary.fetched, 2);
      // GET / for the new pass's update_seq (answered 500 here: recorded as unknown), 3 ranges.
      assert.equal(fixture.requests.length, 4);
    },
  ));

Deno.test("two partition refresh processes share one checkpoint on fs storage", () =>
  withFixture(
    { count: 16_000, faults: () => ({ kind: "delay", ms: 10 }) },
    async (fixture, dir) => {
      const pivots = Array.from({ length: 15 }, (_, i) => fixture.ids[(i + 1) * 1000]!);
      const pivotsFile = join(dir, "pivots.json");
      await Deno.writeTextFile(pivotsFile, JSON.stringify(pivots));
      const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
      const args = ["partition", "refresh", "--pivots", pivotsFile, "--limit", "400", "--json"];
      const [a, b] = await Promise.all([runCli(args, env), runCli(args, env)]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const sa = JSON.parse(a.stdout.trim().split("\n").at(-1)!);
      const sb = JSON.parse(b.stdout.trim().split("\n").at(-1)!);
      assert.ok(sa.fetched + sb.fetched >= 16, `${sa.fetched} + ${sb.fetched}`);
      const status = JSON.parse((await runCli(["partition", "status", "--json"], env)).stdout);
      assert.equal(status[0].done, 16);
      assert.equal(status[0].rows, 16_000);
      assert.equal((await runCli(["cache", "create-index"], env)).stdout, indexText(fixture));
    },
  ));

Deno.test("partition refresh reads a single range of 1,000,000 rows in memory bounded by a page", () =>
  withFixture({ count: 1_000_000 }, async (fixture, dir) => {
    const pivotsFile = join(dir, "none.json");
    await Deno.writeTextFile(pivotsFile, "[]");
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    const refresh = await runCliMeasured(["partition", "refresh", "--pivots", pivotsFile], env);
    assert.equal(refresh.code, 0, refresh.stderr);
    // GET / for the pass's update_seq, then 100 full pages and one short one.
    assert.equal(new URL(fixture.requests[0]!.url).pathname, "/");
    assert.equal(fixture.requests.length, 102, "100 full pages and one short one");
    for (const r of fixture.requests) {
      assert.equal(r.status, 200, r.url);
      assert.equal(r.headers["npm-replication-opt-in"], "true", r.url);
    }
    // The range's partition lines alone are about 60 MiB. The refresh peaks near 120 MiB (the
    // runtime takes about 55 MiB, the rest is pages awaiting collection); holding the range's
    // lines until the end, to write them at once, peaks near 250 MiB.
    const MiB = 2 ** 20;
    assert.ok(refresh.peakRss > 16 * MiB, `peak RSS was read: ${refresh.peakRss} bytes`);
    assert.ok(
      refresh.peakRss < 192 * MiB,
      `peak RSS ${(refresh.peakRss / MiB).toFixed(1)} MiB: memory grows with the range`,
    );
    const status = JSON.parse((await runCli(["partition", "status", "--json"], env)).stdout);
    assert.equal(status[0].done, 1);
    assert.equal(status[0].rows, 1_000_000);

    const index = await runCliMeasured(["cache", "create-index"], env);
    assert.equal(index.code, 0, index.stderr);
    const expected = createHash("sha256");
    const encoder = new TextEncoder();
    let bytes = 0;
    const rows = fixture.rows;
    for (let i = 0; i < rows.length; i += 10_000) {
      const chunk = encoder.encode(
        rows.slice(i, i + 10_000).map((r) => `${r.id},${r.rev}\n`).join(""),
      );
      expected.update(chunk);
      bytes += chunk.length;
    }
    assert.equal(index.stdoutBytes, bytes);
    assert.equal(index.stdoutSha256, expected.digest("hex"), "every row, in order, once");
  }));
