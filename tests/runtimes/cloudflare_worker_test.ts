/**
 * The full Cloudflare worker (`workers/cloudflare.ts`, bundled by `bundle:edge`) end to end
 * inside workerd: `deno task dev:cloudflare` runs it in Miniflare with real R2, D1 and Queues
 * (two bands and a dead-letter queue), and the test drives it over HTTP exactly as it drives
 * `worker start`, against the strict `_all_docs` and registry fixtures.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { bundleEdge } from "../../scripts/bundle_edge.ts";
import { cloudflareSettings, followItem, scheduledItem } from "../../workers/cloudflare.ts";
import { toWorkItem } from "../../src/worker/items.ts";
import { type Child, start } from "../_support/spawn.ts";
import {
  api,
  assertListing,
  assertMirrored,
  changeOrigin,
  json,
  type Origins,
  postSet,
  TOKEN,
  twentyPercentFaults,
  untilIdle,
  withOrigins,
} from "../_support/worker_e2e.ts";

const SCRIPT = new URL("../../scripts/dev_cloudflare.ts", import.meta.url).pathname;

/** The bundle, built once for every test of this file. */
let bundled: Promise<string> | undefined;

function bundle(): Promise<string> {
  if (bundled === undefined) {
    // In the git-ignored .tmp/, rebuilt by every run of this file.
    const out = new URL("../../.tmp/edge/cloudflare_worker_test.js", import.meta.url).pathname;
    bundled = bundleEdge(out).then((built) => built.path);
  }
  return bundled;
}

/** `dev:cloudflare` on a free port over `origins`, with `args` added. */
async function startDev(
  origins: Origins,
  args: string[] = [],
): Promise<{ child: Child; url: string }> {
  const child = start(Deno.execPath(), [
    "run",
    "-A",
    SCRIPT,
    "--port",
    "0",
    "--script",
    await bundle(),
    "--origin",
    origins.allDocs.origin,
    "--registry",
    origins.registry.url,
    "--token",
    TOKEN,
    ...args,
  ]);
  const line = await child.line().catch(async (error) => {
    await child.stop();
    throw error;
  });
  const url = /^listening (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line)?.[1];
  if (!url) {
    await child.stop();
    assert.fail(`unexpected first line ${JSON.stringify(line)}\n${child.output()}`);
  }
  return { child, url };
}

async function stopDev(child: Child): Promise<void> {
  const exit = await child.stop();
  assert.equal(exit.code, 0, child.output());
}

Deno.test("cloudflare worker in workerd: a set posted to the API, then the cron refresh, mirror the origins", () =>
  withOrigins({ count: 24 }, async (origins) => {
    const ids = origins.allDocs.ids;
    const { child, url } = await startDev(origins, [
      "--pivots",
      JSON.stringify([ids[5]]),
      "--packuments",
      "full",
    ]);
    try {
      const health = await api(url, "-/worker/health", {}, "");
      assert.deepEqual(await json(health), { status: "ok", engine: "cloudflare" });
      for (const path of ["-/worker/stats", "-/worker/dead", "-/worker/items"]) {
        const refused = await api(url, path, {}, "");
        assert.equal(refused.status, 401, path);
        assert.equal(refused.headers.get("www-authenticate"), "Bearer");
        await refused.body?.cancel();
      }
      const wrong = await api(url, "-/worker/stats", {}, "not-the-token");
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();

      const posted = await postSet(url, origins, [ids[12]!]);
      assert.equal((posted.accepted as string[]).length, 1);
      const stats = await untilIdle(url);
      assert.equal(stats.dead, 0, JSON.stringify(stats));
      await assertListing(origins, url);
      await assertMirrored(origins, url, { index: false });
      const [setId] = posted.accepted as string[];
      const status = await json(await api(url, `-/worker/items/${encodeURIComponent(setId!)}`));
      assert.equal(status.state, "done");

      // The cron trigger, fired as Miniflare fires it: a pass of the configured set (other
      // pivots, so another item); its packuments are all cached at their _rev already.
      const listed = origins.allDocs.requests.length;
      const fired = await fetch(new URL("cdn-cgi/handler/scheduled?cron=0+*+*+*+*", url));
      assert.equal(fired.status, 200);
      assert.equal(await fired.text(), "ok");
      const after = await untilIdle(url);
      assert.equal(after.dead, 0, JSON.stringify(after));
      // The new set item and its two partitions.
      assert.ok(
        after.done! >= stats.done! + 3,
        `${JSON.stringify(stats)} ${JSON.stringify(after)}`,
      );
      assert.ok(origins.allDocs.requests.length >= listed + 2, "the cron pass read the origin");
      await assertListing(origins, url);
      await assertMirrored(origins, url, { index: false });
    } finally {
      await stopDev(child);
    }
  }));

Deno.test("cloudflare worker in workerd: the same mirror through 20% injected faults", () => {
  return withOrigins(twentyPercentFaults(31, 32), async (origins) => {
    const { child, url } = await startDev(origins, ["--retries", "6"]);
    try {
      const ids = origins.allDocs.ids;
      await postSet(url, origins, [ids[9]!, ids[19]!, ids[29]!]);
      const stats = await untilIdle(url, 120_000);
      assert.equal(stats.dead, 0, JSON.stringify(stats));
      await assertListing(origins, url);
      await assertMirrored(origins, url, { index: false });
      const faulted = origins.registry.requests.filter((r) => r.status !== 200);
      assert.ok(faulted.length >= 3, `${faulted.length} registry faults`);
      assert.ok(origins.allDocs.requests.some((r) => r.fault !== undefined), "origin faults");
    } finally {
      await stopDev(child);
    }
  });
});

Deno.test("cloudflare worker in workerd: a name that always fails is a dead letter, retried from the API", () => {
  let broken = true;
  return withOrigins({
    count: 12,
    registryFaults: (request) =>
      broken && request.name === "pkg-3" ? { kind: "status", status: 500 } : undefined,
  }, async (origins) => {
    const { child, url } = await startDev(origins, ["--retries", "1"]);
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
      const missing = await fetch(new URL("pkg-3", url), {
        headers: { accept: "application/json" },
      });
      assert.equal(missing.status, 404);
      await missing.body?.cancel();

      broken = false;
      const retried = await api(url, `-/worker/dead/${encodeURIComponent(letter!.id)}/retry`, {
        method: "POST",
      });
      assert.equal(retried.status, 202);
      await retried.body?.cancel();
      const after = await untilIdle(url, 120_000);
      assert.equal(after.dead, 0, JSON.stringify(after));
      const status = await json(await api(url, `-/worker/items/${encodeURIComponent(letter!.id)}`));
      assert.equal(status.state, "done");
      await assertListing(origins, url);
      await assertMirrored(origins, url, { index: false });
    } finally {
      await stopDev(child);
    }
  });
});

Deno.test("cloudflare worker in workerd: the FOLLOW_CRON trigger follows _changes into the partitions", () =>
  withOrigins({ count: 24 }, async (origins) => {
    const followCron = "*/5 * * * *";
    const { child, url } = await startDev(origins, ["--follow-cron", followCron]);
    try {
      // A pass of a set records the origin's update_seq: where the follow starts.
      await postSet(url, origins, [origins.allDocs.ids[12]!]);
      const stats = await untilIdle(url);
      assert.equal(stats.dead, 0, JSON.stringify(stats));
      changeOrigin(origins, 3);
      const changesBefore = origins.allDocs.requests.filter((r) =>
        r.url.includes("_changes")
      ).length;
      const fired = await fetch(
        new URL(`cdn-cgi/handler/scheduled?cron=${encodeURIComponent(followCron)}`, url),
      );
      assert.equal(fired.status, 200);
      assert.equal(await fired.text(), "ok");
      const after = await untilIdle(url);
      assert.equal(after.dead, 0, JSON.stringify(after));
      assert.equal(
        after.done,
        stats.done! + 1,
        `${JSON.stringify(stats)} ${JSON.stringify(after)}`,
      );
      assert.ok(
        origins.allDocs.requests.filter((r) => r.url.includes("_changes")).length > changesBefore,
        "the follow read _changes",
      );
      await assertListing(origins, url);
      const id = toWorkItem(followItem(cloudflareSettings({
        WORKER_TOKEN: TOKEN,
        REGISTRY: origins.registry.url,
        DEAD_LETTER_QUEUE: "dead",
        ORIGIN: origins.allDocs.origin,
        FOLLOW_CRON: followCron,
      }))).id;
      const status = await json(await api(url, `-/worker/items/${encodeURIComponent(id)}`));
      assert.equal(status.state, "done");
    } finally {
      await stopDev(child);
    }
  }));

Deno.test("cloudflare worker in workerd: --persist keeps R2 and D1 across restarts", () =>
  withOrigins({ count: 8 }, async (origins) => {
    const persist = join(origins.dir, "persist");
    const first = await startDev(origins, ["--persist", persist]);
    let stats: Record<string, number>;
    try {
      await postSet(first.url, origins, [origins.allDocs.ids[3]!]);
      stats = await untilIdle(first.url);
      assert.equal(stats.dead, 0, JSON.stringify(stats));
    } finally {
      await stopDev(first.child);
    }
    const second = await startDev(origins, ["--persist", persist]);
    try {
      const again = await json(await api(second.url, "-/worker/stats"));
      assert.deepEqual(again, { ...stats, engine: "cloudflare" });
      await assertListing(origins, second.url);
      await assertMirrored(origins, second.url, { index: false });
    } finally {
      await stopDev(second.child);
    }
  }));

Deno.test("cloudflareSettings() names the binding that is missing or invalid", () => {
  const base = {
    WORKER_TOKEN: "t",
    REGISTRY: "http://127.0.0.1:4873",
    DEAD_LETTER_QUEUE: "all-docs-dead",
  };
  const cases: [Record<string, string>, RegExp][] = [
    [{ WORKER_TOKEN: "" }, /WORKER_TOKEN binding/],
    [{ REGISTRY: "" }, /REGISTRY binding/],
    [{ REGISTRY: "ftp://127.0.0.1/" }, /REGISTRY must be an http\(s\) URL/],
    [{ DEAD_LETTER_QUEUE: "" }, /DEAD_LETTER_QUEUE binding/],
    [{ PIVOTS: '["g"]' }, /PIVOTS needs ORIGIN/],
    [{ ORIGIN: "http://127.0.0.1:5984/r", PIVOTS: '["b","a"]' }, /PIVOTS is invalid/],
    [{ PACKUMENTS: "some" }, /PACKUMENTS must be full or corgi/],
    [{ CONCURRENCY: "0" }, /CONCURRENCY/],
    [{ RETRIES: "-1" }, /RETRIES/],
    [{ FOLLOW_CRON: "*/5 * * * *" }, /FOLLOW_CRON needs ORIGIN/],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => cloudflareSettings({ ...base, ...env }), message, JSON.stringify(env));
  }
  const settings = cloudflareSettings({
    ...base,
    ORIGIN: "http://127.0.0.1:5984/registry",
    PIVOTS: '["g","p"]',
    PACKUMENTS: "corgi",
    RETRIES: "2",
  });
  assert.equal(settings.retries, 2);
  const item = toWorkItem(scheduledItem(settings));
  assert.equal(item.type, "partition-set");
  assert.deepEqual(item.payload, {
    origin: "http://127.0.0.1:5984/registry/",
    pivots: ["g", "p"],
    packuments: "corgi",
    registry: "http://127.0.0.1:4873/",
  });
  const follow = toWorkItem(followItem(settings));
  assert.equal(follow.type, "changes");
  assert.deepEqual(follow.payload, {
    origin: "http://127.0.0.1:5984/registry/",
    packuments: "corgi",
    registry: "http://127.0.0.1:4873/",
  });
});
