import assert from "node:assert/strict";
import { runPool } from "../../src/_util/pool.ts";

function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1));
}

Deno.test("runPool() runs every item, never more at once than asked", async () => {
  let active = 0;
  let most = 0;
  const done: number[] = [];
  await runPool(Array.from({ length: 20 }, (_, i) => i), async (n) => {
    most = Math.max(most, ++active);
    await tick();
    done.push(n);
    active--;
  }, { concurrency: 3 });
  assert.equal(most, 3);
  assert.deepEqual(done.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
});

Deno.test("runPool() starts no more workers than items, and reads an async iterable lazily", async () => {
  let pulls = 0;
  let started = 0;
  async function* items(count: number): AsyncGenerator<number> {
    for (let i = 0; i < count; i++) {
      pulls++;
      await tick();
      yield i;
    }
    pulls++;
  }
  await runPool(items(2), async () => {
    started++;
    await tick();
  }, { concurrency: 16 });
  assert.equal(started, 2);
  // Two items and the end: no idle worker asked for more.
  assert.equal(pulls, 3);

  // With one worker, an item is read only once the previous one is done.
  const log: string[] = [];
  async function* logged(): AsyncGenerator<number> {
    for (let i = 0; i < 3; i++) {
      log.push(`read ${i}`);
      yield i;
    }
  }
  await runPool(logged(), async (n) => {
    await tick();
    log.push(`done ${n}`);
  }, { concurrency: 1 });
  assert.deepEqual(log, ["read 0", "done 0", "read 1", "done 1", "read 2", "done 2"]);
});

Deno.test("runPool() stops taking items after a failure and rejects once the others settle", async () => {
  const settled: number[] = [];
  await assert.rejects(
    runPool(Array.from({ length: 100 }, (_, i) => i), async (n) => {
      await tick();
      if (n === 3) throw new Error("item 3 failed");
      await tick();
      settled.push(n);
    }, { concurrency: 4 }),
    /item 3 failed/,
  );
  // Items 0 to 2 were in progress with item 3, and finished; hardly any more were started.
  assert.ok(settled.includes(0) && settled.includes(1) && settled.includes(2));
  assert.ok(settled.length < 10, `${settled.length} settled`);
  const count = settled.length;
  await tick();
  await tick();
  assert.equal(settled.length, count, "nothing runs after the rejection");
});

Deno.test("runPool() rejects a bad concurrency before taking an item", async () => {
  for (const concurrency of [0, -1, 1.5, NaN]) {
    let taken = false;
    const items = {
      *[Symbol.iterator]() {
        taken = true;
        yield 1;
      },
    };
    await assert.rejects(
      runPool(items, () => Promise.resolve(), { concurrency }),
      (error: Error) =>
        error instanceof RangeError && error.message.includes(`received ${concurrency}`),
    );
    assert.equal(taken, false);
  }
});
