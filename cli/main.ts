/**
 * The CLI: argument parsing, help, dispatch and exit statuses. The runtime entry point
 * (`cli.ts` for Deno) passes in how to open storage, so this module imports no driver.
 *
 * Exit status: 0 all done; 1 the run finished but some items failed; 2 bad usage or bad input
 * (nothing fetched or written).
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { StorageDriver } from "../src/storage/driver.ts";
import type { Sha256Hasher } from "../src/storage/cache.ts";
import { VERSION } from "../src/version.ts";
import type { CommandContext, Listen } from "./context.ts";
import { err, out } from "./io.ts";
import {
  GLOBAL_FLAGS,
  GLOBAL_HELP,
  type GlobalOptions,
  resolveGlobalOptions,
  UsageError,
} from "./options.ts";
import { cacheClear, cacheExport, cacheStats, cacheVerify } from "./cache_commands.ts";
import {
  cacheCreateIndex,
  partitionList,
  partitionRefresh,
  partitionStatus,
} from "./partition_commands.ts";
import {
  packumentFetch,
  packumentFetchList,
  packumentFetchPartitions,
  packumentShow,
} from "./packument_commands.ts";
import { serve } from "./serve_command.ts";

interface Command {
  /** One or two words; a one-word command has no second word. */
  words: readonly [string] | readonly [string, string];
  usage: string;
  summary: string;
  help: string;
  flags: ParseArgsOptionsConfig;
  maxArgs: number;
  run(ctx: CommandContext): Promise<number>;
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
  "Bodies stream to storage byte for byte with a sha256 integrity. Transient failures\n" +
  "(network errors, 408, 429, 5xx, timeouts, cut bodies) are retried; names that still\n" +
  "fail are listed and the run exits 1. A killed run resumes: what it stored is fresh.\n\n" +
  "Output: a progress bar on a terminal; otherwise a summary (fetched, revalidated,\n" +
  "unchanged, not found, failed, bytes, seconds). --json prints an NDJSON line per name\n" +
  'and a final {"type":"summary",...} object.\n\n' +
  "Options:\n" +
  "  --abbreviated   the abbreviated (corgi) document instead of the full one\n" +
  "  --refresh       revalidate every cached entry now, fresh or not\n" +
  "  --offline       use only the cache; report what is missing (exit 1)\n\n";

const COMMANDS: Command[] = [
  {
    words: ["packument", "fetch"],
    usage: "packument fetch NAME...",
    summary: "fetch the packuments of the named packages",
    help: "Fetches each named package's document from the registry (--registry, else npm's\n" +
      "configuration, including @scope:registry= and tokens from .npmrc) into the cache.\n" +
      FETCH_HELP +
      "Names npm could never have served (empty, over 214 characters, a leading . or _,\n" +
      "whitespace, a / outside @scope/name, characters that do not survive URL encoding)\n" +
      "exit 2 before any request.",
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
      "(blank lines and # comments ignored; the range is dropped). Duplicates are fetched\n" +
      "once. A bad name exits 2, naming its line or index, before any request.\n\n" +
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
      "Exit 1 when it is not cached (or was recorded as not found).\n\n" +
      "Options:\n  --abbreviated   the abbreviated (corgi) document",
    flags: { abbreviated: { type: "boolean" } },
    maxArgs: 1,
    run: packumentShow,
  },
  {
    words: ["partition", "refresh"],
    usage: "partition refresh --pivots FILE",
    summary: "fetch every _all_docs range of a partition set",
    help: "Splits the key space at the pivots and fetches every range of the origin's\n" +
      "_all_docs completely (paging past the 10,000-row cap) into the cache. Progress is\n" +
      "checkpointed per partition: a killed run resumes where it stopped, skipping completed\n" +
      "partitions and redoing those that were in progress. Re-running a completed set\n" +
      "refreshes every range (conditionally where the origin sent an ETag).\n\n" +
      "FILE is a .json array of keys, a .txt file with one key per line (blank lines and\n" +
      "# comments ignored), or a .js/.mjs/.ts module exporting `pivots` or a default array.\n" +
      "Pivots must be non-empty strings, strictly increasing in code-point order.\n\n" +
      "Options:\n" +
      "  --pivots FILE        the pivot list (required)\n" +
      "  --fresh              forget the set's checkpoint and start over\n" +
      "  --max-attempts N     attempts per partition before it is marked failed (default 3)\n" +
      "  --parallel N         partitions fetched at once (default 4)\n" +
      "  --limit N            rows per page, 2 to 10000 (default 10000)\n\n" +
      "Output: a progress bar on a terminal; otherwise a summary line (partitions, rows,\n" +
      "requests, retries, seconds). --json prints NDJSON progress events and a final\n" +
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
      "from its checkpoint: partitions done, in progress, pending and failed, and rows.",
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
  {
    words: ["cache", "create-index"],
    usage: "cache create-index",
    summary: "id,rev lines of every cached document, sorted",
    help: "Writes one `id,rev` line per document in the cached partitions to stdout,\n" +
      "de-duplicated and sorted by id in code-point order, streamed. With --origin or\n" +
      "--origin-key, only that origin's partitions.",
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
      "and sums their body bytes. --json prints one JSON object.",
    flags: {},
    maxArgs: 0,
    run: cacheStats,
  },
  {
    words: ["cache", "verify"],
    usage: "cache verify [--fix] [--json]",
    summary: "check every entry's integrity; find orphaned bodies",
    help: "Reads every entry and checks its body against its sha256 integrity. Corrupt\n" +
      "entries and bodies no entry points at (left by an interrupted write) are listed on\n" +
      "stderr. Exit status 1 when a corrupt entry is found, unless --fix removed them.\n\n" +
      "Options:\n  --fix    remove corrupt entries and orphaned bodies",
    flags: { fix: { type: "boolean" } },
    maxArgs: 0,
    run: cacheVerify,
  },
  {
    words: ["cache", "clear"],
    usage: "cache clear [--prefix KEY-PREFIX]",
    summary: "remove cached entries",
    help: "Removes every key of the embedded storage, or only those under a key prefix such\n" +
      "as v1:packument: (see the key format in the README).\n\n" +
      "Options:\n  --prefix P    only keys that start with P",
    flags: { prefix: { type: "string" } },
    maxArgs: 0,
    run: cacheClear,
  },
  {
    // A one-word command: the second word is the absent positional.
    words: ["serve"],
    usage: "serve [--port N] [--hostname H] [--public]",
    summary: "serve the cache as a read-only registry and _all_docs",
    help: "Serves the cache over HTTP, read only; it never contacts an origin.\n\n" +
      "  GET /NAME, /@SCOPE%2fNAME  a cached packument: the abbreviated document for\n" +
      "                             Accept: application/vnd.npm.install-v1+json or */*\n" +
      "                             (derived from the full one when only that is cached),\n" +
      "                             else the full one; ETag, If-None-Match -> 304\n" +
      "  GET /_all_docs             the cached partitions, CouchDB-style: startkey, endkey,\n" +
      "                             key, keys, inclusive_end, descending, limit (<= 10000)\n" +
      "  GET /                      database info\n" +
      "  GET /-/ping                {} (for npm ping)\n\n" +
      "Packuments are looked up under the registry 'packument fetch' used (--registry, else\n" +
      "npm's configuration); _all_docs serves the partitions of --origin / --origin-key, or\n" +
      "all cached ones. Tarball URLs keep pointing at the origin.\n\n" +
      "Prints 'listening http://HOST:PORT/' on stdout when ready, and one JSON line per\n" +
      "request on stderr (none with --quiet). Stops on SIGINT or SIGTERM.\n\n" +
      "Options:\n" +
      "  --port N       0 to 65535; 0 picks a free port (default 5984)\n" +
      "  --hostname H   address to bind (default 127.0.0.1)\n" +
      "  --public       required to bind an address that is not loopback",
    flags: { port: { type: "string" }, hostname: { type: "string" }, public: { type: "boolean" } },
    maxArgs: 0,
    run: serve,
  },
];

const TOP_HELP = `_all_docs ${VERSION}: mirror npm registry metadata.

Usage: _all_docs <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.usage.padEnd(44)}${c.summary}`).join("\n")}

Run '_all_docs <command> --help' for a command's options.

${GLOBAL_HELP}

Exit status: 0 done; 1 some items failed after their retries (they are listed);
2 bad usage or bad input (nothing was fetched or written).`;

function commandHelp(command: Command): string {
  return `Usage: _all_docs ${command.usage}\n\n${command.help}\n\n${GLOBAL_HELP}`;
}

/** How the entry point opens storage for the resolved options. */
export type OpenStorage = (options: GlobalOptions) => Promise<StorageDriver>;

/** What the runtime's entry point provides: how to open storage and how to listen. */
export interface CliRuntime {
  /** Opens the embedded storage for the options. */
  openStorage: OpenStorage;
  /** Serves a fetch handler over HTTP (`serve`). */
  listen: Listen;
  /** The runtime's native incremental SHA-256, when it has one. */
  createHash?: () => Sha256Hasher;
}

/**
 * Runs the CLI with `argv` (without the program name) and returns the exit status.
 *
 * @param argv The arguments.
 * @param runtime How the entry point opens storage and listens.
 * @returns The exit status.
 */
export async function main(argv: string[], runtime: CliRuntime): Promise<number> {
  const allFlags: ParseArgsOptionsConfig = { ...GLOBAL_FLAGS };
  for (const command of COMMANDS) Object.assign(allFlags, command.flags);
  let command: Command | undefined;
  try {
    const parsed = parseArgs({
      args: argv,
      options: allFlags,
      allowPositionals: true,
      strict: true,
    });
    // No option is declared `multiple`, so every value is a string or a boolean.
    const values = parsed.values as Record<string, string | boolean | undefined>;
    const positionals = parsed.positionals;
    if (values["version"] === true) {
      await out(`_all_docs ${VERSION}\n`);
      return 0;
    }
    const [first, second, ...more] = positionals;
    if (first === undefined) {
      if (values["help"] === true) {
        await out(TOP_HELP + "\n");
        return 0;
      }
      throw new UsageError("Missing command: run '_all_docs --help' for the list");
    }
    command = COMMANDS.find((c) =>
      c.words[0] === first && (c.words.length === 1 || c.words[1] === second)
    );
    if (!command) {
      const group = COMMANDS.filter((c) => c.words[0] === first);
      if (group.length > 0 && values["help"] === true && second === undefined) {
        await out(group.map((c) => `_all_docs ${c.usage}\n    ${c.summary}`).join("\n") + "\n");
        return 0;
      }
      const name = [first, second].filter(Boolean).join(" ");
      throw new UsageError(`Unknown command '${name}': run '_all_docs --help' for the list`);
    }
    const rest = command.words.length === 1 && second !== undefined ? [second, ...more] : more;
    if (values["help"] === true) {
      await out(commandHelp(command) + "\n");
      return 0;
    }
    for (const flag of Object.keys(values)) {
      if (!(flag in GLOBAL_FLAGS) && !(flag in command.flags)) {
        throw new UsageError(
          `Unknown option '--${flag}' for '${command.words.join(" ")}': see --help`,
        );
      }
    }
    if (rest.length > command.maxArgs) {
      throw new UsageError(
        `Unexpected argument '${rest[command.maxArgs]}' for '${command.words.join(" ")}'`,
      );
    }
    const options = resolveGlobalOptions(values);
    return await command.run({
      options,
      values,
      args: rest,
      openDriver: () => runtime.openStorage(options),
      listen: runtime.listen,
      cacheOptions: {
        bloom: false,
        ...(runtime.createHash ? { createHash: runtime.createHash } : {}),
      },
    });
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      err(`error: ${(error as Error).message}`);
      return 2;
    }
    err(`error: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}
