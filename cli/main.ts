/**
 * The CLI: parses the command words, finds the command in the tables of `commands/`, handles
 * global options, help and exit statuses, and dispatches. Each command's usage, help, flags and
 * handler live together in `commands/{packument,partition,changes,cache,serve}.ts`. The runtime
 * entry point (`cli.ts` for Deno, `cli.node.ts` for Node) passes in how to open storage, so
 * this module imports no driver.
 *
 * Exit status: 0 all done; 1 the run finished but some items failed; 2 bad usage or bad input
 * (nothing fetched or written); 141 stdout was closed early (`| head`), as git's.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { Sha256Hasher } from "../src/storage/cache.ts";
import { VERSION } from "../src/version.ts";
import {
  type Command,
  type Listen,
  type OpenQueue,
  type OpenStorage,
  openStorage,
  type QueueKind,
} from "./context.ts";
import { err, isStdoutClosed, out, STDOUT_CLOSED_STATUS, StdoutClosed } from "./io.ts";
import { CorruptionLog } from "./corruption.ts";
import {
  documentOriginFlags,
  GLOBAL_FLAGS,
  GLOBAL_HELP,
  resolveGlobalOptions,
  UsageError,
} from "./options.ts";
import { PACKUMENT_COMMANDS } from "./commands/packument.ts";
import { PARTITION_COMMANDS } from "./commands/partition.ts";
import { CHANGES_COMMANDS } from "./commands/changes.ts";
import { CACHE_COMMANDS } from "./commands/cache.ts";
import { SERVE_COMMAND } from "./commands/serve.ts";
import { WORKER_COMMANDS } from "./commands/worker.ts";
import { VIEW_COMMANDS } from "./commands/view.ts";
import { MemoryQueue } from "../queues/memory.ts";
import { closest } from "./suggest.ts";

/** Every command, in the order `--help` lists them. */
const COMMANDS: readonly Command[] = [
  ...PACKUMENT_COMMANDS,
  ...PARTITION_COMMANDS,
  ...CHANGES_COMMANDS,
  ...CACHE_COMMANDS,
  SERVE_COMMAND,
  ...WORKER_COMMANDS,
  ...VIEW_COMMANDS,
];

const TOP_HELP = `_all_docs ${VERSION}: mirror npm registry metadata.

Usage: _all_docs <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.usage.padEnd(44)}${c.summary}`).join("\n")}

Run '_all_docs help <command>' or '_all_docs <command> --help' for a command's
options, '_all_docs packument' (or partition, cache) for a group's commands.

${GLOBAL_HELP}

Exit status: 0 done; 1 some items failed after their retries (they are listed), or
a corrupt cache entry was read; 2 bad usage or bad input (nothing was fetched or
written); 141 stdout was closed early (| head): the command stops quietly, as git
does.

A corrupt cache entry (its bytes do not match their sha256 integrity) is reported
on stderr ('corrupt  KEY: REASON'; a JSON line with --json), left out and removed
from the cache, so the next refresh or fetch gets it again.`;

function commandHelp(command: Command): string {
  return `Usage: _all_docs ${command.usage}\n\n${command.help}\n\n${GLOBAL_HELP}`;
}

export type { OpenStorage } from "./context.ts";

/** What the runtime's entry point provides: how to open storage and how to listen. */
export interface CliRuntime {
  /** Opens the embedded storage for the options. */
  openStorage: OpenStorage;
  /** Serves a fetch handler over HTTP (`serve`). */
  listen: Listen;
  /** Opens a queue engine; without it only `memory` is available. */
  openQueue?: OpenQueue;
  /** The `worker start` queue when none is given.
   * @default {"memory"} */
  defaultQueue?: Exclude<QueueKind, "redis">;
  /** The runtime's native incremental SHA-256, when it has one. */
  createHash?: () => Sha256Hasher;
  /** The runtime's one-call gzip for bodies stored gzip (`CacheOptions.gzipSync`). */
  gzipSync?: (bytes: Uint8Array) => Uint8Array;
  /** The runtime's one-call gunzip for bodies read whole (`CacheOptions.gunzipSync`). */
  gunzipSync?: (bytes: Uint8Array) => Uint8Array;
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
  // `-V` is kept beside `-v` for `--version` (parseArgs takes one short name per option).
  const end = argv.indexOf("--");
  const args = argv.map((arg, i) => arg === "-V" && (end === -1 || i < end) ? "--version" : arg);
  let command: Command | undefined;
  try {
    // A first, lenient pass finds the command and any unknown option, so that an unknown
    // option is reported with the command's own flags to suggest from.
    const loose = parseArgs({
      args,
      options: allFlags,
      allowPositionals: true,
      strict: false,
      tokens: true,
    });
    const [first, second, ...more] = loose.positionals;
    command = findCommand(first, second);
    const known = { ...GLOBAL_FLAGS, ...command?.flags };
    for (const token of loose.tokens ?? []) {
      if (token.kind === "option" && !(token.name in known)) {
        throw new UsageError(unknownOption(token.rawName, token.name, command, known));
      }
    }
    const parsed = parseArgs({ args, options: allFlags, allowPositionals: true, strict: true });
    // No option is declared `multiple`, so every value is a string or a boolean.
    let values = parsed.values as Record<string, string | boolean | undefined>;
    if (values["version"] === true) {
      await out(`_all_docs ${VERSION}\n`);
      return 0;
    }
    if (first === undefined) {
      if (values["help"] === true) {
        await out(TOP_HELP + "\n");
        return 0;
      }
      if (wantsJson(argv)) {
        throw new UsageError("Missing command: run '_all_docs --help' for the list");
      }
      // As npm and git do with no arguments: the usage, and a usage status.
      await out(TOP_HELP + "\n");
      return 2;
    }
    if (first === "help" && !command) {
      // `help`, `help <group>`, `help <command>`.
      const [word, subword] = [second, more[0]];
      if (word === undefined) {
        await out(TOP_HELP + "\n");
        return 0;
      }
      const target = findCommand(word, subword);
      if (target && (target.words.length === 1 || subword !== undefined)) {
        await out(commandHelp(target) + "\n");
        return 0;
      }
      if (subword === undefined && COMMANDS.some((c) => c.words[0] === word)) {
        await out(groupHelp(word) + "\n");
        return 0;
      }
      throw new UsageError(unknownCommand([word, subword]));
    }
    if (!command) {
      const group = COMMANDS.filter((c) => c.words[0] === first);
      if (group.length > 0 && second === undefined) {
        if (values["help"] === true) {
          await out(groupHelp(first) + "\n");
          return 0;
        }
        err(`error: '${first}' needs a subcommand:\n${groupHelp(first)}`);
        return 2;
      }
      throw new UsageError(unknownCommand([first, second]));
    }
    const rest = command.words.length === 1 && second !== undefined ? [second, ...more] : more;
    if (values["help"] === true) {
      await out(commandHelp(command) + "\n");
      return 0;
    }
    if (rest.length > command.maxArgs) {
      throw new UsageError(
        `Unexpected argument '${rest[command.maxArgs]}' for '${command.words.join(" ")}'`,
      );
    }
    if (command.documentOrigin) values = documentOriginFlags(values);
    const options = resolveGlobalOptions(values);
    const corruption = new CorruptionLog(options.json);
    const status = await command.run({
      options,
      values,
      args: rest,
      openDriver: (access = "write") => openStorage(runtime.openStorage, options, access),
      listen: runtime.listen,
      openQueue: runtime.openQueue ?? memoryOnly,
      defaultQueue: runtime.defaultQueue ?? "memory",
      cacheOptions: {
        bloom: false,
        storeEncoding: options.storeEncoding,
        ...(runtime.createHash ? { createHash: runtime.createHash } : {}),
        ...(runtime.gzipSync ? { gzipSync: runtime.gzipSync } : {}),
        ...(runtime.gunzipSync ? { gunzipSync: runtime.gunzipSync } : {}),
        ...corruption.cacheOptions(),
      },
      corruption,
    });
    if (isStdoutClosed()) return STDOUT_CLOSED_STATUS;
    // A command that read a corrupt entry fails, whatever else it did.
    return corruption.entries.length > 0 ? Math.max(status, 1) : status;
  } catch (error) {
    // The reader of stdout has gone (`| head`): stop quietly, as git does.
    if (error instanceof StdoutClosed || isStdoutClosed()) return STDOUT_CLOSED_STATUS;
    const exitCode = error instanceof UsageError || isParseArgsError(error) ? 2 : 1;
    const message = error instanceof Error ? error.message : String(error);
    err(`error: ${message}`);
    if (wantsJson(argv)) {
      // As npm does with --json: the error as JSON on stdout too, for the program reading it.
      await out(JSON.stringify({ type: "error", message, exitCode }) + "\n").catch(() => {});
    }
    return exitCode;
  }
}

/** Opens the memory queue; a runtime that gives no way to open another refuses the rest. */
const memoryOnly: OpenQueue = (kind) => {
  if (kind === "memory") return Promise.resolve(new MemoryQueue());
  return Promise.reject(
    new UsageError(`The ${kind} queue is not available in this runtime; here use --queue memory`),
  );
};

/** The command `first second` names (a one-word command takes `second` as an argument). */
function findCommand(first?: string, second?: string): Command | undefined {
  return COMMANDS.find((c) =>
    c.words[0] === first && (c.words.length === 1 || c.words[1] === second)
  );
}

/** The commands of a group (`packument`, `partition`, `cache`) with their summaries. */
function groupHelp(group: string): string {
  return COMMANDS.filter((c) => c.words[0] === group)
    .map((c) => `_all_docs ${c.usage}\n    ${c.summary}`).join("\n");
}

function unknownCommand(words: (string | undefined)[]): string {
  const name = words.filter(Boolean).join(" ");
  const groups = new Set(COMMANDS.map((c) => c.words[0]));
  const guess = closest(words[0] ?? "", [...groups, "help"]);
  const hint = guess !== undefined && guess !== words[0] ? ` (did you mean '${guess}'?)` : "";
  return `Unknown command '${name}'${hint}: run '_all_docs --help' for the list`;
}

function unknownOption(
  raw: string,
  name: string,
  command: Command | undefined,
  known: ParseArgsOptionsConfig,
): string {
  const where = command ? ` for '${command.words.join(" ")}'` : "";
  const guess = raw.startsWith("--") ? closest(name, Object.keys(known)) : undefined;
  const hint = guess !== undefined ? ` (did you mean '--${guess}'?)` : "";
  return `Unknown option '${raw}'${where}${hint}: see --help`;
}

/** Whether `--json` was given (looked up in the raw arguments, since parsing may have failed). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}
