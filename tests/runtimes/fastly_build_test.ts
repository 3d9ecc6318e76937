/**
 * The Fastly Compute build: `workers/fastly.ts` served over stand-in stores (in Deno, as source
 * and as the bundle that goes into the `.wasm`), then compiled to a `.wasm` with
 * `js-compute-runtime` from `@fastly/js-compute` and checked to be a WebAssembly module that
 * compiles and imports Fastly's KV and Config Store host calls. No Fastly runtime (Viceroy) is
 * available from npm, so the `.wasm` itself is never run here.
 *
 * `@fastly/js-compute` is installed on first use into `.tmp/fastly-js-compute/` (git-ignored,
 * about 450 MB) with `npm install --ignore-scripts`: its build needs no script and nothing from
 * outside npm (the engine ships in the package, Wizer comes as an npm binary package).
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Cache } from "../../src/storage/cache.ts";
import { packumentKey, partitionKey } from "../../src/storage/keys.ts";
import { FastlyKvDriver, type FastlyKvStoreLike } from "../../drivers/fastly_kv.ts";
import {
  createFastlyHandler,
  FASTLY_CONFIG_STORE,
  FASTLY_DEFAULT_KV_STORE,
  type FastlyModules,
} from "../../workers/fastly.ts";
import { buildFastly, JS_COMPUTE_VERSION } from "../../scripts/build_fastly.ts";
import { loadFixturePackuments } from "../_support/packuments.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const JS_COMPUTE_DIR = join(ROOT, ".tmp", "fastly-js-compute");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A Map-backed stand-in for a Fastly KV Store (unordered listing, one page). */
function standInStore(data: Map<string, Uint8Array>): FastlyKvStoreLike {
  return {
    get: (key) => {
      const value = data.get(key);
      return Promise.resolve(
        value === undefined ? null : { arrayBuffer: () => Promise.resolve(value.slice().buffer) },
      );
    },
    put: (key, value) => Promise.resolve(data.set(key, value.slice())),
    delete: (key) => Promise.resolve(data.delete(key)),
    list: ({ prefix = "" }) =>
      Promise.resolve({
        list: [...data.keys()].filter((key) => key.startsWith(prefix)).reverse(),
        cursor: undefined,
      }),
  };
}

/** Fills a stand-in KV Store the way a cache writer would, with the `ms` fixture and a partition. */
async function seed(): Promise<{ data: Map<string, Uint8Array>; ms: Uint8Array }> {
  const data = new Map<string, Uint8Array>();
  const cache = await Cache.open(new FastlyKvDriver(standInStore(data)), { bloom: false });
  const ms = (await loadFixturePackuments()).get("ms")!;
  await cache.put(packumentKey("npm", "ms", "full"), ms, {
    status: 200,
    contentType: "application/json",
    representation: "full",
  });
  const ids = ["pkg-a", "pkg-b", "pkg-c"];
  await cache.put(
    partitionKey("npm", "", ""),
    encoder.encode(ids.map((id) => `${JSON.stringify([id, "1-a"])}\n`).join("")),
    { status: 200, contentType: "application/x-ndjson", representation: "partition", count: 3 },
  );
  return { data, ms };
}

/** The Fastly classes as stand-ins: one KV Store by the configured name, and the Config Store. */
function modules(data: Map<string, Uint8Array>, config: Record<string, string>): FastlyModules {
  return {
    KVStore: class {
      constructor(name: string) {
        if (name !== (config["kv_store"] ?? FASTLY_DEFAULT_KV_STORE)) {
          throw new TypeError(`no KV Store named ${name}`);
        }
        return standInStore(data);
      }
    } as unknown as FastlyModules["KVStore"],
    ConfigStore: class {
      constructor(name: string) {
        if (name !== FASTLY_CONFIG_STORE) throw new TypeError(`no Config Store named ${name}`);
      }
      get(key: string): string | null {
        return config[key] ?? null;
      }
    },
  };
}

/** Asserts the replica behind `handler` serves the seeded packument and partition. */
async function assertServes(
  handler: (request: Request) => Promise<Response>,
  ms: Uint8Array,
): Promise<void> {
  const packument = await handler(new Request("http://replica.test/ms"));
  assert.equal(packument.status, 200);
  assert.deepEqual(new Uint8Array(await packument.arrayBuffer()), ms);
  const missing = await handler(new Request("http://replica.test/left-pad"));
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const allDocs = await handler(new Request("http://replica.test/_all_docs"));
  assert.equal(allDocs.status, 200);
  const listing = JSON.parse(await allDocs.text()) as { rows: { id: string }[] };
  assert.deepEqual(listing.rows.map((row) => row.id), ["pkg-a", "pkg-b", "pkg-c"]);
}

Deno.test("createFastlyHandler() serves the replica from the configured KV Store", async () => {
  const { data, ms } = await seed();
  await assertServes(
    createFastlyHandler(modules(data, { registry_origin_key: "npm" })),
    ms,
  );
  // Named store and key prefix from the Config Store.
  const prefixed = new Map<string, Uint8Array>();
  for (const [key, value] of data) prefixed.set(`r/${key}`, value);
  await assertServes(
    createFastlyHandler(
      modules(prefixed, { registry_origin_key: "npm", kv_store: "cache2", key_prefix: "r/" }),
    ),
    ms,
  );
  // Without the origin key the request fails, and the next one tries again.
  const config: Record<string, string> = {};
  const handler = createFastlyHandler(modules(data, config));
  await assert.rejects(handler(new Request("http://replica.test/ms")), /registry_origin_key/);
  config["registry_origin_key"] = "npm";
  await assertServes(handler, ms);
});

/** Installs the pinned `@fastly/js-compute` into `.tmp/fastly-js-compute/` unless it is there. */
async function ensureJsCompute(): Promise<void> {
  const manifest = join(JS_COMPUTE_DIR, "node_modules", "@fastly", "js-compute", "package.json");
  try {
    const { version } = JSON.parse(await Deno.readTextFile(manifest)) as { version: string };
    if (version === JS_COMPUTE_VERSION) return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(JS_COMPUTE_DIR, { recursive: true });
  await Deno.writeTextFile(join(JS_COMPUTE_DIR, "package.json"), '{ "private": true }\n');
  const { code, stderr } = await new Deno.Command("npm", {
    args: [
      "install",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--save-exact",
      `@fastly/js-compute@${JS_COMPUTE_VERSION}`,
    ],
    cwd: JS_COMPUTE_DIR,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `Cannot install @fastly/js-compute@${JS_COMPUTE_VERSION} with npm (exit ${code}); the ` +
        `Fastly build needs it from the npm registry:\n${decoder.decode(stderr)}`,
    );
  }
}

Deno.test("workers/fastly.ts builds to a Fastly Compute .wasm with js-compute-runtime", async (t) => {
  await ensureJsCompute();
  const dir = await Deno.makeTempDir({ prefix: "all-docs-fastly-" });
  try {
    const build = await buildFastly(JS_COMPUTE_DIR, join(dir, "replica.wasm"));

    await t.step("the bundle inside the .wasm serves the replica (run by Deno)", async () => {
      const bundled = await import(new URL(`file://${build.bundle}`).href) as {
        createFastlyHandler: typeof createFastlyHandler;
      };
      const { data, ms } = await seed();
      await assertServes(
        bundled.createFastlyHandler(modules(data, { registry_origin_key: "npm" })),
        ms,
      );
    });

    await t.step("the .wasm is a WebAssembly module that compiles", async () => {
      const bytes = await Deno.readFile(build.wasm);
      assert.deepEqual([...bytes.subarray(0, 8)], [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
      // The SpiderMonkey engine alone is about 11 MB; the replica adds its snapshot.
      assert.ok(
        bytes.byteLength > 5_000_000 && bytes.byteLength < 100_000_000,
        `size ${bytes.byteLength}`,
      );
      const module = await WebAssembly.compile(bytes);
      const imports = new Set(WebAssembly.Module.imports(module).map((i) => i.module));
      for (const host of ["fastly_kv_store", "fastly_config_store", "fastly_http_req"]) {
        assert.ok(imports.has(host), `imports ${host}`);
      }
      const exports = WebAssembly.Module.exports(module).map((e) => e.name);
      assert.ok(exports.includes("_start"), `exports ${exports}`);
      // The replica's code is in the snapshot the engine starts from.
      assert.ok(
        decoder.decode(bytes).includes("registry_origin_key"),
        "the replica's code is in the .wasm",
      );
      console.log(
        `fastly .wasm: ${bytes.byteLength} bytes (bundle ${build.bundleBytes} bytes); ` +
          `not run: no Fastly runtime (Viceroy) is installable from npm`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
