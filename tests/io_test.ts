import assert from "node:assert/strict";
import { bar, Progress, progressMode } from "../cli/io.ts";

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
