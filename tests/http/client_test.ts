import assert from "node:assert/strict";
import type { Clock } from "../../src/clock.ts";
import {
  HttpClient,
  type HttpClientOptions,
  HttpError,
  type HttpEvent,
  type RequestOptions,
} from "../../src/http/client.ts";
import { TokenBucket } from "../../src/http/token_bucket.ts";
import { VERSION } from "../../src/version.ts";
import { detectRuntime } from "../../src/runtime.ts";
import { FakeClock } from "../_support/fake_clock.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const START = Date.UTC(2024, 0, 1);

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` on the event loop; fails the test when it never holds. */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return;
    await delay(5);
  }
  assert.fail(`Gave up waiting for ${what}`);
}

function makeClient(
  options: HttpClientOptions = {},
): { client: HttpClient; clock: FakeClock; events: HttpEvent[] } {
  const clock = options.clock instanceof FakeClock ? options.clock : new FakeClock({ now: START });
  const events: HttpEvent[] = [];
  const client = new HttpClient({
    random: () => 0.5,
    onEvent: (event) => events.push(event),
    ...options,
    clock,
  });
  return { client, clock, events };
}

async function withServer(
  handler: (request: Request) => Response | Promise<Response>,
  fn: (base: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

/** A raw TCP server: `onConnection` gets each accepted connection and its index. */
async function withTcpServer(
  onConnection: (conn: Deno.Conn, index: number) => Promise<void>,
  fn: (base: string) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handlers: Promise<void>[] = [];
  const accepting = (async () => {
    let index = 0;
    try {
      for await (const conn of listener) {
        handlers.push(
          onConnection(conn, index++).catch(() => {}).finally(() => {
            try {
              conn.close();
            } catch {
              // Already closed by the handler.
            }
          }),
        );
      }
    } catch {
      // The listener was closed.
    }
  })();
  try {
    await fn(`http://127.0.0.1:${listener.addr.port}`);
  } finally {
    listener.close();
    await accepting;
    await Promise.all(handlers);
  }
}

/** Reads a request head; `null` when the peer closed first. */
async function readHead(conn: Deno.Conn): Promise<string | null> {
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) return null;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/** Resolves when the peer closes the connection. */
async function waitClosed(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(1024);
  try {
    while ((await conn.read(buffer)) !== null) {
      // Discard.
    }
  } catch {
    // A reset is a close too.
  }
}

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const data = encoder.encode(text);
  let offset = 0;
  while (offset < data.length) offset += await conn.write(data.subarray(offset));
}

const OK_RESPONSE = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
const LATE_RESPONSE = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nlate";

/**
 * Never answers while the client keeps the connection open; resolves `true` once the client
 * closes it. After 2 s it answers "late" and resolves `false`, so a client that fails to give up
 * fails the test instead of hanging it.
 */
async function hangUntilClosed(conn: Deno.Conn): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), 2000));
  const result = await Promise.race([waitClosed(conn).then(() => "closed" as const), late]);
  clearTimeout(timer);
  if (result === "closed") return true;
  await writeAll(conn, LATE_RESPONSE);
  return false;
}

/**
 * A body that sends `first`, then stalls until cancelled; `outcome` then resolves to
 * "cancelled". After 2 s without a cancel it ends the body and resolves to "ended", so a client
 * that fails to give up fails the test instead of hanging it.
 */
function stallingBody(
  first: string,
): { body: ReadableStream<Uint8Array>; outcome: Promise<"cancelled" | "ended"> } {
  const outcome = Promise.withResolvers<"cancelled" | "ended">();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(first));
    },
    pull(controller) {
      return new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(() => {
          controller.close();
          outcome.resolve("ended");
          resolve();
        }, 2000);
      });
    },
    cancel() {
      clearTimeout(timer);
      wake?.();
      outcome.resolve("cancelled");
    },
  });
  return { body, outcome: outcome.promise };
}

/** Counts hits per path and answers each path from a script of statuses (the last repeats). */
function scripted(
  script: Record<string, (number | (() => Response))[]>,
): { hits: Map<string, number>; handler: (request: Request) => Response } {
  const hits = new Map<string, number>();
  return {
    hits,
    handler(request) {
      const path = new URL(request.url).pathname;
      const count = hits.get(path) ?? 0;
      hits.set(path, count + 1);
      const steps = script[path];
      const step = steps?.[Math.min(count, steps.length - 1)] ?? 404;
      if (typeof step === "function") return step();
      return new Response(step === 200 ? "ok" : `status ${step}`, { status: step });
    },
  };
}

Deno.test("HttpClient retries each retryable status, then succeeds", async (t) => {
  const statuses = [408, 429, 500, 501, 502, 503, 504, 599];
  const script: Record<string, number[]> = {};
  for (const status of statuses) script[`/${status}`] = [status, 200];
  const { hits, handler } = scripted(script);
  await withServer(handler, async (base) => {
    for (const status of statuses) {
      await t.step(`${status}`, async () => {
        const { client, clock, events } = makeClient();
        const response = await client.request(`${base}/${status}`);
        assert.equal(response.status, 200);
        assert.equal(await response.text(), "ok");
        assert.equal(hits.get(`/${status}`), 2);
        assert.deepEqual(clock.sleeps, [125]);
        const url = `${base}/${status}`;
        assert.deepEqual(events, [
          { type: "request", url, attempt: 1 },
          { type: "response", url, status, attempt: 1 },
          { type: "retry", url, attempt: 1, delay: 125, reason: "status", status },
          { type: "request", url, attempt: 2 },
          { type: "response", url, status: 200, attempt: 2 },
        ]);
        assert.deepEqual(client.stats, { requests: 2, retries: 1, inFlight: 0 });
      });
    }
  });
});

Deno.test("HttpClient cancels the bodies of responses it retries", async () => {
  const { body, outcome } = stallingBody("temporarily unavailable");
  let hits = 0;
  await withServer(
    () => ++hits === 1 ? new Response(body, { status: 503 }) : new Response("ok"),
    async (base) => {
      const { client } = makeClient();
      const response = await client.request(`${base}/x`);
      assert.equal(await response.text(), "ok");
      assert.equal(await outcome, "cancelled");
      assert.equal(hits, 2);
    },
  );
});

Deno.test("HttpClient retries network errors, then succeeds", async (t) => {
  await t.step("connection refused on a closed port", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    let server: Deno.HttpServer | undefined;
    const { client, events } = makeClient({
      onEvent(event) {
        events.push(event);
        // The port was closed for the first attempt; open it for the retry.
        if (event.type === "retry") {
          server = Deno.serve(
            { hostname: "127.0.0.1", port, onListen() {} },
            () => new Response("back"),
          );
        }
      },
    });
    try {
      const response = await client.request(`http://127.0.0.1:${port}/x`);
      assert.equal(await response.text(), "back");
      const retries = events.filter((event) => event.type === "retry");
      assert.deepEqual(retries.map((event) => event.type === "retry" && event.reason), [
        "network",
      ]);
    } finally {
      await server?.shutdown();
    }
  });

  await t.step("connection reset in the middle of the headers", async () => {
    await withTcpServer(async (conn, index) => {
      await readHead(conn);
      if (index === 0) {
        await writeAll(conn, "HTTP/1.1 200 OK\r\nContent-Le");
        conn.close();
      } else {
        await writeAll(conn, OK_RESPONSE);
      }
    }, async (base) => {
      const { client, events } = makeClient();
      const response = await client.request(`${base}/x`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "ok");
      const retry = events.find((event) => event.type === "retry");
      assert.equal(retry?.type === "retry" && retry.reason, "network");
      assert.deepEqual(client.stats, { requests: 2, retries: 1, inFlight: 0 });
    });
  });
});

Deno.test("HttpClient throws HttpError when retries are exhausted", async (t) => {
  const { hits, handler } = scripted({
    "/busy": [() => new Response("busy", { status: 503, headers: { "retry-after": "2" } })],
    "/down": [502],
  });
  await withServer(handler, async (base) => {
    await t.step("status with Retry-After", async () => {
      const { client, clock } = makeClient({ retries: 2 });
      const error = await client.request(`${base}/busy`).then(
        () => assert.fail("expected a rejection"),
        (error: unknown) => error,
      );
      assert.ok(error instanceof HttpError);
      assert.equal(error.name, "HttpError");
      assert.equal(error.status, 503);
      assert.equal(error.url, `${base}/busy`);
      assert.equal(error.retryAfter, 2000);
      assert.equal(error.attempts, 3);
      assert.equal(error.cause, undefined);
      assert.equal(error.message, `GET ${base}/busy failed after 3 attempts: HTTP 503`);
      assert.equal(hits.get("/busy"), 3);
      assert.deepEqual(clock.sleeps, [2000, 2000]);
      assert.deepEqual(client.stats, { requests: 3, retries: 2, inFlight: 0 });
    });

    await t.step("retries: 0 makes a single attempt", async () => {
      const { client, clock } = makeClient({ retries: 0 });
      await assert.rejects(client.request(`${base}/down`), (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.equal(error.status, 502);
        assert.equal(error.retryAfter, undefined);
        assert.equal(error.attempts, 1);
        return true;
      });
      assert.equal(hits.get("/down"), 1);
      assert.deepEqual(clock.sleeps, []);
    });

    await t.step("per-request retries override", async () => {
      const { client } = makeClient({ retries: 0 });
      await assert.rejects(client.request(`${base}/down`, { retries: 3 }), (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.equal(error.attempts, 4);
        return true;
      });
      assert.equal(hits.get("/down"), 5);
    });
  });

  await t.step("network error", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${listener.addr.port}/x`;
    listener.close();
    const { client, clock } = makeClient({ retries: 1 });
    await assert.rejects(client.request(url), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, undefined);
      assert.equal(error.url, url);
      assert.equal(error.retryAfter, undefined);
      assert.equal(error.attempts, 2);
      assert.ok(error.cause instanceof TypeError);
      assert.match(error.message, /^GET .* failed after 2 attempts: network error/);
      return true;
    });
    assert.deepEqual(clock.sleeps, [125]);
  });
});

Deno.test("HttpClient returns non-retryable statuses without retrying", async (t) => {
  const { hits, handler } = scripted({ "/400": [400], "/403": [403], "/404": [404] });
  await withServer(handler, async (base) => {
    for (const status of [400, 403, 404]) {
      await t.step(`${status}`, async () => {
        const { client, clock, events } = makeClient();
        const response = await client.request(`${base}/${status}`);
        assert.equal(response.status, status);
        assert.equal(await response.text(), `status ${status}`);
        assert.equal(hits.get(`/${status}`), 1);
        assert.deepEqual(clock.sleeps, []);
        assert.equal(events.filter((event) => event.type === "retry").length, 0);
        assert.deepEqual(client.stats, { requests: 1, retries: 0, inFlight: 0 });
      });
    }
  });
});

Deno.test("HttpClient honours Retry-After", async (t) => {
  const retryAfter = new Map<string, string>();
  const hits = new Map<string, number>();
  await withServer((request) => {
    const path = new URL(request.url).pathname;
    const count = hits.get(path) ?? 0;
    hits.set(path, count + 1);
    if (count > 0) return new Response("ok");
    return new Response("later", {
      status: 503,
      headers: { "retry-after": retryAfter.get(path) ?? "" },
    });
  }, async (base) => {
    const cases: [string, string, number, HttpClientOptions][] = [
      ["seconds", "3", 3000, {}],
      ["HTTP-date, relative to the clock", new Date(START + 7000).toUTCString(), 7000, {}],
      ["HTTP-date in the past", new Date(START - 7000).toUTCString(), 0, {}],
      ["capped by retryAfterMax, then still retried", "3600", 5000, { retryAfterMax: 5000 }],
      ["unparsable, so backoff", "soon", 125, {}],
    ];
    for (const [index, [name, value, expected, options]] of cases.entries()) {
      await t.step(name, async () => {
        const path = `/case${index}`;
        retryAfter.set(path, value);
        const { client, clock, events } = makeClient(options);
        const response = await client.request(base + path);
        assert.equal(await response.text(), "ok");
        assert.deepEqual(clock.sleeps, [expected]);
        const retry = events.find((event) => event.type === "retry");
        assert.equal(retry?.type === "retry" && retry.delay, expected);
      });
    }
  });
});

Deno.test("HttpClient pauses every request during a 429 penalty window", async () => {
  const arrivals: string[] = [];
  let first = true;
  await withServer((request) => {
    const path = new URL(request.url).pathname;
    arrivals.push(path);
    if (path === "/a" && first) {
      first = false;
      return new Response("slow down", { status: 429, headers: { "retry-after": "10" } });
    }
    return new Response(`ok ${path}`);
  }, async (base) => {
    const clock = new FakeClock({ now: START, manual: true });
    const retried = Promise.withResolvers<void>();
    const client = new HttpClient({
      clock,
      onEvent(event) {
        if (event.type === "retry") retried.resolve();
      },
    });
    const a = client.request(`${base}/a`);
    await retried.promise;
    assert.deepEqual(clock.sleeps, [10_000]);
    const b = client.request(`${base}/b`);
    await waitFor(() => clock.pending === 2, "the second request to wait for the window");
    // The second request waits for the rest of the window and has not been sent.
    assert.deepEqual(clock.sleeps, [10_000, 10_000]);
    assert.deepEqual(arrivals, ["/a"]);
    clock.advance(10_000);
    const [responseA, responseB] = await Promise.all([a, b]);
    assert.equal(await responseA.text(), "ok /a");
    assert.equal(await responseB.text(), "ok /b");
    assert.deepEqual(arrivals.toSorted(), ["/a", "/a", "/b"]);
    assert.deepEqual(client.stats, { requests: 3, retries: 1, inFlight: 0 });
  });
});

Deno.test("HttpClient backs off exponentially with full jitter", async () => {
  const { hits, handler } = scripted({ "/x": [500, 500, 500, 500, 200] });
  await withServer(handler, async (base) => {
    const randoms = [0.5, 0.25, 0.75, 0.5];
    const { client, clock, events } = makeClient({
      retries: 4,
      backoffBase: 100,
      backoffMax: 500,
      random: () => randoms.shift() ?? assert.fail("random called too often"),
    });
    const response = await client.request(`${base}/x`);
    assert.equal(await response.text(), "ok");
    // Caps 100, 200, 400 and min(500, 800), times the injected random values.
    assert.deepEqual(clock.sleeps, [50, 50, 300, 250]);
    assert.deepEqual(
      events.flatMap((event) => event.type === "retry" ? [[event.attempt, event.delay]] : []),
      [[1, 50], [2, 50], [3, 300], [4, 250]],
    );
    assert.equal(hits.get("/x"), 5);
  });
});

Deno.test("HttpClient times out when headers are late, then retries", async (t) => {
  await t.step("against a slow server", async () => {
    const closed = Promise.withResolvers<boolean>();
    await withTcpServer(async (conn, index) => {
      await readHead(conn);
      if (index === 0) {
        // Never answer; the client has to give up and close the connection.
        closed.resolve(await hangUntilClosed(conn));
      } else {
        await writeAll(conn, OK_RESPONSE);
      }
    }, async (base) => {
      const { client, events } = makeClient({ timeout: 200 });
      const response = await client.request(`${base}/x`);
      assert.equal(await response.text(), "ok");
      assert.equal(await closed.promise, true, "the client closed the connection");
      const retry = events.find((event) => event.type === "retry");
      assert.equal(retry?.type === "retry" && retry.reason, "timeout");
      assert.deepEqual(client.stats, { requests: 2, retries: 1, inFlight: 0 });
    });
  });

  await t.step("exhausted: HttpError caused by a TimeoutError", async () => {
    await withTcpServer(async (conn) => {
      await readHead(conn);
      await hangUntilClosed(conn);
    }, async (base) => {
      const { client } = makeClient({ timeout: 200, retries: 0 });
      await assert.rejects(client.request(`${base}/x`), (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.equal(error.status, undefined);
        assert.ok(error.cause instanceof DOMException);
        assert.equal(error.cause.name, "TimeoutError");
        return true;
      });
      assert.equal(client.stats.inFlight, 0);
    });
  });

  await t.step("timers come from the injected timeout clock", async () => {
    const arrived = Promise.withResolvers<void>();
    await withTcpServer(async (conn, index) => {
      await readHead(conn);
      if (index === 0) {
        arrived.resolve();
        await hangUntilClosed(conn);
      } else {
        await writeAll(conn, OK_RESPONSE);
      }
    }, async (base) => {
      // Its timers fire only when the test advances it.
      const timers = new FakeClock({ now: START, manual: true });
      const { client, events } = makeClient({ timeout: 1234, timeoutClock: timers });
      const pending = client.request(`${base}/x`);
      await arrived.promise;
      assert.deepEqual(timers.sleeps, [1234]);
      timers.advance(1234);
      const response = await pending;
      assert.equal(await response.text(), "ok");
      assert.equal(events.filter((event) => event.type === "retry").length, 1);
      // Headers timer of each attempt, then idle timers while reading; the first fired, every
      // later one was cancelled (none is left waiting).
      assert.ok(timers.sleeps.length >= 3);
      assert.ok(timers.sleeps.every((ms) => ms === 1234));
      assert.equal(timers.pending, 0);
    });
  });
});

Deno.test("HttpClient errors a body that stalls longer than the timeout", async () => {
  const { body, outcome } = stallingBody("first");
  let hits = 0;
  await withServer(() => {
    hits++;
    return new Response(body);
  }, async (base) => {
    const { client } = makeClient({ timeout: 200 });
    const response = await client.request(`${base}/x`);
    assert.equal(response.status, 200);
    assert.equal(response.url, `${base}/x`);
    const reader = response.body!.getReader();
    const chunk = await reader.read();
    assert.equal(decoder.decode(chunk.value), "first");
    assert.equal(client.stats.inFlight, 1);
    await assert.rejects(reader.read(), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.url, `${base}/x`);
      assert.ok(error.cause instanceof DOMException);
      assert.equal(error.cause.name, "TimeoutError");
      return true;
    });
    assert.equal(await outcome, "cancelled");
    assert.equal(hits, 1);
    assert.deepEqual(client.stats, { requests: 1, retries: 0, inFlight: 0 });
  });
});

Deno.test("HttpClient reads a small declared body whole, with the same guarantees", async (t) => {
  const document = JSON.stringify({ name: "a", versions: { "1.0.0": {} } });
  const head = (length: number) =>
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n` +
    "connection: close\r\n\r\n";

  await t.step(
    "each whole read gives the body and frees the slot; a second read fails",
    async () => {
      await withTcpServer(async (conn) => {
        await readHead(conn);
        await writeAll(conn, head(encoder.encode(document).length) + document);
      }, async (base) => {
        const { client } = makeClient();
        const read = {
          arrayBuffer: async (r: Response) => decoder.decode(await r.arrayBuffer()),
          bytes: async (r: Response) => decoder.decode(await r.bytes()),
          text: (r: Response) => r.text(),
          json: async (r: Response) => JSON.stringify(await r.json()),
        };
        for (const [name, how] of Object.entries(read)) {
          const response = await client.request(`${base}/${name}`);
          assert.equal(response.bodyUsed, false, name);
          assert.equal(await how(response), document, name);
          assert.equal(response.bodyUsed, true, name);
          assert.equal(client.stats.inFlight, 0, name);
          await assert.rejects(response.text(), TypeError, name);
          await assert.rejects(response.body!.getReader().read(), TypeError, name);
        }
      });
    },
  );

  await t.step("a body cut short fails as a read failure and frees the slot", async () => {
    await withTcpServer(async (conn) => {
      await readHead(conn);
      await writeAll(conn, head(1000) + document);
    }, async (base) => {
      const { client } = makeClient();
      const response = await client.request(`${base}/x`);
      await assert.rejects(response.arrayBuffer(), (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.match(error.message, /Reading the response body of GET .* failed/);
        return true;
      });
      assert.equal(client.stats.inFlight, 0);
    });
  });

  await t.step("a body that stalls fails after the timeout", async () => {
    await withTcpServer(async (conn) => {
      await readHead(conn);
      await writeAll(conn, head(1000) + document);
      await hangUntilClosed(conn);
    }, async (base) => {
      const { client } = makeClient({ timeout: 200 });
      const response = await client.request(`${base}/x`);
      await assert.rejects(response.arrayBuffer(), (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.match(error.message, /stalled/);
        assert.ok(error.cause instanceof DOMException);
        assert.equal(error.cause.name, "TimeoutError");
        return true;
      });
      assert.equal(client.stats.inFlight, 0);
    });
  });

  await t.step("a compressed body keeps the size limit on the bytes it decodes to", async () => {
    const zeros = new Uint8Array(300_000);
    const gzipped = new Uint8Array(
      await new Response(
        new Blob([zeros]).stream().pipeThrough(new CompressionStream("gzip")),
      ).arrayBuffer(),
    );
    assert.ok(gzipped.length < 10_000);
    await withTcpServer(async (conn) => {
      await readHead(conn);
      const head = "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\n" +
        `content-length: ${gzipped.length}\r\nconnection: close\r\n\r\n`;
      await writeAll(conn, head);
      await conn.write(gzipped);
    }, async (base) => {
      const { client } = makeClient({ maxBodyBytes: 100_000 });
      const response = await client.request(`${base}/x`);
      await assert.rejects(response.arrayBuffer(), /more than 'maxBodyBytes'/);
      assert.equal(client.stats.inFlight, 0);
    });
  });

  await t.step("a stream read first keeps the stream: the rest reads through it", async () => {
    await withTcpServer(async (conn) => {
      await readHead(conn);
      await writeAll(conn, head(encoder.encode(document).length) + document);
    }, async (base) => {
      const { client } = makeClient();
      const response = await client.request(`${base}/x`);
      const reader = response.body!.getReader();
      let text = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        text += decoder.decode(r.value, { stream: true });
      }
      assert.equal(text, document);
      assert.equal(client.stats.inFlight, 0);
    });
  });
});

Deno.test("HttpClient rate limit counts every attempt", async (t) => {
  await t.step("retries take tokens", async () => {
    const { handler } = scripted({ "/0": [503, 200], "/1": [503, 200], "/2": [503, 200] });
    await withServer(handler, async (base) => {
      const { client, clock } = makeClient({ rateLimit: 5, burst: 1, random: () => 0 });
      for (let i = 0; i < 3; i++) {
        const response = await client.request(`${base}/${i}`);
        assert.equal(await response.text(), "ok");
      }
      // Six attempts at five a second: five waits of 200 ms (the backoff waits are 0).
      assert.deepEqual(clock.sleeps.filter((ms) => ms > 0), [200, 200, 200, 200, 200]);
      assert.equal(sum(clock.sleeps), 1000);
      assert.equal(client.stats.requests, 6);
    });
  });

  await t.step("the burst defaults to the rate", async () => {
    await withServer(() => new Response("ok"), async (base) => {
      const { client, clock } = makeClient({ rateLimit: 2 });
      for (let i = 0; i < 5; i++) await (await client.request(`${base}/${i}`)).body?.cancel();
      assert.deepEqual(clock.sleeps, [500, 500, 500]);
    });
  });
});

Deno.test("HttpClient keeps at most `concurrency` requests in flight", async () => {
  let current = 0;
  let max = 0;
  const arrivals: { path: string; release: () => void }[] = [];
  await withServer(async (request) => {
    current++;
    max = Math.max(max, current);
    const gate = Promise.withResolvers<void>();
    arrivals.push({ path: new URL(request.url).pathname, release: gate.resolve });
    await gate.promise;
    current--;
    return new Response(`body ${new URL(request.url).pathname}`);
  }, async (base) => {
    const { client } = makeClient({ concurrency: 2 });
    const responses = [0, 1, 2, 3, 4].map((i) => client.request(`${base}/${i}`));
    await waitFor(() => arrivals.length === 2, "two requests at the server");
    assert.equal(client.stats.inFlight, 2);

    arrivals[0]!.release();
    const first = await responses[0]!;
    // Headers are in, but the body is unread: the slot is still taken.
    await delay(50);
    assert.equal(arrivals.length, 2);
    assert.equal(client.stats.inFlight, 2);

    assert.equal(await first.text(), "body /0");
    await waitFor(() => arrivals.length === 3, "a slot freed by reading a body");
    assert.equal(arrivals[2]!.path, "/2");

    arrivals[1]!.release();
    await (await responses[1]!).body!.cancel();
    await waitFor(() => arrivals.length === 4, "a slot freed by cancelling a body");
    assert.equal(arrivals[3]!.path, "/3");

    arrivals[2]!.release();
    arrivals[3]!.release();
    assert.equal(await (await responses[2]!).text(), "body /2");
    assert.equal(await (await responses[3]!).text(), "body /3");
    await waitFor(() => arrivals.length === 5, "the last request");
    arrivals[4]!.release();
    assert.equal(await (await responses[4]!).text(), "body /4");

    assert.equal(max, 2);
    assert.deepEqual(client.stats, { requests: 5, retries: 0, inFlight: 0 });
  });
});

Deno.test("HttpClient sends conditional requests and returns 304", async () => {
  const seen: (string | null)[][] = [];
  await withServer((request) => {
    const etag = request.headers.get("if-none-match");
    seen.push([etag, request.headers.get("if-modified-since")]);
    if (etag === '"abc"') return new Response(null, { status: 304, headers: { etag: '"abc"' } });
    return new Response("full", { headers: { etag: '"abc"' } });
  }, async (base) => {
    const { client, clock } = makeClient();
    // A cache entry's metadata can be passed as is.
    const entry = {
      key: "left-pad",
      status: 200,
      etag: '"abc"',
      lastModified: "Mon, 01 Jan 2024 00:00:00 GMT",
      fetchedAt: START,
    };
    const response = await client.request(`${base}/left-pad`, { conditional: entry });
    assert.equal(response.status, 304);
    assert.equal(response.body, null);
    assert.equal(response.headers.get("etag"), '"abc"');
    assert.deepEqual(seen, [['"abc"', "Mon, 01 Jan 2024 00:00:00 GMT"]]);
    assert.deepEqual(clock.sleeps, []);
    assert.deepEqual(client.stats, { requests: 1, retries: 0, inFlight: 0 });

    const full = await client.request(`${base}/left-pad`);
    assert.equal(await full.text(), "full");
    assert.deepEqual(seen[1], [null, null]);
  });
});

Deno.test("HttpClient sends a W3C traceparent on every attempt", async (t) => {
  const traceparents: string[] = [];
  let count = 0;
  await withServer((request) => {
    traceparents.push(request.headers.get("traceparent") ?? "");
    return new Response("x", { status: ++count % 3 === 0 ? 200 : 503 });
  }, async (base) => {
    await t.step("same trace id across retries, a new span id per attempt", async () => {
      const { client } = makeClient();
      await (await client.request(`${base}/x`)).text();
      assert.equal(traceparents.length, 3);
      const parts = traceparents.map((value) => {
        const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(value);
        assert.ok(match, `malformed traceparent ${value}`);
        return { trace: match[1], span: match[2] };
      });
      assert.equal(new Set(parts.map((part) => part.trace)).size, 1);
      assert.equal(new Set(parts.map((part) => part.span)).size, 3);
      assert.notEqual(parts[0]!.trace, "0".repeat(32));
    });

    await t.step("a new trace id per request", async () => {
      const { client } = makeClient();
      await (await client.request(`${base}/x`)).text();
      assert.notEqual(traceparents[3]!.slice(3, 35), traceparents[0]!.slice(3, 35));
    });

    await t.step("the caller's trace id", async () => {
      const { client } = makeClient();
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      await (await client.request(`${base}/x`, { traceId })).text();
      assert.ok(traceparents.slice(6).every((value) => value.startsWith(`00-${traceId}-`)));
      await assert.rejects(
        client.request(`${base}/x`, { traceId: "4BF92F3577B34DA6A3CE929D0E0E4736" }),
        RangeError,
      );
    });
  });
});

/** What a server saw of each request: method, body bytes and a header. */
interface Seen {
  method: string;
  body: Uint8Array;
  contentType: string | null;
}

/** A server answering from `statuses` in turn (the last repeats), recording every request. */
async function withRecordingServer(
  statuses: number[],
  fn: (base: string, seen: Seen[]) => Promise<void>,
): Promise<void> {
  const seen: Seen[] = [];
  await withServer(async (request) => {
    const body = new Uint8Array(await request.arrayBuffer());
    seen.push({ method: request.method, body, contentType: request.headers.get("content-type") });
    const status = statuses[Math.min(seen.length - 1, statuses.length - 1)]!;
    return new Response(status === 200 ? "stored" : `status ${status}`, { status });
  }, (base) => fn(base, seen));
}

Deno.test("HttpClient sends any method with a body, and sends the same body on a retry", async (t) => {
  const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);

  await t.step("PUT bytes: a 503, then the same bytes again", async () => {
    await withRecordingServer([503, 200], async (base, seen) => {
      const { client, events } = makeClient();
      const response = await client.request(`${base}/object`, { method: "PUT", body: bytes });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "stored");
      assert.deepEqual(seen.map((s) => s.method), ["PUT", "PUT"]);
      assert.deepEqual(seen[0]!.body, bytes);
      assert.deepEqual(seen[1]!.body, bytes);
      assert.equal(events.filter((e) => e.type === "retry").length, 1);
      assert.equal(client.stats.inFlight, 0);
    });
  });

  await t.step("every replayable kind of body arrives whole after a retry", async () => {
    const bodies: [string, () => RequestOptions["body"], string][] = [
      ["string", () => "héllo", "héllo"],
      ["ArrayBuffer", () => encoder.encode("buffer").buffer as ArrayBuffer, "buffer"],
      ["a view into a larger buffer", () => encoder.encode("xxviewxx").subarray(2, 6), "view"],
      ["Blob", () => new Blob(["blob"], { type: "text/x-blob" }), "blob"],
      ["URLSearchParams", () => new URLSearchParams({ a: "1", b: "two words" }), "a=1&b=two+words"],
    ];
    for (const [name, make, expected] of bodies) {
      await withRecordingServer([500, 200], async (base, seen) => {
        const { client } = makeClient();
        const response = await client.request(`${base}/x`, {
          method: "PATCH",
          body: make(),
          idempotent: true,
        });
        await response.body?.cancel();
        assert.deepEqual(seen.map((s) => decoder.decode(s.body)), [expected, expected], name);
      });
    }
  });

  await t.step("a stream body from a function: a new stream for each attempt", async () => {
    await withRecordingServer([503, 502, 200], async (base, seen) => {
      const { client } = makeClient();
      let made = 0;
      const response = await client.request(`${base}/stream`, {
        method: "PUT",
        body: () => {
          made++;
          let sent = 0;
          return new ReadableStream<Uint8Array>({
            pull(controller) {
              if (sent >= bytes.length) return controller.close();
              controller.enqueue(bytes.slice(sent, sent + 65_536));
              sent += 65_536;
            },
          });
        },
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
      assert.equal(made, 3);
      assert.equal(seen.length, 3);
      for (const request of seen) assert.deepEqual(request.body, bytes);
    });
  });

  await t.step("a body function that throws rejects with its error and holds no slot", async () => {
    const client = new HttpClient({ fetch: () => assert.fail("fetch must not be called") });
    const broken = new Error("no body today");
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", {
        method: "PUT",
        body: () => {
          throw broken;
        },
      }),
      (error) => error === broken,
    );
    assert.equal(client.stats.inFlight, 0);
  });

  await t.step("methods are sent as fetch writes them", async () => {
    await withRecordingServer([200], async (base, seen) => {
      const { client } = makeClient();
      for (const method of ["delete", "options", "post", "PATCH", "PROPFIND"]) {
        const response = await client.request(`${base}/m`, { method });
        await response.body?.cancel();
      }
      assert.deepEqual(seen.map((s) => s.method), [
        "DELETE",
        "OPTIONS",
        "POST",
        "PATCH",
        "PROPFIND",
      ]);
    });
  });
});

Deno.test("HttpClient sends a request that is not idempotent once, unless told it may repeat", async (t) => {
  await t.step("POST answered 503: one attempt, then HttpError", async () => {
    await withRecordingServer([503, 200], async (base, seen) => {
      const { client, events } = makeClient();
      await assert.rejects(
        client.request(`${base}/x`, { method: "POST", body: "once", retries: 5 }),
        (error: unknown) => {
          assert.ok(error instanceof HttpError);
          assert.equal(error.status, 503);
          assert.equal(error.attempts, 1);
          assert.match(
            error.message,
            /^POST http:\/\/127\.0\.0\.1:\d+\/x failed after 1 attempt: HTTP 503$/,
          );
          return true;
        },
      );
      assert.equal(seen.length, 1);
      assert.equal(events.some((e) => e.type === "retry"), false);
      assert.equal(client.stats.inFlight, 0);
    });
  });

  await t.step("PATCH cut off mid-answer: one attempt", async () => {
    let connections = 0;
    await withTcpServer(async (conn) => {
      connections++;
      await readHead(conn);
      await writeAll(conn, "HTTP/1.1 200 OK\r\nContent-Le");
      conn.close();
    }, async (base) => {
      const { client } = makeClient();
      await assert.rejects(
        client.request(`${base}/x`, { method: "PATCH", body: "{}" }),
        (error: unknown) => error instanceof HttpError && error.attempts === 1,
      );
      assert.equal(connections, 1);
    });
  });

  await t.step("POST with idempotent: true is retried with the same body", async () => {
    await withRecordingServer([503, 429, 200], async (base, seen) => {
      const { client } = makeClient();
      const response = await client.request(`${base}/x`, {
        method: "POST",
        body: "again",
        idempotent: true,
      });
      assert.equal(await response.text(), "stored");
      assert.deepEqual(seen.map((s) => decoder.decode(s.body)), ["again", "again", "again"]);
      assert.equal(seen[0]!.contentType, "text/plain;charset=UTF-8");
    });
  });

  await t.step("PUT with idempotent: false is sent once", async () => {
    await withRecordingServer([500, 200], async (base, seen) => {
      const { client } = makeClient();
      await assert.rejects(
        client.request(`${base}/x`, { method: "PUT", body: "x", idempotent: false }),
        HttpError,
      );
      assert.equal(seen.length, 1);
    });
  });
});

Deno.test("HttpClient sends its user-agent and merges headers", async (t) => {
  const seen: Headers[] = [];
  await withServer((request) => {
    seen.push(request.headers);
    return new Response(null, { status: 204 });
  }, async (base) => {
    await t.step("default user-agent", async () => {
      const { client } = makeClient();
      await client.request(`${base}/x`);
      const userAgent = seen[0]!.get("user-agent") ?? "";
      assert.equal(userAgent, `_all_docs/${VERSION} (${detectRuntime()})`);
      assert.match(userAgent, /^_all_docs\/\d+\.\d+\.\d+\S* \(deno\)$/);
    });

    await t.step("client headers under per-request headers", async () => {
      const { client } = makeClient({
        userAgent: "tester/1",
        headers: { "x-a": "client", "x-b": "client", "user-agent": "ignored" },
      });
      await client.request(`${base}/x`, { headers: { "x-b": "request" } });
      assert.equal(seen[1]!.get("user-agent"), "tester/1");
      assert.equal(seen[1]!.get("x-a"), "client");
      assert.equal(seen[1]!.get("x-b"), "request");
    });

    await t.step("HEAD", async () => {
      const { client } = makeClient();
      const response = await client.request(`${base}/x`, { method: "HEAD" });
      assert.equal(response.status, 204);
      assert.equal(client.stats.inFlight, 0);
    });
  });
});

Deno.test("HttpClient stops when the caller aborts", async (t) => {
  await t.step("halfway through the body: no retry, the connection closes", async () => {
    for (const pendingRead of [true, false]) {
      const { body, outcome } = stallingBody("first");
      let hits = 0;
      await withServer(() => {
        hits++;
        return new Response(body);
      }, async (base) => {
        const { client } = makeClient();
        const controller = new AbortController();
        const reason = new Error("stop");
        const response = await client.request(`${base}/x`, { signal: controller.signal });
        const reader = response.body!.getReader();
        assert.equal(decoder.decode((await reader.read()).value), "first");
        if (pendingRead) {
          const read = reader.read();
          controller.abort(reason);
          await assert.rejects(read, (error) => error === reason);
        } else {
          controller.abort(reason);
          await assert.rejects(reader.read(), (error) => error === reason);
        }
        assert.equal(await outcome, "cancelled");
        assert.equal(hits, 1);
        assert.deepEqual(client.stats, { requests: 1, retries: 0, inFlight: 0 });
      });
    }
  });

  await t.step("before the headers: rejects with the reason, no retry", async () => {
    const closed = Promise.withResolvers<boolean>();
    const arrived = Promise.withResolvers<void>();
    let connections = 0;
    await withTcpServer(async (conn) => {
      connections++;
      await readHead(conn);
      arrived.resolve();
      closed.resolve(await hangUntilClosed(conn));
    }, async (base) => {
      const { client, clock } = makeClient();
      const controller = new AbortController();
      const reason = new Error("changed my mind");
      const pending = client.request(`${base}/x`, { signal: controller.signal });
      await arrived.promise;
      controller.abort(reason);
      await assert.rejects(pending, (error) => error === reason);
      assert.equal(await closed.promise, true, "the client closed the connection");
      assert.equal(connections, 1);
      assert.deepEqual(clock.sleeps, []);
      assert.deepEqual(client.stats, { requests: 1, retries: 0, inFlight: 0 });
    });
  });

  await t.step("during the backoff", async () => {
    const { hits, handler } = scripted({ "/x": [503] });
    await withServer(handler, async (base) => {
      const clock = new FakeClock({ now: START, manual: true });
      const controller = new AbortController();
      const reason = new Error("enough");
      const { client } = makeClient({ clock });
      const pending = client.request(`${base}/x`, { signal: controller.signal });
      await waitFor(() => clock.pending === 1, "the backoff");
      controller.abort(reason);
      await assert.rejects(pending, (error) => error === reason);
      assert.equal(hits.get("/x"), 1);
    });
  });

  await t.step("already aborted: nothing is sent", async () => {
    const { client } = makeClient({ fetch: () => assert.fail("fetch must not be called") });
    const reason = new Error("early");
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { signal: AbortSignal.abort(reason) }),
      (error) => error === reason,
    );
  });
});

Deno.test("HttpClient enforces maxBodyBytes", async (t) => {
  const chunk = "x".repeat(8);
  const { hits, handler } = scripted({
    "/length": [() => new Response("y".repeat(100))],
    "/chunked": [() =>
      new Response(
        new ReadableStream({
          start(controller) {
            for (let i = 0; i < 3; i++) controller.enqueue(encoder.encode(chunk));
            controller.close();
          },
        }),
      )],
  });
  await withServer(handler, async (base) => {
    await t.step("Content-Length above the cap fails at once", async () => {
      const { client, clock } = makeClient({ maxBodyBytes: 10 });
      await assert.rejects(client.request(`${base}/length`), (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.equal(error.status, 200);
        assert.equal(error.url, `${base}/length`);
        assert.match(error.message, /100 bytes, more than 'maxBodyBytes' \(10\)/);
        return true;
      });
      assert.equal(hits.get("/length"), 1);
      assert.deepEqual(clock.sleeps, []);
      assert.equal(client.stats.inFlight, 0);
    });

    await t.step("a chunked body errors when it grows past the cap", async () => {
      const { client } = makeClient({ maxBodyBytes: 20 });
      const response = await client.request(`${base}/chunked`);
      assert.equal(response.headers.get("content-length"), null);
      await assert.rejects(response.arrayBuffer(), (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.match(error.message, /more than 'maxBodyBytes' \(20 bytes\)/);
        return true;
      });
      assert.equal(hits.get("/chunked"), 1);
      assert.equal(client.stats.inFlight, 0);
    });

    await t.step("bodies at the cap are fine", async () => {
      const { client } = makeClient({ maxBodyBytes: 24 });
      const response = await client.request(`${base}/chunked`);
      assert.equal(await response.text(), chunk.repeat(3));
      assert.equal(client.stats.inFlight, 0);
    });
  });
});

Deno.test("HttpClient validates its options", async (t) => {
  const prefix = "Cannot create HTTP client";
  const cases: [HttpClientOptions, ErrorConstructor, string][] = [
    [
      { concurrency: 0 },
      RangeError,
      `${prefix}: 'concurrency' must be a positive integer, received 0`,
    ],
    [
      { concurrency: 1.5 },
      RangeError,
      `${prefix}: 'concurrency' must be a positive integer, received 1.5`,
    ],
    [
      { retries: -1 },
      RangeError,
      `${prefix}: 'retries' must be a non-negative integer, received -1`,
    ],
    [{ timeout: NaN }, RangeError, `${prefix}: 'timeout' must be a positive number, received NaN`],
    [{ rateLimit: 0 }, RangeError, `${prefix}: 'rateLimit' must be a positive number, received 0`],
    [
      { backoffMax: Infinity },
      RangeError,
      `${prefix}: 'backoffMax' must be a non-negative finite number, received Infinity`,
    ],
    [
      { maxBodyBytes: -1 },
      RangeError,
      `${prefix}: 'maxBodyBytes' must be a non-negative integer, received -1`,
    ],
    [
      { concurrency: "2" as unknown as number },
      TypeError,
      `${prefix}: 'concurrency' must be a positive integer, received "2"`,
    ],
    [
      { fetch: 42 as unknown as typeof fetch },
      TypeError,
      `${prefix}: 'fetch' must be a function, received 42`,
    ],
    [
      { clock: {} as Clock },
      TypeError,
      `${prefix}: 'clock' must have now() and sleep() methods, received an object`,
    ],
  ];
  for (const [options, type, message] of cases) {
    await t.step(message, () => {
      assert.throws(() => new HttpClient(options), (error: unknown) => {
        assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
        assert.equal(error.message, message);
        return true;
      });
    });
  }

  await t.step("request options", async () => {
    const client = new HttpClient({ fetch: () => assert.fail("fetch must not be called") });
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { retries: -1 }),
      new RangeError(
        "Cannot send HTTP request: 'retries' must be a non-negative integer, received -1",
      ),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { timeout: 0 }),
      new RangeError("Cannot send HTTP request: 'timeout' must be a positive number, received 0"),
    );
    await assert.rejects(
      client.request("not a url"),
      new TypeError(
        `Cannot send HTTP request: 'url' must be an absolute http or https URL, received "not a url"`,
      ),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { method: "CONNECT" }),
      new RangeError(
        `Cannot send HTTP request: 'method' must be an HTTP method other than CONNECT, TRACE ` +
          `and TRACK, received "CONNECT"`,
      ),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { method: "GE T" }),
      new RangeError(
        `Cannot send HTTP request: 'method' must be an HTTP method other than CONNECT, TRACE ` +
          `and TRACK, received "GE T"`,
      ),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { method: 1 as unknown as string }),
      new TypeError(`Cannot send HTTP request: 'method' must be a string, received 1`),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { method: "HEAD", body: "x" }),
      new TypeError(
        `Cannot send HTTP request: 'body' must be undefined for a HEAD request, received "x"`,
      ),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", {
        method: "PUT",
        body: new ReadableStream() as unknown as string,
      }),
      new TypeError(
        "Cannot send HTTP request: 'body' must be a string, Uint8Array, ArrayBuffer, Blob, " +
          "URLSearchParams or a function returning a new body for each attempt, received a " +
          "ReadableStream (pass a function making one)",
      ),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { method: "POST", idempotent: "yes" as never }),
      new TypeError(`Cannot send HTTP request: 'idempotent' must be a boolean, received "yes"`),
    );
    await assert.rejects(
      client.request("http://127.0.0.1:9/x", { traceId: "0".repeat(32) }),
      RangeError,
    );
  });
});

Deno.test("HttpClient calls fetch as a plain function and ignores listener errors", async () => {
  const thisValues: unknown[] = [];
  const client = new HttpClient({
    fetch: function (this: unknown) {
      thisValues.push(this);
      return Promise.resolve(new Response("ok"));
    },
    onEvent: () => {
      throw new Error("listener bug");
    },
  });
  const response = await client.request(new URL("http://127.0.0.1:9/x"));
  assert.equal(await response.text(), "ok");
  assert.deepEqual(thisValues, [undefined]);
  assert.equal(client.stats.inFlight, 0);
});

Deno.test("TokenBucket", async (t) => {
  await t.step("bursts, then hands out tokens at the rate", async () => {
    const clock = new FakeClock({ now: START });
    const bucket = new TokenBucket(10, { burst: 3, clock });
    for (let i = 0; i < 5; i++) await bucket.take();
    assert.deepEqual(clock.sleeps, [100, 100]);
  });

  await t.step("refills while idle, up to the burst", async () => {
    const clock = new FakeClock({ now: START, manual: true });
    const bucket = new TokenBucket(10, { burst: 2, clock });
    await bucket.take();
    await bucket.take();
    clock.advance(1000);
    await bucket.take();
    await bucket.take();
    assert.deepEqual(clock.sleeps, []);
    const third = bucket.take();
    assert.deepEqual(clock.sleeps, [100]);
    clock.advance(100);
    await third;
  });

  await t.step("the burst defaults to max(1, rate)", () => {
    assert.equal(new TokenBucket(0.5).burst, 1);
    assert.equal(new TokenBucket(8).burst, 8);
  });

  await t.step("pauseUntil holds every taker, then resumes at the rate", async () => {
    const clock = new FakeClock({ now: START, manual: true });
    const bucket = new TokenBucket(10, { burst: 5, clock });
    bucket.pauseUntil(START + 5000);
    bucket.pauseUntil(START + 1000); // A window never shrinks.
    assert.equal(bucket.pausedUntil, START + 5000);
    const takes = [bucket.take(), bucket.take(), bucket.take()];
    // The bucket is empty after the window: one token at its end, then one every 100 ms.
    assert.deepEqual(clock.sleeps, [5000, 5100, 5200]);
    clock.advance(5200);
    await Promise.all(takes);
  });

  await t.step("an unlimited bucket only waits for the penalty window", async () => {
    const clock = new FakeClock({ now: START });
    const bucket = new TokenBucket(Infinity, { clock });
    for (let i = 0; i < 100; i++) await bucket.take();
    bucket.pauseUntil(START + 3000);
    await bucket.take();
    await bucket.take();
    assert.deepEqual(clock.sleeps, [3000]);
  });

  await t.step("a window opened during a wait extends it", async () => {
    const clock = new FakeClock({ now: START, manual: true });
    const bucket = new TokenBucket(10, { burst: 1, clock });
    await bucket.take();
    const next = bucket.take();
    bucket.pauseUntil(START + 1000);
    clock.advance(100);
    await waitFor(() => clock.pending === 1, "the second wait");
    assert.deepEqual(clock.sleeps, [100, 900]);
    clock.advance(900);
    await next;
  });

  await t.step("an aborted take rejects with the reason and gives its token back", async () => {
    const clock = new FakeClock({ now: START, manual: true });
    const bucket = new TokenBucket(10, { burst: 1, clock });
    await bucket.take();
    const controller = new AbortController();
    const reason = new Error("gone");
    const aborted = bucket.take(controller.signal);
    controller.abort(reason);
    await assert.rejects(aborted, (error) => error === reason);
    const next = bucket.take();
    assert.deepEqual(clock.sleeps, [100, 100]);
    clock.advance(100);
    await next;
  });

  await t.step("validates its arguments", () => {
    assert.throws(
      () => new TokenBucket(0),
      new RangeError("Cannot create token bucket: 'rate' must be a positive number, received 0"),
    );
    assert.throws(
      () => new TokenBucket(5, { burst: 0.5 }),
      new RangeError(
        "Cannot create token bucket: 'burst' must be a finite number of at least 1, received 0.5",
      ),
    );
    assert.throws(
      () => new TokenBucket("5" as unknown as number),
      new TypeError(`Cannot create token bucket: 'rate' must be a number, received "5"`),
    );
    assert.throws(
      () => new TokenBucket(5).pauseUntil(NaN),
      new RangeError("Cannot pause token bucket: 'time' must be a finite number, received NaN"),
    );
  });
});
