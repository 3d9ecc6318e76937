/**
 * The CLI: parses the command words, finds the command in the tables of `commands/` (loading
 * only the named group's module: a command starts without the others' dependencies), handles
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
import { MemoryQueue } from "../queues/memory.ts";
import { closest } from "./suggest.ts";

/**
 * The command groups by their first word, in the order `--help` lists them. Each group's module
 * is loaded when one of its commands runs (the others are not: a command starts sooner), all of
 * them for help and for anything that names no group.
 */
const GROUPS: readonly { word: string; load: () => Promise<readonly Command[]> }[] = [
  {
    word: "packument",
    load: async () => (await import("./commands/packument.ts")).PACKUMENT_COMMANDS,
  },
  {
    word: "partition",
    load: async () => (await import("./commands/partition.ts")).PARTITION_COMMANDS,
  },
  { word: "changes", load: async () => (await import("./commands/changes.ts")).CHANGES_COMMANDS },
  { word: "cache", load: async () => (await import("./commands/cache.ts")).CACHE_COMMANDS },
  { word: "serve", load: async () => [(await import("./commands/serve.ts")).SERVE_COMMAND] },
  { word: "worker", load: async () => (await import("./commands/worker.ts")).WORKER_COMMANDS },
  { word: "view", load: async () => (await import("./commands/view.ts")).VIEW_COMMANDS },
];

/** Every command, in the order `--help` lists them. */
async function allCommands(): Promise<readonly Command[]> {
  return (await Promise.all(GROUPS.map((group) => group.load()))).flat();
}

function topHelp(commands: readonly Command[]): string {
  return `_all_docs ${VERSION}: mirror npm registry metadata.

Usage: _all_docs <command> [options]

Commands:
${commands.map((c) => `  ${c.usage.padEnd(44)}${c.summary}`).join("\n")}

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
}

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
  /** Loads what `listen` needs, so that a command that listens finds out before it does
   * anything else (on Node, the optional `@hono/node-server`). */
  prepareListen?: () => Promise<void>;
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
  /** Loads the three above, for a runtime that passes them only once a command needs them
   * (`Command.native`). */
  loadNative?: () => Promise<NativeHelpers>;
}

/** The runtime's native hash and one-call gzip ({@linkcode CliRuntime.loadNative}). */
export type NativeHelpers = Pick<CliRuntime, "createHash" | "gzipSync" | "gunzipSync">;

/**
 * Runs the CLI with `argv` (without the program name) and returns the exit status.
 *
 * @param argv The arguments.
 * @param runtime How the entry point opens storage and listens.
 * @returns The exit status.
 */
export async function main(argv: string[], runtime: CliRuntime): Promise<number> {
  // `-V` is kept beside `-v` for `--version` (parseArgs takes one short name per option).
  const end = argv.indexOf("--");
  let args = argv.map((arg, i) => arg === "-V" && (end === -1 || i < end) ? "--version" : arg);
  let command: Command | undefined;
  try {
    // The group of the first argument that names one, if any: its commands alone are loaded.
    const word = (end === -1 ? args : args.slice(0, end)).find((arg) =>
      GROUPS.some((g) => g.word === arg)
    );
    const guess = GROUPS.find((g) => g.word === word);
    let commands = guess ? await guess.load() : await allCommands();
    const flagsOf = (commands: readonly Command[]) => {
      const flags: ParseArgsOptionsConfig = { ...GLOBAL_FLAGS };
      for (const c of commands) Object.assign(flags, c.flags);
      return flags;
    };
    let allFlags = flagsOf(commands);
    // A first, lenient pass finds the command and any unknown option, so that an unknown
    // option is reported with the command's own flags to suggest from.
    const lenient = (list = args) =>
      parseArgs({
        args: list,
        options: allFlags,
        allowPositionals: true,
        strict: false,
        tokens: true,
      });
    let loose = lenient();
    if (guess && loose.positionals[0] !== guess.word) {
      // The word was something else (an option's value, an argument): every command, then.
      commands = await allCommands();
      allFlags = flagsOf(commands);
      loose = lenient();
    }
    let [first, second, ...more] = loose.positionals;
    command = findCommand(commands, first, second);
    // Flags that may take a value (`--packuments corgi`): their values are taken out of the
    // arguments, wherever they stand, and the command found in what is left keeps them if it
    // declares those flags so (else the arguments stand as they were).
    let taken: Record<string, string> = {};
    const optional: Record<string, string[]> = {};
    for (const c of commands) {
      for (const [name, list] of Object.entries(c.optionalValues ?? {})) {
        optional[name] = [...new Set([...(optional[name] ?? []), ...list])];
      }
    }
    if (Object.keys(optional).length > 0) {
      const took = takeOptionalValues(args, end, optional);
      const tookLoose = lenient(took.args);
      const found = findCommand(commands, tookLoose.positionals[0], tookLoose.positionals[1]);
      const names = took.met;
      if (found && names.length > 0 && names.every((name) => found.optionalValues?.[name])) {
        for (const [name, value] of Object.entries(took.invalid)) {
          const allowed = found.optionalValues![name]!;
          throw new UsageError(
            `Invalid --${name}: expected ${allowed.join(" or ")}, or nothing, received '${value}'`,
          );
        }
        args = took.args;
        loose = tookLoose;
        [first, second, ...more] = loose.positionals;
        command = found;
        taken = took.taken;
      }
    }
    const known = { ...GLOBAL_FLAGS, ...command?.flags };
    for (const token of loose.tokens ?? []) {
      if (token.kind === "option" && !(token.name in known)) {
        throw new UsageError(unknownOption(token.rawName, token.name, command, known));
      }
    }
    const parsed = parseArgs({ args, options: allFlags, allowPositionals: true, strict: true });
    // No option is declared `multiple`, so every value is a string or a boolean.
    let values = parsed.values as Record<string, string | boolean | undefined>;
    values = { ...values, ...taken };
    if (values["version"] === true) {
      await out(`_all_docs ${VERSION}\n`);
      return 0;
    }
    if (first === undefined) {
      if (values["help"] === true) {
        await out(topHelp(commands) + "\n");
        return 0;
      }
      if (wantsJson(argv)) {
        throw new UsageError("Missing command: run '_all_docs --help' for the list");
      }
      // As npm and git do with no arguments: the usage, and a usage status.
      await out(topHelp(commands) + "\n");
      return 2;
    }
    if (first === "help" && !command) {
      // `help`, `help <group>`, `help <command>`.
      const [word, subword] = [second, more[0]];
      if (word === undefined) {
        await out(topHelp(commands) + "\n");
        return 0;
      }
      const target = findCommand(commands, word, subword);
      if (target && (target.words.length === 1 || subword !== undefined)) {
        await out(commandHelp(target) + "\n");
        return 0;
      }
      if (subword === undefined && commands.some((c) => c.words[0] === word)) {
        await out(groupHelp(commands, word) + "\n");
        return 0;
      }
      throw new UsageError(unknownCommand(commands, [word, subword]));
    }
    if (!command) {
      const group = commands.filter((c) => c.words[0] === first);
      if (group.length > 0 && second === undefined) {
        if (values["help"] === true) {
          await out(groupHelp(commands, first) + "\n");
          return 0;
        }
        err(`error: '${first}' needs a subcommand:\n${groupHelp(commands, first)}`);
        return 2;
      }
      throw new UsageError(unknownCommand(commands, [first, second]));
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
    const wantsNative = typeof command.native === "function"
      ? command.native(values)
      : command.native !== false;
    // (Helpers the runtime passed loaded already serve every command.)
    const native: NativeHelpers = {
      ...runtime,
      ...(wantsNative ? await runtime.loadNative?.() : {}),
    };
    const status = await command.run({
      options,
      values,
      args: rest,
      openDriver: (access = "write") => openStorage(runtime.openStorage, options, access),
      listen: runtime.listen,
      prepareListen: runtime.prepareListen ?? (() => Promise.resolve()),
      openQueue: runtime.openQueue ?? memoryOnly,
      defaultQueue: runtime.defaultQueue ?? "memory",
      cacheOptions: {
        bloom: false,
        storeEncoding: options.storeEncoding,
        ...(native.createHash ? { createHash: native.createHash } : {}),
        ...(native.gzipSync ? { gzipSync: native.gzipSync } : {}),
        ...(native.gunzipSync ? { gunzipSync: native.gunzipSync } : {}),
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

/**
 * Takes the values of `optionalValues` flags out of `args` (those before `end`, the `--` that
 * ends the options): `--flag VALUE` (when VALUE is one of its values) and `--flag=VALUE` become
 * `--flag`. The last occurrence of a flag decides: its value, none (`--flag` alone), or one not
 * among its values (`invalid`, from `--flag=VALUE`). `met`: the flags found.
 */
function takeOptionalValues(
  args: readonly string[],
  end: number,
  flags: Readonly<Record<string, readonly string[]>>,
): {
  args: string[];
  taken: Record<string, string>;
  invalid: Record<string, string>;
  met: string[];
} {
  const out: string[] = [];
  const met = new Set<string>();
  const taken: Record<string, string> = {};
  const invalid: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const match = (end === -1 || i < end) ? /^--([^=]+)(?:=(.*))?$/s.exec(arg) : null;
    const allowed = match && Object.hasOwn(flags, match[1]!) ? flags[match[1]!] : undefined;
    if (!match || !allowed) {
      out.push(arg);
      continue;
    }
    const name = match[1]!;
    let value = match[2];
    if (value === undefined && allowed.includes(args[i + 1] ?? "") && (end === -1 || i + 1 < end)) {
      value = args[++i]!;
    }
    met.add(name);
    delete taken[name];
    delete invalid[name];
    if (value !== undefined) (allowed.includes(value) ? taken : invalid)[name] = value;
    out.push(`--${name}`);
  }
  return { args: out, taken, invalid, met: [...met] };
}

/** Opens the memory queue; a runtime that gives no way to open another refuses the rest. */
const memoryOnly: OpenQueue = (kind) => {
  if (kind === "memory") return Promise.resolve(new MemoryQueue());
  return Promise.reject(
    new UsageError(`The ${kind} queue is not available in this runtime; here use --queue memory`),
  );
};

/** The command `first second` names (a one-word command takes `second` as an argument). */
function findCommand(
  commands: readonly Command[],
  first?: string,
  second?: string,
): Command | undefined {
  return commands.find((c) =>
    c.words[0] === first && (c.words.length === 1 || c.words[1] === second)
  );
}

/** The commands of a group (`packument`, `partition`, `cache`) with their summaries. */
function groupHelp(commands: readonly Command[], group: string): string {
  return commands.filter((c) => c.words[0] === group)
    .map((c) => `_all_docs ${c.usage}\n    ${c.summary}`).join("\n");
}

function unknownCommand(commands: readonly Command[], words: (string | undefined)[]): string {
  const name = words.filter(Boolean).join(" ");
  const groups = new Set(commands.map((c) => c.words[0]));
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
