/**
 * Bundles the Cloudflare Workers entry (`workers/cloudflare.ts`: the worker API, the replica,
 * the queue consumer and the cron refresh) into one minified ES module, Hono included (Workers
 * have no `node_modules`): `deno task bundle:edge`. `workers/wrangler.toml` deploys it;
 * `deno task dev:cloudflare` runs it in Miniflare.
 *
 * Runs `deno bundle --platform browser --format esm --minify` with the running Deno, writes
 * `.tmp/edge/cloudflare.js` (or `--out FILE`), fails when the bundle still imports anything
 * (a bare specifier or a `node:` module would not load on Workers), and prints the minified and
 * gzipped sizes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The entry bundled. */
const ENTRY = join(ROOT, "workers", "cloudflare.ts");
/** Where the bundle goes by default (git-ignored). */
export const DEFAULT_EDGE_OUT: string = join(ROOT, ".tmp", "edge", "cloudflare.js");

/** What {@linkcode bundleEdge} produced. */
export interface EdgeBundle {
  /** The bundle's path. */
  path: string;
  /** Its size in bytes (minified). */
  bytes: number;
  /** Its size gzipped, in bytes. */
  gzipBytes: number;
}

/** The size of `bytes` once gzipped with `CompressionStream`. */
export async function gzipSize(bytes: Uint8Array): Promise<number> {
  const copy: Uint8Array<ArrayBuffer> = new Uint8Array(bytes);
  const stream = ReadableStream.from([copy]).pipeThrough(
    new CompressionStream("gzip"),
  );
  let size = 0;
  for await (const chunk of stream) size += chunk.byteLength;
  return size;
}

/** The module specifiers a bundle still imports (static or dynamic), if any. */
export function remainingImports(code: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /\bimport\s*(?:[\w$*{}\s,]+from\s*)?["']([^"']+)["']/g,
    /\bexport\s*[\w$*{}\s,]*from\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) found.add(match[1]!);
  }
  return [...found].sort();
}

/**
 * Bundles `workers/cloudflare.ts` into `out`.
 *
 * @param out The bundle's path.
 * @returns The path and sizes of the bundle.
 */
export async function bundleEdge(out: string = DEFAULT_EDGE_OUT): Promise<EdgeBundle> {
  await Deno.mkdir(dirname(out), { recursive: true });
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--format",
      "esm",
      "--minify",
      "--output",
      out,
      ENTRY,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `Cannot bundle ${ENTRY}: deno bundle exited with ${code}\n` +
        new TextDecoder().decode(stderr),
    );
  }
  const bytes = await Deno.readFile(out);
  const imports = remainingImports(new TextDecoder().decode(bytes));
  if (imports.length > 0) {
    throw new Error(
      `Cannot use the edge bundle ${out}: it still imports ${
        imports.join(", ")
      }; everything must ` +
        `be bundled in`,
    );
  }
  return { path: out, bytes: bytes.byteLength, gzipBytes: await gzipSize(bytes) };
}

/** `1234` as `"1.2 KB"` (1 KB = 1000 bytes). */
function kb(bytes: number): string {
  return `${(bytes / 1000).toFixed(1)} KB`;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { out: { type: "string" } } });
  const bundle = await bundleEdge(values.out === undefined ? undefined : resolve(values.out));
  console.log(
    `${bundle.path}: ${bundle.bytes} bytes minified (${kb(bundle.bytes)}), ` +
      `${bundle.gzipBytes} bytes gzipped (${kb(bundle.gzipBytes)})`,
  );
}
