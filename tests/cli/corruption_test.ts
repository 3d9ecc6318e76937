import assert from "node:assert/strict";
import { join } from "node:path";
import { BODY_PREFIX, originKey, partitionKey } from "../../src/storage/keys.ts";
import type { StorageDriver } from "../../src/storage/driver.ts";
import { createStorageDriver } from "../../drivers/select.deno.ts";
import { runCli } from "../_support/run_cli.ts";
import { type AllDocsFixture, startAllDocsFixture } from "../_support/all_docs_fixture.ts";

/** Flips one byte of a stored value, `back` bytes before its end. */
async function flip(driver: StorageDriver, key: string, back: number): Promise<void> {
  const raw = await driver.get(key);
  assert.ok(raw, `${key} is stored`);
  raw[raw.length - back] = raw[raw.length - back]! ^ 0x01;
  await driver.put(key, raw);
}

/** The body key of a partition stored apart from its header, if it is. */
async function bodyKeyOf(driver: StorageDriver, key: string): Promise<string | undefined> {
  const part = key.slice("v1:".length);
  for await (const bodyKey of driver.list({ prefix: BODY_PREFIX })) {
    if (bodyKey.startsWith(`${BODY_PREFIX}${part}:`)) return bodyKey;
  }
  return undefined;
}

async function withCache(
  fn: (fixture: AllDocsFixture, dir: string, env: Record<string, string>) => Promise<void>,
): Promise<void> {
  // About 4,000 names: the partition below "m" is stored apart (over 64 KiB), the one from "y"
  // inline in its record.
  const fixture = await startAllDocsFixture({ count: 4_000 });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    await Deno.writeTextFile(join(dir, "pivots.json"), '["m","y"]');
    const refresh = await runCli(
      ["partition", "refresh", "--pivots", join(dir, "pivots.json"), "--quiet"],
      env,
    );
    assert.equal(refresh.code, 0, refresh.stderr);
    await fn(fixture, dir, env);
  } finally {
    await fixture.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function corrupt(dir: string, origin: string): Promise<{ apart: string; inline: string }> {
  const key = (start: string, end: string) => partitionKey(originKey(origin), start, end);
  const apart = key("", "m");
  const inline = key("y", "");
  const driver = await createStorageDriver({ storage: "fs", cacheDir: dir });
  try {
    const body = await bodyKeyOf(driver, apart);
    assert.ok(body, "the first partition is stored apart");
    assert.equal(await bodyKeyOf(driver, inline), undefined, "the last one is inline");
    await flip(driver, body, 20);
    await flip(driver, inline, 5);
  } finally {
    await driver.close();
  }
  return { apart, inline };
}

Deno.test("a corrupt partition is reported, fails the command and is fetched again", () =>
  withCache(async (fixture, dir, env) => {
    const expected = fixture.rows.map((r) => `${r.id},${r.rev}\n`).join("");
    const { apart, inline } = await corrupt(dir, fixture.origin);

    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.code, 1, "create-index fails");
    assert.match(index.stderr, new RegExp(`corrupt  ${apart}: body does not match`));
    assert.match(index.stderr, new RegExp(`corrupt  ${inline}: inline body does not match`));
    assert.ok(index.stdout.length < expected.length);

    const status = await runCli(["partition", "status", "--json"], env);
    assert.equal(status.code, 0, status.stderr);
    const [set] = JSON.parse(status.stdout);
    assert.deepEqual(set.missing, [0, 2]);
    assert.equal(set.done, 1);
    assert.equal(set.pending, 2);
    const text = await runCli(["partition", "status"], env);
    assert.match(text.stdout, /partitions 0, 2 need a refresh/);

    const refresh = await runCli(
      ["partition", "refresh", "--pivots", join(dir, "pivots.json"), "--json"],
      env,
    );
    assert.equal(refresh.code, 0, refresh.stderr);
    const summary = JSON.parse(refresh.stdout.trim().split("\n").at(-1)!);
    assert.equal(summary.fetched, 2, "only the two lost partitions are fetched again");
    const again = await runCli(["cache", "create-index"], env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, expected);
  }));

Deno.test("partition status reports a corrupt inline partition as needing a refresh", () =>
  withCache(async (fixture, dir, env) => {
    const { inline } = await corrupt(dir, fixture.origin);
    const status = await runCli(["partition", "status", "--json"], env);
    assert.equal(status.code, 1, "status read a corrupt entry");
    const line = JSON.parse(status.stderr.trim().split("\n")[0]!);
    assert.deepEqual(line, {
      type: "corrupt",
      key: inline,
      reason: "inline body does not match its integrity",
      removed: true,
    });
    assert.deepEqual(JSON.parse(status.stdout)[0].missing, [2]);
  }));

Deno.test("cache export reports corrupt partitions and exits 1", () =>
  withCache(async (fixture, dir, env) => {
    const { apart, inline } = await corrupt(dir, fixture.origin);
    const exported = await runCli(["cache", "export", "--type", "partition"], env);
    assert.equal(exported.code, 1);
    assert.match(exported.stderr, new RegExp(`corrupt  ${apart}`));
    assert.match(exported.stderr, new RegExp(`corrupt  ${inline}`));
    const lines = exported.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 1, "the intact partition is exported");
    // Removed: a second run finds nothing corrupt.
    const second = await runCli(["cache", "export", "--type", "partition"], env);
    assert.equal(second.code, 0, second.stderr);
  }));
