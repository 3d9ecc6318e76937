/**
 * `packument fetch`, `packument fetch-list`, `packument fetch-partitions` and `packument show`.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import process from "node:process";
import { Cache } from "../src/storage/cache.ts";
import { indexRows } from "../src/jobs/create_index.ts";
import {
  originKey as deriveOriginKey,
  packumentKey,
  type Representation,
} from "../src/storage/keys.ts";
import { packageNameProblem, parseNameList } from "../src/npm/package_name.ts";
import {
  fetchPackuments,
  type FetchSummary,
  type PackumentResult,
} from "../src/jobs/fetch_packuments.ts";
import { rangesFromPivots } from "../src/couchdb/pivots.ts";
import type { CommandContext } from "./context.ts";
import { bar, duration, err, formatBytes, out, Progress } from "./io.ts";
import { UsageError } from "./options.ts";
import { clientFor } from "./context.ts";
import { loadPivots } from "./pivots_file.ts";
import { registryResolver } from "./registry.ts";

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

/** Runs a fetch over names with progress, summary and exit status. */
async function runFetch(
  ctx: CommandContext,
  names: Iterable<string> | AsyncIterable<string>,
  total: number | undefined,
  extra: {
    skippedUnchanged?: () => number;
    afterResult?: (r: PackumentResult) => void;
    /** Ask the registry even when the cached entry is fresh (its _rev is known stale). */
    forceRefresh?: boolean;
    /** The _rev to record for a fetched body that names none. */
    revFor?: (name: string) => string | undefined;
  } = {},
): Promise<number> {
  const { options } = ctx;
  const { refresh, offline } = modeOf(ctx);
  const representation = representationOf(ctx);
  const registryFor = registryResolver(options);
  const client = clientFor(options);
  const driver = await ctx.openDriver();
  const progress = Progress.for(options);
  const started = Date.now();
  let done = 0;
  let bytes = 0;
  let writes: Promise<void> = Promise.resolve();
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
    const summary: FetchSummary = await fetchPackuments(client, cache, names, {
      registryFor,
      representation,
      refresh: refresh || extra.forceRefresh === true,
      offline,
      ...(extra.revFor ? { revFor: extra.revFor } : {}),
      parallel: options.concurrency,
      onResult(result) {
        done++;
        bytes += result.bytes;
        if (options.json) {
          writes = writes.then(() => out(JSON.stringify({ type: "packument", ...result }) + "\n"));
        }
        extra.afterResult?.(result);
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
    progress.done();
    const seconds = (Date.now() - started) / 1000;
    const o = summary.outcomes;
    const skippedUnchanged = extra.skippedUnchanged?.();
    const result = {
      type: "summary",
      total: summary.total + (skippedUnchanged ?? 0),
      fetched: o.fetched,
      revalidated: o.revalidated,
      unchanged: o.cached,
      ...(skippedUnchanged !== undefined ? { skippedSameRev: skippedUnchanged } : {}),
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
          (skippedUnchanged !== undefined ? `, skipped (same _rev) ${skippedUnchanged}` : "") +
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
export function packumentFetch(ctx: CommandContext): Promise<number> {
  if (ctx.args.length === 0) throw new UsageError("Missing package names: packument fetch NAME...");
  const problems = ctx.args.flatMap((name, i) => {
    const problem = packageNameProblem(name);
    return problem ? [{ at: i + 1, kind: "argument", value: name, problem }] : [];
  });
  if (problems.length > 0) throw new UsageError(describeProblems(problems, "the arguments"));
  const names = [...new Set(ctx.args)];
  return runFetch(ctx, names, names.length);
}

/** `packument fetch-list FILE`. */
export async function packumentFetchList(ctx: CommandContext): Promise<number> {
  const file = ctx.args[0];
  if (file === undefined) throw new UsageError("Missing FILE: packument fetch-list FILE");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new UsageError(`Cannot read name list '${file}': ${(cause as Error).message}`);
  }
  const list = parseNameList(text, extname(file).toLowerCase() === ".json" ? "json" : "txt");
  if ("problems" in list) throw new UsageError(describeProblems(list.problems, file));
  return runFetch(ctx, list.names, list.names.length);
}

/** `packument fetch-partitions [--pivots FILE]`. */
export async function packumentFetchPartitions(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  if (!options.origin && !options.originKey) {
    throw new UsageError(
      "Missing origin: set --origin URL (or --origin-key) to name the partitions to read",
    );
  }
  const partitionsOrigin = options.originKey ?? deriveOriginKey(options.origin!);
  const pivotsFile = ctx.values["pivots"];
  const only = typeof pivotsFile === "string"
    ? rangesFromPivots(await loadPivots(pivotsFile), partitionsOrigin).map((r) => r.key)
    : undefined;
  modeOf(ctx);
  const representation = representationOf(ctx);
  const registryFor = registryResolver(options);
  // A second handle for the comparison pass: the fetch run opens its own.
  const driver = await ctx.openDriver();
  const cache = await Cache.open(driver, ctx.cacheOptions);
  let skipped = 0;
  const revs = new Map<string, string>();
  async function* changed(): AsyncGenerator<string> {
    for await (const row of indexRows(cache, partitionsOrigin, only)) {
      const target = registryFor(row.id);
      const info = await cache.info(packumentKey(target.originKey, row.id, representation));
      if (info?.rev === row.rev && info.status === 200) {
        skipped++;
        continue;
      }
      revs.set(row.id, row.rev);
      yield row.id;
    }
  }
  try {
    return await runFetch(ctx, changed(), undefined, {
      skippedUnchanged: () => skipped,
      forceRefresh: true,
      // A full document carries its own _rev, noted when it is stored: that is what the cache
      // holds, even when the registry still serves an older body than the partition lists, and
      // a 304 (possibly for a stale ETag) changes nothing. Only a body stored without a _rev of
      // its own (the abbreviated document) takes the partition's, so a document that is still
      // behind is asked for again next run.
      revFor: (name) => revs.get(name),
      afterResult: (result) => revs.delete(result.name),
    });
  } finally {
    await driver.close();
  }
}

/** `packument show NAME`: the cached body on stdout, byte for byte. */
export async function packumentShow(ctx: CommandContext): Promise<number> {
  const name = ctx.args[0];
  if (name === undefined) throw new UsageError("Missing NAME: packument show NAME");
  const problem = packageNameProblem(name);
  if (problem) throw new UsageError(`Invalid package name ${JSON.stringify(name)}: ${problem}`);
  const representation = representationOf(ctx);
  const target = registryResolver(ctx.options)(name);
  const driver = await ctx.openDriver();
  try {
    const cache = await Cache.open(driver, ctx.cacheOptions);
    const entry = await cache.get(packumentKey(target.originKey, name, representation));
    if (!entry) {
      err(`${name}: not in the cache (${representation}, registry ${target.url})`);
      return 1;
    }
    if (entry.info.status !== 200) {
      err(`${name}: not found (the registry answered ${entry.info.status})`);
      return 1;
    }
    for await (const chunk of entry.stream()) {
      if (!process.stdout.write(chunk)) {
        await new Promise((resolve) => process.stdout.once("drain", resolve));
      }
    }
    return 0;
  } finally {
    await driver.close();
  }
}
