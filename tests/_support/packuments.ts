import {
  ABBREVIATED_VERSION_FIELDS,
  abbreviatePackument,
  modifiedOf,
} from "../../src/npm/corgi.ts";
/**
 * Package documents ("packuments") for tests and benchmarks: the real ones kept under
 * `tests/fixtures/packuments/`, deterministic generated ones of any size (up to and past
 * 110 MB, produced piece by piece), and the abbreviated ("corgi") form a registry serves for
 * `Accept: application/vnd.npm.install-v1+json`.
 *
 * Every tarball URL points at `registry.example.test`; nothing here names a public host.
 *
 * @module
 */

/** The folder of the real packuments, one `encodeURIComponent(name).json` file each. */
export const FIXTURE_PACKUMENTS_DIR: URL = new URL("../fixtures/packuments/", import.meta.url);

/** The host every generated tarball URL points at. */
export const TARBALL_HOST = "registry.example.test";

/**
 * Reads every packument under {@linkcode FIXTURE_PACKUMENTS_DIR}.
 *
 * @returns The exact file bytes by package name (the file name, percent-decoded, without
 *   `.json`), in code-unit order of the names.
 */
export async function loadFixturePackuments(): Promise<Map<string, Uint8Array>> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(FIXTURE_PACKUMENTS_DIR)) {
    if (entry.isFile && entry.name.endsWith(".json")) files.push(entry.name);
  }
  files.sort();
  const out = new Map<string, Uint8Array>();
  for (const file of files) {
    const name = decodeURIComponent(file.slice(0, -".json".length));
    out.set(name, await Deno.readFile(new URL(file, FIXTURE_PACKUMENTS_DIR)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generated packuments

/** Options of {@linkcode generatePackument}. */
export interface GenerateOptions {
  /** How many versions the document has (at least 1). */
  versions: number;
  /** Varies the content for the same name and version count (default 0). */
  seed?: number;
  /**
   * Pads the document with readme text to exactly this many UTF-8 bytes, when it is larger than
   * the unpadded document. With room for at least 1 KiB a version, the padding is spread over
   * per-version `readme` fields (as old packuments had them); otherwise it goes into the
   * top-level `readme`.
   */
  targetBytes?: number;
}

/** A small, fast, deterministic 32-bit PRNG (mulberry32) returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over the UTF-16 code units of `text`. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const HEX = "0123456789abcdef";
const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function hexOf(random: () => number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += HEX[Math.floor(random() * 16)]!;
  return out;
}

/** Base64 text of `bytes` random bytes, with `=` padding. */
function base64Of(random: () => number, bytes: number): string {
  let out = "";
  const full = Math.floor(bytes / 3);
  for (let i = 0; i < full * 4; i++) out += BASE64[Math.floor(random() * 64)]!;
  const rest = bytes % 3;
  if (rest === 1) {
    out += BASE64[Math.floor(random() * 64)]! + BASE64[Math.floor(random() * 4) * 16]! + "==";
  }
  if (rest === 2) {
    out += BASE64[Math.floor(random() * 64)]! + BASE64[Math.floor(random() * 64)]! +
      BASE64[Math.floor(random() * 16) * 4]! + "=";
  }
  return out;
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

const DEPENDENCY_POOL = [
  "ms",
  "debug",
  "left-pad",
  "is-number",
  "chalk",
  "semver",
  "lodash",
  "tslib",
  "once",
  "inherits",
  "glob",
  "minimatch",
  "uuid",
  "supports-color",
  "ansi-styles",
  "has-flag",
  "color-convert",
  "escape-string-regexp",
  "@types/node",
  "@babel/runtime",
  "@scope/util",
];
const DEV_POOL = ["mocha", "tap", "eslint", "prettier", "typescript", "jest", "xo", "c8", "nyc"];
const WORDS = [
  "fast",
  "tiny",
  "simple",
  "robust",
  "streaming",
  "parser",
  "utility",
  "helpers",
  "for",
  "node",
  "and",
  "the",
  "browser",
  "with",
  "zero",
  "dependencies",
  "strings",
  "numbers",
  "async",
  "promises",
  "cache",
  "registry",
  "metadata",
  "config",
];
const PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"];
const DAY = 86_400_000;

/**
 * A block of readme text, JSON-escaped and ASCII only, whose only escapes are `\n` pairs. Cut
 * points used for padding are at spaces, so no escape is ever split.
 */
const README_BLOCK = [
  "## Usage\\n\\n```js\\nconst lib = require('lib');\\nlib.run({ retries: 3 });\\n```\\n\\n",
  "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ",
  "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco ",
  "laboris nisi ut aliquip ex ea commodo consequat.\\n\\n### Options\\n\\n| name | default |\\n",
  "| --- | --- |\\n| `retries` | `3` |\\n| `timeout` | `30000` |\\n\\nDuis aute irure dolor in ",
  "reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint ",
  "occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est ",
  "laborum.\\n\\n## License\\n\\nMIT \\n\\n",
].join("").repeat(8);
const README_CUTS: number[] = [];
for (let i = 1; i < README_BLOCK.length; i++) {
  if (README_BLOCK[i - 1] === " ") README_CUTS.push(i);
}
const PIECE = 64 * 1024;

/** `length` characters of readme text starting at cut `start`, in pieces of at most 64 KiB. */
function* padding(length: number, start: number): Generator<string> {
  const cut = README_CUTS[start % README_CUTS.length]!;
  const block = README_BLOCK.slice(cut) + README_BLOCK.slice(0, cut);
  const reps = Math.max(1, Math.floor(PIECE / block.length));
  const big = block.repeat(reps);
  let left = length;
  while (left >= big.length) {
    yield big;
    left -= big.length;
  }
  if (left > 0) {
    const tail = big.slice(0, left);
    yield tail.endsWith("\\") ? tail.slice(0, -1) + " " : tail;
  }
}

/** UTF-8 byte length of `text`. */
function byteLength(text: string): number {
  // deno-lint-ignore no-control-regex
  return /[^\u0000-\u007f]/.test(text) ? new TextEncoder().encode(text).length : text.length;
}

interface PaddingPlan {
  /** Characters of `readme` in every version (0: no such field). */
  perVersion: number;
  /** Extra characters appended to the top-level readme. */
  top: number;
}

const NO_PADDING: PaddingPlan = { perVersion: 0, top: 0 };
const VERSION_README_OVERHEAD = ',"readme":""'.length;

function versionList(random: () => number, count: number): string[] {
  const out: string[] = [];
  let major = random() < 0.3 ? 0 : 1;
  let minor = major === 0 ? 1 : 0;
  let patch = 0;
  while (out.length < count) {
    out.push(`${major}.${minor}.${patch}`);
    if (out.length === count) break;
    const r = random();
    if (r < 0.68) patch++;
    else if (r < 0.93) {
      minor++;
      patch = 0;
    } else {
      if (random() < 0.5 && out.length + 1 < count) out.push(`${major + 1}.0.0-rc.0`);
      major++;
      minor = 0;
      patch = 0;
    }
  }
  return out;
}

function* chunks(
  name: string,
  versions: number,
  seed: number,
  plan: PaddingPlan,
): Generator<string> {
  const random = prng(fnv1a(`${name}\u0000${seed}`) ^ Math.imul(seed, 0x9e3779b1));
  const slash = name.indexOf("/");
  const base = name.startsWith("@") && slash > 0 ? name.slice(slash + 1) : name;
  const owner = pick(random, PEOPLE);
  const repoUrl = `git+https://git.example.test/${owner}/${base}.git`;
  const words = Array.from({ length: 4 + Math.floor(random() * 6) }, () => pick(random, WORDS));
  const description = `${words.join(" ")}.`;
  const keywords = [...new Set(words.slice(0, 4))];
  const license = pick(random, ["MIT", "MIT", "ISC", "Apache-2.0", "BSD-3-Clause"]);
  const maintainers = [...new Set([owner, pick(random, PEOPLE)])].map((person) => ({
    name: person,
    email: `${person}@example.test`,
  }));
  const list = versionList(random, versions);
  const revPrefix = versions + 1 + Math.floor(random() * 5);
  const rev = `${revPrefix}-${hexOf(random, 32)}`;
  let clock = Date.UTC(2012, 0, 1) + Math.floor(random() * 8 * 365 * DAY);
  const step = Math.max(3_600_000, Math.min(60 * DAY, Math.floor((6 * 365 * DAY) / versions)));
  const created = clock;
  const times: number[] = [];
  const latest = list.filter((v) => !v.includes("-")).at(-1) ?? list.at(-1)!;
  const distTags: Record<string, string> = { latest };
  const last = list.at(-1)!;
  if (last !== latest) distTags.next = last;

  const q = JSON.stringify;
  yield `{"_id":${q(name)},"_rev":${q(rev)},"name":${q(name)},"description":${
    q(description)
  },"dist-tags":${q(distTags)},"versions":{`;

  const depNames = DEPENDENCY_POOL.filter((d) => d !== name);
  let deps: Record<string, string> = {};
  for (let i = 0; i < list.length; i++) {
    const version = list[i]!;
    clock += 60_000 + Math.floor(random() * step);
    times.push(clock);
    if (i === 0 || random() < 0.2) {
      deps = {};
      const n = Math.floor(random() * 6);
      for (let d = 0; d < n; d++) {
        const dep = pick(random, depNames);
        deps[dep] = `${pick(random, ["^", "~", ""])}${Math.floor(random() * 9)}.${
          Math.floor(random() * 20)
        }.${Math.floor(random() * 10)}`;
      }
    }
    const doc: Record<string, unknown> = {
      name,
      version,
      description,
      main: "index.js",
    };
    if (random() < 0.15) doc.bin = { [base]: "bin/cli.js" };
    const install = random() < 0.05;
    doc.scripts = install
      ? { test: "node test.js", install: "node-gyp rebuild" }
      : { test: pick(random, ["mocha", "tap test/*.js", "node --test", "jest"]) };
    doc.repository = { type: "git", url: repoUrl };
    doc.keywords = keywords;
    doc.author = { name: owner, email: `${owner}@example.test` };
    doc.license = license;
    if (random() < 0.04) doc.deprecated = `use ${base}@${latest} instead`;
    doc.dependencies = deps;
    const dev: Record<string, string> = {};
    for (let d = Math.floor(random() * 4); d > 0; d--) {
      dev[pick(random, DEV_POOL)] = `^${1 + Math.floor(random() * 9)}.0.0`;
    }
    doc.devDependencies = dev;
    if (random() < 0.1) doc.optionalDependencies = { fsevents: "^2.3.2" };
    if (random() < 0.12) {
      doc.peerDependencies = { typescript: ">=4.7" };
      doc.peerDependenciesMeta = { typescript: { optional: true } };
    }
    doc.engines = { node: `>=${pick(random, [4, 6, 8, 10, 12, 14, 16, 18])}` };
    if (random() < 0.05) {
      doc.os = ["darwin", "linux"];
      doc.cpu = ["x64", "arm64"];
    }
    if (random() < 0.1) doc.funding = { type: "github", url: `https://git.example.test/${owner}` };
    doc.gitHead = hexOf(random, 40);
    doc._id = `${name}@${version}`;
    doc._nodeVersion = `${8 + Math.floor(random() * 14)}.${Math.floor(random() * 20)}.0`;
    doc._npmVersion = `${5 + Math.floor(random() * 6)}.${Math.floor(random() * 20)}.0`;
    doc.dist = {
      integrity: `sha512-${base64Of(random, 64)}`,
      shasum: hexOf(random, 40),
      tarball: `https://${TARBALL_HOST}/${name}/-/${base}-${version}.tgz`,
      fileCount: 3 + Math.floor(random() * 40),
      unpackedSize: 1000 + Math.floor(random() * 200_000),
      signatures: [{
        keyid: "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA",
        sig: `MEUCIQ${base64Of(random, 30)}AiB${base64Of(random, 30)}`,
      }],
    };
    doc._npmUser = { name: owner, email: `${owner}@example.test` };
    doc.directories = {};
    doc.maintainers = maintainers;
    if (install) doc.hasInstallScript = true;
    doc._hasShrinkwrap = false;
    const json = q(doc);
    const head = `${i === 0 ? "" : ","}${q(version)}:`;
    if (plan.perVersion === 0) {
      yield head + json;
    } else {
      yield `${head}${json.slice(0, -1)},"readme":"`;
      yield* padding(plan.perVersion - VERSION_README_OVERHEAD, i);
      yield `"}`;
    }
  }
  const modified = clock + Math.floor(random() * DAY);
  let time = `},"time":{"created":${q(new Date(created).toISOString())},"modified":${
    q(new Date(modified).toISOString())
  }`;
  for (let i = 0; i < list.length; i++) {
    time += `,${q(list[i]!)}:${q(new Date(times[i]!).toISOString())}`;
  }
  yield time + "}";
  const readme = `# ${q(name).slice(1, -1)}\\n\\n${description}\\n\\n` +
    README_BLOCK.slice(0, README_CUTS[Math.floor(random() * README_CUTS.length)]!);
  yield `,"maintainers":${q(maintainers)},"author":${
    q({ name: owner, email: `${owner}@example.test` })
  },"repository":${q({ type: "git", url: repoUrl })},"homepage":${
    q(`https://git.example.test/${owner}/${base}#readme`)
  },"bugs":${q({ url: `https://git.example.test/${owner}/${base}/issues` })},"license":${
    q(license)
  },"keywords":${q(keywords)},"readme":"${readme}`;
  yield* padding(plan.top, list.length);
  yield `","readmeFilename":"README.md"}`;
}

function checkOptions(options: GenerateOptions): void {
  if (!Number.isSafeInteger(options.versions) || options.versions < 1) {
    throw new RangeError(`bad versions ${options.versions}`);
  }
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`bad seed ${seed}`);
  const target = options.targetBytes;
  if (target !== undefined && (!Number.isSafeInteger(target) || target < 0)) {
    throw new RangeError(`bad targetBytes ${target}`);
  }
}

function planFor(name: string, options: GenerateOptions): PaddingPlan {
  const target = options.targetBytes;
  if (target === undefined) return NO_PADDING;
  let base = 0;
  for (const chunk of chunks(name, options.versions, options.seed ?? 0, NO_PADDING)) {
    base += byteLength(chunk);
  }
  if (target <= base) return NO_PADDING;
  const extra = target - base;
  const versions = options.versions;
  if (extra < versions * (VERSION_README_OVERHEAD + 1024)) return { perVersion: 0, top: extra };
  const perVersion = Math.floor(extra / versions);
  return { perVersion, top: extra - perVersion * versions };
}

/**
 * The JSON text of {@linkcode generatePackument} in pieces (none larger than about 64 KiB plus
 * one version object), so that a 110 MB document can be served without ever being held whole.
 * With `targetBytes`, the unpadded document is generated once first, to measure it.
 */
export function generatePackumentChunks(name: string, options: GenerateOptions): Iterable<string> {
  checkOptions(options);
  const plan = planFor(name, options);
  return {
    [Symbol.iterator]: () => chunks(name, options.versions, options.seed ?? 0, plan),
  };
}

/**
 * A deterministic, realistic full packument: `_id`, `_rev` (`N-<32 hex>`), `name`,
 * `description`, `dist-tags` (`latest`, and `next` when the newest version is a prerelease),
 * `versions` (each with `name`, `version`, `description`, `scripts`, `repository`,
 * `dependencies`, `devDependencies`, `engines`, `dist` with a `registry.example.test` tarball,
 * `shasum` and `integrity`, `maintainers`, `_npmUser`, and now and then `bin`, `deprecated`,
 * `optionalDependencies`, `peerDependencies`, `os`/`cpu`, `funding`, `hasInstallScript`),
 * `time` (`created`, `modified`, one entry a version), `maintainers`, `readme` and more.
 * Compact JSON, ASCII except for the name itself. The same arguments always give the same text.
 */
export function generatePackument(name: string, options: GenerateOptions): string {
  return Array.from(generatePackumentChunks(name, options)).join("");
}

// ---------------------------------------------------------------------------------------------
// Abbreviated ("corgi") documents

/** The per-version fields an abbreviated document keeps, in the order they are written. */
export const CORGI_VERSION_FIELDS: readonly string[] = ABBREVIATED_VERSION_FIELDS;

export { modifiedOf };

/**
 * The abbreviated ("corgi") form of a full packument, as served for
 * `Accept: application/vnd.npm.install-v1+json`: `name`, `dist-tags`, `versions` with only the
 * install fields of {@linkcode CORGI_VERSION_FIELDS} that are present, and `modified` (see
 * {@linkcode modifiedOf}; left out when there is no date at all).
 *
 * @throws {TypeError} If `full` is not an object with a string `name`.
 */
export function abbreviate(full: unknown): object {
  // One definition of the abbreviated document for the project: the replica derives it the same
  // way, so the fixture registry and the replica always agree.
  return abbreviatePackument(full);
}
