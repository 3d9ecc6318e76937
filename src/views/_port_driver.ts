/**
 * A view worker's storage when the main thread must own the driver: every read is a message to
 * the main thread, which performs it on its own driver and posts the answer back (see
 * {@linkcode answerStorageRequest}). It exists for drivers that one thread must hold alone:
 * Deno KV on Node (`@deno/kv`'s native addon crashes the process, now and then, when threads
 * use it at once). Only what a scan does is supported: reads, and the removal of a corrupt
 * entry; the rest throws.
 *
 * @module
 */

import type { StorageDriver } from "../storage/driver.ts";
import type { StorageAnswer, StorageRequest } from "./storage_messages.ts";

/**
 * Performs a worker's storage request on the main thread's driver.
 *
 * @param driver The main thread's driver.
 * @param request The request.
 * @returns The answer to post back.
 */
export async function answerStorageRequest(
  driver: StorageDriver,
  request: StorageRequest,
): Promise<StorageAnswer> {
  try {
    const { op, key } = request;
    let value: StorageAnswer["value"];
    if (op === "get") value = await driver.get(key);
    else if (op === "has") value = await driver.has(key);
    else await driver.delete(key);
    return { type: "storage-answer", id: request.id, value };
  } catch (error) {
    const { name, message } = error instanceof Error
      ? error
      : { name: "Error", message: String(error) };
    return { type: "storage-answer", id: request.id, error: { name, message } };
  }
}

/** The worker's side: a driver whose reads are requests to the main thread. */
export class PortDriver implements StorageDriver {
  readonly name = "port";
  readonly limits = { maxKeyBytes: Number.MAX_SAFE_INTEGER };
  readonly #post: (request: StorageRequest) => void;
  readonly #waiting = new Map<
    number,
    { resolve(answer: StorageAnswer): void }
  >();
  #nextId = 1;

  /** @param post Posts a request to the main thread. */
  constructor(post: (request: StorageRequest) => void) {
    this.#post = post;
  }

  /**
   * Settles the request an answer is for.
   *
   * @param answer An answer from the main thread.
   */
  answer(answer: StorageAnswer): void {
    this.#waiting.get(answer.id)?.resolve(answer);
    this.#waiting.delete(answer.id);
  }

  async #ask(op: StorageRequest["op"], key: string): Promise<StorageAnswer["value"]> {
    const id = this.#nextId++;
    const answer = await new Promise<StorageAnswer>((resolve) => {
      this.#waiting.set(id, { resolve });
      this.#post({ type: "storage", id, op, key });
    });
    if (answer.error) {
      const error = new Error(answer.error.message);
      error.name = answer.error.name;
      throw error;
    }
    return answer.value;
  }

  /** @inheritdoc */
  async get(key: string): Promise<Uint8Array | undefined> {
    return await this.#ask("get", key) as Uint8Array | undefined;
  }

  /** @inheritdoc */
  async getStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const value = await this.get(key);
    if (value === undefined) return undefined;
    return new ReadableStream({
      start(controller) {
        controller.enqueue(value);
        controller.close();
      },
    });
  }

  /** @inheritdoc */
  async has(key: string): Promise<boolean> {
    return await this.#ask("has", key) === true;
  }

  /** @inheritdoc */
  async delete(key: string): Promise<void> {
    await this.#ask("delete", key);
  }

  /** View workers do not write. */
  put(): Promise<void> {
    return Promise.reject(new Error("A view worker's storage is read-only"));
  }

  /** View workers do not list. */
  list(): AsyncIterable<string> {
    throw new Error("A view worker's storage does not list");
  }

  /** Nothing to release: the main thread owns the driver. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
