/**
 * The CLI: parses the command words, finds the command in the tables of `commands/`, handles
 * global options, help and exit statuses, and dispatches. Each command's usage, help, flags and
 * handler live together in `commands/{packument,partition,cache,serve}.ts`. The runtime entry
 * point (`cli.ts` for Deno, `cli.node.ts` for Node) passes in how to open storage, so this
 * module imports no driver.
 *
 * Exit status: 0 all done; 1 the run finished but some items failed; 2 bad usage or bad input
 * (nothing fetched or written).
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { Sha256Hasher } from "../src/storage/cache.ts";
import { VERSION } from "../src/version.ts";
import { type Command, type Listen, type OpenStorage, openStorage } from "./context.ts";
import { err, out } from "./io.ts";
import { CorruptionLog } from "./corruption.ts";
import { GLOBAL_FLAGS, GLOBAL_HELP, resolveGlobalOptions, UsageError } from "./options.ts";
import { PACKUMENT_COMMANDS } from "./commands/packument.ts";
import { PARTITION_COMMANDS } from "./commands/partition.ts";
import { CACHE_COMMANDS } from "./commands/cache.ts";
import { SERVE_COMMAND } from "./commands/serve.ts";

/** Every command, in the order `--help` lists them. */
const COMMANDS: readonly Command[] = [
  ...PACKUMENT_COMMANDS,
  ...PARTITION_COMMANDS,
  ...CACHE_COMMANDS,
  SERVE_COMMAND,
];

const TOP_HELP = `_all_docs ${VERSION}: mirror npm registry metadata.

Usage: _all_docs <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.usage.padEnd(44)}${c.summary}`).join("\n")}

Run '_all_docs <command> --help' for a command's options.

${GLOBAL_HELP}

Exit status: 0 done; 1 some items failed after their retries (they are listed), or
a corrupt cache entry was read; 2 bad usage or bad input (nothing was fetched or
written).

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
    const corruption = new CorruptionLog(options.json);
    const code = await command.run({
      options,
      values,
      args: rest,
      openDriver: (access = "write") => openStorage(runtime.openStorage, options, access),
      listen: runtime.listen,
      cacheOptions: {
        bloom: false,
        ...(runtime.createHash ? { createHash: runtime.createHash } : {}),
        ...corruption.cacheOptions(),
      },
      corruption,
    });
    // A command that read a corrupt entry fails, whatever else it did.
    return corruption.entries.length > 0 ? Math.max(code, 1) : code;
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
