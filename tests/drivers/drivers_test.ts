import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertStorageError,
  contractHelpers,
  runDriverContract,
} from "../_support/driver_contract.ts";
import { denoFsOps } from "../../drivers/fs.deno.ts";
import { MemoryDriver } from "../../drivers/memory.ts";
import { FsDriver } from "../../drivers/fs.ts";
import { DENO_KV_CHUNK_BYTES, DenoKvDriver } from "../../drivers/deno_kv.deno.ts";
import {
  DenoKvDriver as KvDriver,
  type KvAtomicLike,
  type KvHandle,
} from "../../drivers/deno_kv.ts";
import {
  CloudflareKvDriver,
  KV_MAX_VALUE_BYTES,
  type KvNamespaceLike,
} from "../../drivers/cloudflare_kv.ts";

const { readAll, sorted, failingStream, streamOf, hex, listAll } = contractHelpers;
const encoder = new TextEncoder();

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "all-docs-drivers-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every file and directory name below `dir`, as relative paths. */
async function walk(dir: string, base = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, base))) {
    const path = base === "" ? entry.name : `${base}/${entry.name}`;
    out.push(path);
    if (entry.isDirectory) out.push(...await walk(dir, path));
  }
  return out;
}

/** The directories under `dir` that hold nothing. */
async function emptyDirs(dir: string): Promise<string[]> {
  const empty: string[] = [];
  for (const path of await walk(dir)) {
    if (!(await Deno.stat(join(dir, path))).isDirectory) continue;
    if ((await Array.fromAsync(Deno.readDir(join(dir, path)))).length === 0) empty.push(path);
  }
  return empty;
}

Deno.test("memory driver meets the contract", async (t) => {
  await runDriverContract(t, () => Promise.resolve(new MemoryDriver()));
});

Deno.test("fs driver meets the contract", async (t) => {
  await withTempDir(async (root) => {
    let n = 0;
    await runDriverContract(t, () => Promise.resolve(new FsDriver(join(root, `store-${n++}`))));
  });
});

Deno.test("fs driver on Deno's native file operations meets the contract", async (t) => {
  await withTempDir(async (root) => {
    let n = 0;
    await runDriverContract(
      t,
      () => Promise.resolve(new FsDriver(join(root, `store-${n++}`), { ops: denoFsOps })),
    );
  });
});

Deno.test("deno_kv driver (in memory) meets the contract", async (t) => {
  await runDriverContract(t, () => DenoKvDriver.open(":memory:"));
});

Deno.test("deno_kv driver (file) meets the contract", async (t) => {
  await withTempDir(async (root) => {
    let n = 0;
    await runDriverContract(t, () => DenoKvDriver.open(join(root, `store-${n++}.kv`)));
  });
});

Deno.test("fs driver", async (t) => {
  await t.step("leaves no temporary files after puts, failed or not", async () => {
    await withTempDir(async (dir) => {
      const driver = new FsDriver(dir);
      await driver.put("a:b:c", new Uint8Array(10));
      await driver.put("a:b:c", streamOf(new Uint8Array(100_000), new Uint8Array(5)));
      await driver.put("a:b:d", new Uint8Array(0));
      await assert.rejects(driver.put("a:b:c", failingStream(1, 300_000, "boom")), /boom/);
      await assert.rejects(driver.put("new:dir:key", failingStream(1, 10, "boom")), /boom/);
      const paths = await walk(dir);
      assert.deepEqual(paths.filter((path) => path.split("/").at(-1)!.startsWith(".tmp-")), []);
      assert.equal((await driver.get("a:b:c"))?.byteLength, 100_005);
      assert.equal(await driver.has("new:dir:key"), false);
      await driver.close();
    });
  });

  await t.step("maps keys to the documented paths", async () => {
    await withTempDir(async (dir) => {
      const driver = new FsDriver(dir);
      const cases: [string, string][] = [
        [
          "v1:packument:npm:40626162656c2f636f7265",
          "sv1/cpa/cck/sument/cnp/sm/c40/c62/v6162656c2f636f7265",
        ],
        ["v1:partition:npm:40:4061", "sv1/cpa/crt/sition/cnp/sm/s40/c40/v61"],
        ["v1:partition:npm:40:", "sv1/cpa/crt/sition/cnp/sm/s40/v"],
        ["", "v"],
        [":", "s/v"],
        ["ab", "vab"],
        ["abc", "cab/vc"],
        ["ab:", "sab/v"],
        ["A.b", "c%41%2e/vb"],
        ["a%b", "ca%25/vb"],
        ["é", "v%c3%a9"],
        ["x".repeat(70), `cxx/cxx/c${"x".repeat(64)}/vxx`],
      ];
      for (const [key, path] of cases) {
        const value = encoder.encode(key + "!");
        await driver.put(key, value);
        assert.deepEqual(await Deno.readFile(join(dir, path)), value, `${key} at ${path}`);
      }
      for (const path of await walk(dir)) {
        for (const name of path.split("/")) {
          assert.match(name, /^[vsc][a-z0-9_%-]*$/, `name ${name}`);
          assert.ok(name.length <= 255);
        }
      }
      await driver.delete("ab");
      await assert.rejects(Deno.stat(join(dir, "vab")), Deno.errors.NotFound);
      await driver.close();
    });
  });

  await t.step("lists 5,000 keys in order across fan-out directories", async () => {
    await withTempDir(async (dir) => {
      const driver = new FsDriver(dir);
      const keys = new Set<string>();
      let seed = 7;
      const random = (): number => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return seed / 2 ** 32;
      };
      const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_.:@ABZé\u{1F600}";
      const chars = [...alphabet];
      while (keys.size < 5000) {
        const kind = random();
        if (kind < 0.4) {
          let name = "";
          for (let i = 0, n = 1 + Math.floor(random() * 20); i < n; i++) {
            name += chars[Math.floor(random() * 36)];
          }
          keys.add(`v1:packument:npm:${hex(name)}`);
        } else if (kind < 0.6) {
          const a = Math.floor(random() * 256).toString(16).padStart(2, "0");
          const b = random() < 0.2 ? "" : Math.floor(random() * 65536).toString(16);
          keys.add(`v1:partition:npm:${a}:${b}`);
        } else {
          let key = "";
          for (let i = 0, n = Math.floor(random() * 12); i < n; i++) {
            key += chars[Math.floor(random() * chars.length)];
          }
          keys.add(key);
        }
      }
      const all = [...keys];
      const value = new Uint8Array(16);
      for (let i = 0; i < all.length; i += 64) {
        await Promise.all(all.slice(i, i + 64).map((key) => driver.put(key, value)));
      }
      const expected = sorted(all);
      assert.deepEqual(await listAll(driver), expected);
      const prefix = "v1:partition:npm:";
      assert.deepEqual(
        await listAll(driver, { prefix }),
        expected.filter((key) => key.startsWith(prefix)),
      );
      const middle = expected[2500]!;
      assert.deepEqual(
        await listAll(driver, { start: middle, limit: 100 }),
        expected.slice(2500, 2600),
      );
      await driver.close();
    });
  });

  await t.step(
    "fsync mode stores and replaces values, on node:fs and on Deno's operations",
    async () => {
      for (const options of [{ fsync: true }, { fsync: true, ops: denoFsOps }]) {
        await withTempDir(async (dir) => {
          const driver = new FsDriver(join(dir, "nested", "store"), options);
          await driver.put("a:b", new Uint8Array([1, 2]));
          await driver.put("a:b", streamOf(new Uint8Array([3]), new Uint8Array([4])));
          assert.ok(await driver.putIfAbsent("a:c", new Uint8Array([5])));
          assert.deepEqual(await driver.get("a:b"), new Uint8Array([3, 4]));
          assert.deepEqual(await driver.get("a:c"), new Uint8Array([5]));
          await driver.close();
        });
      }
    },
  );

  await t.step("a cancelled stream closes its file", async () => {
    await withTempDir(async (dir) => {
      const driver = new FsDriver(dir);
      await driver.put("k", new Uint8Array(500_000));
      const stream = await driver.getStream("k");
      const reader = stream!.getReader();
      assert.equal((await reader.read()).value?.byteLength, 64 * 1024);
      await reader.cancel();
      // A stream opened before an overwrite keeps reading the old value.
      const old = await driver.getStream("k");
      await driver.put("k", new Uint8Array(10).fill(1));
      assert.equal((await readAll(old!)).byteLength, 500_000);
      await driver.close();
    });
  });

  await t.step("recreates directories removed behind its back", async () => {
    await withTempDir(async (dir) => {
      const driver = new FsDriver(dir);
      await driver.put("a:b:c", new Uint8Array([1]));
      await Deno.remove(join(dir, "sa"), { recursive: true });
      await driver.put("a:b:c", new Uint8Array([2]));
      assert.deepEqual(await driver.get("a:b:c"), new Uint8Array([2]));
      // A stream is never read before its file is open, so it survives the same.
      await Deno.remove(join(dir, "sa"), { recursive: true });
      await driver.put("a:b:c", streamOf(new Uint8Array([3]), new Uint8Array([4])));
      assert.deepEqual(await driver.get("a:b:c"), new Uint8Array([3, 4]));
      await driver.close();
    });
  });

  await t.step("a stream that fails with ENOENT fails the put as it is, read once", async () => {
    await withTempDir(async (dir) => {
      const driver = new FsDriver(dir);
      let pulls = 0;
      const failing = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulls++ === 0) controller.enqueue(new Uint8Array([1]));
          else controller.error(Object.assign(new Error("source gone"), { code: "ENOENT" }));
        },
      });
      await assert.rejects(driver.put("a:b:c", failing), (error: Error) => {
        assert.equal(error.message, "source gone");
        assert.equal((error as Error & { code?: string }).code, "ENOENT", "not wrapped");
        return true;
      });
      assert.equal(pulls, 2);
      assert.equal(await driver.has("a:b:c"), false);
      assert.deepEqual((await walk(dir)).filter((p) => p.includes(".tmp-")), []);
      await driver.close();
    });
  });

  for (const [name, ops] of [["node:fs", undefined], ["Deno", denoFsOps]] as const) {
    await t.step(`removes the directories a delete leaves empty (${name})`, async () => {
      await withTempDir(async (dir) => {
        const driver = new FsDriver(dir, ops ? { ops } : {});
        const keys = [
          "v1:body:partition:npm:4061:4062:0a1b2c3d",
          "v1:body:partition:npm:4061:",
          "top",
        ];
        for (const key of keys) await driver.put(key, new Uint8Array([1]));
        await driver.delete(keys[0]!);
        // The sibling keeps the directories it shares; only the emptied ones went.
        assert.deepEqual(await listAll(driver), sorted(keys.slice(1)));
        const before = await walk(dir);
        assert.deepEqual(await emptyDirs(dir), []);
        assert.ok(before.length > 0);
        await driver.delete(keys[1]!);
        await driver.delete(keys[2]!);
        assert.deepEqual(await walk(dir), []);
        // The driver makes them again when needed.
        await driver.put(keys[0]!, new Uint8Array([2]));
        assert.deepEqual(await driver.get(keys[0]!), new Uint8Array([2]));
        await driver.close();
      });
    });
  }

  await t.step(
    "puts and deletes racing on one directory from two drivers lose nothing",
    async () => {
      await withTempDir(async (dir) => {
        // Two drivers on one root stand for two processes: neither knows what the other removed.
        const a = new FsDriver(dir);
        const b = new FsDriver(dir, { ops: denoFsOps });
        const run = async (driver: FsDriver, own: string) => {
          for (let i = 0; i < 150; i++) {
            const key = `x:y:z:${own}${i % 3}`;
            const value = i % 2 === 0
              ? new Uint8Array([i & 255])
              : streamOf(new Uint8Array([i & 255]), new Uint8Array([1]));
            await driver.put(key, value);
            assert.deepEqual((await driver.get(key))?.[0], i & 255, `${own} ${i}`);
            await driver.delete(key);
          }
        };
        await Promise.all([run(a, "a"), run(b, "b"), run(a, "c"), run(b, "d")]);
        assert.deepEqual(await listAll(a), []);
        assert.deepEqual(await walk(dir), []);
        await a.close();
        await b.close();
      });
    },
  );
});

Deno.test("deno_kv driver", async (t) => {
  /** Every entry of the KV database. */
  async function entries(kv: Deno.Kv): Promise<Deno.KvEntry<unknown>[]> {
    return await Array.fromAsync(kv.list({ prefix: [] }));
  }

  /** The chunk entries of the KV database. */
  async function chunkEntries(kv: Deno.Kv): Promise<Deno.KvEntry<unknown>[]> {
    return await Array.fromAsync(kv.list({ prefix: ["c"] }));
  }

  await t.step("stores manifests and chunks as Uint8Array", async () => {
    const kv = await Deno.openKv(":memory:");
    const driver = new DenoKvDriver(kv);
    await driver.put("small", encoder.encode("hello"));
    const small = await kv.get(["m", "small"]);
    assert.ok(small.value instanceof Uint8Array);
    assert.equal(small.value[0], 0);
    assert.equal(new TextDecoder().decode(small.value.subarray(1)), "hello");

    const big = new Uint8Array(200_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    await driver.put("big", big);
    const manifest = await kv.get(["m", "big"]);
    assert.ok(manifest.value instanceof Uint8Array);
    assert.equal(manifest.value[0], 1);
    const parsed = JSON.parse(new TextDecoder().decode(manifest.value.subarray(1)));
    assert.equal(parsed.n, 4);
    assert.equal(parsed.size, 200_000);
    assert.match(parsed.v, /^[0-9a-f]{16}$/);
    const chunks = await chunkEntries(kv);
    assert.equal(chunks.length, 4);
    let offset = 0;
    for (const [i, entry] of chunks.entries()) {
      assert.deepEqual(entry.key, ["c", "big", parsed.v, i]);
      assert.ok(entry.value instanceof Uint8Array);
      assert.ok(entry.value.byteLength <= DENO_KV_CHUNK_BYTES);
      assert.deepEqual(entry.value, big.subarray(offset, offset + entry.value.byteLength));
      offset += entry.value.byteLength;
    }
    assert.equal(offset, big.length);
    for (const entry of await entries(kv)) assert.ok(entry.value instanceof Uint8Array);

    // A value of exactly one chunk is inline; one byte more is chunked.
    await driver.put("one", new Uint8Array(DENO_KV_CHUNK_BYTES));
    assert.equal(((await kv.get(["m", "one"])).value as Uint8Array)[0], 0);
    await driver.put("one", streamOf(new Uint8Array(DENO_KV_CHUNK_BYTES), new Uint8Array(1)));
    assert.equal(((await kv.get(["m", "one"])).value as Uint8Array)[0], 1);
    assert.equal((await driver.get("one"))?.byteLength, DENO_KV_CHUNK_BYTES + 1);
    await driver.close();
    // The driver leaves a handle it did not open open.
    assert.equal((await kv.get(["m", "small"])).value instanceof Uint8Array, true);
    kv.close();
  });

  await t.step("removes replaced, deleted and orphan chunks", async () => {
    const kv = await Deno.openKv(":memory:");
    const driver = new DenoKvDriver(kv);
    await driver.put("k", new Uint8Array(150_000).fill(1));
    const first = await chunkEntries(kv);
    assert.equal(first.length, 3);
    await driver.put("k", new Uint8Array(130_000).fill(2));
    const second = await chunkEntries(kv);
    assert.equal(second.length, 3);
    assert.notEqual(second[0]!.key[2], first[0]!.key[2]);
    await driver.put("k", new Uint8Array(10).fill(3));
    assert.deepEqual(await chunkEntries(kv), []);
    await driver.put("k", new Uint8Array(70_000).fill(4));
    await assert.rejects(driver.put("k", failingStream(5, 1_000_000, "boom")), /boom/);
    await assert.rejects(driver.put("other", failingStream(5, 1_000_000, "boom")), /boom/);
    assert.equal((await chunkEntries(kv)).length, 2);
    await driver.delete("k");
    assert.deepEqual(await entries(kv), []);

    await Promise.all(
      Array.from({ length: 30 }, (_, i) => driver.put("same", new Uint8Array(70_000 + i))),
    );
    const manifest = (await kv.get(["m", "same"])).value as Uint8Array;
    const { n } = JSON.parse(new TextDecoder().decode(manifest.subarray(1)));
    assert.equal((await chunkEntries(kv)).length, n);
    await driver.close();
    kv.close();
  });

  await t.step("a stream of a value replaced mid-read errors instead of mixing", async () => {
    const driver = await DenoKvDriver.open(":memory:");
    await driver.put("k", new Uint8Array(DENO_KV_CHUNK_BYTES * 25).fill(1));
    const stream = await driver.getStream("k");
    const reader = stream!.getReader();
    let read = 0;
    for (let i = 0; i < 10; i++) read += (await reader.read()).value!.byteLength;
    await driver.put("k", new Uint8Array(DENO_KV_CHUNK_BYTES * 2).fill(2));
    await assertStorageError(reader.read(), { driver: "deno_kv", key: "k", hasCause: false });
    assert.equal(read, DENO_KV_CHUNK_BYTES * 10);
    assert.equal((await driver.get("k"))?.[0], 2);
    await driver.close();
  });

  await t.step("a file database keeps values across reopening", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "store.kv");
      const first = await DenoKvDriver.open(path);
      await first.put("a:b", new Uint8Array(100_000).fill(9));
      await first.close();
      const second = await DenoKvDriver.open(path);
      assert.equal((await second.get("a:b"))?.byteLength, 100_000);
      assert.deepEqual(await listAll(second), ["a:b"]);
      await second.close();
    });
  });
});

Deno.test("fs driver: disk failures are StorageErrors carrying the system code", async (t) => {
  for (const [name, ops] of [["node:fs", undefined], ["Deno", denoFsOps]] as const) {
    await t.step(`a store under a regular file cannot be written (${name})`, async () => {
      // ENOTDIR stops root too, where a read-only directory would not.
      await withTempDir(async (dir) => {
        await Deno.writeTextFile(join(dir, "file"), "not a directory");
        const driver = new FsDriver(join(dir, "file", "store"), ops ? { ops } : {});
        await assertStorageError(driver.put("a:b", new Uint8Array([1])), {
          driver: "fs",
          key: "a:b",
          code: "ENOTDIR",
        });
        await assertStorageError(driver.put("a:b", streamOf(new Uint8Array(100))), {
          driver: "fs",
          key: "a:b",
          code: "ENOTDIR",
        });
        // Nothing there to read is not a failure.
        assert.equal(await driver.get("a:b"), undefined);
        assert.equal(await driver.has("a:b"), false);
        assert.deepEqual(await listAll(driver), []);
        await driver.close();
      });
    });

    await t.step(
      `a key whose file is a directory cannot be read or replaced (${name})`,
      async () => {
        await withTempDir(async (dir) => {
          const driver = new FsDriver(dir, ops ? { ops } : {});
          await Deno.mkdir(join(dir, "vk"));
          await Deno.writeTextFile(join(dir, "vk", "keep"), "x");
          await assertStorageError(driver.get("k"), { driver: "fs", key: "k", code: "EISDIR" });
          const stream = await driver.getStream("k");
          await assertStorageError(readAll(stream!), { driver: "fs", key: "k", code: "EISDIR" });
          const replaced = await assertStorageError(driver.put("k", new Uint8Array([1])), {
            driver: "fs",
            key: "k",
          });
          assert.ok(["EISDIR", "ENOTEMPTY", "EEXIST"].includes(String(replaced.code)));
          assert.deepEqual((await walk(dir)).filter((p) => p.includes(".tmp-")), []);
          await driver.close();
        });
      },
    );
  }

  await t.step("every file operation's failure, through injected file operations", async () => {
    await withTempDir(async (dir) => {
      const fail = (code: string) => () =>
        Promise.reject(Object.assign(new Error(`${code}: simulated`), { code }));
      const broken = new FsDriver(dir, {
        ops: {
          ...denoFsOps,
          readFile: fail("EIO"),
          writeFileExclusive: fail("ENOSPC"),
          access: fail("EACCES"),
          readdir: fail("EIO"),
        },
      });
      const put = await assertStorageError(broken.put("a:b", new Uint8Array([1])), {
        driver: "fs",
        key: "a:b",
        code: "ENOSPC",
      });
      assert.equal((put.cause as Error).message, "ENOSPC: simulated");
      assert.match(put.message, /^Cannot put key "a:b": the file system failed: ENOSPC/);
      await assertStorageError(broken.get("a:b"), { driver: "fs", key: "a:b", code: "EIO" });
      await assertStorageError(broken.has("a:b"), { driver: "fs", key: "a:b", code: "EACCES" });
      await assertStorageError(listAll(broken), { driver: "fs", key: undefined, code: "EIO" });
      const readOnly = new FsDriver(dir, { ops: { ...denoFsOps, rename: fail("EROFS") } });
      await assertStorageError(readOnly.put("c", new Uint8Array([1])), {
        driver: "fs",
        key: "c",
        code: "EROFS",
      });
      const undeletable = new FsDriver(dir, { ops: { ...denoFsOps, unlink: fail("EPERM") } });
      await undeletable.put("d", new Uint8Array([1]));
      await assertStorageError(undeletable.delete("d"), { driver: "fs", key: "d", code: "EPERM" });
      // Misuse is not a storage failure.
      await assert.rejects(broken.put("\uD800", new Uint8Array([1])), TypeError);
      await assert.rejects(broken.get("x".repeat(801)), RangeError);
      for (const driver of [broken, readOnly, undeletable]) await driver.close();
    });
  });
});

/** A KV handle over `kv` whose calls fail as `failures` says. */
function failingKv(
  kv: Deno.Kv,
  failures: { get?: boolean; getMany?: boolean; list?: boolean; commit?: "throw" | "reject" },
): KvHandle {
  const boom = () => new Error("database is locked");
  return {
    get: (key) => failures.get ? Promise.reject(boom()) : kv.get(key),
    getMany: (keys) => failures.getMany ? Promise.reject(boom()) : kv.getMany(keys as Deno.KvKey[]),
    list: (selector, options) => {
      if (!failures.list) return kv.list(selector, options);
      return (async function* () {
        yield* kv.list(selector, { ...options, limit: 1 });
        throw boom();
      })();
    },
    atomic: () => {
      const op = kv.atomic();
      const wrapped: KvAtomicLike = {
        check: (...checks) => (op.check(...checks), wrapped),
        set: (key, value) => (op.set(key as Deno.KvKey, value), wrapped),
        delete: (key) => (op.delete(key as Deno.KvKey), wrapped),
        commit: () =>
          failures.commit === "throw"
            ? Promise.reject(boom())
            : failures.commit === "reject"
            ? Promise.resolve({ ok: false })
            : op.commit(),
      };
      return wrapped;
    },
    close: () => kv.close(),
  };
}

Deno.test("deno_kv driver: KV failures are StorageErrors", async (t) => {
  const big = new Uint8Array(DENO_KV_CHUNK_BYTES * 3);

  await t.step("reads that throw", async () => {
    const kv = await Deno.openKv(":memory:");
    const healthy = new KvDriver(kv);
    await healthy.put("small", new Uint8Array([1]));
    await healthy.put("big", big);
    const broken = new KvDriver(failingKv(kv, { get: true }));
    const error = await assertStorageError(broken.get("small"), {
      driver: "deno_kv",
      key: "small",
    });
    assert.match(error.message, /^Cannot get key "small": Deno KV failed: database is locked$/);
    await assertStorageError(broken.has("small"), { driver: "deno_kv", key: "small" });
    await assertStorageError(broken.getStream("small"), { driver: "deno_kv", key: "small" });
    await assertStorageError(broken.delete("small"), { driver: "deno_kv", key: "small" });
    const chunks = new KvDriver(failingKv(kv, { getMany: true }));
    await assertStorageError(chunks.get("big"), { driver: "deno_kv", key: "big" });
    assert.deepEqual(await chunks.get("small"), new Uint8Array([1]));
    const listing = new KvDriver(failingKv(kv, { list: true }));
    await assertStorageError(listAll(listing), { driver: "deno_kv", key: undefined });
    kv.close();
  });

  await t.step("commits that throw or are rejected, leaving the old value", async () => {
    const kv = await Deno.openKv(":memory:");
    await new KvDriver(kv).put("k", new Uint8Array([7]));
    for (const commit of ["throw", "reject"] as const) {
      const broken = new KvDriver(failingKv(kv, { commit }));
      await assertStorageError(broken.put("k", big), {
        driver: "deno_kv",
        key: "k",
        hasCause: commit === "throw",
      });
      if (commit === "throw") {
        await assertStorageError(broken.put("k", new Uint8Array([8])), {
          driver: "deno_kv",
          key: "k",
        });
        await assertStorageError(broken.delete("k"), { driver: "deno_kv", key: "k" });
      }
    }
    assert.deepEqual(await new KvDriver(kv).get("k"), new Uint8Array([7]));
    assert.equal((await Array.fromAsync(kv.list({ prefix: ["c"] }))).length, 0, "no chunk left");
    kv.close();
  });

  await t.step("a database closed under the driver", async () => {
    const kv = await Deno.openKv(":memory:");
    const driver = new KvDriver(kv);
    await driver.put("k", new Uint8Array([1]));
    kv.close();
    await assertStorageError(driver.get("k"), { driver: "deno_kv", key: "k" });
    await assertStorageError(driver.put("k", new Uint8Array([2])), { driver: "deno_kv", key: "k" });
    // The driver itself closed is misuse.
    await driver.close();
    await assert.rejects(driver.get("k"), TypeError);
  });

  await t.step("chunks that do not match their manifest", async () => {
    const kv = await Deno.openKv(":memory:");
    const driver = new KvDriver(kv);
    await driver.put("k", big);
    const [first] = await Array.fromAsync(kv.list({ prefix: ["c", "k"] }));
    await kv.set(first!.key, new Uint8Array(DENO_KV_CHUNK_BYTES + 1));
    await assertStorageError(driver.get("k"), { driver: "deno_kv", key: "k", hasCause: false });
    await kv.set(["m", "odd"], new Uint8Array([9]));
    await assertStorageError(driver.get("odd"), { driver: "deno_kv", key: "odd", hasCause: false });
    kv.close();
  });
});

Deno.test("cloudflare_kv driver: binding failures are StorageErrors", async () => {
  const outage = () => Promise.reject(new Error("KV GET failed: 503 Service Unavailable"));
  const namespace: KvNamespaceLike = {
    get: outage,
    put: outage,
    delete: outage,
    list: outage,
  };
  const driver = new CloudflareKvDriver(namespace, { keyPrefix: "c:" });
  const error = await assertStorageError(driver.get("k"), { driver: "cloudflare_kv", key: "k" });
  assert.match(error.message, /^Cannot get key "k": Workers KV failed: KV GET failed: 503/);
  await assertStorageError(driver.has("k"), { driver: "cloudflare_kv", key: "k" });
  await assertStorageError(driver.getStream("k"), { driver: "cloudflare_kv", key: "k" });
  await assertStorageError(driver.put("k", new Uint8Array([1])), {
    driver: "cloudflare_kv",
    key: "k",
  });
  await assertStorageError(driver.delete("k"), { driver: "cloudflare_kv", key: "k" });
  await assertStorageError(listAll(driver), { driver: "cloudflare_kv", key: undefined });
  // Misuse is checked before the binding is called.
  await assert.rejects(driver.put("k".repeat(600), new Uint8Array([1])), RangeError);
  await assert.rejects(
    driver.put("k", new Uint8Array(KV_MAX_VALUE_BYTES + 1)),
    RangeError,
  );
  await driver.close();
  await assert.rejects(driver.get("k"), TypeError);
});
