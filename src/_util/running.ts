/**
 * Whether a process runs, asked the POSIX way: {@linkcode runningBySignalZero}.
 *
 * @module
 */

/**
 * Tells whether a process of this host runs by sending it signal 0 (which only asks): `ESRCH`
 * says there is no such process; `EPERM` says there is one, not ours to signal.
 *
 * @param kill Sends a signal (`process.kill` of Node); throws the system error.
 * @returns Whether the process with that id runs.
 *
 * @example
 * ```ts
 * import { runningBySignalZero } from "./running.ts";
 * const gone = Object.assign(new Error("kill ESRCH"), { code: "ESRCH" });
 * const isRunning = runningBySignalZero((pid) => {
 *   if (pid !== 1) throw gone;
 * });
 * console.assert(isRunning(1) && !isRunning(99999));
 * ```
 */
export function runningBySignalZero(
  kill: (pid: number, signal: number) => unknown,
): (pid: number) => boolean {
  return (pid) => {
    try {
      kill(pid, 0);
      return true;
    } catch (error) {
      return (error as { code?: unknown }).code !== "ESRCH";
    }
  };
}
