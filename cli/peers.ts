/**
 * The optional packages of the npm build (peer dependencies, which npm does not install): each is
 * loaded by the commands that need it only, and a missing one stops such a command with one line
 * naming the install command (on Deno they come with their `npm:` specifiers).
 *
 * @module
 */

/** What `serve` and `worker start` need on Node: the replica's and worker API's Hono apps, and
 * the HTTP server. */
export const HTTP_PEERS: readonly string[] = ["hono", "@hono/node-server"];

/**
 * Runs `load` (a dynamic `import()` of a module that needs `peers`); a missing peer becomes an
 * error that names the install command.
 *
 * @param what Who needs them, to start the message ("The redis queue").
 * @param peers The packages.
 * @param load Imports the module.
 * @returns The module.
 * @throws {Error} When one of `peers` is not installed, or the import fails otherwise.
 *
 * @example
 * ```ts
 * import { loadWithPeers } from "./peers.ts";
 * const notFound = Object.assign(
 *   new Error("Cannot find package 'ioredis' imported from /app/x.js"),
 *   { code: "ERR_MODULE_NOT_FOUND" },
 * );
 * const missing = () => Promise.reject(notFound);
 * const message = await loadWithPeers("The redis queue", ["bullmq", "ioredis"], missing)
 *   .catch((error) => error.message);
 * console.assert(message.endsWith("'ioredis' is not installed: npm install bullmq ioredis"));
 * ```
 */
export async function loadWithPeers<T>(
  what: string,
  peers: readonly string[],
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    // Only a package not found: one that fails to load for another reason (a wrong version, a
    // missing native addon) keeps its own error.
    const text = String((error as Error)?.message);
    const missing = (error as { code?: unknown })?.code === "ERR_MODULE_NOT_FOUND"
      ? peers.find((name) => text.includes(`'${name}'`))
      : undefined;
    if (missing === undefined) throw error;
    const names = peers.length === 1
      ? `the package ${peers[0]}`
      : `the packages ${peers.slice(0, -1).join(", ")} and ${peers.at(-1)}`;
    throw new Error(
      `${what} needs ${names}, and '${missing}' is not installed: npm install ${peers.join(" ")}`,
      { cause: error },
    );
  }
}
