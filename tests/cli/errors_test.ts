import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ENV = { ALL_DOCS_STORAGE: "memory", ALL_DOCS_ORIGIN: "http://127.0.0.1:9/" };

Deno.test("a pivots module whose list throws when read exits 2 with one line", () =>
  withDir(async (dir) => {
    const modules: [string, string][] = [
      [
        "getter.mjs",
        'export const pivots = ["a"];\n' +
        'Object.defineProperty(pivots, 0, { get() { throw new Error("no pivots today"); } });\n',
      ],
      [
        "proxy.mjs",
        "export default new Proxy([], { get() { throw new Error('no pivots today'); } });\n",
      ],
    ];
    for (const [name, source] of modules) {
      const file = join(dir, name);
      await Deno.writeTextFile(file, source);
      const run = await runCli(["partition", "refresh", "--pivots", file], ENV);
      assert.equal(run.code, 2, `${name}: ${run.stderr}`);
      assert.equal(
        run.stderr,
        `error: Cannot load pivots module '${file}': no pivots today\n`,
        name,
      );
    }
  }));

Deno.test("a pivots module still loading after the timeout exits 2 with one line", () =>
  withDir(async (dir) => {
    const file = join(dir, "never.mjs");
    // A timer keeps the process alive: the CLI must not wait for it.
    await Deno.writeTextFile(
      file,
      "setInterval(() => {}, 1000);\nawait new Promise(() => {});\nexport const pivots = [];\n",
    );
    const started = Date.now();
    const run = await runCli(["partition", "refresh", "--pivots", file], ENV);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(
      run.stderr,
      `error: Cannot load pivots module '${file}': it did not finish loading within 10 s\n`,
    );
    assert.ok(Date.now() - started < 20_000, "exits soon after the timeout");
  }));

Deno.test("an invalid ALL_DOCS_* value names the variable; an invalid flag names the flag", async () => {
  const cases: [string[], Record<string, string>, string][] = [
    [[], { ALL_DOCS_RETRIES: "-1" }, "Invalid ALL_DOCS_RETRIES: "],
    [[], { ALL_DOCS_CONCURRENCY: "many" }, "Invalid ALL_DOCS_CONCURRENCY: "],
    [[], { ALL_DOCS_TIMEOUT: "1.5" }, "Invalid ALL_DOCS_TIMEOUT: "],
    [[], { ALL_DOCS_RATE_LIMIT: "x" }, "Invalid ALL_DOCS_RATE_LIMIT: "],
    [[], { ALL_DOCS_ORIGIN: "ftp://x" }, "Invalid ALL_DOCS_ORIGIN: "],
    [[], { ALL_DOCS_REGISTRY: "nope" }, "Invalid ALL_DOCS_REGISTRY: "],
    [[], { ALL_DOCS_ORIGIN_KEY: "a:b" }, "Invalid ALL_DOCS_ORIGIN_KEY: "],
    [[], { ALL_DOCS_STORAGE: "s4" }, "Invalid ALL_DOCS_STORAGE: "],
    [["--retries=-1"], { ALL_DOCS_RETRIES: "2" }, "Invalid --retries: "],
    [["--storage", "s4"], {}, "Invalid --storage: "],
  ];
  for (const [flags, env, prefix] of cases) {
    const run = await runCli(["cache", "stats", ...flags], { ALL_DOCS_STORAGE: "memory", ...env });
    const what = JSON.stringify([flags, env]);
    assert.equal(run.code, 2, what);
    assert.ok(run.stderr.startsWith(`error: ${prefix}`), `${what}: ${run.stderr}`);
    assert.equal(run.stderr.trim().split("\n").length, 1, what);
  }
});

Deno.test("--json reports an error as a JSON line on stdout too, with its exit status", async () => {
  const usage = await runCli(["cache", "stats", "--json"], {
    ALL_DOCS_STORAGE: "memory",
    ALL_DOCS_RETRIES: "-1",
  });
  assert.equal(usage.code, 2);
  const line = JSON.parse(usage.stdout);
  assert.deepEqual(line, {
    type: "error",
    message: "Invalid ALL_DOCS_RETRIES: expected an integer of at least 0, received '-1'",
    exitCode: 2,
  });
  assert.equal(usage.stderr, `error: ${line.message}\n`);
  const unknown = await runCli(["nope", "--json"]);
  assert.equal(unknown.code, 2);
  assert.equal(JSON.parse(unknown.stdout).type, "error");
  // Without --json, stdout stays empty.
  const plain = await runCli(["nope"]);
  assert.equal(plain.stdout, "");
});
