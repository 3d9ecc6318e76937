import assert from "node:assert/strict";
import { bar, duration, formatBytes, Progress, progressMode } from "../../cli/io.ts";

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
