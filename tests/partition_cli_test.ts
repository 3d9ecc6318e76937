import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./_support/run_cli.ts";
import { type AllDocsFixture, startAllDocsFixture } from "./_support/all_docs_fixture.ts";

const root = new URL("../", import.meta.url).pathname;

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
    const pivotsFile = join(dir, "pivots.ts");
    await Deno.writeTextFile(
      pivotsFile,
      `export const pivots = ${JSON.stringify([fixture.ids[100], fixture.ids[11_000]])};`,
    );
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    const refresh = await runCli(["partition", "refresh", "--pivots", pivotsFile], env);
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.match(
      refresh.stdout,
      /^partitions 3 \(fetched 3, unchanged 0, skipped 0, failed 0\), rows 12000, requests \d+, retries 0, [\d.]+ s\n$/,
    );
    const index = await runCli(["cache", "create-index"], env);
    assert.equal(index.code, 0);
    assert.equal(index.stdout, indexText(fixture));

    const status = JSON.parse((await runCli(["partition", "status", "--json"], env)).stdout);
    assert.equal(status.length, 1);
    assert.equal(status[0].done, 3);
    assert.equal(status[0].rows, 12_000);
    assert.equal(status[0].origin, fixture.origin);

    const list = (await runCli(["partition", "list", "--json"], env)).stdout.trim().split("\n")
      .map((line) => JSON.parse(line));
    assert.deepEqual(list.map((p) => p.rows).sort((a, b) => a - b), [100, 1000, 10_900]);

    const again = await runCli(["partition", "refresh", "--pivots", pivotsFile, "--json"], env);
    const events = again.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.equal(events[0].type, "start");
    assert.equal(events[0].pass, 2);
    const summary = events.at(-1);
    assert.equal(summary.type, "summary");
    assert.equal(summary.fetched, 3);
    assert.equal(summary.rows, 12_000);
  }));

Deno.test("partition refresh killed with SIGKILL resumes without redoing finished partitions", () =>
  withFixture(
    { count: 20_000, faults: () => ({ kind: "delay", ms: 40 }) },
    async (fixture, dir) => {
      const pivots = Array.from({ length: 9 }, (_, i) => fixture.ids[(i + 1) * 2000]!);
      const pivotsFile = join(dir, "pivots.json");
      await Deno.writeTextFile(pivotsFile, JSON.stringify(pivots));
      const env = {
        ALL_DOCS_ORIGIN: fixture.origin,
        ALL_DOCS_CACHE_DIR: dir,
        RUST_BACKTRACE: "0",
        NO_COLOR: "1",
      };
      const args = [
        "run",
        "-A",
        "cli.ts",
        "partition",
        "refresh",
        "--pivots",
        pivotsFile,
        "--limit",
        "500",
      ];
      const child = new Deno.Command(Deno.execPath(), {
        args: [...args, "--json", "--parallel", "2"],
        cwd: root,
        env,
        stdout: "piped",
        stderr: "null",
      }).spawn();
      let done = 0;
      const decoder = new TextDecoder();
      let buffered = "";
      const reader = child.stdout.getReader();
      while (done < 3) {
        const { value, done: eof } = await reader.read();
        if (eof) break;
        buffered += decoder.decode(value, { stream: true });
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        done += lines.filter((l) => l.includes('"partition-done"')).length;
      }
      child.kill("SIGKILL");
      await reader.cancel();
      const status = await child.status;
      assert.equal(status.signal, "SIGKILL");
      assert.ok(done >= 3 && done < 10, `${done} partitions finished before the kill`);

      const resumed = await new Deno.Command(Deno.execPath(), {
        args: [...args, "--json"],
        cwd: root,
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(resumed.code, 0, decoder.decode(resumed.stderr));
      const events = decoder.decode(resumed.stdout).trim().split("\n").map((l) => JSON.parse(l));
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

      fixture.requests.length = 0;
      const fresh = await runCli([...args, "--fresh", "--json"], env);
      assert.equal(fresh.code, 1);
      const summary = JSON.parse(fresh.stdout.trim().split("\n").at(-1)!);
      assert.equal(summary.skipped, 0, "--fresh forgot the finished partitions");
      assert.equal(summary.fetched, 2);
      assert.equal(fixture.requests.length, 3);
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

Deno.test("partition refresh reads a single range of 1,000,000 rows", () =>
  withFixture({ count: 1_000_000 }, async (fixture, dir) => {
    const pivotsFile = join(dir, "none.json");
    await Deno.writeTextFile(pivotsFile, "[]");
    const env = { ALL_DOCS_ORIGIN: fixture.origin, ALL_DOCS_CACHE_DIR: dir };
    const refresh = await runCli(["partition", "refresh", "--pivots", pivotsFile, "--json"], env);
    assert.equal(refresh.code, 0, refresh.stderr);
    const summary = JSON.parse(refresh.stdout.trim().split("\n").at(-1)!);
    assert.equal(summary.rows, 1_000_000);
    assert.equal(summary.requests, 101, "100 full pages and one short one");
    const index = await runCli(["cache", "create-index"], env);
    const lines = index.stdout.split("\n");
    assert.equal(lines.length, 1_000_001);
    assert.equal(lines[0], `${fixture.rows[0]!.id},${fixture.rows[0]!.rev}`);
    assert.equal(lines[999_999], `${fixture.rows[999_999]!.id},${fixture.rows[999_999]!.rev}`);
  }));
