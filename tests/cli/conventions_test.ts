import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../_support/run_cli.ts";
import { run as runCommand } from "../_support/spawn.ts";
import { generateNames, startAllDocsFixture } from "../_support/all_docs_fixture.ts";
import { Progress, progressMode } from "../../cli/io.ts";
import { VERSION } from "../../src/version.ts";

Deno.test("cli with no arguments prints the usage on stdout and exits 2", async () => {
  const run = await runCli([]);
  assert.equal(run.code, 2);
  assert.match(run.stdout, /^_all_docs .*\n\nUsage: _all_docs <command> \[options\]/);
  assert.match(run.stdout, /packument fetch-list FILE/);
  assert.equal(run.stderr, "");
});

Deno.test("cli help, help <group> and help <command> print help and exit 0", async () => {
  const top = await runCli(["help"]);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /^_all_docs .*\n\nUsage: _all_docs <command>/);
  const command = await runCli(["help", "cache", "verify"]);
  assert.equal(command.code, 0);
  assert.match(command.stdout, /^Usage: _all_docs cache verify/);
  assert.match(command.stdout, /--fix/);
  const serve = await runCli(["help", "serve"]);
  assert.match(serve.stdout, /^Usage: _all_docs serve/);
  const group = await runCli(["help", "packument"]);
  assert.equal(group.code, 0);
  assert.match(group.stdout, /_all_docs packument fetch-list FILE/);
  const unknown = await runCli(["help", "nope"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^error: Unknown command 'nope'/);
});

Deno.test("cli packument, partition or cache alone lists its subcommands and exits 2", async () => {
  for (
    const [group, sub] of [["packument", "fetch-list"], ["partition", "refresh"], [
      "cache",
      "create-index",
    ]]
  ) {
    const run = await runCli([group!]);
    assert.equal(run.code, 2, group);
    assert.match(run.stderr, new RegExp(`^error: '${group}' needs a subcommand:\n`), group);
    assert.match(run.stderr, new RegExp(`_all_docs ${group} ${sub}`), group);
  }
});

Deno.test("cli unknown options get one line with a 'did you mean' from the command's flags", async () => {
  const cases: [string[], string][] = [
    [
      ["partition", "refresh", "--pivot", "x"],
      "error: Unknown option '--pivot' for 'partition refresh' (did you mean '--pivots'?): " +
      "see --help\n",
    ],
    [
      ["cache", "stats", "--concurency", "3"],
      "error: Unknown option '--concurency' for 'cache stats' (did you mean '--concurrency'?): " +
      "see --help\n",
    ],
    [
      ["cache", "verify", "--fx"],
      "error: Unknown option '--fx' for 'cache verify' " +
      "(did you mean '--fix'?): see --help\n",
    ],
    [
      ["cache", "stats", "--zzzzzz"],
      "error: Unknown option '--zzzzzz' for 'cache stats': see --help\n",
    ],
    [
      ["pakument", "fetch", "x"],
      "error: Unknown command 'pakument fetch' (did you mean " +
      "'packument'?): run '_all_docs --help' for the list\n",
    ],
  ];
  for (const [args, stderr] of cases) {
    const run = await runCli(args, { ALL_DOCS_STORAGE: "memory" });
    assert.equal(run.code, 2, args.join(" "));
    assert.equal(run.stderr, stderr);
  }
});

Deno.test("cli -v, -V and --version print the version", async () => {
  for (const flag of ["-v", "-V", "--version"]) {
    const run = await runCli([flag]);
    assert.equal(run.code, 0, flag);
    assert.equal(run.stdout, `_all_docs ${VERSION}\n`, flag);
  }
});

Deno.test("cli ignores a relative XDG_CACHE_HOME, as the XDG spec says, for ~/.cache", async () => {
  const home = await Deno.makeTempDir();
  // Deno itself keeps its cache under XDG_CACHE_HOME: keep the child on the one in use.
  const info = await runCommand(Deno.execPath(), ["info", "--json"]);
  const denoDir: string = JSON.parse(info.stdout).denoDir;
  try {
    // A read-only command needs the cache dir to exist.
    await Deno.mkdir(join(home, ".cache", "_all_docs"), { recursive: true });
    const run = await runCli(["cache", "stats", "--json"], {
      DENO_DIR: denoDir,
      HOME: home,
      XDG_CACHE_HOME: "relative/cache",
      ALL_DOCS_CACHE_DIR: "",
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).storage.location, join(home, ".cache", "_all_docs", "fs"));
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("Progress on a terminal cuts its line to the terminal's width", () => {
  const written: string[] = [];
  const progress = new Progress("tty", (text) => written.push(text), () => 0, () => 10);
  progress.update("0123456789abc");
  progress.update("short", true);
  assert.deepEqual(written, ["\r\x1b[2K012345678", "\r\x1b[2Kshort"]);
  assert.equal(progressMode({ quiet: false, json: false, progress: false }, true, true), "off");
  assert.equal(progressMode({ quiet: false, json: false, progress: true }, true, true), "lines");
});

/** Runs the CLI on a pseudo-terminal (util-linux `script`) of `columns` columns. */
async function runOnTerminal(
  args: string[],
  env: Record<string, string>,
  columns: number,
): Promise<{ code: number; output: string }> {
  const quoted = args.map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
  const output = await runCommand("script", [
    "-qefc",
    `stty cols ${columns} rows 24; exec '${Deno.execPath()}' run -A cli.ts ${quoted}`,
    "/dev/null",
  ], { env });
  // Deno itself clears its own loading line when it starts on a terminal: not the CLI's doing.
  const text = output.stdout.replaceAll("\x1b[0G\x1b[2K\x1b[J", "");
  return { code: output.code, output: text };
}

Deno.test("progress on a terminal fits its width, and TERM=dumb gets no control sequences", async () => {
  const origin = await startAllDocsFixture({ ids: generateNames(2000) });
  const dir = await Deno.makeTempDir();
  try {
    const pivots = join(dir, "pivots.json");
    await Deno.writeTextFile(pivots, JSON.stringify([origin.ids[500], origin.ids[1000]]));
    const env = { ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_ORIGIN: origin.origin };
    const args = ["partition", "refresh", "--pivots", pivots, "--limit", "50"];
    const wide = await runOnTerminal(args, { ...env, TERM: "xterm" }, 40);
    assert.equal(wide.code, 0, wide.output);
    // Each redraw of the progress line (the summary on stdout follows the last one).
    const drawn = wide.output.split("\r\x1b[2K").slice(1).map((part) => part.split("\r\n")[0]!)
      .filter((line) => line.startsWith("["));
    assert.ok(drawn.length > 0, JSON.stringify(wide.output));
    for (const line of drawn) assert.ok(line.length < 40, JSON.stringify(line));

    for (const extra of [[], ["--progress"]]) {
      const dumb = await runOnTerminal(
        [...args, "--fresh", ...extra],
        { ...env, TERM: "dumb" },
        40,
      );
      assert.equal(dumb.code, 0, dumb.output);
      // deno-lint-ignore no-control-regex
      assert.ok(!/[\x1b\r](?!\n)/.test(dumb.output), JSON.stringify(dumb.output));
      if (extra.length > 0) assert.match(dumb.output, /^\[[#-]{24}\] \d\/3 partitions/m);
    }
  } finally {
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
