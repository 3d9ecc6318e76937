import assert from "node:assert/strict";
import { SingleFlight } from "../../src/_util/single_flight.ts";

Deno.test("SingleFlight.run() shares one running piece of work per key", async () => {
  const flights = new SingleFlight();
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const work = async () => {
    runs++;
    await gate;
    return runs;
  };
  const a = flights.run("k", work);
  const b = flights.run("k", work);
  const other = flights.run("j", () => Promise.resolve("j"));
  assert.equal(a, b, "the second caller gets the same promise");
  assert.equal(runs, 0, "work never starts synchronously");
  release();
  assert.deepEqual(await Promise.all([a, b, other]), [1, 1, "j"]);
  // Settled: the next call starts afresh.
  assert.equal(await flights.run("k", work), 2);
});

Deno.test("SingleFlight.run() shares a failure, then forgets it", async () => {
  const flights = new SingleFlight();
  let runs = 0;
  const failing = () => {
    runs++;
    return Promise.reject(new Error("boom"));
  };
  const results = await Promise.allSettled([flights.run("k", failing), flights.run("k", failing)]);
  assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected"]);
  assert.equal(runs, 1);
  assert.equal(await flights.run("k", () => Promise.resolve("ok")), "ok");
});
