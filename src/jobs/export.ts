/**
 * Export: every cached document as one NDJSON line, streamed, for `jq`, DuckDB and friends.
 *
 * Each line is `{"key":...,"type":...,` then `"name"` (packuments) or `"startKey"`/`"endKey"`
 * (partitions), `"status"`, `"fetchedAt"` (ISO time), and `"body"`: the document itself. A
 * packument's body is spliced in from storage as it streams, never parsed, so a 100 MB document
 * costs no more memory than a small one; its line breaks (JSON whitespace, as in pretty-printed
 * documents) become spaces so the line stays one line. A partition's body is the array of its
 * `["id","rev"]` rows, with its pending edits (a `_changes` follower's) applied. Corrupt entries
 * are skipped (and reported by the cache).
 *
 * @module
 */

import type { Cache, CacheEntry } from "../storage/cache.ts";
import { decodedSizeOf } from "../storage/entry.ts";
import { KEY_VERSION, keyPrefix, parseKey, PARTITION_PREFIX } from "../storage/keys.ts";
import { PatchedPartitions } from "../couchdb/patched_partitions.ts";

/** Which documents to export. */
export interface ExportOptions {
  /** `packument` (full), `corgi` (abbreviated), `partition`, or every kind.
   * @default {undefined (every kind)} */
  type?: "packument" | "corgi" | "partition" | undefined;
  /** Only keys that start with this (after the type filter's prefix, when both are given).
   * @default {undefined} */
  prefix?: string | undefined;
}

const encoder = new TextEncoder();

function oneLine(): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      if (chunk.includes(0x0a) || chunk.includes(0x0d)) {
        chunk = chunk.map((b) => (b === 0x0a || b === 0x0d ? 0x20 : b));
      }
      controller.enqueue(chunk);
    },
  });
}

function partitionArray(): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let first = true;
  let rest = "";
  const rows = (text: string) => {
    let out = "";
    for (const line of text.split("\n")) {
      if (line === "") continue;
      out += (first ? "" : ",") + line;
      first = false;
    }
    return out;
  };
  return new TransformStream({
    start(controller) {
      controller.enqueue(encoder.encode("["));
    },
    transform(chunk, controller) {
      const text = rest + decoder.decode(chunk, { stream: true });
      const cut = text.lastIndexOf("\n") + 1;
      rest = text.slice(cut);
      const out = rows(text.slice(0, cut));
      if (out) controller.enqueue(encoder.encode(out));
    },
    flush(controller) {
      controller.enqueue(encoder.encode(`${rows(rest + decoder.decode())}]`));
    },
  });
}

function lineHead(key: string, entry: CacheEntry): string | undefined {
  let parts;
  try {
    parts = parseKey(key);
  } catch {
    return undefined;
  }
  const common = `"status":${entry.info.status},"fetchedAt":${
    JSON.stringify(new Date(entry.info.fetchedAt).toISOString())
  }`;
  if (parts.type === "partition") {
    return `{"key":${JSON.stringify(key)},"type":"partition","origin":${
      JSON.stringify(parts.origin)
    },"startKey":${JSON.stringify(parts.startKey)},"endKey":${
      JSON.stringify(parts.endKey)
    },${common},"body":`;
  }
  const type = parts.representation === "full" ? "packument" : "corgi";
  return `{"key":${JSON.stringify(key)},"type":"${type}","origin":${
    JSON.stringify(parts.origin)
  },"name":${JSON.stringify(parts.name)},${common},"body":`;
}

/**
 * Streams cached documents as NDJSON.
 *
 * @param cache The cache.
 * @param options Which documents.
 * @returns The NDJSON bytes.
 *
 * @example
 * ```ts
 * import { Cache } from "../storage/cache.ts";
 * import { exportEntries } from "./export.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 * const cache = await Cache.open(new MemoryDriver());
 * await cache.put("v1:packument:npm:6d73", new TextEncoder().encode('{\n"name":"ms"}'), { status: 200 });
 * const text = await new Response(exportEntries(cache)).text();
 * console.assert(JSON.parse(text).body.name === "ms");
 * ```
 */
export function exportEntries(
  cache: Cache,
  options: ExportOptions = {},
): ReadableStream<Uint8Array> {
  const prefix = `${options.type ? keyPrefix(options.type) : `${KEY_VERSION}:`}${
    options.prefix ?? ""
  }`;
  const keys = cache.keys(prefix);
  const patches = new PatchedPartitions(cache.driver);
  let current: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        if (current) {
          const { value, done } = await current.read();
          if (!done) return controller.enqueue(value);
          current = undefined;
          return controller.enqueue(encoder.encode("}\n"));
        }
        const next = await keys.next();
        if (next.done) return controller.close();
        const entry = await cache.get(next.value);
        if (!entry) continue;
        const head = lineHead(next.value, entry);
        if (head === undefined) continue;
        const body = entry.info.representation === "partition" ||
            next.value.startsWith(PARTITION_PREFIX)
          ? (await patches.body(next.value, entry)).pipeThrough(partitionArray())
          : decodedSizeOf(entry.info) === 0
          ? new Response("null").body!
          : entry.stream().pipeThrough(oneLine());
        current = body.getReader();
        return controller.enqueue(encoder.encode(head));
      }
    },
    async cancel(reason) {
      await current?.cancel(reason);
      await keys.return(undefined);
    },
  });
}
