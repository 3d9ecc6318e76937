/**
 * Telling a packument body from a login page, a captive portal or a proxy's error page that
 * answered 200: a body is taken for a JSON object when its content type is a JSON one (or
 * absent) and its first and last bytes other than JSON whitespace are `{` and `}`. The check
 * runs while the body streams, in constant memory: the document is never parsed.
 *
 * @module
 */

/** A 200 whose body is not a JSON object: a failure of that name, never cached or retried. */
export class NotJsonObjectError extends Error {
  override name = "NotJsonObjectError";
}

/** `application/json` and every `application/...+json` (the corgi type among them). */
const JSON_TYPE = /^\s*application\/(?:[a-z0-9!#$&^_.-]+\+)?json\s*(?:;|$)/i;

/**
 * Why a content type is not a JSON one, or `undefined` when it is (or is absent).
 *
 * @param type The `Content-Type` header.
 * @returns The problem.
 */
export function contentTypeProblem(type: string | null): string | undefined {
  if (type === null || JSON_TYPE.test(type)) return undefined;
  return `the body is ${JSON.stringify(type)}, not JSON`;
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/** The first byte of `bytes` that is not JSON whitespace, or -1. */
function firstByte(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) if (!isSpace(bytes[i]!)) return bytes[i]!;
  return -1;
}

/** The last byte of `bytes` that is not JSON whitespace, or -1. */
function lastByte(bytes: Uint8Array): number {
  for (let i = bytes.length - 1; i >= 0; i--) if (!isSpace(bytes[i]!)) return bytes[i]!;
  return -1;
}

function shapeProblem(first: number, last: number): string | undefined {
  if (first === -1) return "the body is empty, not a JSON object";
  if (first !== 0x7b) return "the body does not start with '{': not a JSON object";
  if (last !== 0x7d) return "the body does not end with '}': not a whole JSON object";
  return undefined;
}

/**
 * Why a whole body is not a JSON object, or `undefined` when it looks like one.
 *
 * @param bytes The body.
 * @returns The problem.
 */
export function objectBytesProblem(bytes: Uint8Array): string | undefined {
  return shapeProblem(firstByte(bytes), lastByte(bytes));
}

/**
 * A pass-through stream that errors with a {@linkcode NotJsonObjectError} as soon as the body
 * does not start with `{`, or at its end when it does not end with `}`.
 *
 * @param url The URL, for the message.
 * @returns The stream.
 */
export function jsonObjectGuard(url: string): TransformStream<Uint8Array, Uint8Array> {
  let first = -1;
  let last = -1;
  const fail = (problem: string) => new NotJsonObjectError(`GET ${url}: ${problem}`);
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (first === -1) {
        first = firstByte(chunk);
        if (first !== -1 && first !== 0x7b) {
          controller.error(fail(shapeProblem(first, -1)!));
          return;
        }
      }
      const end = lastByte(chunk);
      if (end !== -1) last = end;
      controller.enqueue(chunk);
    },
    flush(controller) {
      const problem = shapeProblem(first, last);
      if (problem) controller.error(fail(problem));
    },
  });
}

/**
 * Throws a {@linkcode NotJsonObjectError} when a whole body is not a JSON object.
 *
 * @param url The URL, for the message.
 * @param bytes The body.
 */
export function assertJsonObject(url: string, bytes: Uint8Array): void {
  const problem = objectBytesProblem(bytes);
  if (problem) throw new NotJsonObjectError(`GET ${url}: ${problem}`);
}
