/**
 * `worker start --queue redis://...` end to end: several worker processes on one Redis (from
 * `tests/_support/redis.ts`) and one storage, fed over the worker API, against the strict
 * `_all_docs` and registry fixtures: the fs driver for processes on one machine, the S3 driver
 * (s3rver) with a cache dir per worker for several machines; then a worker killed with SIGKILL
 * and Redis restarted mid-run. Every worker of a run gets the same short lock settings, so a
 * dead worker's items come back within seconds.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { type RedisServer, startRedis } from "../_support/redis.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_support/s3rver.ts";
import {
  api,
  assertMirrored,
  bodiesSent,
  json,
  type Origins,
  postSet,
  type RunningWorker,
  settled,
  startWorker,
  untilIdle,
  waitFor,
  withOrigins,
} from "../_support/worker_e2e.ts";
import { DEFAULT_REDIS_LOCK_MS, DEFAULT_REDIS_STALLED_MS } from "../../cli/commands/worker.ts";
import { DEFAULT_LOCK_DURATION_MS, DEFAULT_STALLED_INTERVAL_MS } from "../../queues/bullmq.ts";

/** One lock duration and stalled interval for every worker of a run: a few seconds. */
const LOCK_ENV = { ALL_DOCS_WORKER_LOCK_MS: "4000", ALL_DOCS_WORKER_STALLED_MS: "1000" };
/** Items in hand per worker, and names per packument item. */
const SHAPE = ["--concurrency", "2", "--batch-size", "4"];

async function withRedis(
  options: { persist?: boolean },
  fn: (redis: RedisServer) => Promise<void>,
): Promise<void> {
  const redis = await startRedis(options);
  try {
    await fn(redis);
  } finally {
    await redis.stop();
  }
}

/** Starts a worker on `queue` for each environment (over the test's own). */
async function startWorkers(
  queue: string,
  envs: Record<string, string>[],
): Promise<RunningWorker[]> {
  const workers: RunningWorker[] = [];
  try {
    for (const env of envs) workers.push(await startWorker(["--queue", queue, ...SHAPE], env));
  } catch (error) {
    await Promise.all(workers.map((w) => w.child.stop()));
    throw error;
  }
  return workers;
}

/** Stops every worker; those still running must exit 0 on SIGTERM. Returns their stderr. */
async function stopAll(workers: RunningWorker[]): Promise<string[]> {
  const exits = await Promise.all(workers.map((w) => w.child.stop()));
  for (const exit of exits) {
    if (exit.signal !== "SIGKILL") assert.equal(exit.code, 0, exit.stderr.slice(-2000));
  }
  return exits.map((exit) => exit.stderr);
}

/** Every packument was sent whole exactly once. */
function assertEachBodyOnce(origins: Origins): void {
  const sent = bodiesSent(origins.registry);
  assert.equal(sent.size, origins.docs.size);
  for (const [name, count] of sent) assert.equal(count, 1, `${name} was sent ${count} times`);
}

Deno.test("worker start --queue redis: three processes on one fs cache mirror a partition set posted to one of them", () =>
  withRedis({}, (redis) =>
    withOrigins({
      count: 60,
      // A little slow, so that every worker gets a share.
      registryFaults: () => ({ kind: "delay", ms: 20 }),
    }, async (origins) => {
      const env = { ...origins.env, ...LOCK_ENV };
      const workers = await startWorkers(redis.url, [env, env, env]);
      let stderrs: string[] = [];
      try {
        const health = await json(await api(workers[2]!.url, "-/worker/health", {}, ""));
        assert.deepEqual(health, { status: "ok", engine: "redis" });
        const ids = origins.allDocs.ids;
        const posted = await postSet(workers[0]!.url, origins, [ids[20]!, ids[40]!]);
        assert.equal((posted.accepted as string[]).length, 1);
        // One queue: any worker's stats are the run's.
        const stats = await untilIdle(workers[1]!.url, 120_000);
        assert.equal(stats.dead, 0, JSON.stringify(stats));
        // One set, three partitions, fifteen batches of four names.
        assert.equal(stats.done, 19, JSON.stringify(stats));
        await assertMirrored(origins, workers[2]!.url);
        assertEachBodyOnce(origins);
        const partitions = await runCli(["partition", "status", "--json"], origins.env);
        assert.match(partitions.stdout, /"done":3/);
      } finally {
        stderrs = await stopAll(workers);
      }
      const acked = stderrs.map((stderr) => settled(stderr));
      for (const [i, ids] of acked.entries()) assert.ok(ids.length > 0, `worker ${i} did nothing`);
      const all = acked.flat();
      assert.equal(all.length, 19, "each item acknowledged once");
      assert.equal(new Set(all).size, 19);
    })));

Deno.test("worker start --queue redis: kill -9 of one worker and a Redis restart mid-run, the mirror completes", () => {
  let slow = true;
  return withRedis({ persist: true }, (redis) =>
    withOrigins({
      count: 100,
      // Slow bodies, so the kill and the restart land mid-run.
      registryFaults: () => slow ? { kind: "delay", ms: 100 } : undefined,
    }, async (origins) => {
      const env = { ...origins.env, ...LOCK_ENV };
      const workers = await startWorkers(redis.url, [env, env, env]);
      const sent = () => bodiesSent(origins.registry).size;
      try {
        const ids = origins.allDocs.ids;
        const posted = await postSet(workers[0]!.url, origins, [ids[25]!, ids[50]!]);
        const setId = (posted.accepted as string[])[0]!.slice("partition-set:".length);
        // The partitions are done before the kill: only packument batches are in hand then.
        const partitionsDone = async () => {
          for (const index of [0, 1, 2]) {
            const id = encodeURIComponent(`partition:${setId}:1:${index}`);
            const record = await api(workers[0]!.url, `-/worker/items/${id}`);
            if (record.status !== 200 || (await json(record)).state !== "done") return false;
          }
          return true;
        };
        for (const until = Date.now() + 60_000; !(await partitionsDone());) {
          if (Date.now() > until) assert.fail("the partitions never finished");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await waitFor(() => sent() >= 12, "progress before the kill");
        const killed = await workers[1]!.child.stop("SIGKILL");
        assert.equal(killed.signal, "SIGKILL");
        // A body in flight at the kill is logged once the fixture has sent it, after its delay.
        const atKill = new Promise<Set<string>>((resolve) =>
          setTimeout(() => resolve(new Set(bodiesSent(origins.registry).keys())), 500)
        );
        const afterKill = sent();
        await waitFor(() => sent() >= afterKill + 6, "progress after the kill");
        await redis.restart();
        const atRestart = sent();
        await waitFor(() => sent() >= atRestart + 8, "progress after the Redis restart");
        slow = false;
        const stats = await untilIdle(workers[2]!.url, 180_000);
        assert.equal(stats.dead, 0, JSON.stringify(stats));
        // One set, three partitions (25, 25 and 50 names), 7 + 7 + 13 batches of four names.
        assert.equal(stats.done, 1 + 3 + 27, JSON.stringify(stats));
        await assertMirrored(origins, workers[0]!.url);
        const counts = bodiesSent(origins.registry);
        assert.equal(counts.size, origins.docs.size);
        const twice = [...counts].filter(([, n]) => n > 1);
        // Only the items in hand at the kill come back: two of at most four names, fetched
        // before the kill (their locks expire seconds later). Nothing ran twice for the restart.
        assert.ok(twice.length <= 8, `refetched ${twice.map(([n]) => n).join(", ")}`);
        const before = await atKill;
        for (const [name, n] of twice) {
          assert.equal(n, 2, `${name} was sent ${n} times`);
          assert.ok(before.has(name), `${name} was refetched, though not in hand at the kill`);
        }
      } finally {
        await stopAll(workers);
      }
    }));
});

Deno.test("worker start --queue redis: three workers, each with its own cache dir, share an S3 bucket", () =>
  withRedis({}, async (redis) => {
    const bucket = await startS3rver("workers");
    try {
      await withOrigins({ count: 40 }, async (origins) => {
        const s3 = {
          ALL_DOCS_STORAGE: "s3",
          ALL_DOCS_S3_URL: `${bucket.endpoint}/${bucket.bucket}/mirror/`,
          AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        };
        const machine = (i: number) => ({
          ...origins.env,
          ...LOCK_ENV,
          ...s3,
          ALL_DOCS_CACHE_DIR: join(origins.dir, `machine-${i}`),
        });
        const workers = await startWorkers(redis.url, [machine(0), machine(1), machine(2)]);
        try {
          const ids = origins.allDocs.ids;
          await postSet(workers[1]!.url, origins, [ids[13]!, ids[27]!]);
          const stats = await untilIdle(workers[0]!.url, 120_000);
          assert.equal(stats.dead, 0, JSON.stringify(stats));
          // `cache create-index` on a fourth "machine", and the replica of each worker.
          const reader = { ...origins, env: machine(3) };
          await assertMirrored(reader, workers[0]!.url);
          await assertMirrored(reader, workers[2]!.url, { index: false });
          assertEachBodyOnce(origins);
          const objects = (await bucket.state()).objects;
          assert.ok(objects.every((key) => key.startsWith("mirror/v1:")), objects.join(" "));
        } finally {
          await stopAll(workers);
        }
        // Nothing of the cache is kept on a machine: the bucket is the one storage.
        for (const i of [0, 1, 2, 3]) {
          const kept = await Array.fromAsync(Deno.readDir(join(origins.dir, `machine-${i}`)))
            .catch(() => []);
          assert.deepEqual(kept.map((e) => e.name), [], `machine-${i}`);
        }
      });
    } finally {
      await bucket.close();
    }
  }));

Deno.test("worker enqueue, status and dead straight to Redis, then worker start --until-idle runs the items", () =>
  withRedis({}, (redis) =>
    withOrigins({ count: 12 }, async (origins) => {
      const env = { ...origins.env, ALL_DOCS_QUEUE: `${redis.url}/3` };
      const list = join(origins.dir, "names.txt");
      await Deno.writeTextFile(list, "pkg-1\npkg-2\n@gen/pkg-5\n");
      const enqueued = await runCli(
        ["worker", "enqueue", "packuments", list, "--batch-size", "2", "--json"],
        env,
      );
      assert.equal(enqueued.code, 0, enqueued.stderr);
      const { accepted } = JSON.parse(enqueued.stdout) as { accepted: string[] };
      assert.equal(accepted.length, 2);
      const queued = await runCli(["worker", "status", accepted[0]!, "--json"], env);
      assert.equal(queued.code, 0, queued.stderr);
      assert.equal(JSON.parse(queued.stdout).state, "queued");
      // The database of the URL is the queue: database 0 holds nothing.
      const other = await runCli(["worker", "status", "--queue", redis.url, "--json"], env);
      assert.deepEqual(JSON.parse(other.stdout), { queued: 0, running: 0, done: 0, dead: 0 });
      const run = await runCli(
        ["worker", "start", "--port", "0", "--until-idle", "--quiet", "--json"],
        env,
      );
      assert.equal(run.code, 0, run.stderr);
      const summary = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
      assert.deepEqual([summary.type, summary.done, summary.dead], ["summary", 2, 0]);
      for (const id of accepted) {
        const done = await runCli(["worker", "status", id], env);
        assert.match(done.stdout, new RegExp(`^${id}  done  attempts 0\n$`));
      }
      const dead = await runCli(["worker", "dead"], env);
      assert.equal(dead.code, 0, dead.stderr);
      assert.equal(dead.stdout, "no dead letters\n");
      for (const name of ["pkg-1", "pkg-2", "@gen/pkg-5"]) {
        const shown = await runCli(["packument", "show", name], env);
        assert.deepEqual(shown.stdoutBytes, origins.registry.expectedBody(name, "full"), name);
      }
    })));

Deno.test("worker --queue redis settings are checked before anything opens, passwords masked", async () => {
  // Every worker shares one default, BullMQ's.
  assert.equal(DEFAULT_REDIS_LOCK_MS, DEFAULT_LOCK_DURATION_MS);
  assert.equal(DEFAULT_REDIS_STALLED_MS, DEFAULT_STALLED_INTERVAL_MS);
  const dir = await Deno.makeTempDir();
  try {
    const env = {
      ALL_DOCS_CACHE_DIR: join(dir, "cache"),
      ALL_DOCS_REGISTRY: "http://127.0.0.1:9/",
    };
    const start = ["worker", "start", "--port", "0", "--no-auth"];
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--queue", "redis"], {}, /^error: Invalid --queue: expected memory, kv or redis:\/\//],
      [["--queue", "redis://"], {}, /\(no host\)/],
      [
        ["--queue", "redis://:s3cret-pw@127.0.0.1:1/x"],
        {},
        /database number.*'redis:\/\/:\*\*\*@127/,
      ],
      [["--queue", "rediss://u:s3cret-pw@127.0.0.1:1/0?db=2"], {}, /query or fragment.*\?\*\*\*'/],
      [["--queue", "redis://127.0.0.1:99999"], {}, /not a URL/],
      [[], { ALL_DOCS_QUEUE: "redis:/127.0.0.1" }, /^error: Invalid ALL_DOCS_QUEUE/],
      [["--queue", "redis://127.0.0.1:1", "--lock-ms", "999"], {}, /^error: Invalid --lock-ms/],
      [["--queue", "redis://127.0.0.1:1"], { ALL_DOCS_WORKER_STALLED_MS: "1s" }, /STALLED_MS/],
      [["--queue", "kv", "--stalled-ms", "1000"], {}, /--stalled-ms is a setting of a redis/],
    ];
    for (const [args, extra, message] of cases) {
      const result = await runCli([...start, ...args], { ...env, ...extra });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.ok(!result.stderr.includes("s3cret-pw"), "no password in the message");
    }
    // A target without a worker: the same checks, and a memory queue is nobody's.
    const status = await runCli(["worker", "status", "--queue", "redis://h/x"], env);
    assert.equal(status.code, 2);
    const memory = await runCli(["worker", "status", "--queue", "memory"], env);
    assert.equal(memory.code, 2);
    assert.match(memory.stderr, /--queue redis:\/\/HOST:PORT/);
    // Well formed, but no Redis there: exit 1 naming the address, never the password.
    const port = (() => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      listener.close();
      return listener.addr.port;
    })();
    const down = await runCli([
      "worker",
      "status",
      "--queue",
      `redis://:s3cret-pw@127.0.0.1:${port}`,
    ], env);
    assert.equal(down.code, 1, down.stderr);
    assert.match(down.stderr, new RegExp(`cannot connect to redis://127\\.0\\.0\\.1:${port}/0`));
    assert.ok(!down.stderr.includes("s3cret-pw"));
    const help = await runCli(["worker", "start", "--help"]);
    assert.match(help.stdout, /--lock-ms MS/);
    assert.match(help.stdout, /ALL_DOCS_WORKER_STALLED_MS/);
    assert.match(help.stdout, /redis:\/\/\[:PASSWORD@\]HOST\[:PORT\]\[\/DB\]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
