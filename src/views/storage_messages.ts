/**
 * The messages of a view worker that reads storage through the main thread (for a driver one
 * thread must own, such as Deno KV on Node): a {@linkcode StorageRequest} from the worker, a
 * {@linkcode StorageAnswer} back.
 *
 * @module
 */

/** A storage operation a worker asks the main thread for. */
export interface StorageRequest {
  /** What the message is. */
  type: "storage";
  /** Matches the answer to the request. */
  id: number;
  /** The driver method to call. */
  op: "get" | "has" | "delete";
  /** Its key. */
  key: string;
}

/** The main thread's answer to a {@linkcode StorageRequest}. */
export interface StorageAnswer {
  /** What the message is. */
  type: "storage-answer";
  /** The request's id. */
  id: number;
  /** The value read (`get`), whether present (`has`), nothing (`delete`). */
  value?: Uint8Array | boolean | undefined;
  /** Why it failed. */
  error?: { name: string; message: string };
}
