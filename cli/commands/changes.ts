/**
 * `changes follow`: its usage, help, flags and handler.
 *
 * @module
 */

import { host } from "../host.ts";
import { Cache } from "../../src/storage/cache.ts";
import { MAX_PAGE_LIMIT } from "../../src/couchdb/rows.ts";
import type { Seq } from "../../src/couchdb/changes.ts";
import { DEFAULT_COMPACT_EDITS } from "../../src/jobs/apply_changes.ts";
import {
  DEFAULT_BATCH_CHANGES,
  DEFAULT_WINDOW,
  followChanges,
  type FollowEvent,
  FollowStartError,
} from "../../src/jobs/follow_changes.ts";
import {
  clientFor,
  type Command,
  type CommandContext,
  originKeyOf,
  PACKUMENTS_VALUES,
  packumentsFlag,
} from "../context.ts";
import { err, out, Progress } from "../io.ts";
import { UsageError } from "../options.ts";
import { registryResolver } from "../registry.ts";

/** An integer flag from `min` (and at most `max`), or `fallback` when absent. */
function integerFlag(
  ctx: CommandContext,
  flag: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = ctx.values[flag];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`;
    throw new UsageError(`Invalid --${flag}: expected an integer ${range}, received '${raw}'`);
  }
  return value;
}

/** `--since`: `0` or a number, else an opaque sequence as the origin wrote it. */
function sinceFlag(ctx: CommandContext): Seq | undefined {
  const raw = ctx.values["since"];
  if (raw === undefined) return undefined;
  const control = typeof raw === "string" && [...raw].some((c) => c.charCodeAt(0) < 0x20);
  if (typeof raw !== "string" || raw.trim() === "" || /\s/.test(raw) || control) {
    throw new UsageError(`Invalid --since: expected a sequence such as 0 or 42, received '${raw}'`);
  }
  if (raw === "now") {
    throw new UsageError(
      "Invalid --since: 'now' is not served by npm's feed; give a sequence (0 reads it all)",
    );
  }
  return /^\d{1,15}$/.test(raw) ? Number(raw) : raw;
}

/** `--interval S`: seconds between rounds, a positive number. */
function intervalFlag(ctx: CommandContext): number {
  const raw = ctx.values["interval"];
  if (raw === undefined) return 60_000;
  const value = Number(raw);
  if (typeof raw !== "string" || !/^\d+(\.\d+)?$/.test(raw) || !(value > 0) || value > 86_400) {
    throw new UsageError(
      `Invalid --interval: expected seconds, more than 0 and at most 86400, received '${raw}'`,
    );
  }
  return Math.round(value * 1000);
}

/** `changes follow`. */
async function changesFollow(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  const originKey = originKeyOf(options);
  if (!options.origin || originKey === undefined) {
    throw new UsageError(
      "Missing origin: set --origin URL or ALL_DOCS_ORIGIN to the CouchDB replication endpoint",
    );
  }
  const origin = options.origin;
  const since = sinceFlag(ctx);
  const window = integerFlag(ctx, "window", DEFAULT_WINDOW, 0);
  const limit = integerFlag(ctx, "limit", MAX_PAGE_LIMIT, 1, MAX_PAGE_LIMIT);
  const batchChanges = integerFlag(ctx, "batch", DEFAULT_BATCH_CHANGES, 1);
  const compactEdits = integerFlag(ctx, "compact-at", DEFAULT_COMPACT_EDITS, 0);
  const compact = ctx.values["compact"] === true;
  const intervalMs = intervalFlag(ctx);
  const once = ctx.values["once"] === true;
  const wanted = packumentsFlag(ctx.values);
  const packuments = wanted
    ? {
      registryFor: await registryResolver(options),
      representation: wanted === "corgi" ? "abbreviated" as const : "full" as const,
      parallel: options.concurrency,
    }
    : undefined;

  const client = clientFor(options);
  const driver = await ctx.openDriver();
  const started = Date.now();
  const progress = Progress.for(options);
  // SIGINT/SIGTERM, or a closed stdout (`--json | head`), stop the follower cleanly.
  const stop = new AbortController();
  const onSignal = () => stop.abort(new Error("stopped by a signal"));
  host().onSignal("SIGINT", onSignal);
  host().onSignal("SIGTERM", onSignal);
  let writes: Promise<void> = Promise.resolve();
  const emitJson = (event: object) => out(JSON.stringify(event) + "\n");
  let seen = 0;
  let applied = 0;
  let late = 0;
  let head: Seq | undefined;
  let at: Seq | undefined;
  let round = 0;
  const onEvent = (event: FollowEvent) => {
    if (event.type === "round") {
      round = event.round;
      head = event.head ?? head;
    }
    if (event.type === "page") {
      seen += event.fresh + event.late;
      late += event.late;
      at = event.lastSeq;
    }
    if (event.type === "applied") applied += event.applied;
    if (options.json) {
      writes = writes.then(() => emitJson(event)).catch((error) => stop.abort(error));
    }
    const rate = seen / Math.max((Date.now() - started) / 1000, 0.001);
    progress.update(
      `round ${round}  seq ${at ?? "-"}${head !== undefined ? ` of ${head}` : ""}  ` +
        `${seen} changes  ${applied} applied  ${late} late  ${Math.round(rate)}/s`,
      event.type !== "page",
    );
  };
  try {
    const cache = await Cache.open(driver, ctx.cacheOptions);
    let summary;
    try {
      summary = await followChanges(client, cache, {
        origin,
        originKey,
        ...(since !== undefined ? { since } : {}),
        once,
        window,
        limit,
        batchChanges,
        compactEdits,
        compact,
        intervalMs,
        packuments,
        signal: stop.signal,
        onEvent,
      });
    } catch (error) {
      if (error instanceof FollowStartError) throw new UsageError(error.message);
      throw error;
    }
    progress.done();
    await writes;
    if (stop.signal.aborted && !summary.stopped) throw stop.signal.reason;
    const seconds = (Date.now() - started) / 1000;
    const { requests, retries } = client.stats;
    const result = {
      type: "summary",
      origin,
      start: summary.start.since,
      startFrom: summary.start.from,
      seq: summary.seq,
      rounds: summary.rounds,
      pages: summary.pages,
      seen: summary.seen,
      applied: summary.applied,
      deleted: summary.deleted,
      stale: summary.stale,
      patched: summary.patched,
      rewritten: summary.rewritten,
      rows: summary.rows,
      uncovered: summary.uncovered,
      late: summary.late,
      replayed: summary.replayed,
      headBackwards: summary.headBackwards,
      packumentsFetched: summary.packumentsFetched,
      packumentsPending: summary.packumentsPending,
      packumentsDropped: summary.packumentsDropped,
      packumentsAbandoned: summary.packumentsAbandoned,
      corrupt: summary.corrupt,
      stopped: summary.stopped,
      requests,
      retries,
      seconds,
    };
    if (options.json) await emitJson(result);
    else if (!options.quiet) {
      await out(
        `changes seen ${summary.seen}, applied ${summary.applied} (deleted ` +
          `${summary.deleted}), late ${summary.late}, stale ${summary.stale}; partitions ` +
          `patched ${summary.patched}, rewritten ${summary.rewritten}` +
          (packuments
            ? `, packuments fetched ${summary.packumentsFetched} (pending ` +
              `${summary.packumentsPending}, dropped ${summary.packumentsDropped})`
            : "") +
          `; seq ${summary.seq} (from ${summary.start.since}, ${summary.start.from}), ` +
          `rounds ${summary.rounds}, requests ${requests}, retries ${retries}, ` +
          `${seconds.toFixed(1)} s${summary.stopped ? ", stopped" : ""}\n`,
      );
    }
    if (summary.uncovered > 0) {
      err(
        `${summary.uncovered} changes fell outside the cached partitions of ${originKey} ` +
          "(run 'partition refresh' to cover the whole key space)",
      );
    }
    if (summary.headBackwards > 0) {
      err("the origin's update_seq went backwards: a window behind its new head was re-read");
    }
    for (const name of summary.packumentsAbandoned) {
      err(`gave up on packument ${name}: still older than the feed's _rev after its tries`);
    }
    return summary.packumentsAbandoned.length > 0 ? 1 : 0;
  } finally {
    progress.done();
    host().offSignal("SIGINT", onSignal);
    host().offSignal("SIGTERM", onSignal);
    await driver.close();
  }
}

/** The `changes` commands. */
export const CHANGES_COMMANDS: readonly Command[] = [
  {
    words: ["changes", "follow"],
    usage: "changes follow [--since SEQ] [--once] [--packuments [full|corgi]]",
    // A run with --once (a scheduled follow) writes patches, whole: a partition rewritten now
    // and then is hashed and gzipped the web's way rather than loading `node:crypto` and
    // `node:zlib` on Deno (tens of milliseconds at its start). They load for a follower that
    // keeps running, and for one that stores packuments (--packuments, as `packument
    // fetch-list` does) or rewrites every patched partition (--compact).
    native: (values) =>
      values["once"] !== true || values["packuments"] !== undefined || values["compact"] === true,
    summary: "keep the cached partitions current from _changes",
    help: "Reads the origin's _changes feed and applies each change to the cached\n" +
      "partitions of --origin: a new id is added to the partition covering it, a new\n" +
      "_rev replaces the old one, a deleted document is removed. Partitions stay NDJSON\n" +
      "in key order and are rewritten atomically, so 'cache create-index', 'cache\n" +
      "export', 'serve' and 'packument fetch-partitions' see the current state.\n\n" +
      "Where it starts: --since SEQ; else the follower's checkpoint in the cache; else\n" +
      "the lowest update_seq recorded by the origin's complete partition sets ('partition\n" +
      "refresh' records it before reading, so nothing between the refresh and the follow\n" +
      "is lost). Neither: exit 2 with a hint. A pass of 'partition refresh' completed\n" +
      "since the last follow makes it replay from that pass's start.\n\n" +
      "Each round reads GET {origin}/, re-reads a trailing window of the last N\n" +
      "sequences (entries npm delivers late, about 4 in 1,024, appear there and are\n" +
      "counted as late), then pages to the head. Changes are applied in batches and\n" +
      "checkpointed after each batch: a killed run resumes from the checkpoint. A\n" +
      "partition keeps its changes as pending edits (read with it by every command) and\n" +
      "is rewritten with them once it holds more than --compact-at of them.\n\n" +
      "Options:\n" +
      "  --since SEQ      start after SEQ (0: the whole feed) instead of the checkpoint\n" +
      "  --once           stop when caught up (after one more round over the window)\n" +
      "  --interval S     seconds between rounds without --once (default 60)\n" +
      `  --window N       sequences re-read on each round (default ${DEFAULT_WINDOW})\n` +
      `  --limit N        entries per page, 1 to ${MAX_PAGE_LIMIT} (default ${MAX_PAGE_LIMIT})\n` +
      "  --batch N        changes held in memory before they are applied and\n" +
      `                   checkpointed (default ${DEFAULT_BATCH_CHANGES}; 1: after every page\n` +
      "                   with new changes)\n" +
      "  --compact-at N   rewrite a partition once it has more than N pending edits\n" +
      `                   (default ${DEFAULT_COMPACT_EDITS}; 0 rewrites at once)\n` +
      "  --compact        rewrite every partition with pending edits now\n" +
      "  --packuments [full|corgi]\n" +
      "                   also fetch the packuments whose _rev changed (from --registry\n" +
      "                   or npm's configuration): the full documents (the default) or\n" +
      "                   the abbreviated (corgi) ones; one the registry still serves\n" +
      "                   older than the feed's _rev stays pending and is asked again\n" +
      "                   next round; cached packuments of deleted documents are removed\n" +
      "  --abbreviated    the same as --packuments corgi\n\n" +
      "Without --once it polls every --interval seconds until SIGINT or SIGTERM, and\n" +
      "stops cleanly (what was read is applied and checkpointed). Output: a progress\n" +
      "line on a terminal; a summary (changes seen, applied, late entries caught,\n" +
      "packuments fetched, deleted). --json prints an NDJSON event per page and batch\n" +
      'and a final {"type":"summary",...} object. Exit 1 when a packument was given up\n' +
      "after its tries, or a request failed for good with --once.",
    flags: {
      since: { type: "string" },
      once: { type: "boolean" },
      interval: { type: "string" },
      window: { type: "string" },
      limit: { type: "string" },
      batch: { type: "string" },
      "compact-at": { type: "string" },
      compact: { type: "boolean" },
      packuments: { type: "boolean" },
      abbreviated: { type: "boolean" },
    },
    optionalValues: PACKUMENTS_VALUES,
    maxArgs: 0,
    run: changesFollow,
  },
];
