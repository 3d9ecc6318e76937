/**
 * `partition refresh`, `partition status`, `partition list` and `cache create-index`.
 *
 * @module
 */

import { Cache } from "../src/storage/cache.ts";
import { Checkpoint, listPartitionSets, type PartitionStatus } from "../src/storage/checkpoint.ts";
import { indexBatches } from "../src/jobs/create_index.ts";
import { originKey as deriveOriginKey, parseKey, PARTITION_PREFIX } from "../src/storage/keys.ts";
import { type RefreshEvent, refreshPartitions } from "../src/jobs/refresh_partitions.ts";
import { partitionSetId } from "../src/couchdb/pivots.ts";
import { compareKeys } from "../src/storage/driver.ts";
import { hostname } from "node:os";
import process from "node:process";
import { clientFor, type CommandContext } from "./context.ts";
import { bar, duration, err, out, Progress } from "./io.ts";
import { type GlobalOptions, UsageError } from "./options.ts";
import { loadPivots } from "./pivots_file.ts";

function requireOrigin(options: GlobalOptions): { origin: string; originKey: string } {
  if (!options.origin) {
    throw new UsageError(
      "Missing origin: set --origin URL or ALL_DOCS_ORIGIN to the CouchDB replication endpoint",
    );
  }
  return {
    origin: options.origin,
    originKey: options.originKey ?? deriveOriginKey(options.origin),
  };
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
  return `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`;
}

/** A worker on this host is alive while its process is; others are trusted to their lease. */
function isOwnerAlive(owner: string): boolean {
  const [host, pid] = owner.split(":");
  if (host !== hostname() || !pid || !/^\d+$/.test(pid)) return true;
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** `partition refresh --pivots FILE`. */
export async function partitionRefresh(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  const { origin, originKey } = requireOrigin(options);
  const pivots = await loadPivots(pivotsFlag(ctx));
  const parallel = flagInteger(ctx, "parallel", 4);
  const maxAttempts = flagInteger(ctx, "max-attempts", 3);
  const limit = flagInteger(ctx, "limit", 10_000);
  if (limit < 2 || limit > 10_000) {
    throw new UsageError(`Invalid --limit: expected 2 to 10000, received '${limit}'`);
  }
  const client = clientFor(options);
  const driver = await ctx.openDriver();
  const started = Date.now();
  const progress = Progress.for(options);
  let total = 0;
  let finished = 0;
  let rows = 0;
  const emitJson = (event: object) => out(JSON.stringify(event) + "\n");
  let pendingWrites: Promise<void> = Promise.resolve();
  const onEvent = (event: RefreshEvent) => {
    if (event.type === "start") total = event.pending;
    if (event.type === "page") rows += event.rows;
    if (event.type === "partition-done" || event.type === "partition-failed") finished++;
    if (event.type === "partition-done" && event.unchanged) rows += event.rows;
    if (options.json) pendingWrites = pendingWrites.then(() => emitJson(event));
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
      workerId: workerId(),
      isOwnerAlive,
      onEvent,
    });
    progress.done();
    await pendingWrites;
    const seconds = (Date.now() - started) / 1000;
    const { requests, retries } = client.stats;
    const result = {
      type: "summary",
      setId: summary.setId,
      pass: summary.pass,
      partitions: summary.partitions,
      fetched: summary.fetched,
      unchanged: summary.unchanged,
      skipped: summary.skipped,
      failed: summary.failed,
      rows: summary.rows,
      requests,
      retries,
      seconds,
    };
    if (options.json) await emitJson(result);
    else if (!options.quiet) {
      await out(
        `partitions ${summary.partitions} (fetched ${summary.fetched}, unchanged ${summary.unchanged}, ` +
          `skipped ${summary.skipped}, failed ${summary.failed.length}), rows ${summary.rows}, ` +
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

/** `partition status [--pivots FILE]`. */
export async function partitionStatus(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  const wanted = typeof ctx.values["pivots"] === "string"
    ? { ...requireOrigin(options), pivots: await loadPivots(ctx.values["pivots"]) }
    : undefined;
  const driver = await ctx.openDriver();
  try {
    let sets = await listPartitionSets(driver);
    if (wanted) {
      const id = partitionSetId(wanted.originKey, wanted.pivots);
      sets = sets.filter((s) => s.id === id && s.originKey === wanted.originKey);
    } else if (options.origin || options.originKey) {
      const { originKey } = requireOrigin(options);
      sets = sets.filter((s) => s.originKey === originKey);
    }
    const reports = [];
    for (const set of sets) {
      const checkpoint = new Checkpoint(driver, set.originKey, set.id);
      const states = await checkpoint.all();
      const pass = Math.max(1, ...[...states.values()].map((s) => s.pass));
      const counts: Record<PartitionStatus, number> = {
        pending: 0,
        "in-progress": 0,
        done: 0,
        failed: 0,
      };
      let rows = 0;
      const failed = [];
      for (let i = 0; i <= set.pivots.length; i++) {
        const state = states.get(i);
        const status = state?.pass === pass ? state.status : "pending";
        counts[status]++;
        if (status === "done") rows += state?.rows ?? 0;
        if (status === "failed") failed.push({ index: i, error: state?.lastError });
      }
      reports.push({
        setId: set.id,
        origin: set.origin,
        originKey: set.originKey,
        partitions: set.pivots.length + 1,
        pass,
        ...counts,
        rows,
        failed,
      });
    }
    if (options.json) await out(JSON.stringify(reports) + "\n");
    else if (reports.length === 0) await out("no partition sets recorded\n");
    else {
      for (const r of reports) {
        await out(
          `set ${r.setId} (${r.origin}), pass ${r.pass}: ${r.done}/${r.partitions} done, ` +
            `${r["in-progress"]} in progress, ${r.pending} pending, ${r.failed.length} failed, ` +
            `${r.rows} rows\n`,
        );
      }
    }
    return 0;
  } finally {
    await driver.close();
  }
}

/** `partition list`. */
export async function partitionList(ctx: CommandContext): Promise<number> {
  const driver = await ctx.openDriver();
  try {
    const cache = await Cache.open(driver, ctx.cacheOptions);
    const now = Date.now();
    const items = [];
    for await (const key of cache.keys(PARTITION_PREFIX)) {
      const info = await cache.info(key);
      const parts = parseKey(key);
      if (!info || parts.type !== "partition") continue;
      items.push({
        key,
        origin: parts.origin,
        startKey: parts.startKey,
        endKey: parts.endKey,
        rows: info.count ?? 0,
        bytes: info.size,
        ageSeconds: Math.round((now - info.fetchedAt) / 1000),
      });
    }
    // In key-range order (storage order puts an open start after starts with a digit).
    const end = (key: string) => key === "" ? "\u{10ffff}\u{10ffff}" : key;
    items.sort((a, b) =>
      compareKeys(a.origin, b.origin) || compareKeys(a.startKey, b.startKey) ||
      compareKeys(end(a.endKey), end(b.endKey))
    );
    if (ctx.options.json) {
      for (const item of items) await out(JSON.stringify(item) + "\n");
    } else {
      for (const item of items) {
        await out(
          `${JSON.stringify(item.startKey).padEnd(24)} ${JSON.stringify(item.endKey).padEnd(24)} ` +
            `${String(item.rows).padStart(9)} rows  ${duration(item.ageSeconds * 1000)} old\n`,
        );
      }
      if (items.length === 0) await out("no cached partitions\n");
    }
    return 0;
  } finally {
    await driver.close();
  }
}

/** `cache create-index`: `id,rev` lines on stdout. */
export async function cacheCreateIndex(ctx: CommandContext): Promise<number> {
  const { options } = ctx;
  const originKey = options.originKey ??
    (options.origin ? deriveOriginKey(options.origin) : undefined);
  const driver = await ctx.openDriver();
  try {
    const cache = await Cache.open(driver, ctx.cacheOptions);
    let text = "";
    for await (const rows of indexBatches(cache, originKey)) {
      for (const row of rows) text += `${row.id},${row.rev}\n`;
      if (text.length >= 65536) {
        await out(text);
        text = "";
      }
    }
    if (text) await out(text);
    return 0;
  } finally {
    await driver.close();
  }
}
