/**
 * `packument fetch`, `packument fetch-list`, `packument fetch-partitions` and `packument show`:
 * their usage, help, flags and handlers.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { Cache } from "../../src/storage/cache.ts";
import type { HttpClient } from "../../src/http/client.ts";
import { packumentKey, type Representation } from "../../src/storage/keys.ts";
import { type NameList, packageNameProblem, parseNameList } from "../../src/npm/package_name.ts";
import {
  type FetchPackumentOptions,
  fetchPackuments,
  type FetchSummary,
  type PackumentResult,
} from "../../src/jobs/fetch_packuments.ts";
import { syncPackumentRows, syncPackuments } from "../../src/jobs/sync_packuments.ts";
import { isIndexText, parseIndexLines } from "../../src/jobs/index_lines.ts";
import {
  clientFor,
  type Command,
  type CommandContext,
  originKeyOf,
  withCache,
} from "../context.ts";
import { bar, duration, err, formatBytes, out, Progress } from "../io.ts";
import { UsageError } from "../options.ts";
import { loadPivots } from "../pivots_file.ts";
import { registryResolver } from "../registry.ts";

/** Keys a fetch run lists to seed its bloom filter before giving the filter up. */
const FETCH_BLOOM_SEED_LIMIT = 100_000;
/** Fewer names than this are looked up without a bloom filter. */
const FETCH_BLOOM_MIN_NAMES = 1000;

function representationOf(ctx: CommandContext): Representation {
  return ctx.values["abbreviated"] === true ? "abbreviated" : "full";
}

function modeOf(ctx: CommandContext): { refresh: boolean; offline: boolean } {
  const refresh = ctx.values["refresh"] === true;
  const offline = ctx.values["offline"] === true;
  if (refresh && offline) throw new UsageError("Conflicting options: --refresh and --offline");
  return { refresh, offline };
}

function describeProblems(
  problems: { at: number; kind: string; value: string; problem: string }[],
  source: string,
): string {
  const first = problems.slice(0, 5).map((p) =>
    `${p.kind} ${p.at}: ${JSON.stringify(p.value)} (${p.problem})`
  );
  const more = problems.length > 5 ? `; and ${problems.length - 5} more` : "";
  return `Invalid package name${problems.length > 1 ? "s" : ""} in ${source}: ${
    first.join("; ")
  }${more}`;
}

/**
 * Reads a name list file (`.json`: an array; else one `name` or `name@range` a line, `#`
 * comments), as `packument fetch-list` takes it.
 *
 * @throws {UsageError} When it cannot be read, or naming its bad entries.
 */
export async function readNameListFile(file: string): Promise<NameList> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new UsageError(`Cannot read name list '${file}': ${(cause as Error).message}`);
  }
  const list = parseNameList(text, extname(file).toLowerCase() === ".json" ? "json" : "txt");
  if ("problems" in list) throw new UsageError(describeProblems(list.problems, file));
  return list;
}

/** What a fetch command hands its fetch: where and how, and a callback per result. */
type FetchRunOptions = FetchPackumentOptions & {
  parallel: number;
  onResult: (result: PackumentResult) => void;
};

/** One fetch over a cache: its totals, with the names skipped for an unchanged `_rev`. */
type FetchRun = (
  client: HttpClient,
  cache: Cache,
  options: FetchRunOptions,
) => Promise<FetchSummary & { sameRev?: number }>;

/** Runs a fetch with progress, summary and exit status; `total` is the names when known. */
async function runFetch(
  ctx: CommandContext,
  total: number | undefined,
  fetch: FetchRun,
): Promise<number> {
  const { options } = ctx;
  const { refresh, offline } = modeOf(ctx);
  const representation = representationOf(ctx);
  const registryFor = await registryResolver(options);
  const client = clientFor(options);
  const driver = await ctx.openDriver();
  const progress = Progress.for(options);
  const started = Date.now();
  let done = 0;
  let bytes = 0;
  let writes: Promise<void> = Promise.resolve();
  // A closed stdout (`--json | head -3`) stops the run: what was stored stays fresh.
  const stop = new AbortController();
  try {
    // On a long run a bloom filter answers "not cached" for new names without a read. Seeding
    // it lists the cache, so a short run goes without; so does a cache of more than
    // FETCH_BLOOM_SEED_LIMIT keys, where most names asked for are present anyway.
    const cache = await Cache.open(driver, {
      ...ctx.cacheOptions,
      bloom: total !== undefined && total < FETCH_BLOOM_MIN_NAMES ? false : {
        seedLimit: FETCH_BLOOM_SEED_LIMIT,
        expectedItems: FETCH_BLOOM_SEED_LIMIT + (total ?? 1_000_000),
      },
    });
    const summary = await fetch(client, cache, {
      registryFor,
      representation,
      refresh,
      offline,
      parallel: options.concurrency,
      signal: stop.signal,
      onResult(result) {
        done++;
        bytes += result.bytes;
        if (options.json) {
          writes = writes.then(() => out(JSON.stringify({ type: "packument", ...result }) + "\n"))
            .catch((error) => {
              stop.abort(error);
            });
        }
        const elapsed = Date.now() - started;
        const rate = done / Math.max(elapsed / 1000, 0.001);
        const eta = total && total > done ? ((total - done) / Math.max(rate, 0.001)) * 1000 : 0;
        progress.update(
          `${bar(done, total)} ${done}/${total ?? "?"}  ` +
            `${Math.round(rate)}/s  ${formatBytes(bytes)}  ETA ${duration(eta)}`,
        );
      },
    });
    await writes;
    if (stop.signal.aborted) throw stop.signal.reason;
    progress.done();
    const seconds = (Date.now() - started) / 1000;
    const o = summary.outcomes;
    const { sameRev } = summary;
    const result = {
      type: "summary",
      total: summary.total + (sameRev ?? 0),
      fetched: o.fetched,
      revalidated: o.revalidated,
      unchanged: o.cached,
      ...(sameRev !== undefined ? { skippedSameRev: sameRev } : {}),
      notFound: o["not-found"],
      missing: o.missing,
      failed: summary.failed.map((f) => ({ name: f.name, error: f.error })),
      bytes: summary.bytes,
      requests: client.stats.requests,
      retries: client.stats.retries,
      seconds,
    };
    if (options.json) await out(JSON.stringify(result) + "\n");
    else if (!options.quiet) {
      await out(
        `fetched ${o.fetched}, revalidated ${o.revalidated}, unchanged ${o.cached}` +
          (sameRev !== undefined ? `, skipped (same _rev) ${sameRev}` : "") +
          `, not found ${o["not-found"]}` + (offline ? `, missing ${o.missing}` : "") +
          `, failed ${summary.failed.length}, ${formatBytes(summary.bytes)}, ` +
          `${seconds.toFixed(1)} s\n`,
      );
    }
    for (const f of summary.failed) err(`failed ${f.name}: ${f.error}`);
    if (offline && o.missing > 0 && !options.json) err(`${o.missing} not in the cache`);
    return summary.failed.length > 0 || (offline && o.missing > 0) ? 1 : 0;
  } finally {
    progress.done();
    await driver.close();
  }
}

/** `packument fetch NAME...`. */
function packumentFetch(ctx: CommandContext): Promise<number> {
  if (ctx.args.length === 0) throw new UsageError("Missing package names: packument fetch NAME...");
  const problems = ctx.args.flatMap((name, i) => {
    const problem = packageNameProblem(name);
    return problem ? [{ at: i + 1, kind: "argument", value: name, problem }] : [];
  });
  if (problems.length > 0) throw new UsageError(describeProblems(problems, "the arguments"));
  const names = [...new Set(ctx.args)];
  return runFetch(
    ctx,
    names.length,
    (client, cache, options) => fetchPackuments(client, cache, names, options),
  );
}

/** `packument fetch-list FILE`. */
async function packumentFetchList(ctx: CommandContext): Promise<number> {
  const file = ctx.args[0];
  if (file === undefined) throw new UsageError("Missing FILE: packument fetch-list FILE");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new UsageError(`Cannot read name list '${file}': ${(cause as Error).message}`);
  }
  const json = extname(file).toLowerCase() === ".json";
  if (!json && isIndexText(text)) {
    // `cache create-index` output: fetch only the names whose cached _rev differs.
    const index = parseIndexLines(text);
    if ("problems" in index) throw new UsageError(describeProblems(index.problems, file));
    return runFetch(
      ctx,
      index.rows.length,
      (client, cache, options) => syncPackumentRows(client, cache, index.rows, options),
    );
  }
  const list = parseNameList(text, json ? "json" : "txt");
  if ("problems" in list) throw new UsageError(describeProblems(list.problems, file));
  return runFetch(
    ctx,
    list.names.length,
    (client, cache, options) => fetchPackuments(client, cache, list.names, options),
  );
}

/** `packument fetch-partitions [--pivots FILE]`: {@linkcode syncPackuments} with progress. */
async function packumentFetchPartitions(ctx: CommandContext): Promise<number> {
  const originKey = originKeyOf(ctx.options);
  if (originKey === undefined) {
    throw new UsageError(
      "Missing origin: set --origin URL (or --origin-key) to name the partitions to read",
    );
  }
  const pivotsFile = ctx.values["pivots"];
  const pivots = typeof pivotsFile === "string" ? await loadPivots(pivotsFile) : undefined;
  modeOf(ctx);
  return runFetch(ctx, undefined, (client, cache, options) =>
    syncPackuments(client, cache, {
      ...options,
      originKey,
      ...(pivots !== undefined ? { pivots } : {}),
    }));
}

/** `packument show NAME`: the cached body on stdout, byte for byte. */
async function packumentShow(ctx: CommandContext): Promise<number> {
  const name = ctx.args[0];
  if (name === undefined) throw new UsageError("Missing NAME: packument show NAME");
  const problem = packageNameProblem(name);
  if (problem) throw new UsageError(`Invalid package name ${JSON.stringify(name)}: ${problem}`);
  const representation = representationOf(ctx);
  const target = (await registryResolver(ctx.options))(name);
  return await withCache(ctx, "read", async (cache) => {
    const key = packumentKey(target.originKey, name, representation);
    const entry = await cache.get(key);
    if (!entry && ctx.corruption.has(key)) {
      err(`${name}: corrupt in the cache (${representation}, registry ${target.url}), removed`);
      return 1;
    }
    if (!entry) {
      err(`${name}: not in the cache (${representation}, registry ${target.url})`);
      return 1;
    }
    if (entry.info.status !== 200) {
      err(`${name}: not found (the registry answered ${entry.info.status})`);
      return 1;
    }
    for await (const chunk of entry.stream()) {
      await out(chunk);
    }
    return 0;
  });
}

const PACKUMENT_FLAGS = {
  abbreviated: { type: "boolean" },
  refresh: { type: "boolean" },
  offline: { type: "boolean" },
} as const;

/** What every packument fetch command does, and their shared options. */
const FETCH_HELP =
  "Each name is fetched once. A cached entry within its max-age is used without a\n" +
  "request; an expired one is revalidated with If-None-Match / If-Modified-Since (a 304\n" +
  "renews it without rewriting the body); a 404 is recorded and reported as not found.\n" +
  "A 200 that is not a JSON object (a login page: not a JSON content type, or not\n" +
  "starting with '{' and ending with '}') fails that name at once and is not cached.\n" +
  "Bodies stream to storage byte for byte with a sha256 integrity. Transient failures\n" +
  "(network errors, 408, 429, 5xx, timeouts, cut bodies) are retried; names that still\n" +
  "fail are listed and the run exits 1. A storage failure (full or read-only disk) stops\n" +
  "the run at once (exit 1). A killed run resumes: what it stored is fresh.\n\n" +
  "Output: a progress bar on a terminal; otherwise a summary (fetched, revalidated,\n" +
  "unchanged, not found, failed, bytes, seconds). --json prints an NDJSON line per name\n" +
  'and a final {"type":"summary",...} object.\n\n' +
  "Options:\n" +
  "  --abbreviated   the abbreviated (corgi) document instead of the full one\n" +
  "  --refresh       revalidate every cached entry now, fresh or not\n" +
  "  --offline       use only the cache; report what is missing (exit 1)\n\n";

/** The `packument` commands, in the order `--help` lists them. */
export const PACKUMENT_COMMANDS: readonly Command[] = [
  {
    words: ["packument", "fetch"],
    usage: "packument fetch NAME...",
    summary: "fetch the packuments of the named packages",
    help: "Fetches each named package's document from the registry (--registry, else npm's\n" +
      "configuration, including @scope:registry= and each registry's token or Basic auth\n" +
      "from .npmrc, sent to that registry only) into the cache.\n" +
      FETCH_HELP +
      "Names npm could never have served (empty, over 214 characters, a leading . or _,\n" +
      "a . leading the name after the scope, whitespace, a / outside @scope/name,\n" +
      "characters that do not survive URL encoding) exit 2 before any request. Legacy\n" +
      "names (upper case, dots), @scope/_name and names starting with - are valid.",
    flags: PACKUMENT_FLAGS,
    maxArgs: Infinity,
    run: packumentFetch,
  },
  {
    words: ["packument", "fetch-list"],
    usage: "packument fetch-list FILE",
    summary: "fetch the packuments of a list of names",
    help: "Like 'packument fetch' for the names in FILE: a .json array of names (such as the\n" +
      "lists of the npm-high-impact package), or text with one name or name@range per line\n" +
      "(trimmed; blank lines and # comments ignored, a # after whitespace starts one:\n" +
      "'left-pad  # why'; the range is dropped). A UTF-8 byte order mark is ignored.\n" +
      "Duplicates are fetched once. A bad name exits 2, naming its line or index, before\n" +
      "any request.\n\n" +
      "FILE may also be 'cache create-index' output: one id,rev line per document (the\n" +
      "first line that is not blank or a comment decides). Then only the names whose\n" +
      "cached packument has another _rev (or none) are fetched, revalidating even a fresh\n" +
      "entry; the others are skipped without a request and counted as skipped.\n\n" +
      FETCH_HELP.trimEnd(),
    flags: PACKUMENT_FLAGS,
    maxArgs: 1,
    run: packumentFetchList,
  },
  {
    words: ["packument", "fetch-partitions"],
    usage: "packument fetch-partitions [--pivots FILE]",
    summary: "fetch new or changed packuments of the cached partitions",
    help: "Reads every id and _rev of the cached partitions of --origin (or only those of the\n" +
      "set --pivots FILE makes) and fetches the packuments whose cached _rev differs or which\n" +
      "are not cached. Unchanged ones cost no request and are counted as skipped.\n\n" +
      FETCH_HELP.trimEnd() + "\n  --pivots FILE   only the partitions of this set",
    flags: { ...PACKUMENT_FLAGS, pivots: { type: "string" } },
    maxArgs: 0,
    run: packumentFetchPartitions,
  },
  {
    words: ["packument", "show"],
    usage: "packument show NAME [--abbreviated]",
    summary: "write a cached packument to stdout, byte for byte",
    help: "Streams the cached body of NAME to stdout exactly as the registry sent it.\n" +
      "Exit 1 when it is not cached (or was recorded as not found), or when it is corrupt\n" +
      "(it says so, and removes it from the cache).\n\n" +
      "Options:\n  --abbreviated   the abbreviated (corgi) document",
    flags: { abbreviated: { type: "boolean" } },
    maxArgs: 1,
    run: packumentShow,
  },
];
