import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../_support/run_cli.ts";
import {
  type AllDocsFixture,
  type AllDocsFixtureOptions,
  applyRandomChanges,
  type Fault,
  startAllDocsFixture,
} from "../_support/all_docs_fixture.ts";
import { type RegistryFixture, startRegistryFixture } from "../_support/registry_fixture.ts";
import { POUCHDB_HIGH_KEY, startPouchdbServer } from "../_support/pouchdb_server.ts";
import { Cache } from "../../src/storage/cache.ts";
import { originKey, packumentKey } from "../../src/storage/keys.ts";
import { packageNameProblem } from "../../src/npm/package_name.ts";
import { FsDriver } from "../../drivers/fs.ts";

async function withFixture(
  options: AllDocsFixtureOptions,
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

function indexText(rows: readonly { id: string; rev: string }[]): string {
  return rows.map((r) => `${r.id},${r.rev}\n`).join("");
}

/** Runs `partition refresh` over pivots at the quarters of the fixture's ids. */
async function refresh(
  ids: readonly string[],
  dir: string,
  env: Record<string, string>,
): Promise<{ updateSeq: unknown }> {
  const pivots = [0.25, 0.5, 0.75].map((f) => ids[Math.floor(f * ids.length)]!);
  const file = join(dir, "pivots.json");
  await Deno.writeTextFile(file, JSON.stringify(pivots));
  const result = await runCli(["partition", "refresh", "--pivots", file, "--json"], env);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout.trim().split("\n").at(-1)!);
}

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

Deno.test("changes follow exits 2 on bad input before any request", () =>
  withFixture({ count: 100 }, async (fixture, dir) => {
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    const cases: [string[], RegExp][] = [
      [["--since", "now"], /--since: 'now'/],
      [["--since", " "], /Invalid --since/],
      [["--window=-1"], /Invalid --window/],
      [["--window", "two"], /Invalid --window/],
      [["--interval", "0"], /Invalid --interval/],
      [["--limit", "10001"], /Invalid --limit: expected an integer 1 to 10000/],
      [["--batch", "0"], /Invalid --batch/],
      [["--abbreviated"], /--abbreviated needs --packuments/],
      [["--packuments=abbreviated"], /Invalid --packuments: expected full or corgi, or nothing/],
      [["--packuments="], /Invalid --packuments: .* received ''/],
      [["--packuments", "some"], /Unexpected argument 'some' for 'changes follow'/],
      // Nothing after `--` is an option's value; the last --packuments decides.
      [["--packuments", "--", "corgi"], /Unexpected argument 'corgi' for 'changes follow'/],
      [["--packuments=corgi", "--packuments=all"], /Invalid --packuments: .* received 'all'/],
      [["--packuments", "full", "--abbreviated"], /--packuments full and --abbreviated/],
      // No checkpoint and no refreshed set: one line with the way out.
      [["--once"], /no follower checkpoint .* run 'partition refresh' first, or give --since/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(["changes", "follow", ...args], env);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    }
    const noOrigin = await runCli(["changes", "follow"], { ALL_DOCS_CACHE_DIR: dir });
    assert.equal(noOrigin.code, 2);
    assert.match(noOrigin.stderr, /Missing origin/);
    assert.equal(fixture.requests.length, 0, "no request was sent");
    const help = await runCli(["changes", "follow", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--window N/);
    assert.match(help.stdout, /SIGINT or SIGTERM/);
    assert.match(help.stdout, /--packuments \[full\|corgi\]/);
  }));

Deno.test("changes follow --once against pouchdb-server: create-index equals the origin's _all_docs", async () => {
  const ids = Array.from({ length: 300 }, (_, i) => `pkg-${String(i).padStart(4, "0")}`);
  const server = await startPouchdbServer({ ids });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_ORIGIN: server.origin, ALL_DOCS_CACHE_DIR: dir };
    const refreshed = await refresh(ids, dir, env);
    assert.equal(refreshed.updateSeq, 300);
    const json = { "content-type": "application/json", accept: "application/json" };
    const request = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(`${server.origin}/${path}`, {
        method,
        headers: json,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const value = await response.json();
      assert.ok(response.ok, JSON.stringify(value));
      return value;
    };
    const revOf = new Map(server.rows.map((r) => [r.id, r.rev]));
    // Create, update and delete at the origin.
    await request("POST", "_bulk_docs", {
      docs: [
        { _id: "aaa-new" },
        { _id: "pkg-0150-new" },
        { _id: "zzz-new" },
        { _id: "pkg-0010", _rev: revOf.get("pkg-0010"), v: 2 },
        { _id: "pkg-0299", _rev: revOf.get("pkg-0299"), v: 2 },
        { _id: "pkg-0000", _rev: revOf.get("pkg-0000"), _deleted: true },
        { _id: "pkg-0200", _rev: revOf.get("pkg-0200"), _deleted: true },
      ],
    });
    const follow = await runCli(["changes", "follow", "--once", "--json"], env);
    assert.equal(follow.code, 0, follow.stderr);
    const summary = lastJson(follow.stdout);
    assert.equal(summary.startFrom, "partitions");
    assert.equal(summary.start, 300);
    assert.equal(summary.seq, 307);
    assert.equal(summary.applied, 7);
    assert.equal(summary.deleted, 2);
    const page = await request(
      "GET",
      `_all_docs?endkey=${encodeURIComponent(JSON.stringify(POUCHDB_HIGH_KEY))}`,
    );
    const expected = (page.rows as { id: string; value: { rev: string } }[])
      .map((r) => ({ id: r.id, rev: r.value.rev }));
    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.code, 0, index.stderr);
    assert.equal(index.stdout, indexText(expected));
    // Nothing new: the next run reads the window and applies nothing.
    const again = lastJson((await runCli(["changes", "follow", "--once", "--json"], env)).stdout);
    assert.equal(again.startFrom, "checkpoint");
    assert.equal(again.applied, 0);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function withRegistry(fn: (registry: RegistryFixture) => Promise<void>): Promise<void> {
  const registry = await startRegistryFixture();
  try {
    await fn(registry);
  } finally {
    await registry.close();
  }
}

function packument(name: string, rev: string): string {
  return JSON.stringify({ _id: name, _rev: rev, name, "dist-tags": {}, versions: {} });
}

Deno.test("changes follow against the strict fixture: late entries, 20% faults, a lagging packument, kill -9 and resume", () => {
  const faults: Fault[] = [
    { kind: "status", status: 429, retryAfter: "0" },
    { kind: "status", status: 503 },
    { kind: "reset" },
    { kind: "truncate" },
    { kind: "bad-json" },
  ];
  let faulty = false;
  let n = 0;
  return withRegistry((registry) =>
    withFixture({
      count: 6000,
      // Late entries show up to 8192 seqs behind the head: the follow re-reads that window.
      changes: { lateRate: 4 / 1024, lateWithin: 8192 },
      // 20% of the feed's requests fail once the follow starts.
      faults: ({ path }) =>
        faulty && path !== "/_all_docs" && n++ % 5 === 4 ? faults[n % faults.length] : undefined,
    }, async (fixture, dir) => {
      const env = {
        ALL_DOCS_ORIGIN: fixture.origin,
        ALL_DOCS_REGISTRY: registry.url,
        ALL_DOCS_CACHE_DIR: dir,
        ALL_DOCS_RETRIES: "8",
      };
      await refresh(fixture.ids, dir, env);
      const before = new Map(fixture.rows.map((r) => [r.id, r.rev]));
      applyRandomChanges(fixture, 8000, { seed: 5, creates: 0.03, deletes: 0.03 });
      const changed = fixture.rows.filter((r) =>
        before.get(r.id) !== r.rev && packageNameProblem(r.id) === undefined
      );
      assert.ok(changed.length > 3000, `${changed.length} changed`);
      // The registry serves each changed document at its new _rev, but one lags behind.
      const lagging = changed[777]!;
      for (const row of fixture.rows) registry.set(row.id, packument(row.id, row.rev));
      registry.set(lagging.id, packument(lagging.id, "1-00000000000000000000000000000000"));
      faulty = true;

      // A follow killed with SIGKILL after its first batch is applied.
      const args = [
        "changes",
        "follow",
        "--limit",
        "1000",
        "--batch",
        "2000",
        "--window",
        "8192",
        "--packuments",
      ];
      const child = startCli([...args, "--json", "--interval", "3600"], env);
      while (!(await child.line()).includes('"type":"applied"'));
      const killed = await child.stop("SIGKILL");
      assert.equal(killed.signal, "SIGKILL");

      // The run after it resumes from its checkpoint and follows the late entries.
      const resumed = await runCli([...args, "--once", "--json"], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      const summary = lastJson(resumed.stdout);
      assert.equal(summary.startFrom, "checkpoint");
      assert.equal(summary.seq, fixture.changes.head);
      assert.ok(fixture.changes.withheld.length > 10, `${fixture.changes.withheld.length} late`);
      assert.ok((summary.late as number) > 0, "late entries were caught");
      assert.ok(fixture.requests.some((r) => r.fault !== undefined), "faults were injected");
      const index = await runCli(["cache", "create-index"], env);
      assert.equal(index.stdout, indexText(fixture.rows), "the index is exact");
      assert.equal(summary.packumentsPending, 1, "the lagging packument stays pending");

      // The registry catches up: the next run fetches it, and every changed packument is
      // cached at its announced _rev.
      registry.set(lagging.id, packument(lagging.id, lagging.rev));
      const last = await runCli([...args, "--once", "--json"], env);
      assert.equal(last.code, 0, last.stderr);
      assert.equal(lastJson(last.stdout).packumentsPending, 0);
      const driver = new FsDriver(join(dir, "fs"));
      try {
        const cache = await Cache.open(driver, { bloom: false });
        const registryKey = originKey(registry.url);
        for (const row of changed) {
          const info = await cache.info(packumentKey(registryKey, row.id));
          assert.equal(info?.rev, row.rev, row.id);
        }
      } finally {
        await driver.close();
      }
    })
  );
});

Deno.test("changes follow --packuments [full|corgi] caches the documents it names", () =>
  withRegistry((registry) =>
    withFixture({ count: 300 }, async (fixture, dir) => {
      const env = {
        ALL_DOCS_ORIGIN: fixture.origin,
        ALL_DOCS_REGISTRY: registry.url,
        ALL_DOCS_CACHE_DIR: dir,
      };
      await refresh(fixture.ids, dir, env);
      const registryKey = originKey(registry.url);
      // Each run: changes at the origin, the registry up to date, then `argv` with --once.
      const follow = async (seed: number, argv: string[]) => {
        const before = new Map(fixture.rows.map((r) => [r.id, r.rev]));
        applyRandomChanges(fixture, 40, { seed, creates: 0, deletes: 0 });
        // (As on npm, a new _rev changes the abbreviated document too: its `modified`.)
        for (const row of fixture.rows) {
          const modified = new Date(Date.UTC(2026, 0, 1) + parseInt(row.rev) * 1000);
          registry.set(
            row.id,
            JSON.stringify({
              ...JSON.parse(packument(row.id, row.rev)),
              time: { modified: modified.toISOString() },
            }),
          );
        }
        const run = await runCli([...argv, "--once", "--json"], env);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(lastJson(run.stdout).packumentsPending, 0);
        return fixture.rows.filter((r) =>
          before.get(r.id) !== r.rev && packageNameProblem(r.id) === undefined
        );
      };
      const cached = async (rows: { id: string; rev: string }[]) => {
        const driver = new FsDriver(join(dir, "fs"));
        try {
          const cache = await Cache.open(driver, { bloom: false });
          const kinds = { full: 0, corgi: 0 };
          for (const row of rows) {
            const full = await cache.info(packumentKey(registryKey, row.id));
            const corgi = await cache.info(packumentKey(registryKey, row.id, "abbreviated"));
            if (full?.rev === row.rev) kinds.full++;
            if (corgi?.rev === row.rev) kinds.corgi++;
          }
          return kinds;
        } finally {
          await driver.close();
        }
      };
      const spellings: [string[], "full" | "corgi"][] = [
        [["changes", "follow", "--packuments", "corgi"], "corgi"],
        [["changes", "--packuments=full", "follow"], "full"],
        [["changes", "follow", "--packuments"], "full"],
        [["changes", "follow", "--packuments", "--abbreviated"], "corgi"],
        // The last one decides: bare, that is full.
        [["--packuments", "corgi", "changes", "follow", "--packuments"], "full"],
      ];
      for (const [i, [args, kind]] of spellings.entries()) {
        const changed = await follow(40 + i, args);
        assert.ok(changed.length > 20, `${changed.length} changed`);
        const other = kind === "full" ? "corgi" : "full";
        assert.deepEqual(
          await cached(changed),
          { [kind]: changed.length, [other]: 0 } as { full: number; corgi: number },
          args.join(" "),
        );
      }
    })
  ));

Deno.test("changes follow polls until SIGTERM, then stops cleanly with a summary", () =>
  withFixture({ count: 2000 }, async (fixture, dir) => {
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    await refresh(fixture.ids, dir, env);
    const child = startCli(["changes", "follow", "--interval", "0.2", "--json"], env);
    let caughtUp = 0;
    while (caughtUp < 2) {
      const line = await child.line();
      if (!line.includes('"type":"caught-up"')) continue;
      caughtUp++;
      if (caughtUp === 1) applyRandomChanges(fixture, 100, { seed: 3 });
    }
    // Wait for a round that saw the new changes.
    for (;;) {
      const event = JSON.parse(await child.line());
      if (event.type === "caught-up" && event.seq === fixture.changes.head) break;
    }
    const exit = await child.stop("SIGTERM");
    assert.equal(exit.code, 0, exit.stderr);
    const summary = lastJson(exit.stdout);
    assert.equal(summary.type, "summary");
    assert.equal(summary.stopped, true);
    assert.equal(summary.seq, fixture.changes.head);
    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.stdout, indexText(fixture.rows));
  }));
