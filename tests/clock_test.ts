import assert from "node:assert/strict";
import { systemClock } from "../src/clock.ts";

Deno.test("systemClock.timer fires once after its time, and not at all once cancelled", async () => {
  const fired: string[] = [];
  const cancel = systemClock.timer!(5, () => fired.push("cancelled"));
  systemClock.timer!(5, () => fired.push("kept"));
  cancel();
  cancel(); // Cancelling twice is harmless.
  await systemClock.sleep(50);
  assert.deepEqual(fired, ["kept"]);
});

Deno.test("systemClock.sleep rejects with the signal's reason when aborted", async () => {
  const controller = new AbortController();
  const sleeping = systemClock.sleep(10_000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(sleeping, /stop/);
});
