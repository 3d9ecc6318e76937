/**
 * Following `_changes` from the worker runtime on the command line: `worker enqueue changes`
 * (checked before any request) into the kv queue, and `worker start --queue redis://...
 * --follow-every S` (a BullMQ job scheduler, one per queue however many workers start with
 * it), against the strict `_all_docs` fixture.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { startRedis } from "../_support/redis.ts";
import { changeOrigin, type Origins, startWorker, withOrigins } from "../_support/worker_e2e.ts";
import { originKey } from "../../src/storage/keys.ts";

function expectedIndex(origins: Origins): string {
  return origins.allDocs.rows.map((r) => `${r.id},${r.rev}\n`).join("");
}

/** A pass of a set (which records the origin's update_seq), run to the end. */
async function refreshThroughWorker(origins: Origins, env: Record<string, string>) {
  const pivots = join(origins.dir, "pivots.json");
  await Deno.writeTextFile(pivots, JSON.stringify([origins.allDocs.ids[10]]));
  const enqueued = await runCli(["worker", "enqueue", "partition-set", "--pivots", pivots], env);
  assert.equal(enqueued.code, 0, enqueued.stderr);
  const run = await runCli(["worker", "start", "--port", "0", "--until-idle", "--quiet"], env);
  assert.equal(run.code, 0, run.stderr);
}

Deno.test("worker enqueue changes: bad input exits 2 before any request", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A worker URL nothing listens on: a request would fail with exit 1, not 2.
    const env = {
      ALL_DOCS_CACHE_DIR: dir,
      ALL_DOCS_ORIGIN: "http://127.0.0.1:9/registry/",
      ALL_DOCS_WORKER_URL: "http://127.0.0.1:9/",
      ALL_DOCS_WORKER_TOKEN: "t",
    };
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--window=-1"], {}, /Invalid --window/],
      [["--window", "x"], {}, /Invalid --window/],
      [["--limit", "0"], {}, /Invalid --limit: expected an integer from 1 to 10000/],
      [["--limit", "10001"], {}, /Invalid --limit/],
      [["--priority", "2000000"], {}, /Invalid --priority/],
      [["extra"], {}, /Unexpected argument 'extra'/],
      [["--packuments=some"], {}, /Invalid --packuments: expected full or corgi/],
      [["--packuments", "full", "--abbreviated"], {}, /--packuments full and --abbreviated/],
      [["--abbreviated"], {}, /--abbreviated needs --packuments/],
      [[], { ALL_DOCS_ORIGIN: "" }, /Missing origin/],
      [["--origin", "ftp://127.0.0.1/"], {}, /./],
    ];
    for (const [args, extra, message] of cases) {
      const run = await runCli(["worker", "enqueue", "changes", ...args], { ...env, ...extra });
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, message, args.join(" "));
    }
    const misplaced = await runCli(
      ["worker", "enqueue", "packuments", join(dir, "names.txt"), "--packuments", "corgi"],
      env,
    );
    assert.equal(misplaced.code, 2, misplaced.stderr);
    assert.match(misplaced.stderr, /--packuments is for partition-set and changes/);
    const wrong = await runCli(["worker", "enqueue", "change"], env);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /expected partition-set, changes or packuments/);
    const help = await runCli(["worker", "enqueue", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /changes \[--packuments \[full\|corgi\]\]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("worker enqueue changes --packuments [full|corgi]: the item names the documents", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_WORKER_TOKEN: "t" };
    // One origin a spelling (one follow per origin is queued): nothing is asked of them.
    const spellings: [string[], string | undefined][] = [
      [[], undefined],
      [["--packuments"], "full"],
      [["--packuments=full"], "full"],
      [["--packuments", "corgi"], "corgi"],
      [["--packuments", "--abbreviated"], "corgi"],
      [["--packuments", "corgi", "--packuments"], "full"],
    ];
    for (const [i, [args, packuments]] of spellings.entries()) {
      const origin = `http://127.0.0.1:9/origin-${i}/`;
      const enqueued = await runCli(
        ["worker", "enqueue", "changes", "--origin", origin, ...args, "--json"],
        env,
      );
      assert.equal(enqueued.code, 0, enqueued.stderr);
      const [id] = JSON.parse(enqueued.stdout).accepted as string[];
      const status = await runCli(["worker", "status", id!, "--json"], env);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(JSON.parse(status.stdout).payload.packuments, packuments, args.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("worker enqueue changes into the kv queue: one follow per origin, the index exact after it", () =>
  withOrigins({ count: 30 }, async (origins) => {
    await refreshThroughWorker(origins, origins.env);
    changeOrigin(origins, 5);
    const args = ["worker", "enqueue", "changes", "--window", "64", "--limit", "7", "--json"];
    const enqueued = await runCli(args, origins.env);
    assert.equal(enqueued.code, 0, enqueued.stderr);
    const id = `changes:${originKey(origins.allDocs.origin)}`;
    assert.deepEqual(JSON.parse(enqueued.stdout), {
      type: "enqueued",
      accepted: [id],
      duplicates: [],
    });
    const again = await runCli(args, origins.env);
    assert.deepEqual(JSON.parse(again.stdout).duplicates, [id]);
    const status = await runCli(["worker", "status", id, "--json"], origins.env);
    assert.deepEqual(JSON.parse(status.stdout).payload, {
      origin: origins.allDocs.origin,
      window: 64,
      limit: 7,
    });
    const run = await runCli(
      ["worker", "start", "--port", "0", "--until-idle", "--quiet", "--json"],
      origins.env,
    );
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
    assert.equal(summary.dead, 0);
    const index = await runCli(["cache", "create-index"], origins.env);
    assert.equal(index.stdout, expectedIndex(origins));
  }));

Deno.test("worker start --follow-every: one scheduler per redis queue keeps the partitions current", () =>
  withOrigins({ count: 30 }, async (origins) => {
    const redis = await startRedis();
    const workers = [];
    try {
      const env = {
        ...origins.env,
        ALL_DOCS_QUEUE: `${redis.url}/2`,
        ALL_DOCS_WORKER_LOCK_MS: "4000",
        ALL_DOCS_WORKER_STALLED_MS: "1000",
      };
      // Checked before anything opens.
      for (
        const [args, message] of [
          [["--follow-every", "x"], /Invalid --follow-every/],
          [["--follow-every", "5", "--until-idle"], /drop --until-idle/],
          [["--follow-every", "5", "--queue", "memory"], /needs --queue redis/],
          [["--follow-packuments", "full"], /needs --follow-every/],
          [["--follow-every", "5", "--follow-packuments", "some"], /--follow-packuments/],
        ] as [string[], RegExp][]
      ) {
        const run = await runCli(["worker", "start", "--port", "0", ...args], env);
        assert.equal(run.code, 2, args.join(" "));
        assert.match(run.stderr, message, args.join(" "));
      }
      await refreshThroughWorker(origins, env);
      // Two workers started with the schedule: one scheduler, so never two follows at once.
      for (let i = 0; i < 2; i++) {
        workers.push(await startWorker(["--follow-every", "1", "--concurrency", "2"], env));
      }
      const index = async () => (await runCli(["cache", "create-index"], env)).stdout;
      for (const seed of [6, 7]) {
        changeOrigin(origins, seed);
        const expected = expectedIndex(origins);
        let last = "";
        const until = Date.now() + 30_000;
        while ((last = await index()) !== expected && Date.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        assert.equal(last, expected, `seed ${seed}`);
      }
      const id = `changes:${originKey(origins.allDocs.origin)}`;
      const status = await runCli(["worker", "status", id, "--json"], env);
      assert.equal(status.code, 0, status.stderr);
      assert.ok(["queued", "running", "done"].includes(JSON.parse(status.stdout).state));
      // Removing the one schedule (by its id) stops every firing: nothing is left queued.
      const removed = await runCli(
        ["worker", "start", "--port", "0", "--until-idle", "--quiet", "--follow-every", "0"],
        env,
      );
      assert.equal(removed.code, 0, removed.stderr);
      const stats = JSON.parse((await runCli(["worker", "status", "--json"], env)).stdout);
      assert.equal(stats.queued, 0, JSON.stringify(stats));
      assert.equal(stats.dead, 0, JSON.stringify(stats));
      for (const worker of workers.splice(0)) {
        const exit = await worker.child.stop();
        assert.equal(exit.code, 0, exit.stderr.slice(-2000));
        // Every follow either ran or was a duplicate: no error from the scheduler's jobs.
        assert.doesNotMatch(exit.stderr, /"outcome":"(dead|retry)"/);
      }
    } finally {
      await Promise.all(workers.map((w) => w.child.stop()));
      await redis.stop();
    }
  }));
