import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../_support/run_cli.ts";
import type { Child } from "../_support/spawn.ts";
import {
  api,
  assertMirrored,
  bodiesSent,
  json,
  postSet,
  TOKEN,
  twentyPercentFaults,
  untilIdle,
  withOrigins,
} from "../_support/worker_e2e.ts";

interface Running {
  child: Child;
  url: string;
}

async function startWorker(args: string[], env: Record<string, string>): Promise<Running> {
  const child = startCli(["worker", "start", "--port", "0", "--quiet", ...args], env);
  const line = await child.line();
  const match = /^listening (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
  if (!match) {
    await child.stop();
    assert.fail(`unexpected first line: ${JSON.stringify(line)}\n${child.output()}`);
  }
  return { child, url: match[1]! };
}

Deno.test("worker start --queue kv mirrors a partition set with packuments posted over HTTP", () =>
  withOrigins({}, async (origins) => {
    const { url, child } = await startWorker(["--queue", "kv"], origins.env);
    try {
      const health = await api(url, "-/worker/health", {}, "");
      assert.equal(health.status, 200);
      await health.body?.cancel();
      for (const token of ["", "wrong", TOKEN.slice(0, -1) + "X"]) {
        const refused = await api(url, "-/worker/stats", {}, token);
        assert.equal(refused.status, 401, `token '${token}'`);
        await refused.body?.cancel();
      }
      const ids = origins.allDocs.ids;
      const posted = await postSet(url, origins, [ids[13]!, ids[27]!]);
      assert.equal((posted.accepted as string[]).length, 1);
      const stats = await untilIdle(url);
      assert.equal(stats.dead, 0);
      // One set, three partitions, and packument batches.
      assert.ok(stats.done! >= 5, JSON.stringify(stats));
      await assertMirrored(origins, url);
      for (const [name, count] of bodiesSent(origins.registry)) {
        assert.equal(count, 1, `${name} was sent ${count} times`);
      }
      const status = await runCli(["worker", "status", "--worker", url, "--json"], origins.env);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(JSON.parse(status.stdout).dead, 0);
      const partitions = await runCli(["partition", "status", "--json"], origins.env);
      assert.equal(partitions.code, 0, partitions.stderr);
      assert.match(partitions.stdout, /"done":3/);
      // A list of names, through the CLI and the API, in batches of two.
      const list = join(origins.dir, "names.txt");
      await Deno.writeTextFile(list, "pkg-1\npkg-2  # why\n@gen/pkg-5\n");
      const enqueued = await runCli(
        ["worker", "enqueue", "packuments", list, "--batch-size", "2", "--worker", url, "--json"],
        origins.env,
      );
      assert.equal(enqueued.code, 0, enqueued.stderr);
      const { accepted } = JSON.parse(enqueued.stdout) as { accepted: string[] };
      assert.equal(accepted.length, 2);
      await untilIdle(url);
      for (const id of accepted) {
        const one = await runCli(["worker", "status", id, "--worker", url], origins.env);
        assert.match(one.stdout, new RegExp(`^${id}  done  attempts 0\n$`));
      }
    } finally {
      const exit = await child.stop();
      assert.equal(exit.code, 0, exit.stderr);
    }
  }));

Deno.test("worker start --queue kv completes the same mirror through 20% injected faults", () => {
  return withOrigins(twentyPercentFaults(21, 22), async (origins) => {
    const env = { ...origins.env, ALL_DOCS_RETRIES: "6" };
    const { url, child } = await startWorker(["--queue", "kv"], env);
    try {
      const ids = origins.allDocs.ids;
      await postSet(url, origins, [ids[9]!, ids[19]!, ids[29]!]);
      const stats = await untilIdle(url, 120_000);
      assert.equal(stats.dead, 0, JSON.stringify(stats));
      await assertMirrored(origins, url);
      const faulted = origins.registry.requests.filter((r) => r.status !== 200);
      assert.ok(faulted.length >= 3, `${faulted.length} registry faults`);
      assert.ok(origins.allDocs.requests.some((r) => r.fault !== undefined), "origin faults");
    } finally {
      await child.stop();
    }
  });
});

Deno.test("worker: a name that always fails ends in the dead letters and is retried from the API", () => {
  let broken = true;
  return withOrigins({
    count: 12,
    registryFaults: (request) =>
      broken && request.name === "pkg-3" ? { kind: "status", status: 500 } : undefined,
  }, async (origins) => {
    const env = { ...origins.env, ALL_DOCS_RETRIES: "1" };
    const { url, child } = await startWorker(["--queue", "kv"], env);
    try {
      await postSet(url, origins, [origins.allDocs.ids[6]!]);
      const stats = await untilIdle(url, 120_000);
      assert.equal(stats.dead, 1, JSON.stringify(stats));
      const dead = await json(await api(url, "-/worker/dead"));
      const [letter] = dead.items as {
        id: string;
        payload: { names: string[] };
        lastError: string;
        attempts: number;
      }[];
      assert.deepEqual(letter!.payload.names, ["pkg-3"]);
      assert.match(letter!.lastError, /500/);
      assert.equal(letter!.attempts, 2);
      const listed = await runCli(["worker", "dead", "--worker", url], env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(`^${letter!.id}  dead  attempts 2  .*500`));
      // Retried while the name still fails: dead again, attempts counted afresh.
      const all = await runCli(["worker", "dead", "--retry-all", "--worker", url, "--json"], env);
      assert.deepEqual(JSON.parse(all.stdout), { retried: [letter!.id] });
      await untilIdle(url, 120_000);
      const again = await json(await api(url, `-/worker/items/${encodeURIComponent(letter!.id)}`));
      assert.deepEqual([again.state, again.attempts], ["dead", 2]);
      broken = false;
      const retried = await api(url, `-/worker/dead/${encodeURIComponent(letter!.id)}/retry`, {
        method: "POST",
      });
      assert.equal(retried.status, 202);
      await retried.body?.cancel();
      const after = await untilIdle(url);
      assert.equal(after.dead, 0, JSON.stringify(after));
      await assertMirrored(origins, url);
    } finally {
      await child.stop();
    }
  });
});

Deno.test("worker: kill -9 mid-run, then a restart completes the mirror and refetches at most the items in hand", () => {
  let slow = true;
  return withOrigins({
    count: 60,
    // Slow bodies, so the kill lands mid-run.
    registryFaults: () => slow ? { kind: "delay", ms: 60 } : undefined,
  }, async (origins) => {
    const args = ["--queue", "kv", "--concurrency", "2", "--batch-size", "4"];
    const first = await startWorker(args, origins.env);
    const ids = origins.allDocs.ids;
    await postSet(first.url, origins, [ids[20]!, ids[40]!]);
    const until = Date.now() + 60_000;
    while (bodiesSent(origins.registry).size < 12) {
      if (Date.now() > until) assert.fail("no progress before the kill");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const killed = await first.child.stop("SIGKILL");
    assert.equal(killed.signal, "SIGKILL");
    const before = new Map(bodiesSent(origins.registry));
    slow = false;
    const second = await startWorker(args, origins.env);
    try {
      const stats = await untilIdle(second.url, 120_000);
      assert.equal(stats.dead, 0, JSON.stringify(stats));
      await assertMirrored(origins, second.url);
      const again = [...bodiesSent(origins.registry)].filter(([name, n]) =>
        n > 1 && before.has(name)
      );
      // Two items in hand of at most four names each.
      assert.ok(again.length <= 8, `refetched ${again.map(([n]) => n).join(", ")}`);
    } finally {
      await second.child.stop();
    }
  });
});

Deno.test("worker start refuses to run without a token unless --no-auth on loopback, and bad flags exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_REGISTRY: "http://127.0.0.1:9/" };
    const noToken = await runCli(["worker", "start", "--port", "0"], env);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /ALL_DOCS_WORKER_TOKEN/);
    const publicNoAuth = await runCli(
      ["worker", "start", "--port", "0", "--no-auth", "--hostname", "0.0.0.0", "--public"],
      env,
    );
    assert.equal(publicNoAuth.code, 2);
    for (const args of [["--queue", "redis"], ["--concurrency", "300"], ["--batch-size", "0"]]) {
      const bad = await runCli(["worker", "start", "--port", "0", "--no-auth", ...args], env);
      assert.equal(bad.code, 2, args.join(" "));
    }
    const loopback = await startWorker(["--no-auth", "--queue", "memory"], env);
    const stats = await fetch(new URL("-/worker/stats", loopback.url));
    assert.equal(stats.status, 200);
    await stats.body?.cancel();
    const exit = await loopback.child.stop();
    assert.equal(exit.code, 0);
    const enqueue = await runCli(["worker", "enqueue", "packuments", join(dir, "none.txt")], env);
    assert.equal(enqueue.code, 2);
    const help = await runCli(["worker", "start", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--until-idle/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("worker enqueue straight into the kv queue, then worker start --until-idle runs it and exits", () =>
  withOrigins({ count: 20 }, async (origins) => {
    const pivots = join(origins.dir, "pivots.json");
    await Deno.writeTextFile(pivots, JSON.stringify([origins.allDocs.ids[10]]));
    const enqueued = await runCli(
      ["worker", "enqueue", "partition-set", "--pivots", pivots, "--packuments", "corgi", "--json"],
      origins.env,
    );
    assert.equal(enqueued.code, 0, enqueued.stderr);
    const { accepted } = JSON.parse(enqueued.stdout) as { accepted: string[] };
    assert.equal(accepted.length, 1);
    const again = await runCli(
      ["worker", "enqueue", "partition-set", "--pivots", pivots, "--packuments=corgi", "--json"],
      origins.env,
    );
    assert.deepEqual(JSON.parse(again.stdout).duplicates, accepted);
    const queued = await runCli(["worker", "status", accepted[0]!, "--json"], origins.env);
    assert.equal(queued.code, 0, queued.stderr);
    assert.equal(JSON.parse(queued.stdout).state, "queued");
    assert.equal(JSON.parse(queued.stdout).payload.packuments, "corgi");
    const run = await runCli(
      ["worker", "start", "--port", "0", "--until-idle", "--quiet", "--json"],
      origins.env,
    );
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
    assert.equal(summary.type, "summary");
    assert.equal(summary.dead, 0);
    const index = await runCli(["cache", "create-index"], origins.env);
    assert.equal(index.stdout, origins.allDocs.rows.map((r) => `${r.id},${r.rev}\n`).join(""));
    const done = await runCli(["worker", "status", accepted[0]!], origins.env);
    assert.match(done.stdout, /done/);
  }));
