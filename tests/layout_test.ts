/**
 * The shape of the tree, checked mechanically so it holds as modules land:
 *
 * - `src/` uses web standards only, and its folders import in one direction:
 *   `_util` and the root files (`clock.ts`, `runtime.ts`, `version.ts`) import nothing else;
 *   `storage` and `http` build on them; `couchdb` and `npm` on those; `jobs` and `replica` on
 *   all of the above (not on each other); `worker` (the worker core and its API) on all of
 *   them; `views` (view expressions, definitions and queries) on `storage` and `npm`, and
 *   nothing else in `src/` imports it; the CLI, the workers, the drivers and the queue engines
 *   sit outside.
 * - Drivers import only the storage contract (`src/storage/driver.ts`), `src/_util/` and, for
 *   the drivers that speak HTTP (S3), `src/http/`. Queue engines (`queues/`) import only the
 *   queue contract (`src/worker/queue.ts`), the work items (`src/worker/items.ts`) and
 *   `src/_util/`.
 * - A file whose name starts with `_` is private to its folder: nothing outside that folder
 *   imports it.
 * - No import cycles, type imports included; no file in `src/`, `drivers/` or `queues/` over 700
 *   lines.
 *
 * @module
 */

import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, normalize, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules" && entry.name !== "fixtures" && entry.name !== "peers") {
        out.push(...await tsFiles(path));
      }
    } else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** The code of a file without its block comments and comment lines (JSDoc examples import). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** The repository paths a file imports or re-exports (relative specifiers only). */
function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  for (
    const match of code(text).matchAll(/\bfrom\s+["'](\.[^"']+)["']|\bimport\s+["'](\.[^"']+)["']/g)
  ) {
    out.push(normalize(join(dirname(file), match[1] ?? match[2]!)));
  }
  return out;
}

async function graph(): Promise<Map<string, string[]>> {
  const files = [
    "mod.ts",
    "cli.ts",
    "cli.node.ts",
    ...await tsFiles("src"),
    ...await tsFiles("drivers"),
    ...await tsFiles("queues"),
    ...await tsFiles("cli"),
    ...await tsFiles("workers"),
  ];
  const edges = new Map<string, string[]>();
  for (const file of files) {
    let text;
    try {
      text = await readFile(join(root, file), "utf8");
    } catch {
      continue;
    }
    edges.set(file, importsOf(file, text));
  }
  return edges;
}

/** The folder of `src/` a file belongs to: `root` for the files at the top of `src/`. */
function layerOf(file: string): string | undefined {
  const parts = file.split("/");
  if (parts[0] !== "src") return undefined;
  return parts.length === 2 ? "root" : parts[1];
}

const ALLOWED: Record<string, readonly string[]> = {
  _util: ["_util"],
  root: ["_util", "root"],
  storage: ["_util", "root", "storage"],
  http: ["_util", "root", "http"],
  couchdb: ["_util", "root", "storage", "http", "couchdb"],
  npm: ["_util", "root", "storage", "http", "npm"],
  jobs: ["_util", "root", "storage", "http", "couchdb", "npm", "jobs"],
  replica: ["_util", "root", "storage", "http", "couchdb", "npm", "replica"],
  worker: ["_util", "root", "storage", "http", "couchdb", "npm", "jobs", "replica", "worker"],
  views: ["_util", "root", "storage", "npm", "views"],
};

Deno.test("src/ uses web standards only: no Deno, node: or npm: imports", async () => {
  const files = await tsFiles("src");
  assert.ok(files.length > 5);
  for (const file of files) {
    const text = await readFile(join(root, file), "utf8");
    assert.doesNotMatch(text, /\bDeno\./, file);
    assert.doesNotMatch(text, /from\s+["'](node|npm):/, file);
  }
});

Deno.test("src/ folders import in one direction: _util <- storage, http <- couchdb, npm <- jobs, replica", async () => {
  const edges = await graph();
  const layers = new Set<string>();
  for (const [file, targets] of edges) {
    const from = layerOf(file);
    if (from === undefined) continue;
    layers.add(from);
    const allowed = ALLOWED[from];
    assert.ok(allowed, `${file}: src/${from}/ is not a known folder; add it to the layout test`);
    for (const target of targets) {
      const to = layerOf(target);
      assert.ok(to !== undefined, `${file} imports ${target}, outside src/`);
      assert.ok(allowed.includes(to), `${file} (${from}) must not import ${target} (${to})`);
    }
  }
  for (const layer of Object.keys(ALLOWED)) assert.ok(layers.has(layer), `src/ has ${layer}`);
});

Deno.test("drivers import only the storage contract, src/_util/ and src/http/", async () => {
  const edges = await graph();
  let checked = 0;
  for (const [file, targets] of edges) {
    if (!file.startsWith("drivers/")) continue;
    for (const target of targets) {
      checked++;
      assert.ok(
        target.startsWith("drivers/") || target === "src/storage/driver.ts" ||
          target.startsWith("src/_util/") || target.startsWith("src/http/"),
        `${file} imports ${target}`,
      );
    }
  }
  assert.ok(checked > 10);
});

Deno.test("queue engines import only the queue contract, the work items and src/_util/", async () => {
  const edges = await graph();
  let engines = 0;
  for (const [file, targets] of edges) {
    if (!file.startsWith("queues/")) continue;
    engines++;
    for (const target of targets) {
      assert.ok(
        target.startsWith("queues/") || target === "src/worker/queue.ts" ||
          target === "src/worker/items.ts" || target.startsWith("src/_util/"),
        `${file} imports ${target}`,
      );
    }
  }
  assert.ok(engines > 0);
});

Deno.test("a file named _*.ts is imported only from its own folder", async () => {
  const edges = await graph();
  // Tests, benchmarks and scripts count as outside too.
  for (const dir of ["tests", "bench", "scripts"]) {
    for (const file of await tsFiles(dir)) {
      edges.set(file, importsOf(file, await readFile(join(root, file), "utf8")));
    }
  }
  let privates = 0;
  for (const [file, targets] of edges) {
    for (const target of targets) {
      const name = target.split("/").at(-1)!;
      if (!name.startsWith("_") || target.startsWith("tests/") || target.startsWith("bench/")) {
        continue;
      }
      privates++;
      assert.equal(dirname(file), dirname(target), `${file} imports the private ${target}`);
    }
  }
  assert.ok(privates > 0);
});

Deno.test("no import cycles, type imports included", async () => {
  const edges = await graph();
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  function visit(file: string): void {
    state.set(file, "open");
    stack.push(file);
    for (const target of edges.get(file) ?? []) {
      if (!edges.has(target)) continue;
      const seen = state.get(target);
      if (seen === "open") {
        const cycle = [...stack.slice(stack.indexOf(target)), target];
        assert.fail(`import cycle: ${cycle.join(" -> ")}`);
      }
      if (seen === undefined) visit(target);
    }
    stack.pop();
    state.set(file, "done");
  }
  for (const file of edges.keys()) if (!state.has(file)) visit(file);
  assert.ok(edges.size > 40);
});

Deno.test("no file in src/, drivers/ or queues/ is over 700 lines", async () => {
  const files = [...await tsFiles("src"), ...await tsFiles("drivers"), ...await tsFiles("queues")];
  for (const file of files) {
    const lines = (await readFile(join(root, file), "utf8")).split("\n").length;
    assert.ok(lines <= 700, `${relative(root, join(root, file))} has ${lines} lines`);
  }
});

Deno.test("library code has no dynamic import()", async () => {
  const files = [
    "mod.ts",
    ...await tsFiles("src"),
    ...await tsFiles("drivers"),
    ...await tsFiles("queues"),
  ];
  for (const file of files) {
    const text = await readFile(join(root, file), "utf8");
    assert.doesNotMatch(text, /\bimport\s*\(/, file);
  }
});

Deno.test("mod.ts holds only its doc block and re-exports", async () => {
  const text = await readFile(join(root, "mod.ts"), "utf8");
  const lines = text.replace(/\/\*\*[\s\S]*?\*\//, "").trim().split("\n").filter((l) => l.trim());
  assert.ok(lines.length > 3);
  for (const line of lines) {
    assert.match(line, /^(export (\*|\{|type \{)| {2}\w|\} from "\.\/src\/|\/\/ )/);
  }
});
