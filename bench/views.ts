/**
 * View query benchmark (`deno task bench:views`): 20,000 generated packuments of realistic
 * sizes (most a few KB, some hundreds of KB, 20 of 2 to 7 MB: about 500 MB in all; the size
 * comes from the number of versions, about 1.4 KB each, as in real documents) are stored in an
 * fs cache under `.tmp/bench-views/` (made once and kept: generating takes a minute or two).
 * Then, each run in turn, median of 3:
 *
 * 1. the floor, this script in `--floor` mode: one thread lists the keys and, for each, reads
 *    the stored body (inline in its record or apart) from the fs driver and `JSON.parse`s it,
 *    with 8 reads in flight ahead of the parsing so that it never waits on the disk;
 * 2. the same floor reading through the cache (`--floor-verified`): each body's sha256
 *    integrity checked as the CLI always does;
 * 3. `cli.ts view query bench --filter 'versions > 3'` over a view of three selected fields
 *    (`name, versions | keys | length as versions, time.modified as modified`), with the
 *    default workers (one thread per CPU, the main one included) and with `--workers 1` (the
 *    main thread alone);
 * 4. the same with `--count`.
 *
 * Every process runs under `python3` and is measured with `getrusage(RUSAGE_CHILDREN)`: wall
 * time, CPU time and peak RSS. Speed ratios are the floor's wall time divided by the
 * contender's: above 1x is faster than the floor.
 *
 * Goals: the query at least 1.5x the floor's speed on 2 cores, under 300 MB peak; `--count` at
 * least as fast as the query.
 *
 * Run with `deno task bench:views` (`--docs N` for another size, `--runs N`,
 * `--store-encoding gzip` for a dataset stored gzip as the CLI stores fetched documents, in its
 * own directory; the floors then decode each body with `node:zlib` before parsing it).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";

/** Whether the dataset is stored gzip (`--store-encoding gzip`). */
let GZIP = false;
import { join } from "node:path";
import { measure, type Measurement, median, ROOT, run } from "./_measure.ts";
import { Cache } from "../src/storage/cache.ts";
import { keyPrefix, packumentKey } from "../src/storage/keys.ts";
import { decodeRecord } from "../src/storage/record.ts";
import { FsDriver } from "../drivers/fs.ts";
import { denoFsOps } from "../drivers/fs.deno.ts";
import { generatePackument, prng } from "../tests/_support/packuments.ts";

const ORIGIN = "bench";
const PREFIX = keyPrefix("packument", ORIGIN);
const SELECT = "name, versions | keys | length as versions, time.modified as modified";
const FILTER = "versions > 3";
const GOAL_SPEED = 1.5;
/** Reads the floor keeps in flight ahead of its parsing (as the view scan does). */
const READ_AHEAD = 8;
const GOAL_RSS_MB = 300;

/** How many versions document `i` of `total` has: most few, some many, 20 very many. */
function versionsOf(i: number, total: number, random: () => number): number {
  const huge = Math.max(1, Math.round(total / 1000));
  if (i % Math.floor(total / huge) === 7) return 1500 + Math.floor(random() * 3500);
  const r = random();
  if (r < 0.65) return 1 + Math.floor(random() * 6);
  if (r < 0.93) return 6 + Math.floor(random() * 25);
  if (r < 0.995) return 30 + Math.floor(random() * 120);
  return 150 + Math.floor(random() * 550);
}

/** Makes the dataset once; returns the cache directory. */
async function dataset(docs: number): Promise<string> {
  const dir = join(ROOT, ".tmp", "bench-views", `${docs}${GZIP ? "-gzip" : ""}`);
  const marker = join(dir, "complete.json");
  try {
    return JSON.parse(await Deno.readTextFile(marker)).dir as string;
  } catch {
    // Not made yet (or made only in part): start again.
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const driver = new FsDriver(join(dir, "fs"), { ops: denoFsOps });
  const cache = await Cache.open(driver, {
    bloom: false,
    createHash: () => createHash("sha256"),
    gzipSync: (bytes) => new Uint8Array(gzipSync(bytes, { level: 4 })),
  });
  const random = prng(16);
  const encoder = new TextEncoder();
  let bytes = 0;
  let biggest = 0;
  const started = Date.now();
  for (let i = 0; i < docs; i++) {
    const name = `bench-${(i * 7919 % docs).toString(36)}-${i}`;
    const body = encoder.encode(
      generatePackument(name, { versions: versionsOf(i, docs, random), seed: i }),
    );
    bytes += body.length;
    biggest = Math.max(biggest, body.length);
    await cache.put(packumentKey(ORIGIN, name), body, { status: 200 }, {
      encoding: GZIP ? "gzip" : "identity",
    });
    if (i % 1000 === 999) {
      console.error(
        `generated ${i + 1}/${docs}, ${(bytes / 1e6).toFixed(0)} MB, ` +
          `${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
    }
  }
  await driver.close();
  await Deno.writeTextFile(marker, JSON.stringify({ dir, docs, bytes, biggest }));
  return dir;
}

/** The floor: one thread, every body read from the driver (or the cache) and parsed. */
async function floor(dir: string, verified: boolean): Promise<void> {
  const driver = new FsDriver(join(dir, "fs"), { ops: denoFsOps });
  const cache = await Cache.open(driver, { bloom: false, createHash: () => createHash("sha256") });
  const decoder = new TextDecoder();
  let docs = 0;
  let bytes = 0;
  const read = async (key: string): Promise<Uint8Array | undefined> => {
    if (verified) return await (await cache.get(key, { verify: "while" }))?.bytes();
    const raw = await driver.get(key);
    if (raw === undefined) return undefined;
    const { header, inline } = decodeRecord(key, raw);
    const body = header.body === null ? inline : await driver.get(header.body);
    return header.encoding === "gzip" && body ? new Uint8Array(gunzipSync(body)) : body;
  };
  // Reads run READ_AHEAD keys ahead of the one being parsed, so the thread never waits on the
  // disk when there is parsing to do: what is left is one thread's CPU.
  const reads: Promise<Uint8Array | undefined>[] = [];
  const keys = cache.keys(PREFIX);
  let listed = true;
  const more = async () => {
    if (!listed) return;
    const next = await keys.next();
    if (next.done) listed = false;
    else reads.push(read(next.value));
  };
  for (let i = 0; i < READ_AHEAD; i++) await more();
  while (reads.length > 0) {
    const body = await reads.shift()!;
    await more();
    if (body === undefined) continue;
    JSON.parse(decoder.decode(body));
    docs++;
    bytes += body.length;
  }
  await driver.close();
  console.log(`${docs} documents, ${(bytes / 1e6).toFixed(1)} MB`);
}

async function bench(docs: number, runs: number): Promise<void> {
  const dir = await dataset(docs);
  const made = JSON.parse(await Deno.readTextFile(join(dir, "complete.json")));
  const cli = (
    args: string[],
  ) => [Deno.execPath(), "run", "-A", join(ROOT, "cli.ts"), ...args, "--cache-dir", dir];
  await run(
    cli(["view", "define", "bench", "--origin-key", ORIGIN, "--select", SELECT, "--quiet"])[0]!,
    cli([
      "view",
      "define",
      "bench",
      "--origin-key",
      ORIGIN,
      "--select",
      SELECT,
      "--quiet",
    ]).slice(1),
  );
  const self = (
    flag: string,
  ) => [Deno.execPath(), "run", "-A", join(ROOT, "bench", "views.ts"), flag, dir];
  const contenders: Record<string, string[]> = {
    floor: self("--floor"),
    "floor-verified": self("--floor-verified"),
    query: cli(["view", "query", "bench", "--filter", FILTER]),
    "query --workers 1": cli(["view", "query", "bench", "--filter", FILTER, "--workers", "1"]),
    "query --count": cli(["view", "query", "bench", "--filter", FILTER, "--count"]),
  };
  const tmp = await Deno.makeTempDir({ prefix: "bench_views_" });
  const results: Record<string, Measurement[]> = {};
  const outputs: Record<string, string> = {};
  try {
    for (let r = 0; r < runs; r++) {
      for (const [label, cmd] of Object.entries(contenders)) {
        const out = join(tmp, `${label.replaceAll(" ", "_")}.out`);
        const m = await measure(tmp, label.replaceAll(" ", "_"), cmd, out);
        (results[label] ??= []).push(m);
        const text = await Deno.readFile(out);
        outputs[label] = `${text.length} bytes, sha256 ${
          createHash("sha256").update(text).digest("hex").slice(0, 16)
        }`;
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  const med = (label: string) => {
    const ms = results[label]!;
    return {
      wall: median(ms.map((m) => m.wall)),
      cpu: median(ms.map((m) => m.user + m.sys)),
      rss: median(ms.map((m) => m.maxrss_kb)) / 1024,
    };
  };
  const f = med("floor");
  const fv = med("floor-verified");
  const row = (label: string) => {
    const m = med(label);
    return `| ${label} | ${m.wall.toFixed(2)} | ${m.cpu.toFixed(2)} | ${m.rss.toFixed(0)} | ` +
      `${(f.wall / m.wall).toFixed(2)}x | ${(fv.wall / m.wall).toFixed(2)}x |`;
  };
  const q = med("query");
  const c = med("query --count");
  const speed = f.wall / q.wall;
  console.log([
    `View query over ${made.docs} packuments (${(made.bytes / 1e6).toFixed(0)} MB, the largest ` +
    `${(made.biggest / 1e6).toFixed(1)} MB), select '${SELECT}', filter '${FILTER}', ` +
    `median of ${runs} runs:`,
    "",
    "| contender | wall s | CPU s | peak RSS MB | speed vs floor | speed vs verified floor |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...Object.keys(contenders).map(row),
    "",
    "Runs: " +
    Object.entries(results).map(([label, ms]) =>
      `${label}: ${ms.map((m) => `${m.wall.toFixed(2)} s`).join(", ")}`
    ).join("; "),
    "Outputs: " + Object.entries(outputs).map(([label, o]) => `${label}: ${o}`).join("; "),
    `Goal: query at least ${GOAL_SPEED}x the floor's speed: ${speed.toFixed(2)}x ` +
    `${speed >= GOAL_SPEED ? "MET" : "NOT MET"}`,
    `Goal: peak RSS under ${GOAL_RSS_MB} MB: ${q.rss.toFixed(0)} MB ` +
    `${q.rss < GOAL_RSS_MB ? "MET" : "NOT MET"}`,
    `Goal: --count at least as fast as the query: ${(q.wall / c.wall).toFixed(2)}x ` +
    `${c.wall <= q.wall ? "MET" : "NOT MET"}`,
  ].join("\n"));
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      floor: { type: "boolean", default: false },
      "floor-verified": { type: "boolean", default: false },
      docs: { type: "string", default: "20000" },
      runs: { type: "string", default: "3" },
      "store-encoding": { type: "string", default: "identity" },
    },
    allowPositionals: true,
    strict: true,
  });
  GZIP = values["store-encoding"] === "gzip";
  if (values.floor || values["floor-verified"]) {
    await floor(positionals[0]!, values["floor-verified"]);
  } else {
    await bench(Number(values.docs), Number(values.runs));
  }
}
