import assert from "node:assert/strict";
import { GuardedResponse } from "../../src/http/guarded_response.ts";
import { HttpError } from "../../src/http/errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A body of `chunks` sent one by one, with no Content-Length; `cancelled` records a cancel. */
function chunked(chunks: string[]): { response: Response; cancelled: unknown[] } {
  const cancelled: unknown[] = [];
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(encoder.encode(chunks[i++]!));
      else controller.close();
    },
    cancel(reason) {
      cancelled.push(reason);
    },
  }, { highWaterMark: 0 });
  return { response: new Response(body, { status: 201, statusText: "Made" }), cancelled };
}

/** Timers that fire only when the test says so. */
function manualTimers() {
  const timers: { ms: number; fire: () => void; cancelled: boolean }[] = [];
  return {
    timers,
    startTimer(ms: number, onFire: () => void): () => void {
      const timer = { ms, fire: onFire, cancelled: false };
      timers.push(timer);
      return () => (timer.cancelled = true);
    },
  };
}

Deno.test("GuardedResponse is a Response that keeps the original's status, headers, url and redirected", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/from"
        ? Response.redirect(new URL("/to", request.url), 302)
        : new Response("there", { headers: { "x-kept": "yes" } }),
  );
  try {
    const original = await fetch(`http://127.0.0.1:${server.addr.port}/from`);
    const guarded = new GuardedResponse(original);
    assert.ok(guarded instanceof Response);
    assert.equal(guarded.status, 200);
    assert.equal(guarded.headers.get("x-kept"), "yes");
    assert.equal(guarded.url, `http://127.0.0.1:${server.addr.port}/to`);
    assert.equal(guarded.redirected, true);
    assert.equal(await guarded.text(), "there");
  } finally {
    await server.shutdown();
  }
  const { response } = chunked(["a"]);
  const made = new GuardedResponse(response);
  assert.equal(made.statusText, "Made");
  assert.equal(made.status, 201);
  await made.body?.cancel();
});

Deno.test("GuardedResponse reads a small declared body whole, once", async (t) => {
  for (const method of ["arrayBuffer", "bytes", "text", "json"] as const) {
    await t.step(method, async () => {
      let settled = 0;
      const original = new Response('{"a":1}', { headers: { "content-length": "7" } });
      const guarded = new GuardedResponse(original, { onSettle: () => settled++ });
      assert.equal(guarded.bodyUsed, false);
      const value = await guarded[method]();
      const text = method === "json"
        ? JSON.stringify(value)
        : method === "text"
        ? value as string
        : decoder.decode(value as ArrayBuffer);
      assert.equal(text, '{"a":1}');
      assert.equal(settled, 1);
      // Read straight from the original: the guard's stream was never pulled.
      assert.equal(original.bodyUsed, true);
      assert.equal(guarded.bodyUsed, true);
      await assert.rejects(guarded.text(), TypeError);
      assert.equal(settled, 1);
    });
  }
});

Deno.test("GuardedResponse streams the rest once the stream was touched or cloned", async (t) => {
  await t.step("a read from the stream first", async () => {
    let settled = 0;
    const original = new Response("0123456789", { headers: { "content-length": "10" } });
    const guarded = new GuardedResponse(original, { onSettle: () => settled++ });
    const reader = guarded.body!.getReader();
    const first = await reader.read();
    assert.equal(decoder.decode(first.value), "0123456789");
    assert.equal((await reader.read()).done, true);
    assert.equal(settled, 1);
  });

  await t.step("a locked stream is not read behind the reader's back", async () => {
    const guarded = new GuardedResponse(
      new Response("abc", { headers: { "content-length": "3" } }),
    );
    const reader = guarded.body!.getReader();
    await assert.rejects(guarded.text(), TypeError);
    assert.equal(decoder.decode((await reader.read()).value), "abc");
  });

  await t.step("clone", async () => {
    let settled = 0;
    const guarded = new GuardedResponse(
      new Response("shared", { headers: { "content-length": "6" } }),
      { onSettle: () => settled++ },
    );
    const copy = guarded.clone();
    assert.deepEqual([await guarded.text(), await copy.text()], ["shared", "shared"]);
    assert.equal(settled, 1);
  });
});

Deno.test("GuardedResponse releases once when the body ends, is cancelled or fails", async (t) => {
  await t.step("read to the end", async () => {
    let settled = 0;
    const { response } = chunked(["a", "b", "c"]);
    const guarded = new GuardedResponse(response, { onSettle: () => settled++ });
    assert.equal(await guarded.text(), "abc");
    assert.equal(settled, 1);
  });

  await t.step("cancelled: the original is cancelled with the reason", async () => {
    let settled = 0;
    const { response, cancelled } = chunked(["a", "b"]);
    const guarded = new GuardedResponse(response, { onSettle: () => settled++ });
    const reader = guarded.body!.getReader();
    await reader.read();
    await reader.cancel("done with it");
    await reader.cancel("twice");
    assert.equal(settled, 1);
    assert.deepEqual(cancelled, ["done with it"]);
  });

  await t.step("too large", async () => {
    let settled = 0;
    const { response, cancelled } = chunked(["abc", "def", "ghi"]);
    const guarded = new GuardedResponse(response, {
      method: "GET",
      url: "http://127.0.0.1:9/big",
      maxBodyBytes: 5,
      onSettle: () => settled++,
    });
    const error = await guarded.text().catch((error) => error);
    assert.ok(error instanceof HttpError);
    assert.equal(
      error.message,
      "The response body of GET http://127.0.0.1:9/big is more than 'maxBodyBytes' (5 bytes)",
    );
    assert.equal(error.status, 201);
    assert.equal(settled, 1);
    assert.equal(cancelled.length, 1);
  });

  await t.step("a body that breaks", async () => {
    let settled = 0;
    const broken = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode("part"));
        controller.error(new Error("connection reset"));
      },
    });
    const guarded = new GuardedResponse(new Response(broken), { onSettle: () => settled++ });
    const error = await guarded.text().catch((error) => error);
    assert.ok(error instanceof HttpError);
    assert.match(error.message, /^Reading the response body of GET .* failed$/);
    assert.equal((error.cause as Error).message, "connection reset");
    assert.equal(settled, 1);
  });
});

Deno.test("GuardedResponse aborts a read that waits longer than the timeout", async (t) => {
  for (const whole of [false, true]) {
    await t.step(whole ? "a small body read whole" : "a streamed body", async () => {
      const { timers, startTimer } = manualTimers();
      const controller = new AbortController();
      let settled = 0;
      let release: (() => void) | undefined;
      const body = new ReadableStream<Uint8Array>({
        pull: () => new Promise<void>((resolve) => release = resolve),
        cancel: () => release?.(),
      });
      const original = new Response(body, { headers: whole ? { "content-length": "4" } : {} });
      const guarded = new GuardedResponse(original, {
        url: "http://127.0.0.1:9/slow",
        signal: controller.signal,
        abort: (reason) => controller.abort(reason),
        timeout: 50,
        startTimer,
        onSettle: () => settled++,
      });
      const reading = guarded.text().catch((error) => error);
      while (timers.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.equal(timers[0]!.ms, 50);
      timers[0]!.fire();
      const error = await reading;
      assert.ok(error instanceof HttpError, String(error));
      assert.equal(
        error.message,
        "The response body of GET http://127.0.0.1:9/slow stalled: no data for 50 ms",
      );
      assert.equal((error.cause as DOMException).name, "TimeoutError");
      assert.equal(settled, 1);
    });
  }

  await t.step("the caller's abort wins with its own reason", async () => {
    const caller = new AbortController();
    const { response } = chunked(["a", "b"]);
    let settled = 0;
    const guarded = new GuardedResponse(response, {
      signal: caller.signal,
      callerSignal: caller.signal,
      onSettle: () => settled++,
    });
    const reader = guarded.body!.getReader();
    await reader.read();
    caller.abort(new Error("stop"));
    await assert.rejects(reader.read(), /stop/);
    assert.equal(settled, 1);
  });
});

Deno.test("GuardedResponse refuses a response without an unread body", async () => {
  assert.throws(
    () => new GuardedResponse(new Response(null, { status: 204 })),
    new TypeError("Cannot guard response: it must have an unread body, received no body"),
  );
  const used = new Response("x");
  await used.text();
  assert.throws(() => new GuardedResponse(used), TypeError);
});
