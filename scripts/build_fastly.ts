/**
 * Builds the Fastly Compute entry (`workers/fastly.ts`) into a `.wasm`:
 * `deno run -A scripts/build_fastly.ts --js-compute DIR [--out FILE]`.
 *
 * 1. `deno bundle --platform browser --format esm` bundles `workers/fastly.ts`, Hono included,
 *    into `replica.js` (it has no `fastly:*` import, so Deno can check it).
 * 2. A three-line `entry.js` imports `KVStore` and `ConfigStore` from `fastly:kv-store` and
 *    `fastly:config-store` and calls `listen` from the bundle.
 * 3. `js-compute-runtime entry.js OUT.wasm` (from `@fastly/js-compute`, installed in `DIR`, whose
 *    own esbuild resolves the `fastly:*` modules) compiles it with the SpiderMonkey engine the
 *    package ships (`fastly.wasm`) and Wizer (`@bytecodealliance/wizer`, an npm binary package):
 *    nothing is downloaded from outside npm.
 *
 * The `.wasm` runs only on Fastly Compute or its local server (Viceroy, not on npm).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The entry bundled. */
const ENTRY = join(ROOT, "workers", "fastly.ts");
/** The `@fastly/js-compute` version the build is tested with. */
export const JS_COMPUTE_VERSION = "3.46.0";
/** Where the `.wasm` goes by default (git-ignored). */
export const DEFAULT_FASTLY_OUT: string = join(ROOT, ".tmp", "fastly", "replica.wasm");

/** The entry `js-compute-runtime` compiles: the Fastly classes handed to `listen`. */
const WASM_ENTRY = `import { KVStore } from "fastly:kv-store";
import { ConfigStore } from "fastly:config-store";
import { listen } from "./replica.js";
listen({ KVStore, ConfigStore });
`;

/** What {@linkcode buildFastly} produced. */
export interface FastlyBuild {
  /** The `.wasm` file. */
  wasm: string;
  /** Its size in bytes. */
  wasmBytes: number;
  /** The bundled replica (JavaScript) the `.wasm` holds. */
  bundle: string;
  /** The bundle's size in bytes. */
  bundleBytes: number;
}

/** Runs a command, failing with its output when it exits non-zero. */
async function run(what: string, command: string, args: string[], cwd: string): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const decoder = new TextDecoder();
    throw new Error(
      `Cannot build the Fastly .wasm: ${what} exited with ${code}\n` +
        decoder.decode(stdout) + decoder.decode(stderr),
    );
  }
}

/**
 * Bundles `workers/fastly.ts` and compiles it to a `.wasm` with `js-compute-runtime`.
 *
 * @param jsComputeDir A directory whose `node_modules` holds `@fastly/js-compute`.
 * @param out The `.wasm` path; `replica.js` and `entry.js` are written beside it.
 * @returns The paths and sizes.
 * @throws {Error} When a step fails (its output is in the message).
 */
export async function buildFastly(
  jsComputeDir: string,
  out: string = DEFAULT_FASTLY_OUT,
): Promise<FastlyBuild> {
  const cli = join(jsComputeDir, "node_modules", "@fastly", "js-compute", "dist", "cli");
  const dir = dirname(out);
  await Deno.mkdir(dir, { recursive: true });
  const bundle = join(dir, "replica.js");
  await run(
    "deno bundle",
    Deno.execPath(),
    ["bundle", "--quiet", "--platform", "browser", "--format", "esm", "--output", bundle, ENTRY],
    ROOT,
  );
  const entry = join(dir, "entry.js");
  await Deno.writeTextFile(entry, WASM_ENTRY);
  await run(
    "js-compute-runtime",
    "node",
    [join(cli, "js-compute-runtime-cli.js"), entry, out],
    dir,
  );
  return {
    wasm: out,
    wasmBytes: (await Deno.stat(out)).size,
    bundle,
    bundleBytes: (await Deno.stat(bundle)).size,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { "js-compute": { type: "string" }, out: { type: "string" } },
  });
  if (values["js-compute"] === undefined) {
    console.error(
      `Usage: deno run -A scripts/build_fastly.ts --js-compute DIR [--out FILE]\n` +
        `DIR holds node_modules/@fastly/js-compute (npm install --ignore-scripts ` +
        `@fastly/js-compute@${JS_COMPUTE_VERSION} --prefix DIR)`,
    );
    Deno.exit(2);
  }
  const build = await buildFastly(
    resolve(values["js-compute"]),
    values.out === undefined ? undefined : resolve(values.out),
  );
  console.log(
    `${build.wasm}: ${build.wasmBytes} bytes (bundle ${build.bundle}: ${build.bundleBytes} bytes)`,
  );
}
