/**
 * `view define`, `view list`, `view show`, `view delete`, `view query`, `view join`,
 * `view enrich` and `view run`: their usage, help, flags and handlers. The views themselves
 * (expressions, definitions, the parallel scan) are in `src/views/`.
 *
 * @module
 */

import {
  checkViewDefinition,
  deleteView,
  listViews,
  loadView,
  saveView,
  type ViewDefinition,
} from "../../src/views/definition.ts";
import { compileSelect, compileWhere, ViewExpressionError } from "../../src/views/expressions.ts";
import {
  outputFraming,
  RECORD_FORMATS,
  type RecordFormat,
  recordFormatter,
} from "../../src/views/format.ts";
import { listSuffixes, type ScanOptions, scanView, viewSide } from "../../src/views/query.ts";
import { type BatchResult, type ScanTask, sideNames } from "../../src/views/scan.ts";
import { JOIN_MODES, joinProblem, joinViews } from "../../src/views/join.ts";
import {
  compileEnrichment,
  EnrichMissingError,
  ON_MISSING,
  type OnMissing,
} from "../../src/views/enrich.ts";
import { type MapModule, mapReduce } from "../../src/views/map_reduce.ts";
import type { Cache } from "../../src/storage/cache.ts";
import { keyPrefix, viewKey } from "../../src/storage/keys.ts";
import { availableParallelism } from "node:os";
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import { resolve } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { type Command, type CommandContext, withCache } from "../context.ts";
import { err, out } from "../io.ts";
import { UsageError } from "../options.ts";
import { registryLookup } from "../registry.ts";
import { viewWorkers } from "../view_workers.ts";

/** Workers a scan uses at most by default. */
const MAX_DEFAULT_WORKERS = 8;
/** The most `--workers` allows. */
const MAX_WORKERS = 64;

/** A string flag's value, or `undefined`. */
function text(ctx: CommandContext, flag: string): string | undefined {
  const value = ctx.values[flag];
  return typeof value === "string" ? value : undefined;
}

/** A message to follow a colon: its first letter in lower case. */
function lowerFirst(text: string): string {
  return text.slice(0, 1).toLowerCase() + text.slice(1);
}

/** Compiles an expression given by `flag`, turning a syntax error into a usage error. */
function checked<T>(flag: string, source: string, compile: (source: string) => T): T {
  try {
    return compile(source);
  } catch (error) {
    if (error instanceof ViewExpressionError) {
      const problem = lowerFirst(error.problem);
      throw new UsageError(
        `Invalid ${flag}: ${problem} at position ${error.position}\n${error.pointer()}`,
      );
    }
    throw error;
  }
}

/** The view name in `args[0]`, checked. */
function viewName(ctx: CommandContext, usage: string, at = 0): string {
  const name = ctx.args[at];
  if (name === undefined) throw new UsageError(`Missing NAME: ${usage}`);
  try {
    viewKey(name);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return name;
}

/**
 * The origin of the documents a command reads: `--origin KEY` (or `--origin-key KEY`), else the
 * registry (`--origin URL` or `--registry URL`, else npm's configured one). main.ts has already
 * moved `--origin` to the flag it stands for (the command is `documentOrigin`).
 */
async function documentOrigin(
  ctx: CommandContext,
): Promise<{ origin: string; registry?: string }> {
  if (text(ctx, "origin-key") !== undefined && text(ctx, "registry") !== undefined) {
    throw new UsageError("Conflicting options: give an origin KEY or a registry URL, not both");
  }
  const { options } = ctx;
  if (options.originKey !== undefined) return { origin: options.originKey };
  const target = (await registryLookup(options)).defaultTarget();
  return { origin: target.originKey, registry: target.url };
}

/** An integer flag from `min` to `max`, or `undefined` when not given. */
function integerFlag(
  ctx: CommandContext,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  const raw = text(ctx, flag);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(
      `Invalid --${flag}: expected an integer from ${min} to ${max}, received '${raw}'`,
    );
  }
  return value;
}

/**
 * The threads a scan may read documents on, the main thread included: `--workers N` (1: the
 * main thread alone), else one per CPU (at most 8). Memory storage cannot be shared with a
 * worker, and a runtime without a worker factory has none.
 */
function scanWorkers(ctx: CommandContext): ScanOptions["workers"] {
  const given = integerFlag(ctx, "workers", 1, MAX_WORKERS);
  const count = given ?? Math.min(availableParallelism(), MAX_DEFAULT_WORKERS);
  const { options } = ctx;
  const { factory, readThrough } = viewWorkers();
  if (count <= 1 || factory === undefined || options.storage === "memory") return undefined;
  return {
    count,
    factory,
    storage: { storage: options.storage, cacheDir: options.cacheDir, s3: options.s3 },
    readThrough: readThrough.includes(options.storage),
  };
}

/** How every view command's scans run: its workers, corrupt entries reported, the hash. */
function scanSettings(
  ctx: CommandContext,
  workers: ScanOptions["workers"],
): Omit<ScanOptions, "task" | "suffixes"> {
  return {
    workers,
    dropCorrupt: ctx.cacheOptions.dropCorrupt ?? false,
    onCorrupt: ctx.cacheOptions.onCorrupt,
    createHash: ctx.cacheOptions.createHash,
    importModule: (specifier) => import(specifier),
  };
}

/** Reports the documents a batch left out (not JSON); returns how many. */
function reportSkipped(ctx: CommandContext, result: BatchResult): number {
  for (const { key, reason } of result.skipped) {
    err(
      ctx.options.json
        ? JSON.stringify({ type: "skipped", key, reason })
        : `skipped  ${key}: ${reason}`,
    );
  }
  return result.skipped.length;
}

/** Reads a view, or fails with a usage error naming it. */
async function requireView(cache: Cache, name: string): Promise<ViewDefinition> {
  const view = await loadView(cache, name);
  if (!view) throw new UsageError(`No view named '${name}': see '_all_docs view list'`);
  return view;
}

/** `view define NAME`. */
async function viewDefine(ctx: CommandContext): Promise<number> {
  const usage = "view define NAME [--select EXPR] [--where EXPR]";
  const name = viewName(ctx, usage);
  const type = text(ctx, "type") ?? "packument";
  if (type !== "packument" && type !== "corgi") {
    throw new UsageError(`Invalid --type: expected packument or corgi, received '${type}'`);
  }
  const select = text(ctx, "select");
  const where = text(ctx, "where");
  if (select !== undefined) checked("--select", select, compileSelect);
  if (where !== undefined) checked("--where", where, compileWhere);
  const view = checkViewDefinition({
    name,
    ...(await documentOrigin(ctx)),
    type,
    ...(select !== undefined ? { select } : {}),
    ...(where !== undefined ? { where } : {}),
    createdAt: new Date().toISOString(),
  });
  return await withCache(ctx, "write", async (cache) => {
    const replaced = await saveView(cache, view);
    if (ctx.options.json) await out(JSON.stringify({ ...view, replaced }) + "\n");
    else if (!ctx.options.quiet) {
      await out(`view '${name}' ${replaced ? "replaced" : "defined"}: ${describeView(view)}\n`);
    }
    return 0;
  });
}

/** One line about a view. */
function describeView(view: ViewDefinition): string {
  return `${view.type} documents of ${view.origin}` +
    (view.where !== undefined ? ` where ${view.where}` : "") +
    (view.select !== undefined ? `, select ${view.select}` : ", whole documents");
}

/** `view list`. */
function viewList(ctx: CommandContext): Promise<number> {
  return withCache(ctx, "read", async (cache) => {
    let count = 0;
    for await (const view of listViews(cache)) {
      count++;
      if (ctx.options.json) await out(JSON.stringify(view) + "\n");
      else await out(`${view.name}\t${describeView(view)}\n`);
    }
    if (count === 0 && !ctx.options.json) await out("no views defined\n");
    return 0;
  });
}

/** `view show NAME`. */
function viewShow(ctx: CommandContext): Promise<number> {
  const name = viewName(ctx, "view show NAME");
  return withCache(ctx, "read", async (cache) => {
    const view = await requireView(cache, name);
    if (ctx.options.json) {
      await out(JSON.stringify(view) + "\n");
      return 0;
    }
    const lines = [
      `name       ${view.name}`,
      `origin     ${view.origin}`,
      ...(view.registry !== undefined ? [`registry   ${view.registry}`] : []),
      `type       ${view.type}`,
      `select     ${view.select ?? "(the whole document)"}`,
      `where      ${view.where ?? "(every document)"}`,
      `created    ${view.createdAt}`,
    ];
    await out(lines.join("\n") + "\n");
    return 0;
  });
}

/** `view delete NAME`. */
function viewDelete(ctx: CommandContext): Promise<number> {
  const name = viewName(ctx, "view delete NAME");
  return withCache(ctx, "write", async (cache) => {
    if (!(await deleteView(cache, name))) {
      throw new UsageError(`No view named '${name}': see '_all_docs view list'`);
    }
    if (ctx.options.json) await out(JSON.stringify({ deleted: name }) + "\n");
    else if (!ctx.options.quiet) await out(`view '${name}' deleted\n`);
    return 0;
  });
}

/** `view query NAME`. */
async function viewQuery(ctx: CommandContext): Promise<number> {
  const name = viewName(ctx, "view query NAME");
  const format = (text(ctx, "format") ?? "ndjson") as RecordFormat;
  if (!RECORD_FORMATS.includes(format)) {
    throw new UsageError(
      `Invalid --format: expected ${RECORD_FORMATS.join(", ")}, received '${format}'`,
    );
  }
  const limit = integerFlag(ctx, "limit", 0, Number.MAX_SAFE_INTEGER);
  const countOnly = ctx.values["count"] === true;
  const filter = text(ctx, "filter");
  if (filter !== undefined) checked("--filter", filter, compileWhere);
  const workers = scanWorkers(ctx);
  return await withCache(ctx, "read", async (cache) => {
    const view = await requireView(cache, name);
    const side = viewSide(view);
    const names = sideNames(side);
    if (!countOnly) {
      try {
        recordFormatter(format, names);
      } catch (error) {
        throw new UsageError(
          `Cannot use --format ${format} with view '${name}': ${
            lowerFirst((error as Error).message)
          }`,
        );
      }
    }
    const task: ScanTask = { kind: "records", view: side, filter, format, count: countOnly };
    const framing = outputFraming(format, names);
    const max = limit ?? Infinity;
    let emitted = 0;
    let skipped = 0;
    const suffixes = listSuffixes(cache, side.prefix);
    for await (
      const result of scanView(cache, { ...scanSettings(ctx, workers), task, suffixes })
    ) {
      skipped += reportSkipped(ctx, result);
      if (countOnly) {
        emitted = Math.min(emitted + result.count, max);
      } else {
        let chunk = "";
        for (const line of result.lines) {
          if (emitted >= max) break;
          chunk += (emitted === 0 ? framing.head : framing.separator) + line + framing.after;
          emitted++;
        }
        if (chunk !== "") await out(chunk);
      }
      if (emitted >= max) break;
    }
    if (countOnly) {
      await out(ctx.options.json ? `${JSON.stringify({ count: emitted })}\n` : `${emitted}\n`);
    } else await out(emitted === 0 ? framing.empty : framing.tail);
    return skipped > 0 ? 1 : 0;
  });
}

/** Writes batches of lines (without line breaks), at most `limit` of them; returns how many
 * documents were skipped. */
async function writeLines(
  ctx: CommandContext,
  results: AsyncIterable<BatchResult>,
  limit: number | undefined,
): Promise<number> {
  const max = limit ?? Infinity;
  let written = 0;
  let skipped = 0;
  if (max === 0) return 0;
  for await (const result of results) {
    skipped += reportSkipped(ctx, result);
    const take = result.lines.length <= max - written
      ? result.lines
      : result.lines.slice(0, max - written);
    if (take.length > 0) await out(take.join("\n") + "\n");
    written += take.length;
    if (written >= max) break;
  }
  return skipped;
}

/** `view join LEFT RIGHT`. */
async function viewJoin(ctx: CommandContext): Promise<number> {
  const usage = "view join LEFT RIGHT";
  const leftName = viewName(ctx, usage, 0);
  const rightName = viewName(ctx, usage, 1);
  const modes = JOIN_MODES.filter((mode) => ctx.values[mode] === true);
  if (modes.length > 1) {
    throw new UsageError(
      `Conflicting options: give one of --left, --inner, --right, --full, --diff, received ${
        modes.map((m) => `--${m}`).join(" ")
      }`,
    );
  }
  const mode = modes[0] ?? "left";
  const on = text(ctx, "on") ?? "name";
  if (on === "") throw new UsageError("Invalid --on: expected a field name");
  const limit = integerFlag(ctx, "limit", 0, Number.MAX_SAFE_INTEGER);
  const workers = scanWorkers(ctx);
  return await withCache(ctx, "read", async (cache) => {
    const left = await requireView(cache, leftName);
    const right = await requireView(cache, rightName);
    const problem = joinProblem(left, right, on);
    if (problem !== undefined) throw new UsageError(problem);
    const scan = scanSettings(ctx, workers);
    const skipped = await writeLines(
      ctx,
      joinViews(cache, left, right, { mode, on, scan }),
      limit,
    );
    return skipped > 0 ? 1 : 0;
  });
}

/** The lines of `-i FILE` or `-i -` (stdin). */
function inputLines(input: string): AsyncIterable<string> {
  const stream = input === "-" ? process.stdin : createReadStream(input);
  return createInterface({ input: stream, crlfDelay: Infinity });
}

/** `view enrich -i FILE --add EXPR...`. */
async function viewEnrich(ctx: CommandContext): Promise<number> {
  const input = text(ctx, "input");
  if (input === undefined) {
    throw new UsageError(
      "Missing -i FILE (or -i - for stdin): view enrich -i FILE --add 'SELECTOR as ALIAS'",
    );
  }
  const raw = (ctx.values as Record<string, unknown>)["add"];
  const add = Array.isArray(raw) ? raw.map(String) : typeof raw === "string" ? [raw] : [];
  if (add.length === 0) {
    throw new UsageError("Missing --add 'SELECTOR as ALIAS': at least one field to add");
  }
  const nameField = text(ctx, "name-field") ?? "name";
  const versionField = text(ctx, "version-field") ?? "version";
  for (const [flag, value] of [["--name-field", nameField], ["--version-field", versionField]]) {
    if (value === "") throw new UsageError(`Invalid ${flag}: expected a field name`);
  }
  const onMissing = (text(ctx, "on-missing") ?? "null") as OnMissing;
  if (!ON_MISSING.includes(onMissing)) {
    throw new UsageError(
      `Invalid --on-missing: expected skip, null or error, received '${onMissing}'`,
    );
  }
  const inputFields = { name: nameField, version: versionField };
  for (const source of add) {
    checked("--add", source, (s) => compileSelect(s, { inputs: true, inputFields }));
  }
  const { origin } = await documentOrigin(ctx);
  let enrichment;
  try {
    enrichment = compileEnrichment({
      prefix: keyPrefix("packument", origin),
      add,
      nameField,
      versionField,
      onMissing,
      createHash: ctx.cacheOptions.createHash,
    });
  } catch (error) {
    throw new UsageError(
      `Invalid --add: ${(error as Error).message.replace(/^Cannot enrich: /, "")}`,
    );
  }
  if (input !== "-") {
    try {
      await access(input);
    } catch {
      throw new UsageError(`Cannot read -i '${input}': no such file, or not readable`);
    }
  }
  return await withCache(ctx, "read", async (cache) => {
    let invalid = 0;
    let chunk = "";
    try {
      for await (const event of enrichment.run(cache, inputLines(input))) {
        if (event.type === "record") {
          chunk += event.text + "\n";
          if (chunk.length >= 65536) {
            await out(chunk);
            chunk = "";
          }
        } else if (event.type === "invalid") {
          invalid++;
          err(
            ctx.options.json
              ? JSON.stringify({ type: "invalid", line: event.line, reason: event.reason })
              : `line ${event.line}: ${event.reason}`,
          );
        }
      }
    } catch (error) {
      if (chunk !== "") await out(chunk);
      if (error instanceof EnrichMissingError) {
        err(`error: ${error.message} (--on-missing error)`);
        return 1;
      }
      throw error;
    }
    if (chunk !== "") await out(chunk);
    return invalid > 0 ? 1 : 0;
  });
}

/** `view run MODULE`. */
async function viewRun(ctx: CommandContext): Promise<number> {
  const file = ctx.args[0];
  if (file === undefined) throw new UsageError("Missing MODULE: view run MODULE");
  const type = text(ctx, "type") ?? "packument";
  if (type !== "packument" && type !== "corgi") {
    throw new UsageError(`Invalid --type: expected packument or corgi, received '${type}'`);
  }
  const url = /^(file|data|https?):/.test(file) ? file : pathToFileURL(resolve(file)).href;
  let module: Partial<MapModule>;
  try {
    module = await import(url) as Partial<MapModule>;
  } catch (error) {
    throw new UsageError(`Cannot load module '${file}': ${(error as Error).message}`);
  }
  if (typeof module.map !== "function") {
    throw new UsageError(`Module '${file}' exports no map(doc, emit) function`);
  }
  if (module.reduce !== undefined && typeof module.reduce !== "function") {
    throw new UsageError(`Module '${file}' exports a reduce that is not a function`);
  }
  const { origin } = await documentOrigin(ctx);
  const workers = scanWorkers(ctx);
  return await withCache(ctx, "read", async (cache) => {
    let skipped = 0;
    let chunk = "";
    for await (
      const line of mapReduce(cache, {
        prefix: keyPrefix(type, origin),
        module: url,
        reduce: module.reduce,
        scan: scanSettings(ctx, workers),
        onSkipped: (s) => {
          skipped++;
          reportSkipped(ctx, { lines: [], count: 0, skipped: [s] });
        },
      })
    ) {
      chunk += line + "\n";
      if (chunk.length >= 65536) {
        await out(chunk);
        chunk = "";
      }
    }
    if (chunk !== "") await out(chunk);
    return skipped > 0 ? 1 : 0;
  });
}

const ORIGIN_HELP =
  "  --origin KEY|URL   where the documents are cached: an origin KEY (also --origin-key\n" +
  "                     KEY), or the registry URL they were fetched from (also --registry\n" +
  "                     URL); default: npm's configured registry. Here --origin never means\n" +
  "                     the replication endpoint, as it does for partitions";

const EXPRESSION_HELP = "Select lists: comma-separated paths (name, time.modified,\n" +
  'dependencies["node-gyp"], maintainers[0].name), each with transforms after | (keys,\n' +
  "values, length, first, last, sort, reverse, unique, compact, flatten, entries, sum, min,\n" +
  "max) and an alias (versions | keys as list); a field's output name is its alias, else\n" +
  "the path as written. A missing field is null.\n" +
  "Conditions: = (or ==), !=, <, <=, >, >= between paths (with transforms) and literals\n" +
  "(\"text\" or 'text', numbers, null, true, false), combined with &&, || and ! and\n" +
  'parentheses: scripts.install != null && dependencies["node-gyp"] = null. < <= > >=\n' +
  "compare two numbers or two strings and are false otherwise. A path alone is true unless\n" +
  'it is null, false, 0 or "". Strings are always quoted: name = "lodash".\n' +
  "A bad expression exits 2 naming its position, before anything is read.";

/** The `view` commands, in the order `--help` lists them. */
export const VIEW_COMMANDS: readonly Command[] = [
  {
    words: ["view", "define"],
    documentOrigin: true,
    usage: "view define NAME [--select EXPR] [--where EXPR] [--type T]",
    summary: "save a view: which cached documents, which fields",
    help: "Saves a view in the cache (key v1:view:NAME), replacing one of the same name. A view\n" +
      "reads the cached documents of one origin, keeps those --where accepts and makes a\n" +
      "record of each with --select (without it, the whole document).\n\n" +
      "Options:\n" +
      "  --select EXPR      the fields of a record\n" +
      "  --where EXPR       which documents count\n" +
      "  --type T           packument (full documents, the default) or corgi (abbreviated)\n" +
      ORIGIN_HELP + "\n\n" + EXPRESSION_HELP,
    flags: {
      select: { type: "string" },
      where: { type: "string" },
      type: { type: "string" },
    },
    maxArgs: 1,
    run: viewDefine,
  },
  {
    words: ["view", "list"],
    usage: "view list [--json]",
    summary: "the saved views",
    help: "Lists the saved views in name order, one a line; --json prints each definition as\n" +
      "a JSON line.",
    flags: {},
    maxArgs: 0,
    run: viewList,
  },
  {
    words: ["view", "show"],
    usage: "view show NAME [--json]",
    summary: "a saved view's definition",
    help: "Prints a view's definition: origin, type, select, where and when it was defined.\n" +
      "--json prints it as one JSON object. Exit 2 when there is no such view.",
    flags: {},
    maxArgs: 1,
    run: viewShow,
  },
  {
    words: ["view", "query"],
    usage: "view query NAME [--filter EXPR] [--limit N] [--count] [--format F]",
    summary: "stream a view's records in name order",
    help: "Streams the records of a view, in package name order: the cached documents of its\n" +
      "origin that its --where accepts, each made a record by its --select. The documents\n" +
      "are read and parsed on the main thread and worker threads (one thread per CPU, at\n" +
      "most 8), each reading the storage itself; the output is the same bytes whatever the\n" +
      "number of workers.\n" +
      "Documents recorded as not found are left out; a cached body that is not JSON is\n" +
      "reported on stderr ('skipped') and the run exits 1.\n\n" +
      "Options:\n" +
      "  --filter EXPR    keep only records it accepts; it names a record's fields by their\n" +
      "                   output names (aliases)\n" +
      "  --limit N        stop after N records\n" +
      "  --count          print only the number of records\n" +
      "  --format F       ndjson (one JSON record a line, the default), json (one array),\n" +
      "                   lines (the value of the view's one field, a line each: strings as\n" +
      "                   they are, anything else as JSON), csv (a header row of the output\n" +
      "                   names, then one row a record; arrays and objects as JSON)\n" +
      "  --workers N      threads that read and parse documents, the main thread included\n" +
      "                   (1: the main thread alone; default: one per CPU, at most 8; scans\n" +
      "                   of fewer than 256 documents use the main thread alone)\n\n" +
      EXPRESSION_HELP,
    flags: {
      filter: { type: "string" },
      limit: { type: "string" },
      count: { type: "boolean" },
      format: { type: "string" },
      workers: { type: "string" },
    },
    maxArgs: 1,
    run: viewQuery,
  },
  {
    words: ["view", "join"],
    usage: "view join LEFT RIGHT [--left|--inner|--right|--full|--diff] [--on F]",
    summary: "join two views' records by package name (or a field)",
    help: 'Writes one {"key","left","right"} JSON line per joined pair, in name order. The\n' +
      "views may read different origins: 'packages on one registry but not the other' is\n" +
      "view join ONE OTHER --diff.\n\n" +
      "Joined on name (the default), the other side is looked up by its cache key, never\n" +
      "scanned, and each document is read once, in parallel. Joined on another field (--on\n" +
      "F, a field both views select), the looked-up side is read first and held in memory\n" +
      "by key; records whose key is null or missing never match.\n\n" +
      "Options:\n" +
      "  --left           every left record, with its right match or null (the default)\n" +
      "  --inner          only records with a match on both sides\n" +
      "  --right          every right record, with its left match or null\n" +
      "  --full           every record of both sides\n" +
      "  --diff           left records without a right match (right is null)\n" +
      "  --on F           the field to join on (default: name)\n" +
      "  --limit N        stop after N lines\n" +
      "  --workers N      threads that read documents (see 'view query --help')",
    flags: {
      left: { type: "boolean" },
      inner: { type: "boolean" },
      right: { type: "boolean" },
      full: { type: "boolean" },
      diff: { type: "boolean" },
      on: { type: "string" },
      limit: { type: "string" },
      workers: { type: "string" },
    },
    maxArgs: 2,
    run: viewJoin,
  },
  {
    words: ["view", "enrich"],
    documentOrigin: true,
    usage: "view enrich -i FILE|- --add 'SELECTOR as ALIAS'...",
    summary: "add fields of cached packuments to NDJSON records",
    help: 'Reads NDJSON records (a lockfile\'s specs: {"name":"ms","version":"2.1.3"}) from\n' +
      "FILE or stdin (-i -) and writes each with the fields --add selects from its cached\n" +
      "packument added, in input order. In a selector, [.field] is the value of the input\n" +
      "record's field: 'time[.version] as publishedAt',\n" +
      "'versions[.version].dist.integrity as integrity'. Packuments are looked up by key,\n" +
      "a window ahead, and parsed once for all the records that name them. A line that is\n" +
      "not a JSON object is reported on stderr and the run exits 1.\n\n" +
      "Options:\n" +
      "  -i, --input FILE      the NDJSON input, - for stdin\n" +
      "  --add 'EXPR as NAME'  a field to add (repeatable; a comma-separated list works too)\n" +
      "  --name-field F        the input field holding the package name (default: name)\n" +
      "  --version-field F     the input field [.version] reads (default: version)\n" +
      "  --on-missing M        a record whose packument is not cached (or that has no\n" +
      "                        name): skip (left out), null (written with null fields, the\n" +
      "                        default) or error (the run stops, exit 1)\n" +
      ORIGIN_HELP,
    flags: {
      input: { type: "string", short: "i" },
      add: { type: "string", multiple: true },
      "name-field": { type: "string" },
      "version-field": { type: "string" },
      "on-missing": { type: "string" },
    },
    maxArgs: 0,
    run: viewEnrich,
  },
  {
    words: ["view", "run"],
    documentOrigin: true,
    usage: "view run MODULE [--type T]",
    summary: "map (and reduce) every cached packument with a module",
    help: "Imports MODULE (a JavaScript or TypeScript file) and calls its map(doc, emit) with\n" +
      "every cached document of the origin (on worker threads, in parallel); emit(key, value)\n" +
      'adds a pair. The pairs are written as {"key","value"} JSON lines sorted by key\n' +
      "(null, booleans, numbers, strings, arrays, objects; a key's pairs in name order).\n" +
      "When MODULE also exports reduce(key, values), each key's values are reduced to one\n" +
      "line. Every pair is held in memory until the scan ends (to sort them): emit small\n" +
      "pairs. The module runs with this command's permissions.\n\n" +
      "Options:\n" +
      "  --type T           packument (full documents, the default) or corgi\n" +
      "  --workers N        threads that read documents (see 'view query --help')\n" +
      ORIGIN_HELP,
    flags: { type: { type: "string" }, workers: { type: "string" } },
    maxArgs: 1,
    run: viewRun,
  },
  {
    words: ["view", "delete"],
    usage: "view delete NAME",
    summary: "remove a saved view",
    help: "Removes a view's definition (the cached documents stay). Exit 2 when there is no\n" +
      "such view.",
    flags: {},
    maxArgs: 1,
    run: viewDelete,
  },
];
