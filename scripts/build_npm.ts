/**
 * Builds the npm package into `npm/`: `deno task build:npm` (`deno run -A scripts/build_npm.ts`).
 *
 * JSR is out of reach here, so `dnt` is not used: this drives the TypeScript compiler from npm
 * (`typescript@5.9.3`) itself.
 *
 * 1. Reads `deno.json`: name, version, license, exports and the `npm:` entries of its import map.
 * 2. Writes `npm/package.json`: ESM; `exports` with `types` and `import` for each subpath, plus
 *    `./package.json`; `files` (the compiled `.js` and `.d.ts`; npm adds README, LICENSE and
 *    package.json itself); `sideEffects: false`; the `_all_docs` bin; `repository` from
 *    `git remote get-url origin` (left out when there is no such remote, or it is not an
 *    http(s) or ssh URL); the import map's packages as caret ranges of its pinned versions:
 *    {@linkcode OPTIONAL_PEERS} (`hono` for `./replica` and `serve`, `@hono/node-server` for
 *    `serve` on Node, `@deno/kv` for the Deno KV driver on Node, `bullmq` and `ioredis` for the
 *    Redis queue engine) as optional peer dependencies, the rest as dependencies, so a user of
 *    the core installs none of them. It runs
 *    `npm install --ignore-scripts` in `npm/` with the optional peers as devDependencies at their
 *    pinned versions (npm never installs optional peers), so the compiler resolves bare
 *    specifiers against exactly the packages a consumer gets.
 * 3. Sets `engines.node` to the strictest of Node 20 (what the package is tested on) and the
 *    `engines.node` of every installed package (dependencies, their dependencies and the
 *    optional peers); fails when no single lower bound satisfies them all.
 * 4. Compiles `mod.ts`, `cli.node.ts`, `cli/`, `drivers/` and `src/` with `module`/
 *    `moduleResolution` `NodeNext`, `rewriteRelativeImportExtensions`, declarations, target
 *    ES2022 and the strict options of `deno.json`, into `npm/` as `.js` + `.d.ts`. Runtime
 *    variants are named `NAME.deno.ts` / `NAME.node.ts`: the Deno-only `.deno.ts` modules are
 *    left out, and an export of one is its `.node.ts` sibling in the package. Bare
 *    specifiers stay bare, but one the import map sends to a subpath (`registry-auth-token/
 *    registry-url` → `npm:registry-auth-token@5.1.1/registry-url.js`) is written as that subpath
 *    (`registry-auth-token/registry-url.js`).
 * 5. Fails when the exports of `deno.json` and of the package differ (`./drivers/deno_kv` is
 *    `drivers/deno_kv.deno.ts` in one and `drivers/deno_kv.node.ts` in the other), or when a
 *    compiled module imports a `.deno.ts` one. Writes the package README from
 *    `scripts/npm_README.md` (links to `{{repository}}` become absolute, or plain text without a
 *    repository), copies LICENSE, makes `cli.node.js` executable with its `#!/usr/bin/env node`
 *    line, and writes the bin, `bin.js`: it runs `cli.node.js`, whose commands load the optional
 *    peers they use and name a missing one (`cli/peers.ts`); should one be missing when
 *    `cli.node.js` itself loads, the bin says which, and how to install them, in one line (exit 1).
 *
 * A build whose inputs (sources, `deno.json`, the README source, LICENSE, this script, the
 * repository URL) are unchanged since the last one is skipped
 * (`npm/node_modules/.all-docs-build-stamp`); `--force` builds anyway. `--out DIR` builds
 * elsewhere.
 *
 * @module
 */

import ts from "npm:typescript@5.9.3";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** The repository root. */
export const ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Folders compiled whole (less Deno-only modules and tests). */
const SOURCE_DIRS = ["src", "cli", "drivers", "queues"];
/** Single files compiled. */
const SOURCE_FILES = ["mod.ts", "cli.node.ts"];
/**
 * Runtime variants are named `NAME.deno.ts` / `NAME.node.ts`. A `.deno.ts` module uses `Deno.*`
 * and is never compiled; an export of one in `deno.json` is its `.node.ts` sibling in the
 * package.
 */
const DENO_SUFFIX = ".deno.ts";
/** The suffix of a Deno-only module's Node flavour. */
const NODE_SUFFIX = ".node.ts";
/** The Hono read-replica app, exported as `./replica` once it exists. */
const REPLICA_APP = "./src/replica/app.ts";
/**
 * Types for `node:*` imports, installed next to the build (never a package dependency). 22, not
 * 20: the CLI names `ParseArgsOptionsConfig`, which 20's types do not export; the Node 20 runs of
 * `tests/runtimes/npm_build_test.ts` check that nothing newer than Node 20 is used at run time.
 */
const TYPES_NODE = "@types/node@22.20.7";
/** Where {@linkcode TYPES_NODE} is installed. */
const TOOLS_DIR = join(ROOT, ".tmp", "npm-build-tools");
/** TS7016: a package has JavaScript but no declarations. */
const UNTYPED_PACKAGE = 7016;
/** The package's bin. */
const BIN = { name: "_all_docs", source: "./cli.node.ts" };
/**
 * The bin npm links as `_all_docs`, written by the build: it runs the compiled CLI and turns a
 * missing optional peer into one line (see {@linkcode binScript}).
 */
const BIN_FILE = "bin.js";
/**
 * Packages of the import map published as optional peer dependencies, so a user of the core
 * installs none of them: `hono` (loaded by `./replica`), `@hono/node-server` (`serve` on Node),
 * `@deno/kv` (`./drivers/deno_kv` on Node), and `bullmq` with `ioredis` (the Redis queue
 * engine, `queues/bullmq.ts`; `ioredis` is itself an optional peer of `bullmq`, so it is named
 * too). The root export and the memory, fs, s3, cloudflare_kv and cloudflare_r2 drivers load none
 * of them; the `_all_docs` command loads each with the commands that use it (`cli/peers.ts`).
 */
export const OPTIONAL_PEERS: readonly string[] = [
  "hono",
  "@hono/node-server",
  "@deno/kv",
  "bullmq",
  "ioredis",
];
/** The oldest Node the package supports: the one its tests run on. */
const NODE_FLOOR = "20.0.0";
/**
 * The package README's source. It is written for npm users (install, library, `npx _all_docs`);
 * `{{repository}}` in a link stands for the repository's web URL.
 */
const README_SOURCE = "scripts/npm_README.md";
/** What the README source writes for the repository's web URL. */
const REPOSITORY_PLACEHOLDER = "{{repository}}";

/** What the build needs of `deno.json`. */
interface DenoJson {
  name: string;
  version: string;
  license?: string;
  exports: Record<string, string>;
  imports?: Record<string, string>;
  compilerOptions?: Record<string, unknown>;
}

/** An `npm:` import-map target, parsed. */
interface NpmTarget {
  name: string;
  version: string;
  /** The subpath after the version, without its leading slash, or `""`. */
  subpath: string;
}

/** Parses `npm:pkg@1.2.3/sub`, `npm:@scope/pkg@1.2.3` or `npm:/pkg@1.2.3/` (prefix form). */
export function parseNpmSpecifier(target: string): NpmTarget | undefined {
  const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)(?:\/(.*))?$/.exec(target);
  if (!match) return undefined;
  return { name: match[1]!, version: match[2]!, subpath: match[3] ?? "" };
}

/** A pinned version as a caret range (`4.13.19` → `^4.13.19`); anything else is kept. */
export function caretRange(version: string): string {
  return /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(version) ? `^${version}` : version;
}

/** The dependency fields of the package. */
export interface PackageDependencies {
  /** Installed with the package. */
  dependencies: Record<string, string>;
  /** Needed only by some subpaths; see {@linkcode OPTIONAL_PEERS}. */
  peerDependencies: Record<string, string>;
  /** Marks every peer optional, so npm 7+ does not install it. */
  peerDependenciesMeta: Record<string, { optional: true }>;
}

/**
 * Splits the import map's packages (name → pinned version) into dependencies and optional peer
 * dependencies, each as a caret range. Throws when an optional peer is not in the map.
 */
export function packageDependencies(
  pinned: Record<string, string>,
  optionalPeers: readonly string[] = OPTIONAL_PEERS,
): PackageDependencies {
  const out: PackageDependencies = {
    dependencies: {},
    peerDependencies: {},
    peerDependenciesMeta: {},
  };
  for (const peer of optionalPeers) {
    if (!(peer in pinned)) {
      throw new Error(
        `Cannot build the npm package: optional peer ${JSON.stringify(peer)} is not in ` +
          `deno.json's import map`,
      );
    }
  }
  for (const name of Object.keys(pinned).sort()) {
    const range = caretRange(pinned[name]!);
    if (optionalPeers.includes(name)) {
      out.peerDependencies[name] = range;
      out.peerDependenciesMeta[name] = { optional: true };
    } else {
      out.dependencies[name] = range;
    }
  }
  return out;
}

/** A version as `[major, minor, patch]` (pre-release tags ignored). */
type Version = [number, number, number];
/** One comparator of a range. */
type Comparator = { op: ">=" | ">" | "<=" | "<" | "="; version: Version };

function parseVersion(text: string): { version: Version; parts: number } | undefined {
  const match = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-[0-9A-Za-z.-]+)?$/
    .exec(text);
  if (!match) return undefined;
  const parts: number[] = [];
  for (const part of match.slice(1)) {
    if (part === undefined || !/^\d+$/.test(part)) break;
    parts.push(Number(part));
  }
  return { version: [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0], parts: parts.length };
}

function compareVersions(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** The comparators one term of a range (`>=16`, `^14.21.3`, `~1.2`, `20.x`) stands for. */
function termComparators(term: string, range: string): Comparator[] {
  const match = /^(>=|<=|>|<|=|\^|~)?\s*(.+)$/.exec(term);
  const parsed = match ? parseVersion(match[2]!) : undefined;
  if (!match || !parsed) {
    throw new Error(
      `Cannot build the npm package: cannot read the engines range ${JSON.stringify(range)}`,
    );
  }
  const op = match[1] ?? "";
  const [major, minor, patch] = parsed.version;
  const from: Comparator = { op: ">=", version: parsed.version };
  if (op === ">=" || op === ">" || op === "<=" || op === "<") {
    return [{ op, version: parsed.version }];
  }
  if (op === "^") {
    const below: Version = major > 0 || parsed.parts < 2
      ? [major + 1, 0, 0]
      : minor > 0 || parsed.parts < 3
      ? [0, minor + 1, 0]
      : [0, 0, patch + 1];
    return [from, { op: "<", version: below }];
  }
  if (op === "~") {
    const below: Version = parsed.parts < 2 ? [major + 1, 0, 0] : [major, minor + 1, 0];
    return [from, { op: "<", version: below }];
  }
  if (parsed.parts === 0) return [];
  if (parsed.parts === 3) return [{ op: "=", version: parsed.version }];
  const below: Version = parsed.parts === 1 ? [major + 1, 0, 0] : [major, minor + 1, 0];
  return [from, { op: "<", version: below }];
}

/** A semver range as alternatives (`||`) of comparator lists (`>=`, `^`, `~`, x-ranges). */
function parseRange(range: string): Comparator[][] {
  return range.split("||").map((alternative) => {
    const terms = alternative.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, "$1").split(/\s+/)
      .filter((term) => term !== "");
    return terms.flatMap((term) => termComparators(term, range));
  });
}

function satisfies(version: Version, alternatives: Comparator[][]): boolean {
  return alternatives.some((comparators) =>
    comparators.every(({ op, version: bound }) => {
      const order = compareVersions(version, bound);
      return op === ">="
        ? order >= 0
        : op === ">"
        ? order > 0
        : op === "<="
        ? order <= 0
        : op === "<"
        ? order < 0
        : order === 0;
    })
  );
}

/** The lowest version a range may allow: the least of its alternatives' lower bounds. */
function lowestAllowed(alternatives: Comparator[][]): Version {
  let lowest: Version | undefined;
  for (const comparators of alternatives) {
    let floor: Version = [0, 0, 0];
    for (const { op, version } of comparators) {
      if ((op === ">=" || op === ">" || op === "=") && compareVersions(version, floor) > 0) {
        floor = version;
      }
    }
    if (lowest === undefined || compareVersions(floor, lowest) < 0) lowest = floor;
  }
  return lowest ?? [0, 0, 0];
}

/**
 * The package's `engines.node`: the strictest of `floor` and the `engines.node` of every
 * installed package (`name@version` → range), as `>=MAJOR` or `>=MAJOR.MINOR.PATCH`. Throws,
 * naming the package, when one range does not allow that version (an upper bound below it).
 */
export function nodeEngine(ranges: Record<string, string>, floor: string = NODE_FLOOR): string {
  let strictest = parseVersion(floor)?.version;
  if (strictest === undefined) throw new TypeError(`Invalid Node version: ${floor}`);
  const parsed = Object.entries(ranges).map(([pkg, range]) => ({
    pkg,
    range,
    alt: parseRange(range),
  }));
  for (const { alt } of parsed) {
    const lowest = lowestAllowed(alt);
    if (compareVersions(lowest, strictest) > 0) strictest = lowest;
  }
  for (const { pkg, range, alt } of parsed) {
    if (!satisfies(strictest, alt)) {
      throw new Error(
        `Cannot build the npm package: ${pkg} needs node ${JSON.stringify(range)}, which does ` +
          `not allow ${strictest.join(".")}`,
      );
    }
  }
  const [major, minor, patch] = strictest;
  return minor === 0 && patch === 0 ? `>=${major}` : `>=${major}.${minor}.${patch}`;
}

/** The `engines.node` of every package installed under `nodeModules`, nested ones included. */
async function installedNodeEngines(nodeModules: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  const visit = async (dir: string): Promise<void> => {
    let entries: string[];
    try {
      entries = await fsp.readdir(dir);
    } catch {
      return;
    }
    for (const entry of entries.sort()) {
      if (entry.startsWith(".")) continue;
      if (entry.startsWith("@")) {
        for (const sub of (await fsp.readdir(join(dir, entry))).sort()) {
          await visitPackage(join(dir, entry, sub));
        }
      } else {
        await visitPackage(join(dir, entry));
      }
    }
  };
  const visitPackage = async (dir: string): Promise<void> => {
    try {
      const meta = JSON.parse(await fsp.readFile(join(dir, "package.json"), "utf8"));
      const node = meta?.engines?.node;
      if (typeof node === "string") found[`${meta.name}@${meta.version}`] = node;
    } catch {
      return;
    }
    await visit(join(dir, "node_modules"));
  };
  await visit(nodeModules);
  return found;
}

/** The `repository` field and the web URL for a git remote. */
export interface Repository {
  /** For package.json: `{ type: "git", url: "git+https://..." }`. */
  field: { type: "git"; url: string };
  /** The repository's page, for links (`https://host/owner/name`). */
  web: string;
}

/**
 * The package's repository for a git remote URL (`https://host/o/r.git`, `ssh://git@host/o/r`,
 * `git@host:o/r.git`), with any user name and password of an http(s) URL dropped; `undefined`
 * for a local path or another kind of remote, which means nothing to npm users.
 */
export function repositoryOf(remote: string): Repository | undefined {
  const text = remote.trim().replace(/^git\+/, "");
  let host: string;
  let path: string;
  let scheme: "https" | "http" | "ssh";
  const scp = /^(?:[\w.-]+@)?([\w.-]+):(?!\/)(.+)$/.exec(text);
  if (/^(https?|ssh):\/\//.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return undefined;
    }
    scheme = url.protocol.slice(0, -1) as typeof scheme;
    host = scheme === "ssh" ? url.hostname : url.host;
    path = url.pathname;
  } else if (scp && !/^[a-zA-Z]$/.test(scp[1]!)) {
    scheme = "ssh";
    host = scp[1]!;
    path = `/${scp[2]!}`;
  } else {
    return undefined;
  }
  path = path.replace(/\/+$/, "").replace(/\.git$/, "");
  if (host === "" || path === "" || path === "/") return undefined;
  const url = scheme === "ssh"
    ? `git+ssh://git@${host}${path}.git`
    : `git+${scheme}://${host}${path}.git`;
  return {
    field: { type: "git", url },
    web: `${scheme === "http" ? "http" : "https"}://${host}${path}`,
  };
}

/** `git remote get-url origin` at the root, or `undefined` when there is none. */
async function originRemote(): Promise<string | undefined> {
  const { execFile } = await import("node:child_process");
  return await new Promise((done) => {
    execFile("git", ["remote", "get-url", "origin"], { cwd: ROOT }, (error, stdout) => {
      done(error ? undefined : String(stdout).trim() || undefined);
    });
  });
}

/**
 * The package README from its source: `{{repository}}` becomes the repository's web URL, or,
 * without one, each link to it becomes its plain text. Throws on a relative link (npm shows
 * the README away from the repository) or a `{{repository}}` outside a link with no repository.
 */
export function renderReadme(source: string, web: string | undefined): string {
  const text = web === undefined
    ? source.replace(/\[([^\]]*)\]\(\{\{repository\}\}[^)]*\)/g, "$1")
    : source.replaceAll(REPOSITORY_PLACEHOLDER, web);
  if (text.includes(REPOSITORY_PLACEHOLDER)) {
    throw new Error(
      `Cannot build the npm package: ${README_SOURCE} names ${REPOSITORY_PLACEHOLDER} outside ` +
        `a link, and there is no repository`,
    );
  }
  for (const match of text.matchAll(/\]\(([^)\s]*)[^)]*\)/g)) {
    if (!/^https?:\/\//.test(match[1]!)) {
      throw new Error(
        `Cannot build the npm package: ${README_SOURCE} has a link that is not absolute, ` +
          `received ${JSON.stringify(match[1])}`,
      );
    }
  }
  return text;
}

/**
 * The `_all_docs` bin: runs `cli.node.js`; when that cannot load an optional peer (its commands
 * load theirs later, and name a missing one themselves), prints one line naming it and the
 * install command for all of them, and exits 1.
 */
export function binScript(packageName: string, peers: Record<string, string>): string {
  const install = Object.entries(peers).map(([name, range]) => `${name}@${range}`).join(" ");
  const after = `, an optional peer dependency of ${packageName} that the command needs; ` +
    `install the command's peers with: npm install ${install}\n`;
  return [
    "#!/usr/bin/env node",
    "// The _all_docs command: runs cli.node.js, whose commands load the optional peer",
    `// dependencies of ${packageName} they use. One missing at start is reported in one line.`,
    `const PEERS = ${JSON.stringify(Object.keys(peers))};`,
    "try {",
    '  await import("./cli.node.js");',
    "} catch (error) {",
    '  const missing = error?.code === "ERR_MODULE_NOT_FOUND"',
    "    ? PEERS.find((name) => String(error.message).includes(`'${name}'`))",
    "    : undefined;",
    "  if (missing === undefined) throw error;",
    `  process.stderr.write(\`_all_docs: cannot find package '\${missing}'\` + ${
      JSON.stringify(after)
    });`,
    "  process.exitCode = 1;",
    "}",
    "",
  ].join("\n");
}

/**
 * The bare-specifier rewrites and package dependencies an import map implies. An exact entry
 * `key → npm:pkg@v/sub` emits `key` as `pkg/sub`; a prefix entry `key/ → npm:/pkg@v/sub/` emits
 * `key/x` as `pkg/sub/x`. Any other kind of target (`jsr:`, URLs) cannot be published to npm.
 */
export function importMapPlan(imports: Record<string, string>): {
  dependencies: Record<string, string>;
  rewrite(specifier: string): string;
} {
  const dependencies: Record<string, string> = {};
  const exact = new Map<string, string>();
  const prefixes: [string, string][] = [];
  for (const [key, target] of Object.entries(imports)) {
    const parsed = parseNpmSpecifier(target);
    if (!parsed) {
      throw new Error(
        `Cannot build the npm package: import map entry ${JSON.stringify(key)} maps to ` +
          `${JSON.stringify(target)}, expected an npm: specifier`,
      );
    }
    const known = dependencies[parsed.name];
    if (known !== undefined && known !== parsed.version) {
      throw new Error(
        `Cannot build the npm package: ${parsed.name} is imported at versions ${known} and ` +
          `${parsed.version}`,
      );
    }
    dependencies[parsed.name] = parsed.version;
    const emitted = parsed.subpath ? `${parsed.name}/${parsed.subpath}` : parsed.name;
    if (key.endsWith("/")) prefixes.push([key, emitted.endsWith("/") ? emitted : `${emitted}/`]);
    else exact.set(key, emitted);
  }
  prefixes.sort((a, b) => b[0].length - a[0].length);
  return {
    dependencies: Object.fromEntries(
      Object.entries(dependencies).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
    ),
    rewrite(specifier: string): string {
      const hit = exact.get(specifier);
      if (hit !== undefined) return hit;
      for (const [key, emitted] of prefixes) {
        if (specifier.startsWith(key)) return emitted + specifier.slice(key.length);
      }
      return specifier;
    },
  };
}

/** Whether a module specifier is bare (a package), not relative, absolute or a URL scheme. */
function isBare(specifier: string): boolean {
  return !specifier.startsWith(".") && !specifier.startsWith("/") &&
    !/^[a-z][a-z0-9+.-]*:/i.test(specifier);
}

/** A `.ts` source path (`./x.ts`) as its emitted module (`./x.js`) and declarations. */
function emitted(source: string): { types: string; import: string } {
  const base = source.replace(/\.ts$/, "");
  return { types: `${base}.d.ts`, import: `${base}.js` };
}

/** Whether a module is Deno-only (`NAME.deno.ts`). */
function isDenoOnly(path: string): boolean {
  return path.endsWith(DENO_SUFFIX);
}

/**
 * The module the npm package uses for `source`: its Node flavour (`NAME.node.ts`) when `source`
 * is Deno-only (`NAME.deno.ts`), else `source` itself.
 */
export function nodeFlavour(source: string): string {
  return isDenoOnly(source) ? source.slice(0, -DENO_SUFFIX.length) + NODE_SUFFIX : source;
}

/**
 * The package's exports (subpath → source module): those of `deno.json`, with Deno-only
 * modules replaced by their Node flavour, plus `./replica` once `src/replica/app.ts` exists.
 * Throws when the package's subpaths and `deno.json`'s differ.
 */
export function packageExports(
  denoExports: Record<string, string>,
  replicaExists: boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [subpath, source] of Object.entries(denoExports)) {
    out[subpath] = nodeFlavour(source);
  }
  const wanted = new Set(Object.keys(out));
  if (replicaExists && !wanted.has("./replica")) {
    throw new Error(
      `Cannot build the npm package: exports differ between deno.json and package.json, ` +
        `received ${REPLICA_APP} without a "./replica" export in deno.json ` +
        `(add "./replica": "${REPLICA_APP}")`,
    );
  }
  if (wanted.has("./replica") && out["./replica"] !== REPLICA_APP) {
    throw new Error(
      `Cannot build the npm package: "./replica" of deno.json must be ${REPLICA_APP}, ` +
        `received ${out["./replica"]}`,
    );
  }
  return out;
}

/** Compares two export maps' subpaths; throws naming what one has and the other lacks. */
export function assertSameSubpaths(
  deno: Record<string, unknown>,
  pkg: Record<string, unknown>,
): void {
  const a = new Set(Object.keys(deno));
  const b = new Set(Object.keys(pkg));
  const onlyDeno = [...a].filter((s) => !b.has(s));
  const onlyPkg = [...b].filter((s) => !a.has(s));
  if (onlyDeno.length > 0 || onlyPkg.length > 0) {
    throw new Error(
      `Cannot build the npm package: exports differ between deno.json and package.json, ` +
        `received only in deno.json ${JSON.stringify(onlyDeno)}, ` +
        `only in package.json ${JSON.stringify(onlyPkg)}`,
    );
  }
}

/**
 * Lists the `.ts` files to compile and the Deno-only ones left out, relative to the root with
 * `/` separators, sorted.
 */
async function sourceFiles(): Promise<{ files: string[]; denoOnly: string[] }> {
  const files = [...SOURCE_FILES];
  const denoOnly: string[] = [];
  for (const dir of SOURCE_DIRS) {
    for (const entry of await fsp.readdir(join(ROOT, dir), { recursive: true })) {
      const path = `${dir}/${String(entry).split(sep).join("/")}`;
      if (!path.endsWith(".ts") || path.endsWith(".d.ts")) continue;
      if (/_(test|bench)\.ts$/.test(path)) continue;
      (isDenoOnly(path) ? denoOnly : files).push(path);
    }
  }
  return { files: files.sort(), denoOnly: denoOnly.sort() };
}

/** A hash of every input of the build. */
async function inputsHash(
  files: string[],
  denoOnly: string[],
  remote: string | undefined,
): Promise<string> {
  const hash = createHash("sha256");
  hash.update(`remote\0${remote ?? ""}\0`);
  const inputs = [
    ...files,
    "deno.json",
    README_SOURCE,
    "LICENSE",
    "scripts/build_npm.ts",
    ...denoOnly,
  ];
  for (const file of inputs.sort()) {
    hash.update(`${file}\0`);
    try {
      hash.update(await fsp.readFile(join(ROOT, file)));
    } catch {
      hash.update("\0missing");
    }
    hash.update("\0");
  }
  return hash.digest("hex");
}

/** Runs a command, inheriting stderr; throws on a non-zero exit. */
async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const { spawn } = await import("node:child_process");
  await new Promise<void>((done, fail) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "ignore", "inherit"] });
    child.on("error", fail);
    child.on(
      "exit",
      (code) =>
        code === 0 ? done() : fail(
          new Error(`Cannot build the npm package: '${cmd} ${args.join(" ")}' exited ${code}`),
        ),
    );
  });
}

/** Installs the `node:*` types the compiler needs, once. */
async function ensureNodeTypes(): Promise<string> {
  const typeRoot = join(TOOLS_DIR, "node_modules", "@types");
  const version = TYPES_NODE.slice(TYPES_NODE.lastIndexOf("@") + 1);
  try {
    const meta = JSON.parse(await fsp.readFile(join(typeRoot, "node", "package.json"), "utf8"));
    if (meta.version === version) return typeRoot;
  } catch {
    // Not installed yet.
  }
  await fsp.mkdir(TOOLS_DIR, { recursive: true });
  await fsp.writeFile(
    join(TOOLS_DIR, "package.json"),
    JSON.stringify({ private: true, devDependencies: { "@types/node": version } }, null, 2),
  );
  await run("npm", [
    "install",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--no-package-lock",
  ], TOOLS_DIR);
  return typeRoot;
}

/** Rewrites module specifiers of imports, exports and `import()` (types too) per the map. */
function specifierTransformer(
  rewrite: (specifier: string) => string,
): ts.TransformerFactory<ts.SourceFile | ts.Bundle> {
  return (context) => {
    const f = context.factory;
    const literal = (node: ts.Expression | undefined): ts.StringLiteral | undefined => {
      if (!node || !ts.isStringLiteral(node) || !isBare(node.text)) return undefined;
      const next = rewrite(node.text);
      return next === node.text ? undefined : f.createStringLiteral(next);
    };
    const visit = (node: ts.Node): ts.Node => {
      if (ts.isImportDeclaration(node)) {
        const spec = literal(node.moduleSpecifier);
        if (spec) {
          return f.updateImportDeclaration(
            node,
            node.modifiers,
            node.importClause,
            spec,
            node.attributes,
          );
        }
      } else if (ts.isExportDeclaration(node)) {
        const spec = literal(node.moduleSpecifier);
        if (spec) {
          return f.updateExportDeclaration(
            node,
            node.modifiers,
            node.isTypeOnly,
            node.exportClause,
            spec,
            node.attributes,
          );
        }
      } else if (ts.isImportTypeNode(node)) {
        const arg = node.argument;
        if (ts.isLiteralTypeNode(arg)) {
          const spec = literal(arg.literal as ts.Expression);
          if (spec) {
            return f.updateImportTypeNode(
              node,
              f.updateLiteralTypeNode(arg, spec),
              node.attributes,
              node.qualifier,
              ts.visitNodes(node.typeArguments, visit, ts.isTypeNode),
              node.isTypeOf,
            );
          }
        }
      } else if (
        ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
      ) {
        const spec = literal(node.arguments[0]);
        if (spec) {
          return f.updateCallExpression(node, node.expression, node.typeArguments, [
            spec,
            ...node.arguments.slice(1),
          ]);
        }
      }
      return ts.visitEachChild(node, visit, context);
    };
    return (root) => ts.visitNode(root, visit) as ts.SourceFile | ts.Bundle;
  };
}

/** Compiles `files` into `outDir`; throws with the formatted diagnostics on any error. */
function compile(
  files: string[],
  outDir: string,
  typeRoot: string,
  deno: DenoJson,
  rewrite: (specifier: string) => string,
): void {
  const strictFromDeno: ts.CompilerOptions = {};
  for (
    const key of [
      "strict",
      "noUncheckedIndexedAccess",
      "exactOptionalPropertyTypes",
      "noImplicitOverride",
      "noImplicitReturns",
      "noFallthroughCasesInSwitch",
    ] as const
  ) {
    const value = deno.compilerOptions?.[key];
    if (typeof value === "boolean") strictFromDeno[key] = value;
  }
  const options: ts.CompilerOptions = {
    ...strictFromDeno,
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    rewriteRelativeImportExtensions: true,
    allowImportingTsExtensions: true,
    declaration: true,
    lib: ["lib.esnext.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts", "lib.dom.asynciterable.d.ts"],
    types: ["node"],
    typeRoots: [typeRoot],
    skipLibCheck: true,
    rootDir: ROOT,
    outDir,
    newLine: ts.NewLineKind.LineFeed,
  };
  const host = ts.createCompilerHost(options);
  // The sources have no package.json of their own: a virtual one makes them ES modules.
  const rootPackageJson = join(ROOT, "package.json");
  const virtualPackageJson = JSON.stringify({ type: "module" });
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.fileExists = (path) => resolve(path) === rootPackageJson || fileExists(path);
  host.readFile = (path) => {
    const full = resolve(path);
    if (full === rootPackageJson) return virtualPackageJson;
    return readFile(path);
  };
  // Bare specifiers resolve as the import map says, from the package's own node_modules.
  const fromPackage = join(outDir, "__resolve__.ts");
  const cache = ts.createModuleResolutionCache(ROOT, (s) => s, options);
  host.resolveModuleNameLiterals = (literals, containingFile, redirect, opts, sourceFile) =>
    literals.map((literal) => {
      const text = literal.text;
      const mode = ts.getModeForUsageLocation(sourceFile, literal, opts);
      if (isBare(text) && !text.startsWith("node:")) {
        return ts.resolveModuleName(rewrite(text), fromPackage, opts, host, cache, redirect, mode);
      }
      return ts.resolveModuleName(text, containingFile, opts, host, cache, redirect, mode);
    });
  const program = ts.createProgram({
    rootNames: files.map((file) => join(ROOT, file)),
    options,
    host,
  });
  const transformer = specifierTransformer(rewrite);
  const result = program.emit(undefined, undefined, undefined, undefined, {
    before: [transformer as ts.TransformerFactory<ts.SourceFile>],
    afterDeclarations: [transformer],
  });
  // Like Deno, an npm package without types is `any` rather than an error.
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics]
    .filter((d) => d.code !== UNTYPED_PACKAGE);
  if (diagnostics.length > 0) {
    throw new Error(
      "Cannot build the npm package: TypeScript reported errors\n" +
        ts.formatDiagnosticsWithColorAndContext(diagnostics, {
          getCanonicalFileName: (s) => s,
          getCurrentDirectory: () => ROOT,
          getNewLine: () => "\n",
        }),
    );
  }
  const outside = program.getSourceFiles()
    .map((s) => s.fileName)
    .filter((name) => !name.includes("/node_modules/") && !name.startsWith(TOOLS_DIR))
    .map((name) => relative(ROOT, name).split(sep).join("/"))
    .filter(isDenoOnly);
  if (outside.length > 0) {
    throw new Error(
      `Cannot build the npm package: Deno-only modules are imported: ${outside.join(", ")}`,
    );
  }
}

/** Options of {@linkcode buildNpm}. */
export interface BuildOptions {
  /** The output folder (default `npm/` at the root). */
  outDir?: string;
  /** Build even when the inputs are unchanged. */
  force?: boolean;
  /** Lines of progress go here (default stderr). */
  log?: (line: string) => void;
}

/** What {@linkcode buildNpm} did. */
export interface BuildResult {
  /** The output folder. */
  outDir: string;
  /** Whether it was built now (`false`: the last build was still current). */
  built: boolean;
  /** The generated package.json. */
  packageJson: Record<string, unknown>;
}

/** Builds the npm package (see the module doc). */
export async function buildNpm(options: BuildOptions = {}): Promise<BuildResult> {
  const outDir = resolve(options.outDir ?? join(ROOT, "npm"));
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = performance.now();
  const deno = JSON.parse(await fsp.readFile(join(ROOT, "deno.json"), "utf8")) as DenoJson;
  const { files, denoOnly } = await sourceFiles();
  const remote = await originRemote();
  const stamp = await inputsHash(files, denoOnly, remote);
  const stampFile = join(outDir, "node_modules", ".all-docs-build-stamp");
  if (!options.force && existsSync(join(outDir, "node_modules"))) {
    try {
      if ((await fsp.readFile(stampFile, "utf8")) === stamp) {
        const packageJson = JSON.parse(await fsp.readFile(join(outDir, "package.json"), "utf8"));
        log(`npm package in ${relative(ROOT, outDir) || "."} is up to date`);
        return { outDir, built: false, packageJson };
      }
    } catch {
      // No stamp: build.
    }
  }

  const plan = importMapPlan(deno.imports ?? {});
  const deps = packageDependencies(plan.dependencies);
  const repository = remote === undefined ? undefined : repositoryOf(remote);
  if (repository === undefined) {
    log(
      remote === undefined
        ? "no git remote 'origin': package.json has no repository, README links are plain text"
        : "git remote 'origin' is not an http(s) or ssh URL: package.json has no repository",
    );
  }
  const readme = renderReadme(
    await fsp.readFile(join(ROOT, README_SOURCE), "utf8"),
    repository?.web,
  );
  const replicaExists = existsSync(join(ROOT, REPLICA_APP));
  const sources = packageExports(deno.exports, replicaExists);
  const exportsMap: Record<string, { types: string; import: string }> = {};
  for (const [subpath, source] of Object.entries(sources)) exportsMap[subpath] = emitted(source);
  assertSameSubpaths(deno.exports, exportsMap);
  for (const source of Object.values(sources)) {
    const file = source.slice(2);
    if (!files.includes(file)) {
      throw new Error(`Cannot build the npm package: export ${source} is not compiled`);
    }
  }

  const compiledFiles = SOURCE_FILES.flatMap((file) => {
    const { import: js, types } = emitted(`./${file}`);
    return [js.slice(2), types.slice(2)];
  });
  const packageJson: Record<string, unknown> = {
    name: deno.name,
    version: deno.version,
    description: "Mirror npm registry metadata at scale: _all_docs partitions, packuments, " +
      "pluggable storage.",
    license: deno.license ?? "MIT",
    ...(repository ? { repository: repository.field } : {}),
    type: "module",
    sideEffects: false,
    exports: { ...exportsMap, "./package.json": "./package.json" },
    main: exportsMap["."]?.import,
    types: exportsMap["."]?.types,
    bin: { [BIN.name]: `./${BIN_FILE}` },
    // npm adds package.json, README and LICENSE itself.
    files: [...compiledFiles, BIN_FILE, ...SOURCE_DIRS.map((dir) => `${dir}/`)],
    engines: { node: `>=${NODE_FLOOR.split(".")[0]}` },
    ...deps,
  };

  // Keep the installed node_modules between builds; everything else is rebuilt.
  await fsp.mkdir(outDir, { recursive: true });
  await fsp.rm(stampFile, { force: true });
  for (const entry of await fsp.readdir(outDir)) {
    if (entry !== "node_modules") {
      await fsp.rm(join(outDir, entry), { recursive: true, force: true });
    }
  }
  // npm never installs optional peers (and `--no-save` does not add one an existing tree lacks):
  // install with them as devDependencies at their pins, for the compiler, then write the real
  // package.json.
  const { peerDependencies: _peers, peerDependenciesMeta: _meta, ...forInstall } = packageJson;
  const pins = Object.fromEntries(
    Object.keys(deps.peerDependencies).map((name) => [name, plan.dependencies[name]!]),
  );
  await fsp.writeFile(
    join(outDir, "package.json"),
    `${JSON.stringify({ ...forInstall, devDependencies: pins }, null, 2)}\n`,
  );
  await run("npm", [
    "install",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--no-package-lock",
  ], outDir);
  packageJson.engines = {
    node: nodeEngine(await installedNodeEngines(join(outDir, "node_modules"))),
  };
  await fsp.writeFile(join(outDir, "package.json"), `${JSON.stringify(packageJson, null, 2)}\n`);
  const installed = performance.now();

  const typeRoot = await ensureNodeTypes();
  compile(files, outDir, typeRoot, deno, plan.rewrite);
  const compiled = performance.now();

  const cli = join(outDir, emitted(BIN.source).import);
  const cliText = await fsp.readFile(cli, "utf8");
  if (!cliText.startsWith("#!")) await fsp.writeFile(cli, `#!/usr/bin/env node\n${cliText}`);
  await fsp.chmod(cli, 0o755);
  const bin = join(outDir, BIN_FILE);
  await fsp.writeFile(bin, binScript(deno.name, deps.peerDependencies));
  await fsp.chmod(bin, 0o755);
  await fsp.writeFile(join(outDir, "README.md"), readme);
  await fsp.copyFile(join(ROOT, "LICENSE"), join(outDir, "LICENSE"));
  await fsp.writeFile(stampFile, stamp);
  log(
    `built npm package ${deno.name}@${deno.version} in ${relative(ROOT, outDir) || "."}: ` +
      `${files.length} modules, ${Object.keys(exportsMap).length} exports ` +
      `(npm install ${((installed - started) / 1000).toFixed(1)}s, ` +
      `tsc ${((compiled - installed) / 1000).toFixed(1)}s)`,
  );
  return { outDir, built: true, packageJson };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { out: { type: "string" }, force: { type: "boolean" } },
  });
  try {
    const buildOptions: BuildOptions = { force: values.force === true };
    if (values.out !== undefined) buildOptions.outDir = values.out;
    await buildNpm(buildOptions);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
