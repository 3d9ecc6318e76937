/**
 * A worker pool: the one way jobs run work on many items a few at a time.
 *
 * @module
 */

/** Options for {@linkcode runPool}. */
export interface PoolOptions {
  /** Items in progress at once; fewer workers start when there are fewer items. */
  concurrency: number;
}

/**
 * Runs `work` on every item, at most `concurrency` at a time. Items are taken in order and
 * lazily (an async iterable is read one item ahead of a free worker), and never more workers
 * start than there are items. After a `work` call throws, no new item is taken; the promise
 * rejects with that error once the calls in progress have settled.
 *
 * @param items The items: an array, any iterable, or an async iterable.
 * @param work What to do with one item.
 * @param options How many at once.
 * @returns Resolves when every item is done.
 * @throws {RangeError} When `concurrency` is not a positive integer.
 *
 * @example
 * ```ts
 * import { runPool } from "./pool.ts";
 * let active = 0;
 * let most = 0;
 * const done: number[] = [];
 * await runPool([1, 2, 3, 4, 5], async (n) => {
 *   most = Math.max(most, ++active);
 *   await new Promise((resolve) => setTimeout(resolve, 1));
 *   done.push(n);
 *   active--;
 * }, { concurrency: 2 });
 * console.assert(done.length === 5 && most === 2);
 * ```
 */
export async function runPool<T>(
  items: Iterable<T> | AsyncIterable<T>,
  work: (item: T) => Promise<void>,
  options: PoolOptions,
): Promise<void> {
  const { concurrency } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(
      `Cannot run a pool: 'concurrency' must be a positive integer, received ${concurrency}`,
    );
  }
  const iterator: AsyncIterator<T> | Iterator<T> = Symbol.asyncIterator in items
    ? items[Symbol.asyncIterator]()
    : items[Symbol.iterator]();
  let exhausted = false;
  let failed = false;
  async function take(): Promise<IteratorResult<T>> {
    if (exhausted || failed) return { done: true, value: undefined };
    const next = await iterator.next();
    if (next.done) exhausted = true;
    return next;
  }
  async function worker(first: T): Promise<void> {
    let item = first;
    while (true) {
      try {
        await work(item);
      } catch (error) {
        failed = true;
        throw error;
      }
      const next = await take();
      if (next.done) return;
      item = next.value;
    }
  }
  // Workers start one item at a time, so a short list never starts idle ones.
  const workers: Promise<void>[] = [];
  while (workers.length < concurrency) {
    const next = await take();
    if (next.done) break;
    const running = worker(next.value);
    // Handled here and rejected below: a failure while more workers start is not unhandled.
    running.catch(() => {});
    workers.push(running);
  }
  const settled = await Promise.allSettled(workers);
  const rejected = settled.find((s) => s.status === "rejected");
  if (rejected) throw rejected.reason;
}
