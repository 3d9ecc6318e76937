import assert from "node:assert/strict";
import { Hono } from "hono";
import { rawTarget, requestLog } from "../../src/replica/request_log.ts";

function appWith(lines: string[]): Hono {
  let clock = 1000;
  const app = new Hono();
  app.use(requestLog((line) => lines.push(line), { now: () => (clock += 2.5) }));
  app.get("/text", (c) => c.text("hello"));
  app.get("/stream", () => {
    let sent = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 3) controller.enqueue(new Uint8Array(10));
          else controller.error(new Error("storage went away"));
        },
      }),
    );
  });
  app.get("/empty", () => new Response(null, { status: 204 }));
  app.get("*", (c) => c.text("any"));
  return app;
}

Deno.test("requestLog() writes one line once the body is sent, with its size", async () => {
  const lines: string[] = [];
  const app = appWith(lines);
  const response = await app.request("/text?x=%22a%22");
  assert.equal(lines.length, 0, "not before the body is sent");
  assert.equal(await response.text(), "hello");
  assert.deepEqual(JSON.parse(lines[0]!), {
    method: "GET",
    path: "/text?x=%22a%22",
    status: 200,
    bytes: 5,
    ms: 2.5,
  });
});

Deno.test("requestLog() logs HEAD and bodiless responses at once with 0 bytes", async () => {
  const lines: string[] = [];
  const app = appWith(lines);
  await app.request("/text", { method: "HEAD" });
  await app.request("/empty");
  assert.deepEqual(lines.map((l) => JSON.parse(l)).map((l) => [l.method, l.status, l.bytes]), [
    ["HEAD", 200, 0],
    ["GET", 204, 0],
  ]);
});

Deno.test("requestLog() notes a body that fails or is cancelled", async () => {
  const lines: string[] = [];
  const app = appWith(lines);
  const failed = await app.request("/stream");
  await assert.rejects(failed.arrayBuffer(), /storage went away/);
  const cancelled = await app.request("/text");
  await cancelled.body!.cancel();
  const [first, second] = lines.map((l) => JSON.parse(l));
  assert.equal(first.error, "storage went away");
  assert.equal(first.bytes, 30);
  assert.equal(second.error, "cancelled");
  assert.equal(lines.length, 2);
});

Deno.test("requestLog() cuts a long path at 2048 characters", async () => {
  const lines: string[] = [];
  const app = appWith(lines);
  await (await app.request(`/${"a".repeat(3000)}`)).text();
  const { path } = JSON.parse(lines[0]!);
  assert.equal(path, `/${"a".repeat(2047)}...`);
});

Deno.test("rawTarget() keeps the target as sent", () => {
  assert.equal(rawTarget("http://h:1/@a%2Fb?k=%22x%22"), "/@a%2Fb?k=%22x%22");
  assert.equal(rawTarget("http://h"), "/");
  assert.equal(rawTarget("/relative?q"), "/relative?q");
});
