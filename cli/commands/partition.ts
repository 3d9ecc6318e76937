/**
 * `partition refresh`, `partition status` and `partition list`: their usage, help, flags and
 * handlers.
 *
 * @module
 */

import { Cache } from "../../src/storage/cache.ts";
import { MAX_PAGE_LIMIT } from "../../src/couchdb/rows.ts";
import { type RefreshEvent, refreshPartitions } from "../../src/jobs/refresh_partitions.ts";
import { listCachedPartitions, partitionSetStatus } from "../../src/jobs/partition_status.ts";
import {
  clientFor,
  type Command,
  type CommandContext,
  originKeyOf,
  withCache,
} from "../context.ts";
import { bar, duration, err, out, Progress } from "../io.ts";
import { type GlobalOptions, UsageError } from "../options.ts";
import { loadPivots } from "../pivots_file.ts";
import { host } from "../host.ts";

function requireOrigin(options: GlobalOptions): { origin: string; originKey: string } {
  const originKey = originKeyOf(options);
  if (!options.origin || originKey === undefined) {
    throw new UsageError(
      "Missing origin: set --origin URL or ALL_DOCS_ORIGIN to the CouchDB replication endpoint",
    );
  }
  return { origin: options.origin, originKey };
}

function flagInteger(ctx: CommandContext, flag: string, fallback: number): number {
  const raw = ctx.values[flag];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || value < 1) {
    throw new UsageError(`Invalid --${flag}: expected a positive integer, received '${raw}'`);
  }
  return value;
}

function pivotsFlag(ctx: CommandContext): string {
  const file = ctx.values["pivots"];
  if (typeof file !== "string") throw new UsageError("Missing --pivots FILE");
  return file;
}

/** This process's worker id: host, process id and a random suffix. */
function workerId(): string {
  return `${host().hostname()}:${host().pid}:${crypto.randomUUID().slice(0, 8)}`;
}

/** A worker on this host is alive while its process is; others are trusted to their lease. */
function isOwnerAlive(owner: string): boolean {
  const [ownerHost, pid] = owner.split(":");
  if (ownerHost !== host().hostname() || !pid || !/^\d+$/.test(pid)) return true;
  return host().isRunning(Number(pid));
}

/** `partition refresh --pivots FILE`. */
async function partitionRefresh(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  const { origin, originKey } = requireOrigin(options);
  const pivots = await loadPivots(pivotsFlag(ctx));
  const parallel = flagInteger(ctx, "parallel", 4);
  const maxAttempts = flagInteger(ctx, "max-attempts", 3);
  const limit = flagInteger(ctx, "limit", MAX_PAGE_LIMIT);
  if (limit < 2 || limit > MAX_PAGE_LIMIT) {
    throw new UsageError(`Invalid --limit: expected 2 to ${MAX_PAGE_LIMIT}, received '${limit}'`);
  }
  const client = clientFor(options);
  const driver = await ctx.openDriver();
  const started = Date.now();
  const progress = Progress.for(options);
  let total = 0;
  let finished = 0;
  let rows = 0;
  const emitJson = (event: object) => out(JSON.stringify(event) + "\n");
  // A closed stdout (`--json | head -3`) stops the run: the checkpoint keeps what was done.
  const stop = new AbortController();
  let pendingWrites: Promise<void> = Promise.resolve();
  const onEvent = (event: RefreshEvent) => {
    if (event.type === "start") total = event.pending;
    if (event.type === "page") rows += event.rows;
    if (event.type === "partition-done" || event.type === "partition-failed") finished++;
    if (event.type === "partition-done" && event.unchanged) rows += event.rows;
    if (options.json) {
      pendingWrites = pendingWrites.then(() => emitJson(event)).catch((error) => {
        stop.abort(error);
      });
    }
    const elapsed = Date.now() - started;
    const rate = rows / Math.max(elapsed / 1000, 0.001);
    const eta = finished > 0 && total > finished ? (elapsed / finished) * (total - finished) : 0;
    progress.update(
      `${bar(finished, total)} ${finished}/${total} partitions  ` +
        `${rows} rows  ${Math.round(rate)} rows/s  ETA ${duration(eta)}`,
      event.type !== "page",
    );
  };
  try {
    const cache = await Cache.open(driver, ctx.cacheOptions);
    const summary = await refreshPartitions(client, cache, {
      origin,
      originKey,
      pivots,
      parallel,
      maxAttempts,
      limit,
      fresh: ctx.values["fresh"] === true,
      recordUpdateSeq: true,
      workerId: workerId(),
      isOwnerAlive,
      onEvent,
      signal: stop.signal,
    });
    progress.done();
    await pendingWrites;
    if (stop.signal.aborted) throw stop.signal.reason;
    const seconds = (Date.now() - started) / 1000;
    const { requests, retries } = client.stats;
    const result = {
      type: "summary",
      setId: summary.setId,
      pass: summary.pass,
      ...(summary.updateSeq !== undefined ? { updateSeq: summary.updateSeq } : {}),
      partitions: summary.partitions,
      fetched: summary.fetched,
      unchanged: summary.unchanged,
      skipped: summary.skipped,
      failed: summary.failed,
      duplicated: summary.duplicated,
      rows: summary.rows,
      requests,
      retries,
      seconds,
    };
    if (options.json) await emitJson(result);
    else if (!options.quiet) {
      await out(
        `partitions ${summary.partitions} (fetched ${summary.fetched}, unchanged ${summary.unchanged}, ` +
          `skipped ${summary.skipped}, failed ${summary.failed.length}` +
          (summary.duplicated > 0 ? `, duplicated ${summary.duplicated}` : "") +
          `), rows ${summary.rows}, ` +
          `requests ${requests}, retries ${retries}, ${seconds.toFixed(1)} s\n`,
      );
    }
    for (const f of summary.failed) {
      err(
        `failed partition ${f.index} [${JSON.stringify(f.startKey)}, ${
          JSON.stringify(f.endKey)
        }): ${f.error}`,
      );
    }
    return summary.failed.length > 0 ? 1 : 0;
  } finally {
    progress.done();
    await driver.close();
  }
}

/** `partition status [--pivots FILE]`: {@linkcode partitionSetStatus}, formatted. */
async function partitionStatus(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  const wanted = typeof ctx.values["pivots"] === "string"
    ? { ...requireOrigin(options), pivots: await loadPivots(ctx.values["pivots"]) }
    : undefined;
  const driver = await ctx.openDriver("read");
  try {
    // An origin key narrows the list to its sets; it needs the origin URL too (as it always has).
    const originKey = wanted?.originKey ??
      (options.origin || options.originKey ? requireOrigin(options).originKey : undefined);
    const sets = await partitionSetStatus(driver, {
      ...(originKey !== undefined ? { originKey } : {}),
      ...(wanted ? { pivots: wanted.pivots } : {}),
      cache: await Cache.open(driver, ctx.cacheOptions),
    });
    if (options.json) {
      // The key order of the JSON is the one it has always had.
      const reports = sets.map((s) => ({
        setId: s.setId,
        origin: s.origin,
        originKey: s.originKey,
        partitions: s.partitions,
        pass: s.pass,
        pending: s.pending,
        "in-progress": s.inProgress,
        done: s.done,
        failed: s.failed,
        rows: s.rows,
        missing: s.missing,
      }));
      await out(JSON.stringify(reports) + "\n");
    } else if (sets.length === 0) await out("no partition sets recorded\n");
    else {
      for (const s of sets) {
        await out(
          `set ${s.setId} (${s.origin}), pass ${s.pass}: ${s.done}/${s.partitions} done, ` +
            `${s.inProgress} in progress, ${s.pending} pending, ${s.failed.length} failed, ` +
            `${s.rows} rows` +
            (s.missing.length > 0
              ? `; partitions ${s.missing.join(", ")} need a refresh (gone from the cache)`
              : "") +
            "\n",
        );
      }
    }
    return 0;
  } finally {
    await driver.close();
  }
}

/** `partition list`: {@linkcode listCachedPartitions}, formatted. */
function partitionList(ctx: CommandContext): Promise<number> {
  return withCache(ctx, "read", async (cache) => {
    const now = Date.now();
    const partitions = await listCachedPartitions(cache);
    if (ctx.options.json) {
      for (const p of partitions) {
        const ageSeconds = Math.round((now - p.fetchedAt) / 1000);
        const { key, origin, startKey, endKey, rows, bytes } = p;
        await out(
          JSON.stringify({ key, origin, startKey, endKey, rows, bytes, ageSeconds }) + "\n",
        );
      }
    } else {
      for (const p of partitions) {
        const ageSeconds = Math.round((now - p.fetchedAt) / 1000);
        await out(
          `${JSON.stringify(p.startKey).padEnd(24)} ${JSON.stringify(p.endKey).padEnd(24)} ` +
            `${String(p.rows).padStart(9)} rows  ${duration(ageSeconds * 1000)} old\n`,
        );
      }
      if (partitions.length === 0) await out("no cached partitions\n");
    }
    return 0;
  });
}

/** The `partition` commands, in the order `--help` lists them. */
export const PARTITION_COMMANDS: readonly Command[] = [
  {
    words: ["partition", "refresh"],
    usage: "partition refresh --pivots FILE",
    summary: "fetch every _all_docs range of a partition set",
    help: "Splits the key space at the pivots and fetches every range of the origin's\n" +
      "_all_docs completely (paging past the 10,000-row cap) into the cache. Progress is\n" +
      "checkpointed per partition: a killed run resumes where it stopped, skipping completed\n" +
      "partitions and redoing those that were in progress. Re-running a completed set\n" +
      "refreshes every range (conditionally where the origin sent an ETag). Before a pass\n" +
      "reads its first range, the origin's update_seq (GET {origin}/) is recorded for it,\n" +
      "so 'changes follow' can start from the set without losing a change.\n\n" +
      "FILE is a .json array of keys, a .txt file with one key per line (trimmed; blank\n" +
      "lines and # comments ignored, a # after whitespace starts one: 'b  # why'), or a\n" +
      ".js/.mjs/.ts module exporting `pivots` or a default array. A key that begins or ends\n" +
      "with whitespace goes in a .json file. A UTF-8 byte order mark is ignored.\n" +
      "A module that throws while it loads or while its list is read, or that has not\n" +
      "finished loading after 10 s (a top-level await that never settles), exits 2.\n" +
      "Pivots must be non-empty strings, strictly increasing in code-point order.\n\n" +
      "Options:\n" +
      "  --pivots FILE        the pivot list (required)\n" +
      "  --fresh              forget the set's checkpoint and start over\n" +
      "  --max-attempts N     attempts per partition before it is marked failed (default 3)\n" +
      "  --parallel N         partitions fetched at once (default 4)\n" +
      `  --limit N            rows per page, 2 to ${MAX_PAGE_LIMIT} (default ${MAX_PAGE_LIMIT})\n\n` +
      "Output: a progress bar on a terminal; otherwise a summary line (partitions, rows,\n" +
      "requests, retries, seconds; `duplicated N` when N partitions were fetched although\n" +
      "another worker had completed them first, which atomic claims prevent on fs, kv and\n" +
      "s3 storage). --json prints NDJSON progress events and a final\n" +
      '{"type":"summary",...} object. Exit 1 when a partition failed (they are listed).',
    flags: {
      pivots: { type: "string" },
      fresh: { type: "boolean" },
      "max-attempts": { type: "string" },
      parallel: { type: "string" },
      limit: { type: "string" },
    },
    maxArgs: 0,
    run: partitionRefresh,
  },
  {
    words: ["partition", "status"],
    usage: "partition status [--pivots FILE] [--json]",
    summary: "progress of recorded partition sets",
    help: "Shows each recorded partition set (or only the set of --pivots FILE at --origin)\n" +
      "from its checkpoint: partitions done, in progress, pending and failed, and rows. A\n" +
      "partition done whose cache entry is gone or corrupt counts as pending and is listed\n" +
      "as needing a refresh (--json: missing); 'partition refresh' fetches it again.",
    flags: { pivots: { type: "string" } },
    maxArgs: 0,
    run: partitionStatus,
  },
  {
    words: ["partition", "list"],
    usage: "partition list [--json]",
    summary: "cached partitions with row counts and ages",
    help: "Lists every cached partition: its range, row count and age. --json prints one\n" +
      "JSON object per line.",
    flags: {},
    maxArgs: 0,
    run: partitionList,
  },
];
