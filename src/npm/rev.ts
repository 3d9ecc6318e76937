/**
 * Reading a packument's `_rev` (the CouchDB revision the registry's replication endpoint lists
 * for it) from its body without parsing the document: full documents carry it near their
 * start, abbreviated ("corgi") documents carry none.
 *
 * @module
 */

/** `"_rev":"..."`. */
const REV = /"_rev"\s*:\s*"([^"\\]*)"/;
/** How far into a document `_rev` is looked for: 64 KiB. */
const REV_SCAN_MAX = 65_536;

/**
 * The `_rev` of a whole document, looked for within its first 64 KiB.
 *
 * @param body The document's bytes.
 * @returns The revision, or `undefined` when the document names none there.
 *
 * @example
 * ```ts
 * import { readRev } from "./rev.ts";
 * const body = new TextEncoder().encode('{"_id":"ms","_rev":"12-abc","name":"ms"}');
 * console.assert(readRev(body) === "12-abc");
 * console.assert(readRev(new TextEncoder().encode('{"name":"ms"}')) === undefined);
 * ```
 */
export function readRev(body: Uint8Array): string | undefined {
  return REV.exec(new TextDecoder().decode(body.subarray(0, REV_SCAN_MAX)))?.[1];
}

/** A pass-through stream that notes a document's `_rev` on the way. */
export interface RevScanner {
  /** Pipe the document through this; it passes every chunk on unchanged. */
  stream: TransformStream<Uint8Array, Uint8Array>;
  /** The `_rev` seen so far: final once the document has passed through. */
  rev(): string | undefined;
}

/**
 * A stream that finds the `_rev` of a streamed document within its first 64 KiB, passing the
 * bytes on unchanged.
 *
 * @returns The stream and a way to read the `_rev` it found.
 *
 * @example
 * ```ts
 * import { revScanner } from "./rev.ts";
 * const scan = revScanner();
 * const body = new Blob(['{"_id":"ms","_r', 'ev":"12-abc"}']).stream();
 * const text = await new Response(body.pipeThrough(scan.stream)).text();
 * console.assert(text === '{"_id":"ms","_rev":"12-abc"}');
 * console.assert(scan.rev() === "12-abc");
 * ```
 */
export function revScanner(): RevScanner {
  const decoder = new TextDecoder();
  let head = "";
  let rev: string | undefined;
  let done = false;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (!done) {
        head += decoder.decode(chunk, { stream: true });
        const match = REV.exec(head);
        if (match) {
          rev = match[1];
          done = true;
        } else if (head.length > REV_SCAN_MAX) done = true;
      }
      controller.enqueue(chunk);
    },
  });
  return { stream, rev: () => rev };
}
