import assert from "node:assert/strict";
import { join } from "node:path";
import { FsDriver } from "../../drivers/fs.ts";
import { DenoFsDriver } from "../../drivers/fs.deno.ts";
import { start } from "../_support/spawn.ts";

/** Every file under `dir`, relative to it. */
async function walk(dir: string, at = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, at))) {
    const path = at === "" ? entry.name : `${at}/${entry.name}`;
    if (entry.isDirectory) out.push(...await walk(dir, path));
    else out.push(path);
  }
  return out.sort();
}

/** The driver on `node:fs`, and on Deno's own file operations (as the CLI runs it). */
const FLAVOURS: [string, (dir: string) => FsDriver | DenoFsDriver][] = [
  ["node:fs", (dir) => new FsDriver(dir)],
  ["Deno", (dir) => new DenoFsDriver(dir)],
];

/** The id of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = start("true", []);
  await child.wait();
  return child.pid;
}

for (const [flavour, open] of FLAVOURS) {
  Deno.test(`FsDriver.sweep() on ${flavour} finds and removes temp files of dead writers and old ones only`, async () => {
    const dir = await Deno.makeTempDir();
    const driver = open(dir);
    try {
      await driver.put("a:b", new Uint8Array([1]));
      // A put in progress: its temp file belongs to a live writer (this process).
      let feed!: ReadableStreamDefaultController<Uint8Array>;
      const pending = driver.put(
        "a:c",
        new ReadableStream<Uint8Array>({ start: (c) => void (feed = c) }),
      );
      feed.enqueue(new Uint8Array(10));
      let live: string | undefined;
      for (let i = 0; i < 100 && live === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        live = (await walk(dir)).find((path) => path.split("/").at(-1)!.startsWith(".tmp-"));
      }
      assert.ok(live, "the put in progress has a temp file");
      const name = live.split("/").at(-1)!;
      const match = /^\.tmp-(\d+)-([0-9a-f]{8})-/.exec(name);
      assert.ok(match, `${name} carries the writer's pid and host`);
      assert.equal(Number(match[1]), Deno.pid);
      const host = match[2]!;
      const liveDir = join(dir, live.split("/").slice(0, -1).join("/"));
      const pid = await deadPid();
      // Stale: a writer of this host that has died; a file untouched for two hours.
      await Deno.writeFile(join(liveDir, `.tmp-${pid}-${host}-ab12-0`), new Uint8Array(7));
      await Deno.writeFile(join(liveDir, ".tmp-0123456789ab0"), new Uint8Array(5));
      const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
      await Deno.utime(join(liveDir, ".tmp-0123456789ab0"), old, old);
      // Not stale: a dead pid of another host, written just now.
      const otherHost = host === "00000000" ? "00000001" : "00000000";
      await Deno.writeFile(join(liveDir, `.tmp-${pid}-${otherHost}-ab12-0`), new Uint8Array(3));

      const found = await Array.fromAsync(driver.sweep());
      assert.deepEqual(found.map((f) => [f.path.split("/").at(-1), f.bytes]).sort(), [
        [".tmp-0123456789ab0", 5],
        [`.tmp-${pid}-${host}-ab12-0`, 7],
      ]);
      assert.equal(
        (await walk(dir)).filter((p) => p.includes(".tmp-")).length,
        4,
        "nothing removed",
      );
      // A shorter age makes the other host's file stale too.
      assert.equal((await Array.fromAsync(driver.sweep({ maxAgeMs: 0 }))).length, 4);

      const removed = await Array.fromAsync(driver.sweep({ remove: true }));
      assert.equal(removed.length, 2);
      const left = (await walk(dir)).filter((p) => p.includes(".tmp-")).map((p) =>
        p.split("/").at(-1)
      );
      assert.deepEqual(left.sort(), [name, `.tmp-${pid}-${otherHost}-ab12-0`].sort());
      assert.deepEqual(await Array.fromAsync(driver.sweep()), []);

      feed.enqueue(new Uint8Array(2));
      feed.close();
      await pending;
      assert.deepEqual(await driver.get("a:c"), new Uint8Array(12));
      assert.deepEqual(await Array.fromAsync(driver.list()), ["a:b", "a:c"]);
      await assert.rejects(
        Array.fromAsync(driver.sweep({ maxAgeMs: -1 })),
        (error: Error) => error instanceof RangeError && /'maxAgeMs'/.test(error.message),
      );
    } finally {
      await driver.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`FsDriver.sweep() on ${flavour} removes what a dead writer left, and the directories it empties`, async () => {
    const dir = await Deno.makeTempDir();
    const driver = open(dir);
    try {
      const pid = await deadPid();
      await driver.put("p:q:r", new Uint8Array([1]));
      const keyDir = (await walk(dir))[0]!.split("/").slice(0, -1).join("/");
      const file = (await walk(dir))[0]!.split("/").at(-1)!;
      await driver.delete("p:q:r");
      await Deno.mkdir(join(dir, keyDir), { recursive: true });
      // Any host tag works for a file old enough.
      const tmp = join(dir, keyDir, `.tmp-${pid}-ffffffff-0000-${file.length}`);
      await Deno.writeFile(tmp, new Uint8Array(4));
      const old = new Date(Date.now() - 3 * 60 * 60 * 1000);
      await Deno.utime(tmp, old, old);
      const removed = await Array.fromAsync(driver.sweep({ remove: true }));
      assert.deepEqual(removed, [{ path: tmp, bytes: 4 }]);
      assert.deepEqual([...Deno.readDirSync(dir)], [], "the emptied directories are gone");
    } finally {
      await driver.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
