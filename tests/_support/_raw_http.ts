/**
 * The raw HTTP/1.1 server shared by the test fixtures (`all_docs_fixture.ts`,
 * `registry_fixture.ts`). It speaks HTTP/1.1 itself over `Deno.listen`, so a fixture
 * can inject faults at the TCP level: close a socket without a response, send half a status
 * line, stop a body short of its `Content-Length`.
 *
 * This module reads request heads (at most {@linkcode MAX_HEAD_BYTES}; 431 beyond, 400 for a
 * malformed head or any `Transfer-Encoding`), skips request bodies, numbers requests server-wide,
 * keeps connections alive while the fixture's handler says so, and closes every open connection
 * on {@linkcode RawHttpServer.close}. What to answer is the fixture's business.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reason phrases of the status lines both fixtures send (others get a fixture's own, or `Status`). */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: "OK",
  304: "Not Modified",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** The largest request head accepted; a longer one answers 431. */
export const MAX_HEAD_BYTES: number = 64 * 1024;

/** A parsed request head. */
export interface ParsedRequest {
  /** The method, e.g. `GET`. */
  method: string;
  /** The request target as sent, e.g. `/_all_docs?limit=2`. */
  target: string;
  /** The protocol version, e.g. `HTTP/1.1`. */
  version: string;
  /** Header values by lower-case name. */
  headers: Map<string, string>;
}

/**
 * How a repeated header is kept: `last` keeps the last value, `join` joins all of them with
 * `, ` (as RFC 9110 allows for list-valued fields).
 */
export type RepeatedHeaders = "last" | "join";

/** Joins byte arrays; `length`, when given, must be their total length. */
export function concat(parts: readonly Uint8Array[], length?: number): Uint8Array {
  const out = new Uint8Array(length ?? parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The index just past the blank line (`\r\n\r\n`) ending a request head in `buf`, or -1. */
export function headEnd(buf: Uint8Array): number {
  for (let i = 3; i < buf.length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
  }
  return -1;
}

/**
 * Parses a request head (without its final blank line); `undefined` when it is malformed: a
 * request line without exactly three parts, or a header line without a name.
 */
export function parseHead(
  text: string,
  repeated: RepeatedHeaders = "last",
): ParsedRequest | undefined {
  const lines = text.split("\r\n");
  const [method, target, version, extra] = (lines[0] ?? "").split(" ");
  if (!method || !target || !version || extra !== undefined) return undefined;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) return undefined;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = repeated === "join" ? headers.get(key) : undefined;
    headers.set(key, before === undefined ? value : `${before}, ${value}`);
  }
  return { method, target, version, headers };
}

/**
 * A response head: status line, `headers`, `content-length` when `length` is given, and the
 * blank line. The reason phrase comes from `reasons` (`Status` for a status not in it).
 */
export function headBytes(
  status: number,
  headers: readonly (readonly [string, string])[],
  length?: number,
  reasons: Readonly<Record<number, string>> = STATUS_TEXT,
): Uint8Array {
  let text = `HTTP/1.1 ${status} ${reasons[status] ?? "Status"}\r\n`;
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
  if (length !== undefined) text += `content-length: ${length}\r\n`;
  return encoder.encode(text + "\r\n");
}

/** Writes all of `bytes` to `conn`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/** Whether the connection may stay open after answering `req` (HTTP/1.1 without `close`). */
export function keepAliveOf(req: ParsedRequest): boolean {
  return req.version === "HTTP/1.1" && req.headers.get("connection")?.toLowerCase() !== "close";
}

/** The path of a request target as sent, without the query. */
export function targetPath(target: string): string {
  const query = target.indexOf("?");
  return query < 0 ? target : target.slice(0, query);
}

/**
 * Answers one request on `conn`; `n` is the 0-based request counter across the whole server.
 * Resolves to whether the connection stays open; a rejection closes it.
 */
export type RawHandler = (conn: Deno.Conn, req: ParsedRequest, n: number) => Promise<boolean>;

/** Options of {@linkcode serveRawHttp}. */
export interface RawHttpOptions {
  /** Answers each request. */
  handler: RawHandler;
  /** How repeated request headers are kept (default `last`). */
  repeatedHeaders?: RepeatedHeaders;
  /** Address to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Port to listen on (default 0: any free port). */
  port?: number;
}

/** A running server; see {@linkcode serveRawHttp}. */
export interface RawHttpServer {
  /** The origin, e.g. `http://127.0.0.1:4711` (no trailing slash; IPv6 in brackets). */
  readonly origin: string;
  /** Whether {@linkcode RawHttpServer.close} has been called. */
  readonly closing: boolean;
  /** Waits `ms` milliseconds, or until the server closes, whichever comes first. */
  sleep(ms: number): Promise<void>;
  /** Closes the listener and every open connection, and waits for all of them. */
  close(): Promise<void>;
}

/**
 * Listens on TCP and hands every request to `options.handler`, one at a time per connection.
 * Throws synchronously when the address cannot be bound.
 */
export function serveRawHttp(options: RawHttpOptions): RawHttpServer {
  const handler = options.handler;
  const repeated = options.repeatedHeaders ?? "last";
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    transport: "tcp",
  });
  const addr = listener.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const origin = `http://${host}:${addr.port}`;
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const sleepers = new Set<() => void>();
  let closing = false;
  let counter = 0;

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      sleepers.add(done);
    });
  }

  async function serveConnection(conn: Deno.Conn): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (!closing) {
        let end = headEnd(buf);
        while (end < 0) {
          if (buf.length > MAX_HEAD_BYTES) {
            await writeAll(conn, headBytes(431, [["connection", "close"]], 0));
            return;
          }
          const read = await conn.read(chunk);
          if (read === null) return;
          buf = concat([buf, chunk.subarray(0, read)]);
          end = headEnd(buf);
        }
        const req = parseHead(decoder.decode(buf.subarray(0, end - 4)), repeated);
        buf = buf.subarray(end);
        if (req === undefined || req.headers.has("transfer-encoding")) {
          await writeAll(conn, headBytes(400, [["connection", "close"]], 0));
          return;
        }
        let skip = Number(req.headers.get("content-length") ?? "0");
        if (!Number.isSafeInteger(skip) || skip < 0) return;
        while (skip > 0) {
          if (buf.length > 0) {
            const take = Math.min(skip, buf.length);
            buf = buf.subarray(take);
            skip -= take;
            continue;
          }
          const read = await conn.read(chunk);
          if (read === null) return;
          buf = chunk.slice(0, read);
        }
        if (!(await handler(conn, req, counter++))) return;
      }
    } catch {
      // The peer went away, or close() closed the connection under us.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  const acceptLoop = (async () => {
    try {
      for await (const conn of listener) {
        if (closing) {
          conn.close();
          continue;
        }
        conns.add(conn);
        const task = serveConnection(conn);
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch {
      // The listener was closed.
    }
  })();

  let closed: Promise<void> | undefined;

  return {
    origin,
    get closing(): boolean {
      return closing;
    },
    sleep,
    close(): Promise<void> {
      closed ??= (async () => {
        closing = true;
        listener.close();
        for (const wake of [...sleepers]) wake();
        for (const conn of conns) {
          try {
            conn.close();
          } catch {
            // Already closed.
          }
        }
        await acceptLoop;
        while (tasks.size > 0) await Promise.allSettled([...tasks]);
      })();
      return closed;
    },
  };
}

/** What {@linkcode beforeReply} reads of a fixture's fault: its kind, and `partialHeaders`, `ms`. */
export interface ConnectionFault {
  /** The fault's kind; only `reset` and `delay` matter here. */
  readonly kind: string;
  /** For `reset`: send half a status line and header first. */
  readonly partialHeaders?: boolean;
  /** For `delay`: how many milliseconds to wait. */
  readonly ms?: number;
}

/**
 * Applies the connection-level part of a fault before any reply. `reset` sends half a status
 * line and header when `partialHeaders`, then resolves false: close without a response. `delay`
 * waits `ms` (cut short by {@linkcode RawHttpServer.close}) and resolves false when the server
 * closed meanwhile. Anything else, or no fault, resolves true: go on and answer.
 */
export async function beforeReply(
  server: RawHttpServer,
  conn: Deno.Conn,
  fault: ConnectionFault | undefined,
): Promise<boolean> {
  if (fault?.kind === "reset") {
    if (fault.partialHeaders) await writeAll(conn, encoder.encode("HTTP/1.1 200 OK\r\ncontent-ty"));
    return false;
  }
  if (fault?.kind === "delay") {
    await server.sleep(fault.ms ?? 0);
    return !server.closing;
  }
  return true;
}
