import assert from "node:assert/strict";
import { join } from "node:path";
import { start } from "../_support/spawn.ts";
import { deploySettings, followItem, scheduledItem } from "../../workers/deno_deploy.ts";
import { toWorkItem } from "../../src/worker/items.ts";
import {
  api,
  assertMirrored,
  changeOrigin,
  json,
  postSet,
  TOKEN,
  untilIdle,
  withOrigins,
} from "../_support/worker_e2e.ts";

const ENTRY = new URL("../../workers/deno_deploy.ts", import.meta.url).pathname;

Deno.test("workers/deno_deploy.ts runs locally as on Deploy: API, queue and cache on one KV", () =>
  withOrigins({ count: 24 }, async (origins) => {
    const env = {
      ALL_DOCS_WORKER_TOKEN: TOKEN,
      ALL_DOCS_REGISTRY: origins.registry.url,
      ALL_DOCS_KV_PATH: join(origins.dir, "deploy.kv"),
      // A scheduled refresh is registered (Deno.cron), on a schedule that does not fire here.
      ALL_DOCS_ORIGIN: origins.allDocs.origin,
      ALL_DOCS_PIVOTS: JSON.stringify([origins.allDocs.ids[5]]),
      ALL_DOCS_CRON: "0 0 1 1 *",
      PORT: "0",
      RUST_BACKTRACE: "0",
    };
    const child = start(Deno.execPath(), ["run", "-A", ENTRY], { env });
    try {
      const line = await child.line();
      const url = /^listening (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line)?.[1];
      assert.ok(url, `unexpected first line ${JSON.stringify(line)}\n${child.output()}`);
      const refused = await api(url, "-/worker/stats", {}, "");
      assert.equal(refused.status, 401);
      await refused.body?.cancel();
      await postSet(url, origins, [origins.allDocs.ids[12]!]);
      const stats = await untilIdle(url);
      assert.equal(stats.dead, 0, JSON.stringify(stats));
      // The cache is on the KV database, so the mirror is checked through the worker's
      // replica: _all_docs and every packument.
      const listing = await fetch(new URL("_all_docs", url));
      const rows =
        (await listing.json() as { rows: { id: string; value: { rev: string } }[] }).rows;
      assert.deepEqual(
        rows.map((r) => `${r.id},${r.value.rev}`),
        origins.allDocs.rows.map((r) => `${r.id},${r.rev}`),
      );
      await assertMirrored(origins, url, { index: false });
    } finally {
      const exit = await child.stop();
      assert.equal(exit.code, 0, exit.stderr);
    }
  }));

Deno.test("workers/deno_deploy.ts refuses missing or bad settings with exit 2, naming the variable", async () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /ALL_DOCS_WORKER_TOKEN/],
    [{ ALL_DOCS_WORKER_TOKEN: "t" }, /ALL_DOCS_REGISTRY/],
    [{ ALL_DOCS_WORKER_TOKEN: "t", ALL_DOCS_REGISTRY: "ftp://x/" }, /ALL_DOCS_REGISTRY/],
    [
      {
        ALL_DOCS_WORKER_TOKEN: "t",
        ALL_DOCS_REGISTRY: "http://127.0.0.1:9/",
        ALL_DOCS_PIVOTS: "[]",
      },
      /ALL_DOCS_PIVOTS needs ALL_DOCS_ORIGIN/,
    ],
    [
      {
        ALL_DOCS_WORKER_TOKEN: "t",
        ALL_DOCS_REGISTRY: "http://127.0.0.1:9/",
        ALL_DOCS_ORIGIN: "http://127.0.0.1:9/",
        ALL_DOCS_PIVOTS: '["b","a"]',
      },
      /Invalid ALL_DOCS_PIVOTS/,
    ],
  ];
  cases.push([
    {
      ALL_DOCS_WORKER_TOKEN: "t",
      ALL_DOCS_REGISTRY: "http://127.0.0.1:9/",
      ALL_DOCS_FOLLOW_CRON: "*/5 * * * *",
    },
    /ALL_DOCS_FOLLOW_CRON needs ALL_DOCS_ORIGIN/,
  ]);
  for (const [env, message] of cases) {
    const child = start(Deno.execPath(), ["run", "-A", ENTRY], {
      env: {
        ALL_DOCS_WORKER_TOKEN: "",
        ALL_DOCS_REGISTRY: "",
        ALL_DOCS_ORIGIN: "",
        ALL_DOCS_PIVOTS: "",
        ...env,
        RUST_BACKTRACE: "0",
      },
    });
    const exit = await child.wait();
    assert.equal(exit.code, 2, JSON.stringify(env));
    assert.match(exit.stderr, message);
  }
});

Deno.test("the scheduled refresh enqueues a valid pass of the configured set", () => {
  const settings = deploySettings((name) =>
    ({
      ALL_DOCS_WORKER_TOKEN: "t",
      ALL_DOCS_REGISTRY: "http://127.0.0.1:4873",
      ALL_DOCS_ORIGIN: "http://127.0.0.1:5984/registry",
      ALL_DOCS_PIVOTS: '["g","p"]',
      ALL_DOCS_PACKUMENTS: "corgi",
    } as Record<string, string>)[name]
  );
  assert.equal(settings.cron, "0 * * * *");
  const item = toWorkItem(scheduledItem(settings));
  assert.equal(item.type, "partition-set");
  assert.deepEqual(item.payload, {
    origin: "http://127.0.0.1:5984/registry/",
    pivots: ["g", "p"],
    packuments: "corgi",
    registry: "http://127.0.0.1:4873/",
  });
});

Deno.test("workers/deno_deploy.ts: the scheduled follow's item patches the partitions, one at a time", () =>
  withOrigins({ count: 24 }, async (origins) => {
    const env = {
      ALL_DOCS_WORKER_TOKEN: TOKEN,
      ALL_DOCS_REGISTRY: origins.registry.url,
      ALL_DOCS_KV_PATH: join(origins.dir, "deploy.kv"),
      ALL_DOCS_ORIGIN: origins.allDocs.origin,
      // Registered (Deno.cron), on a schedule that does not fire here: the test enqueues the
      // item the cron enqueues.
      ALL_DOCS_FOLLOW_CRON: "0 0 1 1 *",
      PORT: "0",
      RUST_BACKTRACE: "0",
    };
    const settings = deploySettings((name) => (env as Record<string, string>)[name]);
    const child = start(Deno.execPath(), ["run", "-A", ENTRY], { env });
    try {
      const line = await child.line();
      const url = /^listening (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line)?.[1];
      assert.ok(url, `unexpected first line ${JSON.stringify(line)}\n${child.output()}`);
      // A pass of a set records the origin's update_seq: where the follow starts.
      await postSet(url, origins, [origins.allDocs.ids[12]!]);
      const first = await untilIdle(url);
      assert.equal(first.dead, 0, JSON.stringify(first));
      changeOrigin(origins, 7);
      const post = async () =>
        await json(
          await api(url, "-/worker/items", {
            method: "POST",
            body: JSON.stringify({ items: [followItem(settings), followItem(settings)] }),
          }),
        );
      const posted = await post();
      assert.equal((posted.accepted as string[]).length, 1, JSON.stringify(posted));
      assert.match((posted.accepted as string[])[0]!, /^changes:/);
      // The same firing twice, or a firing while the follow waits: one follow.
      assert.equal((posted.duplicates as string[]).length, 1, JSON.stringify(posted));
      const after = await untilIdle(url);
      assert.equal(after.dead, 0, JSON.stringify(after));
      const listing = await fetch(new URL("_all_docs", url));
      const rows =
        (await listing.json() as { rows: { id: string; value: { rev: string } }[] }).rows;
      assert.deepEqual(
        rows.map((r) => `${r.id},${r.value.rev}`),
        origins.allDocs.rows.map((r) => `${r.id},${r.rev}`),
      );
      // Done: the next firing is accepted again.
      assert.equal(((await post()).accepted as string[]).length, 1);
      await untilIdle(url);
    } finally {
      const exit = await child.stop();
      assert.equal(exit.code, 0, exit.stderr);
    }
  }));

Deno.test("the scheduled follow enqueues a valid changes item of the origin", () => {
  const settings = deploySettings((name) =>
    ({
      ALL_DOCS_WORKER_TOKEN: "t",
      ALL_DOCS_REGISTRY: "http://127.0.0.1:4873",
      ALL_DOCS_ORIGIN: "http://127.0.0.1:5984/registry",
      ALL_DOCS_FOLLOW_CRON: "*/5 * * * *",
      ALL_DOCS_PACKUMENTS: "corgi",
    } as Record<string, string>)[name]
  );
  assert.equal(settings.followCron, "*/5 * * * *");
  const item = toWorkItem(followItem(settings));
  assert.equal(item.type, "changes");
  assert.match(item.id, /^changes:/);
  assert.deepEqual(item.payload, {
    origin: "http://127.0.0.1:5984/registry/",
    packuments: "corgi",
    registry: "http://127.0.0.1:4873/",
  });
});
