/**
 * `view define|list|show|delete|query|join|enrich|run` as a user runs them: `deno run -A cli.ts`
 * over a cache seeded as `packument fetch` leaves it, on the fs, kv and s3 drivers, with real
 * worker threads; and the README's "Views" examples, run as written.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Cache } from "../../src/storage/cache.ts";
import type { StorageDriver } from "../../src/storage/driver.ts";
import { originKey } from "../../src/storage/keys.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { DenoKvDriver } from "../../drivers/deno_kv.deno.ts";
import { S3Driver } from "../../drivers/s3.ts";
import { runCli } from "../_support/run_cli.ts";
import { PLAIN_ENV, ROOT, run, type RunResult } from "../_support/spawn.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_support/s3rver.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";
import { EXAMPLE_PACKUMENTS, packument, seed } from "../views/seed.ts";

/** The default registry of these tests: never contacted (views only read the cache). */
const REGISTRY = "http://127.0.0.1:9/";
/** A second registry, the "private" one of the examples. */
const PRIVATE = "https://registry.example.test/";

/** Enough documents for the scans to start workers (more than 256). */
function generated(): Record<string, unknown> {
  const docs: Record<string, unknown> = {};
  for (let i = 0; i < 300; i++) {
    const name = i % 7 === 0 ? `@scope-${i % 3}/pkg-${i}` : `pkg-${String(i).padStart(3, "0")}`;
    const versions: Record<string, Record<string, unknown>> = {};
    for (let v = 0; v <= i % 5; v++) {
      versions[`1.${v}.0`] = i % 4 === 0
        ? { dependencies: { [`pkg-${(i + v) % 50}`]: "^1.0.0" } }
        : {};
    }
    docs[name] = packument(name, versions, { license: i % 3 ? "MIT" : "ISC", n: i });
  }
  return docs;
}

/** Seeds a cache as fetches from REGISTRY (and a few from PRIVATE) would leave it. */
async function seedAll(driver: StorageDriver): Promise<void> {
  const cache = await Cache.open(driver, { bloom: false, inlineMax: 4096 });
  const main = originKey(REGISTRY);
  await seed(cache, main, EXAMPLE_PACKUMENTS);
  await seed(cache, main, await loadFixturePackuments());
  await seed(cache, main, generated());
  await seed(cache, originKey(PRIVATE), {
    "native-addon": EXAMPLE_PACKUMENTS["native-addon"],
    "tidy-lib": EXAMPLE_PACKUMENTS["tidy-lib"],
    "internal-only": packument("internal-only", { "1.0.0": {} }),
  });
  await driver.close();
}

/** A temporary fs cache directory, seeded, and the environment that points at it. */
async function withFsCache(
  fn: (env: Record<string, string>, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "view_cli_" });
  try {
    await seedAll(new FsDriver(join(dir, "fs")));
    await fn({ ALL_DOCS_CACHE_DIR: dir, ALL_DOCS_REGISTRY: REGISTRY }, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function ok(result: RunResult, what: string): RunResult {
  assert.equal(result.code, 0, `${what} exited ${result.code}: ${result.stderr}`);
  return result;
}

async function cli(args: string[], env: Record<string, string>): Promise<RunResult> {
  return ok(await runCli(args, env), args.join(" "));
}

function ndjson(text: string): Record<string, unknown>[] {
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** Runs cli.ts with `stdin` as its standard input. */
async function runWithStdin(
  args: string[],
  env: Record<string, string>,
  stdin: string,
): Promise<RunResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: ROOT,
    env: { ...PLAIN_ENV, ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stdoutBytes: output.stdout,
    stderr: decoder.decode(output.stderr),
  };
}

const EDGES_SELECT = "name, versions[dist-tags.latest].dependencies | keys as deps, n";

Deno.test("cli view define, list, show and delete keep views in the cache", async () => {
  await withFsCache(async (env) => {
    const defined = await cli(
      ["view", "define", "edges", "--select", EDGES_SELECT, "--where", "n >= 0"],
      env,
    );
    assert.equal(
      defined.stdout,
      `view 'edges' defined: packument documents of ${originKey(REGISTRY)} where n >= 0, ` +
        `select ${EDGES_SELECT}\n`,
    );
    const privately = await cli(
      ["view", "define", "private", "--registry", PRIVATE, "--type", "packument", "--json"],
      env,
    );
    const saved = JSON.parse(privately.stdout);
    assert.equal(saved.origin, "registry.example.test");
    assert.equal(saved.registry, PRIVATE);
    assert.equal(saved.replaced, false);
    // The upstream's vocabulary: --origin KEY is the origin key, --origin URL the registry.
    await cli(["view", "define", "keyed", "--origin", "mine", "--type", "corgi"], env);
    const byUrl = await cli(["view", "define", "by-url", "--origin", PRIVATE, "--json"], env);
    assert.equal(JSON.parse(byUrl.stdout).origin, "registry.example.test");
    assert.equal(JSON.parse(byUrl.stdout).registry, PRIVATE);
    await cli(["view", "delete", "by-url"], env);
    const list = await cli(["view", "list"], env);
    assert.deepStrictEqual(list.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]), [
      "edges",
      "keyed",
      "private",
    ]);
    assert.match(list.stdout, /keyed\tcorgi documents of mine, whole documents/);
    const listed = ndjson((await cli(["view", "list", "--json"], env)).stdout);
    assert.deepStrictEqual(listed.map((v) => v["name"]), ["edges", "keyed", "private"]);
    const shown = JSON.parse((await cli(["view", "show", "edges", "--json"], env)).stdout);
    assert.deepStrictEqual(
      { ...shown, createdAt: "" },
      {
        name: "edges",
        origin: originKey(REGISTRY),
        registry: REGISTRY,
        type: "packument",
        select: EDGES_SELECT,
        where: "n >= 0",
        createdAt: "",
      },
    );
    const text = (await cli(["view", "show", "keyed"], env)).stdout;
    assert.match(
      text,
      /^name {7}keyed\norigin {5}mine\ntype {7}corgi\nselect {5}\(the whole document\)\nwhere {6}\(every document\)\ncreated {4}\d{4}-/,
    );
    const replaced = await cli(["view", "define", "keyed", "--origin-key", "mine"], env);
    assert.match(replaced.stdout, /^view 'keyed' replaced/);
    assert.equal((await cli(["view", "delete", "keyed"], env)).stdout, "view 'keyed' deleted\n");
    const gone = await runCli(["view", "show", "keyed"], env);
    assert.equal(gone.code, 2);
    assert.equal(gone.stderr, "error: No view named 'keyed': see '_all_docs view list'\n");
    assert.equal((await runCli(["view", "delete", "keyed"], env)).code, 2);
    const empty = await cli(["view", "list"], { ...env, ALL_DOCS_STORAGE: "memory" });
    assert.equal(empty.stdout, "no views defined\n");
  });
});

Deno.test("cli view: bad input exits 2 before anything is read, naming the problem", async () => {
  await withFsCache(async (env) => {
    const cases: [string[], RegExp][] = [
      [["view", "define"], /^error: Missing NAME/],
      [["view", "define", "a b"], /^error: Invalid view name/],
      [
        ["view", "define", "x", "--type", "partition"],
        /^error: Invalid --type: expected packument or corgi/,
      ],
      [
        ["view", "define", "x", "--select", "name, versions|kyes"],
        /^error: Invalid --select: expected a transform \(keys, .*\), found 'kyes' at position 15\n {2}name, versions\|kyes\n {17}\^\n$/,
      ],
      [
        ["view", "define", "x", "--where", "a = = 1"],
        /^error: Invalid --where: expected a field path, .* found '=' at position 4\n {2}a = = 1\n {6}\^\n$/,
      ],
      [
        ["view", "define", "x", "--origin", REGISTRY, "--registry", PRIVATE],
        /^error: Conflicting options: --origin http:\/\/.* and --registry: give one\n$/,
      ],
      [
        ["view", "define", "x", "--origin", "a", "--origin-key", "b"],
        /^error: Conflicting options: --origin a and --origin-key: give one\n$/,
      ],
      [
        ["view", "define", "x", "--origin", "a b"],
        /^error: Invalid --origin: expected a registry URL, or an origin key of 1 to 64 /,
      ],
      [
        ["view", "define", "x", "--origin-key", "a", "--registry", PRIVATE],
        /give an origin KEY or a registry URL, not both/,
      ],
      [["view", "query", "nope"], /^error: No view named 'nope'/],
      [
        ["view", "query", "x", "--filter", "(a"],
        /^error: Invalid --filter: expected '\)' .* at position 2/,
      ],
      [
        ["view", "query", "x", "--format", "xml"],
        /^error: Invalid --format: expected ndjson, json, lines, csv/,
      ],
      [["view", "query", "x", "--limit", "1.5"], /^error: Invalid --limit/],
      [
        ["view", "query", "x", "--workers", "0"],
        /^error: Invalid --workers: expected an integer from 1 to 64/,
      ],
      [["view", "join", "a"], /^error: Missing NAME: view join LEFT RIGHT/],
      [
        ["view", "join", "a", "b", "--left", "--diff"],
        /^error: Conflicting options: give one of .*--left --diff/,
      ],
      [["view", "enrich", "--add", "name"], /^error: Missing -i FILE/],
      [["view", "enrich", "-i", "-"], /^error: Missing --add/],
      [
        ["view", "enrich", "-i", "-", "--add", "time[.version"],
        /^error: Invalid --add: expected '\]', found the end of the expression at position 13/,
      ],
      [
        ["view", "enrich", "-i", "-", "--add", "a as x", "--add", "b as x"],
        /two added fields are named 'x'/,
      ],
      [
        ["view", "enrich", "-i", "-", "--add", "a", "--on-missing", "ignore"],
        /^error: Invalid --on-missing/,
      ],
      [
        ["view", "enrich", "-i", "/nonexistent/specs.ndjson", "--add", "a"],
        /^error: Cannot read -i/,
      ],
      [["view", "run"], /^error: Missing MODULE/],
      [["view", "run", "/nonexistent/map.js"], /^error: Cannot load module/],
      [["view", "nope"], /^error: Unknown command 'view nope'/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, env);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(" "));
      assert.equal(result.stdout, "", args.join(" "));
    }
    await cli(["view", "define", "two", "--select", "name, n"], env);
    await cli(["view", "define", "whole"], env);
    for (
      const [view, format, message] of [
        ["two", "lines", /with view 'two': the lines format prints one field/],
        ["whole", "csv", /with view 'whole': the csv format needs a view with a select list/],
      ] as const
    ) {
      const result = await runCli(["view", "query", view, "--format", format], env);
      assert.equal(result.code, 2);
      assert.match(result.stderr, message);
    }
    const join = await runCli(["view", "join", "two", "whole", "--on", "license"], env);
    assert.equal(join.code, 2);
    assert.match(
      join.stderr,
      /View 'two' has no field 'license' to join on \(its fields: name, n\)/,
    );
  });
});

Deno.test("cli view query: formats, --filter, --limit, --count, in name order", async () => {
  await withFsCache(async (env) => {
    await cli(
      ["view", "define", "lic", "--select", "name, license as lic, n", "--where", "n < 10"],
      env,
    );
    const all = ndjson((await cli(["view", "query", "lic"], env)).stdout);
    assert.deepStrictEqual(all.map((r) => r["n"]), [0, 7, 1, 2, 3, 4, 5, 6, 8, 9]);
    assert.deepStrictEqual(all[0], { name: "@scope-0/pkg-0", lic: "ISC", n: 0 });
    const names = all.map((r) => r["name"] as string);
    assert.deepStrictEqual(names, [...names].sort());
    const filtered = await cli([
      "view",
      "query",
      "lic",
      "--filter",
      'lic = "MIT" && n > 2',
      "--limit",
      "3",
    ], env);
    assert.equal(
      filtered.stdout,
      '{"name":"@scope-1/pkg-7","lic":"MIT","n":7}\n{"name":"pkg-004","lic":"MIT","n":4}\n' +
        '{"name":"pkg-005","lic":"MIT","n":5}\n',
    );
    const json = await cli(["view", "query", "lic", "--format", "json", "--limit", "2"], env);
    assert.deepStrictEqual(JSON.parse(json.stdout), all.slice(0, 2));
    const csv = await cli(["view", "query", "lic", "--format", "csv", "--limit", "2"], env);
    assert.equal(csv.stdout, "name,lic,n\n@scope-0/pkg-0,ISC,0\n@scope-1/pkg-7,MIT,7\n");
    await cli(["view", "define", "names", "--select", "name", "--where", "n < 3"], env);
    const lines = await cli(["view", "query", "names", "--format", "lines"], env);
    assert.equal(lines.stdout, "@scope-0/pkg-0\npkg-001\npkg-002\n");
    assert.equal((await cli(["view", "query", "lic", "--count"], env)).stdout, "10\n");
    assert.equal(
      (await cli(["view", "query", "lic", "--count", "--filter", "lic = 'ISC'"], env)).stdout,
      "4\n",
    );
    assert.equal(
      (await cli(["view", "query", "lic", "--count", "--json"], env)).stdout,
      '{"count":10}\n',
    );
    assert.equal(
      (await cli(["view", "query", "lic", "--count", "--limit", "3"], env)).stdout,
      "3\n",
    );
    assert.equal((await cli(["view", "query", "lic", "--limit", "0"], env)).stdout, "");
  });
});

Deno.test("cli view query over an empty origin: nothing, in every format", async () => {
  await withFsCache(async (env) => {
    await cli(["view", "define", "none", "--origin-key", "empty-origin", "--select", "name"], env);
    assert.equal((await cli(["view", "query", "none"], env)).stdout, "");
    assert.equal((await cli(["view", "query", "none", "--format", "json"], env)).stdout, "[]\n");
    assert.equal((await cli(["view", "query", "none", "--format", "csv"], env)).stdout, "name\n");
    assert.equal((await cli(["view", "query", "none", "--format", "lines"], env)).stdout, "");
    assert.equal((await cli(["view", "query", "none", "--count"], env)).stdout, "0\n");
    assert.equal((await cli(["view", "join", "none", "none", "--full"], env)).stdout, "");
    await cli(["view", "define", "some", "--select", "name"], env);
    const right = await cli(["view", "join", "some", "none", "--inner"], env);
    assert.equal(right.stdout, "");
    const diff = ndjson((await cli(["view", "join", "some", "none", "--diff"], env)).stdout);
    assert.equal(diff.length, 310);
  });
});

Deno.test("cli view query: the same bytes whatever the number of worker threads", async () => {
  await withFsCache(async (env) => {
    await cli(["view", "define", "edges", "--select", EDGES_SELECT], env);
    await cli(["view", "define", "whole", "--where", "license = 'ISC'"], env);
    for (
      const args of [
        ["view", "query", "edges"],
        ["view", "query", "edges", "--format", "csv", "--filter", "deps|length > 0"],
        ["view", "query", "whole", "--format", "json"],
        ["view", "join", "edges", "whole", "--full"],
        ["view", "join", "edges", "whole", "--on", "n", "--right"],
      ]
    ) {
      const outputs = [];
      for (const workers of ["1", "2", "3"]) {
        outputs.push((await cli([...args, "--workers", workers], env)).stdoutBytes);
      }
      assert.ok(outputs[0]!.length > 1000, args.join(" "));
      assert.deepStrictEqual(outputs[1], outputs[0], `${args.join(" ")}: 2 threads`);
      assert.deepStrictEqual(outputs[2], outputs[0], `${args.join(" ")}: 3 threads`);
    }
  });
});

Deno.test("cli view join: each kind, and a right side from another registry", async () => {
  await withFsCache(async (env) => {
    await cli([
      "view",
      "define",
      "public",
      "--select",
      "name, license",
      "--where",
      "n < 3 || n = null",
    ], env);
    await cli(["view", "define", "private", "--registry", PRIVATE, "--select", "name"], env);
    const keys = async (mode: string) =>
      ndjson((await cli(["view", "join", "public", "private", `--${mode}`], env)).stdout).map((
        r,
      ) => [r["key"], r["left"] !== null, r["right"] !== null]);
    assert.deepStrictEqual(await keys("inner"), [
      ["native-addon", true, true],
      ["tidy-lib", true, true],
    ]);
    const left = await keys("left");
    assert.equal(left.length, 13);
    assert.deepStrictEqual(left.filter(([, , r]) => r), await keys("inner"));
    assert.deepStrictEqual(await keys("right"), [
      ["internal-only", false, true],
      ["native-addon", true, true],
      ["tidy-lib", true, true],
    ]);
    const full = await keys("full");
    assert.equal(full.length, 14);
    assert.deepStrictEqual(full.map(([k]) => k), [...full.map(([k]) => k)].sort());
    // Packages of the default registry that the private one lacks.
    const diff = await keys("diff");
    assert.equal(diff.length, 11);
    assert.ok(diff.every(([, l, r]) => l && !r));
    assert.ok(!diff.some(([k]) => k === "tidy-lib"));
    const limited = await cli(["view", "join", "public", "private", "--limit", "1"], env);
    assert.deepStrictEqual(ndjson(limited.stdout), [
      { key: "@scope-0/pkg-0", left: { name: "@scope-0/pkg-0", license: "ISC" }, right: null },
    ]);
  });
});

Deno.test("cli view enrich: a lockfile's specs, from a file and from stdin, each --on-missing", async () => {
  await withFsCache(async (env, dir) => {
    const specs = [
      { name: "native-addon", version: "1.0.0" },
      { name: "ms", version: "2.1.3" },
      { name: "never-fetched", version: "1.0.0" },
      { name: "tidy-lib", version: "3.1.0" },
    ].map((s) => JSON.stringify(s)).join("\n") + "\n";
    const file = join(dir, "specs.ndjson");
    await Deno.writeTextFile(file, specs);
    const add = [
      "--add",
      "time[.version] as publishedAt",
      "--add",
      "versions[.version].dist.integrity as integrity",
    ];
    const fromFile = await cli(["view", "enrich", "-i", file, ...add], env);
    const records = ndjson(fromFile.stdout);
    assert.deepStrictEqual(records.map((r) => r["publishedAt"]), [
      "2015-06-01T00:00:00.000Z",
      "2024-02-23T22:24:14.754000+00:00",
      null,
      "2016-06-01T00:00:00.000Z",
    ]);
    assert.equal(records[0]!["integrity"], "sha512-native-addon-1.0.0");
    assert.match(records[1]!["integrity"] as string, /^sha512-/);
    const fromStdin = await runWithStdin(["view", "enrich", "-i", "-", ...add], env, specs);
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(fromStdin.stdout, fromFile.stdout);
    const skip = await cli(["view", "enrich", "-i", file, ...add, "--on-missing", "skip"], env);
    assert.deepStrictEqual(ndjson(skip.stdout).map((r) => r["name"]), [
      "native-addon",
      "ms",
      "tidy-lib",
    ]);
    const error = await runCli(
      ["view", "enrich", "--input", file, ...add, "--on-missing", "error"],
      env,
    );
    assert.equal(error.code, 1);
    assert.deepStrictEqual(ndjson(error.stdout).map((r) => r["name"]), ["native-addon", "ms"]);
    assert.equal(
      error.stderr,
      "error: Line 3: never-fetched is not in the cache (--on-missing error)\n",
    );
    const renamed = await runWithStdin(
      [
        "view",
        "enrich",
        "-i",
        "-",
        "--name-field",
        "pkg",
        "--version-field",
        "v",
        "--add",
        "time[.version] as at",
      ],
      env,
      '{"pkg":"tidy-lib","v":"3.0.0"}\nnot json\n\n{"pkg":"ms","v":"0.1.0"}\n',
    );
    assert.equal(renamed.code, 1, "a line that is not a JSON object fails the run");
    assert.equal(renamed.stderr, "line 2: not a JSON object\n");
    assert.deepStrictEqual(ndjson(renamed.stdout), [
      { pkg: "tidy-lib", v: "3.0.0", at: "2015-06-01T00:00:00.000Z" },
      { pkg: "ms", v: "0.1.0", at: "2024-12-02T18:34:34.222000+00:00" },
    ]);
  });
});

Deno.test("cli view run: map with and without reduce, sorted by key, any thread count", async () => {
  await withFsCache(async (env, dir) => {
    const mapOnly = join(dir, "licenses.js");
    await Deno.writeTextFile(
      mapOnly,
      "export function map(doc, emit) { if (doc.n < 6) emit(doc.license ?? null, doc.name); }\n",
    );
    const lines = ndjson((await cli(["view", "run", mapOnly], env)).stdout);
    assert.deepStrictEqual(lines.map((l) => l["key"]), ["ISC", "ISC", "MIT", "MIT", "MIT", "MIT"]);
    assert.deepStrictEqual(lines.slice(0, 2).map((l) => l["value"]), ["@scope-0/pkg-0", "pkg-003"]);
    const withReduce = join(dir, "count.ts");
    await Deno.writeTextFile(
      withReduce,
      "export function map(doc: { license?: string }, emit: (k: unknown, v: unknown) => void) {\n" +
        "  emit(doc.license ?? null, 1);\n}\n" +
        "export function reduce(_key: unknown, values: number[]) {\n" +
        "  return values.reduce((a, b) => a + b, 0);\n}\n",
    );
    const outputs = [];
    for (const workers of ["1", "2", "3"]) {
      outputs.push((await cli(["view", "run", withReduce, "--workers", workers], env)).stdout);
    }
    assert.equal(outputs[1], outputs[0]);
    assert.equal(outputs[2], outputs[0]);
    assert.deepStrictEqual(ndjson(outputs[0]!), [
      { key: null, value: 5 },
      { key: "ISC", value: 101 },
      { key: "MIT", value: 204 },
    ]);
    const private_ = await cli(["view", "run", mapOnly, "--registry", PRIVATE], env);
    assert.equal(private_.stdout, "");
    const noMap = join(dir, "nomap.js");
    await Deno.writeTextFile(noMap, "export const reduce = () => 1;\n");
    const refused = await runCli(["view", "run", noMap], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /exports no map\(doc, emit\) function/);
  });
});

/** What the same commands give on another driver, compared with fs. */
const PORTABLE: string[][] = [
  ["view", "define", "edges", "--select", EDGES_SELECT],
  ["view", "define", "private", "--registry", PRIVATE, "--select", "name"],
  ["view", "query", "edges", "--workers", "1"],
  ["view", "query", "edges", "--workers", "2"],
  ["view", "query", "edges", "--count", "--filter", "deps | length > 0"],
  ["view", "join", "edges", "private", "--full", "--workers", "2"],
  ["view", "list", "--json"],
];

async function portableOutputs(env: Record<string, string>): Promise<string[]> {
  const outputs: string[] = [];
  for (const args of PORTABLE) {
    const result = await cli(args, env);
    outputs.push(
      args[1] === "list" ? result.stdout.replace(/"createdAt":"[^"]+"/g, "") : result.stdout,
    );
  }
  return outputs.slice(2);
}

Deno.test("cli view over the kv driver: the same records as over fs, with workers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "view_kv_" });
  try {
    await seedAll(await DenoKvDriver.open(join(dir, "deno.kv")));
    const fsDir = await Deno.makeTempDir({ prefix: "view_kv_fs_" });
    try {
      await seedAll(new FsDriver(join(fsDir, "fs")));
      const viaKv = await portableOutputs({
        ALL_DOCS_CACHE_DIR: dir,
        ALL_DOCS_STORAGE: "kv",
        ALL_DOCS_REGISTRY: REGISTRY,
      });
      const viaFs = await portableOutputs({
        ALL_DOCS_CACHE_DIR: fsDir,
        ALL_DOCS_REGISTRY: REGISTRY,
      });
      assert.deepStrictEqual(viaKv, viaFs);
      assert.equal(viaKv[0], viaKv[1]);
      assert.ok(viaKv[0]!.split("\n").length > 300);
    } finally {
      await Deno.remove(fsDir, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli view over the s3 driver: the same records as over fs, with workers", async () => {
  const server = await startS3rver("views");
  const fsDir = await Deno.makeTempDir({ prefix: "view_s3_fs_" });
  try {
    await seedAll(
      new S3Driver({
        endpoint: server.endpoint,
        bucket: server.bucket,
        prefix: "cache/",
        credentials: S3RVER_CREDENTIALS,
      }),
    );
    await seedAll(new FsDriver(join(fsDir, "fs")));
    const viaS3 = await portableOutputs({
      ALL_DOCS_STORAGE: "s3",
      ALL_DOCS_S3_URL: `${server.endpoint}/${server.bucket}/cache/`,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      ALL_DOCS_REGISTRY: REGISTRY,
      ALL_DOCS_CACHE_DIR: fsDir,
    });
    const viaFs = await portableOutputs({ ALL_DOCS_CACHE_DIR: fsDir, ALL_DOCS_REGISTRY: REGISTRY });
    assert.deepStrictEqual(viaS3, viaFs);
    assert.equal(viaS3[0], viaS3[1]);
  } finally {
    await server.close();
    await Deno.remove(fsDir, { recursive: true });
  }
});

Deno.test("cli view: the README's Views examples work as written", async () => {
  await withFsCache(async (env, dir) => {
    const examples = await Deno.readTextFile(join(ROOT, "tests", "views", "readme_examples.sh"));
    await Deno.writeTextFile(
      join(dir, "package-lock.json"),
      JSON.stringify({
        name: "app",
        lockfileVersion: 3,
        packages: {
          "": { name: "app", dependencies: { "tidy-lib": "^3.0.0" } },
          "node_modules/tidy-lib": { version: "3.1.0" },
          "node_modules/ms": { version: "2.1.3" },
          "node_modules/tidy-lib/node_modules/debug": { version: "4.4.3" },
        },
      }),
    );
    const script = `set -euo pipefail\n` +
      `_all_docs() { "${Deno.execPath()}" run -A "${ROOT}/cli.ts" "$@"; }\n` +
      `cd "${dir}"\n${examples}`;
    const result = await run("bash", ["-c", script], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    const sections = new Map<string, Record<string, unknown>[]>();
    for (const section of result.stdout.split(/^### /m).slice(1)) {
      const title = section.slice(0, section.indexOf("\n"));
      // The lines of JSON: `view define` says what it defined too.
      const lines = section.split("\n").filter((line) => line.startsWith("{"));
      sections.set(title, lines.map((line) => JSON.parse(line)));
    }
    // Install scripts without node-gyp: the postinstall and the preinstall, not the addons.
    assert.deepStrictEqual(sections.get("install scripts without node-gyp"), [
      {
        key: "old-preinstaller",
        left: {
          name: "old-preinstaller",
          preinstall: "sh setup.sh",
          install: null,
          postinstall: null,
        },
        right: null,
      },
      {
        key: "sketchy-helper",
        left: {
          name: "sketchy-helper",
          preinstall: null,
          install: null,
          postinstall: "node collect.js",
        },
        right: null,
      },
    ]);
    const edges = sections.get("dependency edges")!;
    assert.deepStrictEqual(edges.filter((e) => e["from"] === "tidy-lib"), [
      { from: "tidy-lib", to: "ms", type: "runtime" },
      { from: "tidy-lib", to: "debug", type: "runtime" },
      { from: "tidy-lib", to: "mocha", type: "dev" },
    ]);
    assert.ok(edges.length > 80);
    const dependents = sections.get("dependents")!;
    assert.deepStrictEqual(dependents.find((d) => d["key"] === "ms"), { key: "ms", value: 3 });
    const keys = dependents.map((d) => d["key"] as string);
    assert.deepStrictEqual(keys, [...keys].sort());
    const enriched = sections.get("lockfile specs")!;
    assert.deepStrictEqual(enriched.map((r) => [r["name"], r["version"]]), [
      ["tidy-lib", "3.1.0"],
      ["ms", "2.1.3"],
      ["debug", "4.4.3"],
    ]);
    assert.deepStrictEqual(enriched[0], {
      name: "tidy-lib",
      version: "3.1.0",
      publishedAt: "2016-06-01T00:00:00.000Z",
      integrity: "sha512-tidy-lib-3.1.0",
    });
    for (const record of enriched) {
      assert.match(record["publishedAt"] as string, /^20\d\d-/);
      assert.match(record["integrity"] as string, /^sha512-/);
    }
    const missing = sections.get("not in the private registry")!;
    assert.equal(missing.length, 310 - 2);
    assert.ok(!missing.some((r) => r["key"] === "tidy-lib" || r["key"] === "native-addon"));
  });
});

Deno.test("cli view help lists every view command", async () => {
  const result = await cli(["view", "--help"], {});
  for (const word of ["define", "list", "show", "query", "join", "enrich", "run", "delete"]) {
    assert.match(result.stdout, new RegExp(`_all_docs view ${word}`));
  }
  const query = await cli(["view", "query", "--help"], {});
  assert.match(query.stdout, /--format F +ndjson/);
});
