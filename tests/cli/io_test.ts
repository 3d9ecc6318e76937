import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { bar, drainThenExit, duration, formatBytes, Progress, progressMode } from "../../cli/io.ts";

const quiet = { quiet: true, json: false, progress: false };
const plain = { quiet: false, json: false, progress: false };
const json = { quiet: false, json: true, progress: false };
const forced = { quiet: false, json: false, progress: true };

Deno.test("progressMode: a bar on a terminal, lines when forced elsewhere, else nothing", () => {
  assert.equal(progressMode(plain, true), "tty");
  assert.equal(progressMode(plain, false), "off");
  assert.equal(progressMode(quiet, true), "off");
  assert.equal(progressMode(json, true), "off");
  assert.equal(progressMode(forced, true), "tty");
  assert.equal(progressMode(forced, false), "lines");
  assert.equal(progressMode({ ...forced, json: true }, false), "lines");
});

function recorder(mode: "tty" | "lines" | "off") {
  const written: string[] = [];
  let now = 1_000;
  const progress = new Progress(mode, (text) => written.push(text), () => now);
  return { progress, written, advance: (ms: number) => now += ms };
}

Deno.test("Progress on a terminal redraws one line at most ten times a second", () => {
  const { progress, written, advance } = recorder("tty");
  progress.update("a");
  progress.update("b"); // Too soon: dropped.
  advance(100);
  progress.update("c");
  progress.update("d", true); // Forced: shown at once.
  progress.done();
  assert.deepEqual(written, ["\r\x1b[2Ka", "\r\x1b[2Kc", "\r\x1b[2Kd", "\r\x1b[2K"]);
});

Deno.test("Progress as lines writes a plain line at most once a second", () => {
  const { progress, written, advance } = recorder("lines");
  progress.update("a");
  advance(500);
  progress.update("b");
  progress.update("forced", true); // A log gets no more than a line a second, forced or not.
  advance(500);
  progress.update("c");
  progress.done();
  assert.deepEqual(written, ["a\n", "c\n"]);
});

Deno.test("Progress off writes nothing, and done() clears only a line it drew", () => {
  const off = recorder("off");
  off.progress.update("a", true);
  off.progress.done();
  assert.deepEqual(off.written, []);
  const unused = recorder("tty");
  unused.progress.done();
  assert.deepEqual(unused.written, []);
});

Deno.test("bar() fills in proportion, and stays empty without a total", () => {
  assert.equal(bar(0, 4, 8), "[--------]");
  assert.equal(bar(1, 4, 8), "[##------]");
  assert.equal(bar(4, 4, 8), "[########]");
  assert.equal(bar(9, 4, 8), "[########]");
  assert.equal(bar(3, undefined, 4), "[----]");
  assert.equal(bar(3, 0, 4), "[----]");
});

Deno.test("duration() and formatBytes() read as people write them", () => {
  assert.deepEqual(
    [0, 59_400, 60_000, 125_000, 3_599_000, 3_600_000, 7_530_000, 180_030_000].map(duration),
    ["0s", "59s", "1m00s", "2m05s", "59m59s", "1h00m", "2h05m", "50h00m"],
  );
  assert.deepEqual(
    [0, 999, 1000, 1_234_567, 76_258_115_000].map(formatBytes),
    ["0 B", "999 B", "1.0 KB", "1.2 MB", "76.3 GB"],
  );
});

/** A stream whose writes are out only once `flush()` is called. */
function slowStream() {
  const waiting: (() => void)[] = [];
  let pending = 0;
  return {
    write(chunk: string, done: () => void): boolean {
      pending += chunk.length + 1;
      waiting.push(() => {
        pending -= chunk.length + 1;
        done();
      });
      return false;
    },
    get writableLength() {
      return pending;
    },
    flush() {
      for (const go of waiting.splice(0)) go();
    },
  };
}

Deno.test("drainThenExit() exits once every stream's writes are out, not before", async () => {
  const [out, err] = [slowStream(), slowStream()];
  let exits = 0;
  const done = drainThenExit([out, err], () => exits++, 5);
  // Checks find writes not yet out, and wait on: nothing else ends the process.
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(exits, 0);
  out.flush();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(exits, 0);
  err.flush();
  await done;
  assert.equal(exits, 1);
});

Deno.test("drainThenExit() exits at a check that finds nothing to write, should a stream never call back", async () => {
  const silent = { write: () => true, writableLength: 0 };
  let exited!: () => void;
  const exit = new Promise<void>((resolve) => exited = resolve);
  // (The drain itself never ends: only the check can. Its timer does not keep a process
  // alive, this one does.)
  const alive = setTimeout(() => {}, 10_000);
  void drainThenExit([silent], () => exited(), 5);
  await exit;
  clearTimeout(alive);
});

Deno.test("drainThenExit() exits once, when a check and the drain both find the streams done", async () => {
  // Nothing held, but the callback comes after the first check.
  const late = {
    write: (_chunk: string, done: () => void) => (setTimeout(done, 30), true),
    writableLength: 0,
  };
  let exits = 0;
  await drainThenExit([late], () => exits++, 5);
  assert.equal(exits, 1);
});

Deno.test("drainThenExit() waits for every write a Node stream still holds", async () => {
  const sink: string[] = [];
  // A stream slower than its writer: each chunk is taken 2 ms after it is written.
  const stream = new Writable({
    highWaterMark: 16,
    write(chunk, _encoding, done) {
      setTimeout(() => {
        sink.push(String(chunk));
        done();
      }, 2);
    },
  });
  const lines = Array.from({ length: 20 }, (_, i) => `line ${i}\n`);
  for (const line of lines) stream.write(line);
  assert.ok(stream.writableLength > 0);
  let exitedWith: string | undefined;
  await drainThenExit([stream], () => exitedWith ??= sink.join(""), 1);
  assert.equal(exitedWith, lines.join(""));
});
