/**
 * `cache create-index`, `cache export`, `cache stats`, `cache verify` and `cache clear`: their
 * usage, help, flags and handlers.
 *
 * @module
 */

import { Cache } from "../../src/storage/cache.ts";
import { decodedSizeOf } from "../../src/storage/entry.ts";
import type { StaleWrite, StorageDriver } from "../../src/storage/driver.ts";
import { BODY_PREFIX, CHECKPOINT_PREFIX } from "../../src/storage/keys.ts";
import { exportEntries } from "../../src/jobs/export.ts";
import { indexLines } from "../../src/jobs/index_lines.ts";
import {
  type Command,
  type CommandContext,
  describeStorage,
  originKeyOf,
  withCache,
} from "../context.ts";
import { err, formatBytes, out, Progress } from "../io.ts";
import { UsageError } from "../options.ts";

/** `cache create-index`: {@linkcode indexLines} on stdout. */
function cacheCreateIndex(ctx: CommandContext): Promise<number> {
  const originKey = originKeyOf(ctx.options);
  return withCache(ctx, "read", async (cache) => {
    for await (const text of indexLines(cache, originKey !== undefined ? { originKey } : {})) {
      await out(text);
    }
    return 0;
  });
}

/** Temporary files killed writes left behind (removed with `remove`); none without `sweep`. */
async function staleTemps(driver: StorageDriver, remove: boolean): Promise<StaleWrite[]> {
  return driver.sweep ? await Array.fromAsync(driver.sweep({ remove })) : [];
}

function keyType(key: string): string {
  if (key.startsWith(BODY_PREFIX)) return "body";
  if (key.startsWith(CHECKPOINT_PREFIX)) return "checkpoint";
  const type = key.split(":")[1];
  return type === "partition" || type === "packument" || type === "corgi" ? type : "other";
}

/** Stored bytes per decoded byte, to 3 places (1 for an empty cache). */
function storedRatio(stored: number, decoded: number): number {
  return decoded === 0 ? 1 : Math.round((stored / decoded) * 1000) / 1000;
}

/** `cache stats`: entries by type, body bytes (stored and decoded), storage. */
async function cacheStats(ctx: CommandContext): Promise<number> {
  const driver = await ctx.openDriver("read");
  try {
    const cache = await Cache.open(driver, ctx.cacheOptions);
    const types: Record<string, number> = { partition: 0, packument: 0, corgi: 0, other: 0 };
    let entries = 0;
    let bytes = 0;
    let decodedBytes = 0;
    let gzipEntries = 0;
    let bodies = 0;
    let checkpoints = 0;
    const progress = Progress.for(ctx.options);
    for await (const key of driver.list()) {
      const type = keyType(key);
      if (type === "body") {
        bodies++;
        continue;
      }
      if (type === "checkpoint") {
        checkpoints++;
        continue;
      }
      entries++;
      types[type] = (types[type] ?? 0) + 1;
      const info = await cache.info(key);
      bytes += info?.size ?? 0;
      // A gzip body of unknown decoded size (none this version writes) counts as stored.
      decodedBytes += (info && decodedSizeOf(info)) ?? info?.size ?? 0;
      if (info?.encoding === "gzip") gzipEntries++;
      progress.update(`cache stats: ${entries} entries, ${formatBytes(bytes)}`);
    }
    const stale = await staleTemps(driver, false);
    const staleBytes = stale.reduce((sum, file) => sum + file.bytes, 0);
    progress.done();
    const storage = describeStorage(ctx.options);
    if (ctx.options.json) {
      const staleTempFiles = { files: stale.length, bytes: staleBytes };
      await out(
        JSON.stringify({
          storage,
          entries,
          types,
          bytes,
          decodedBytes,
          ratio: storedRatio(bytes, decodedBytes),
          gzipEntries,
          separateBodies: bodies,
          checkpoints,
          staleTempFiles,
        }) + "\n",
      );
    } else {
      await out(
        [
          `storage          ${storage.kind} (${storage.location})`,
          `entries          ${entries}`,
          ...Object.entries(types).map(([t, n]) => `  ${t.padEnd(15)}${n}`),
          `body bytes       ${bytes} (${formatBytes(bytes)}) stored`,
          `decoded bytes    ${decodedBytes} (${formatBytes(decodedBytes)}), stored ${
            storedRatio(bytes, decodedBytes)
          }x of it; ${gzipEntries} gzip entries`,
          `separate bodies  ${bodies}`,
          `checkpoint keys  ${checkpoints}`,
          `stale temp files ${stale.length} (${formatBytes(staleBytes)})`,
          "",
        ].join("\n"),
      );
    }
    return 0;
  } finally {
    await driver.close();
  }
}

/** `cache verify [--fix]`: checks every entry's integrity and finds orphaned bodies. */
async function cacheVerify(ctx: CommandContext): Promise<number> {
  const fix = ctx.values["fix"] === true;
  const driver = await ctx.openDriver(fix ? "write" : "read");
  try {
    const corrupt: { key: string; reason: string }[] = [];
    const cache = await Cache.open(driver, {
      ...ctx.cacheOptions,
      dropCorrupt: false,
      onCorrupt: (key, reason) => corrupt.push({ key, reason }),
    });
    const progress = Progress.for(ctx.options);
    let checked = 0;
    for await (const key of cache.keys()) {
      const entry = await cache.get(key);
      if (entry) await entry.stream().cancel();
      checked++;
      progress.update(`cache verify: ${checked} checked, ${corrupt.length} corrupt`);
    }
    const orphans: string[] = [];
    for await (const bodyKey of cache.orphanBodies()) orphans.push(bodyKey);
    const stale = await staleTemps(driver, fix);
    progress.done();
    if (fix) {
      for (const { key } of corrupt) await cache.delete(key);
      for (const key of orphans) await driver.delete(key);
    }
    if (ctx.options.json) {
      await out(
        JSON.stringify({
          checked,
          corrupt,
          orphanBodies: orphans,
          staleTempFiles: stale,
          fixed: fix,
        }) +
          "\n",
      );
    } else {
      for (const { key, reason } of corrupt) err(`corrupt  ${key}: ${reason}`);
      for (const key of orphans) err(`orphan   ${key}`);
      for (const file of stale) err(`stale    ${file.path} (${file.bytes} bytes)`);
      await out(
        `${checked} entries checked, ${corrupt.length} corrupt, ${orphans.length} orphaned bodies` +
          (stale.length > 0 ? `, ${stale.length} stale temp files` : "") +
          (fix ? ", removed" : "") + "\n",
      );
    }
    return corrupt.length > 0 && !fix ? 1 : 0;
  } finally {
    await driver.close();
  }
}

async function deleteAll(driver: StorageDriver, prefix: string): Promise<number> {
  let deleted = 0;
  while (true) {
    const batch: string[] = [];
    for await (const key of driver.list({ prefix, limit: 1000 })) batch.push(key);
    if (batch.length === 0) return deleted;
    await Promise.all(batch.map((key) => driver.delete(key)));
    deleted += batch.length;
  }
}

/** `cache clear [--prefix P]`: removes every stored key (or those under a prefix). */
async function cacheClear(ctx: CommandContext): Promise<number> {
  const prefix = typeof ctx.values["prefix"] === "string" ? ctx.values["prefix"] : "";
  const driver = await ctx.openDriver();
  try {
    const deleted = await deleteAll(driver, prefix);
    const stale = prefix === "" ? await staleTemps(driver, true) : [];
    const staleBytes = stale.reduce((sum, file) => sum + file.bytes, 0);
    if (ctx.options.json) {
      const staleTempFiles = { files: stale.length, bytes: staleBytes };
      const swept = prefix === "" ? { staleTempFiles } : {};
      await out(JSON.stringify({ deleted, prefix, ...swept }) + "\n");
    } else {
      await out(
        `${deleted} keys removed${prefix ? ` under '${prefix}'` : ""}` +
          (stale.length > 0
            ? `, ${stale.length} stale temp files (${formatBytes(staleBytes)})`
            : "") +
          "\n",
      );
    }
    return 0;
  } finally {
    await driver.close();
  }
}

/** `cache export [--type T] [--prefix P]`: NDJSON, one cached document a line, on stdout. */
function cacheExport(ctx: CommandContext): Promise<number> {
  const type = ctx.values["type"];
  if (type !== undefined && type !== "packument" && type !== "corgi" && type !== "partition") {
    throw new UsageError(
      `Invalid --type: expected packument, corgi or partition, received '${type}'`,
    );
  }
  const prefix = typeof ctx.values["prefix"] === "string" ? ctx.values["prefix"] : undefined;
  return withCache(ctx, "read", async (cache) => {
    for await (const chunk of exportEntries(cache, { type, prefix })) {
      await out(chunk);
    }
    return 0;
  });
}

/** The `cache` commands, in the order `--help` lists them. */
export const CACHE_COMMANDS: readonly Command[] = [
  {
    words: ["cache", "create-index"],
    usage: "cache create-index",
    summary: "id,rev lines of every cached document, sorted",
    help: "Writes one `id,rev` line per document in the cached partitions to stdout,\n" +
      "de-duplicated and sorted by id in code-point order, streamed. Where partitions\n" +
      "overlap, the most recently fetched one covering a key decides it, also for ids it\n" +
      "does not list (a document deleted since stays out). With --origin or --origin-key,\n" +
      "only that origin's partitions.",
    flags: {},
    maxArgs: 0,
    run: cacheCreateIndex,
  },
  {
    words: ["cache", "export"],
    usage: "cache export [--type T] [--prefix P]",
    summary: "every cached document as NDJSON on stdout",
    help: "Writes one JSON line per cached document to stdout, streamed: key, type, origin,\n" +
      "name (packuments) or startKey/endKey (partitions), status, fetchedAt, and body (the\n" +
      "document itself; a partition's body is its array of [id, rev] rows). Pipe it into jq\n" +
      "or DuckDB.\n\n" +
      "Options:\n" +
      "  --type T      packument (full), corgi (abbreviated) or partition (default: all)\n" +
      "  --prefix P    only keys starting with P after the type, e.g. the origin key",
    flags: { type: { type: "string" }, prefix: { type: "string" } },
    maxArgs: 0,
    run: cacheExport,
  },
  {
    words: ["cache", "stats"],
    usage: "cache stats [--json]",
    summary: "count cached entries by type and their bytes",
    help: "Counts the entries in the embedded storage by type (partition, packument, corgi)\n" +
      "and sums their body bytes, and counts the stale temporary files writes killed midway\n" +
      "left behind (fs storage). --json prints one JSON object.",
    flags: {},
    maxArgs: 0,
    run: cacheStats,
  },
  {
    words: ["cache", "verify"],
    usage: "cache verify [--fix] [--json]",
    summary: "check every entry's integrity; find orphaned bodies",
    help: "Reads every entry and checks its body against its sha256 integrity. Corrupt\n" +
      "entries, bodies no entry points at (left by an interrupted write) and stale temporary\n" +
      "files (fs storage: of a writer no longer running, or untouched for an hour) are listed\n" +
      "on stderr. Exit status 1 when a corrupt entry is found, unless --fix removed them.\n\n" +
      "Options:\n  --fix    remove corrupt entries, orphaned bodies and stale temporary files",
    flags: { fix: { type: "boolean" } },
    maxArgs: 0,
    run: cacheVerify,
  },
  {
    words: ["cache", "clear"],
    usage: "cache clear [--prefix KEY-PREFIX]",
    summary: "remove cached entries",
    help: "Removes every key of the embedded storage, or only those under a key prefix such\n" +
      "as v1:packument: (see the key format in the README). Without --prefix, stale\n" +
      "temporary files of killed writes (fs storage) are removed too.\n\n" +
      "Options:\n  --prefix P    only keys that start with P",
    flags: { prefix: { type: "string" } },
    maxArgs: 0,
    run: cacheClear,
  },
];
