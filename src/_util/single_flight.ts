/**
 * De-duplication of concurrent work by key: callers asking for a key whose work is already
 * running share that work's result instead of starting it again.
 *
 * @module
 */

/**
 * Runs one piece of work per key at a time, sharing its result with every caller that asks
 * while it runs. Once it settles, the next call for the key starts afresh.
 *
 * @example
 * ```ts
 * import { SingleFlight } from "./single_flight.ts";
 * const flights = new SingleFlight();
 * let runs = 0;
 * const work = async () => ++runs;
 * const [a, b] = await Promise.all([flights.run("k", work), flights.run("k", work)]);
 * console.assert(a === 1 && b === 1 && runs === 1);
 * ```
 */
export class SingleFlight {
  #running = new Map<string, Promise<unknown>>();

  /**
   * Runs `work` for `key` unless work for `key` is already running, in which case the caller
   * shares that result (or failure).
   *
   * @param key What the work is for.
   * @param work Does the work; called at most once per flight, never synchronously.
   * @returns The result of the running work.
   */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key);
    if (running) return running as Promise<T>;
    const promise = Promise.resolve().then(work).finally(() => this.#running.delete(key));
    this.#running.set(key, promise);
    return promise;
  }
}
