/**
 * The concurrency cap of the HTTP client: a counting semaphore.
 *
 * @module
 */

/**
 * A counting semaphore with a first-in, first-out queue of waiters. A released slot goes
 * straight to the longest waiter.
 *
 * @example Two slots, three takers
 * ```ts
 * import { Slots } from "./slots.ts";
 * const slots = new Slots(2);
 * const first = await slots.acquire(undefined);
 * await slots.acquire(undefined);
 * let third = false;
 * const waiting = slots.acquire(undefined).then((release) => (third = true, release));
 * console.assert(slots.used === 2 && !third);
 * first();
 * first(); // a second call is harmless
 * (await waiting)();
 * console.assert(third && slots.used === 1);
 * ```
 */
export class Slots {
  #limit: number;
  #used = 0;
  #waiters = new Set<() => void>();

  /**
   * Creates a semaphore.
   *
   * @param limit How many slots may be held at once: a positive integer, or `Infinity`.
   */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** How many slots are held now. */
  get used(): number {
    return this.#used;
  }

  /**
   * Takes a slot, waiting in line while none is free.
   *
   * @param signal Stops waiting: the promise then rejects with its reason.
   * @returns A function that releases the slot; calling it more than once is harmless.
   */
  acquire(signal: AbortSignal | undefined): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#used < this.#limit) {
      this.#used++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(grant);
        reject(signal?.reason);
      };
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(this.#releaser());
      };
      this.#waiters.add(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.values().next();
      if (next.done) {
        this.#used--;
        return;
      }
      // Hand the slot straight to the next waiter: `used` does not change.
      this.#waiters.delete(next.value);
      next.value();
    };
  }
}
