/**
 * The record codec: how one cache entry is laid out as the bytes of one storage value.
 *
 * ```
 * "AD1\n"  4 bytes of magic
 * u32      the length L of the header, big-endian
 * L bytes  the header: UTF-8 JSON of the entry's metadata, key, integrity, size, fetch time,
 *          `body` (the key of a separately stored body, or null when the body follows) and,
 *          for a compressed body, `encoding` (`"gzip"`) and `decodedSize`
 * ...      the body itself when `body` is null (exactly `size` bytes), else nothing
 * ```
 *
 * The integrity and size are those of the stored bytes: for a gzip body, of the gzip bytes. A
 * header without `encoding` is an `identity` body (every record written before encodings
 * existed reads so, with no migration); an encoding this version does not know is a corrupt
 * record, never bytes handed out undecoded.
 *
 * The format is stable: caches written by earlier versions read the same. Optional header fields
 * (such as `age`, added later) are written only when set, and a record without one reads as it
 * did.
 *
 * @module
 */

import type { CacheEntryInfo } from "./entry.ts";
import { isBodyEncoding } from "./encoding.ts";

/** The header of a stored record. */
export interface RecordHeader extends CacheEntryInfo {
  /** The body key, or null when the body follows the header. */
  body: string | null;
}

/** A decoded record: its header and the bytes after it (the body, when stored inline). */
export interface DecodedRecord {
  /** The header. */
  header: RecordHeader;
  /** The inline body (empty when the body is stored apart). */
  inline: Uint8Array;
}

/** Thrown by {@linkcode decodeRecord} for bytes that are not a valid record of the key. */
export class CorruptEntry extends Error {
  /** The error name. */
  override name = "CorruptEntry";
}

const MAGIC = new Uint8Array([0x41, 0x44, 0x31, 0x0a]); // "AD1\n"
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encodes a record.
 *
 * @param header The header.
 * @param inline The body, when it is stored inline (`header.body` is null).
 * @returns The record bytes.
 *
 * @example
 * ```ts
 * import { decodeRecord, encodeRecord } from "./record.ts";
 * const header = { key: "k", status: 200, integrity: "sha256-x", size: 2, fetchedAt: 0, body: null };
 * const raw = encodeRecord(header, new Uint8Array([1, 2]));
 * console.assert(new TextDecoder().decode(raw.subarray(0, 4)) === "AD1\n");
 * console.assert(decodeRecord("k", raw).inline.length === 2);
 * ```
 */
export function encodeRecord(header: RecordHeader, inline?: Uint8Array): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + (inline?.length ?? 0));
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, json.length);
  out.set(json, 8);
  if (inline) out.set(inline, 8 + json.length);
  return out;
}

/**
 * Decodes a record stored under `key`.
 *
 * @param key The key the record was read from (the header must name it).
 * @param raw The record bytes.
 * @returns The header and the inline body.
 * @throws {CorruptEntry} When the bytes are not a complete record of `key`.
 */
export function decodeRecord(key: string, raw: Uint8Array): DecodedRecord {
  if (raw.length < 8 || MAGIC.some((b, i) => raw[i] !== b)) {
    throw new CorruptEntry("record does not start with the entry magic");
  }
  const length = new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getUint32(4);
  if (8 + length > raw.length) throw new CorruptEntry("record header is truncated");
  let header: RecordHeader;
  try {
    header = JSON.parse(decoder.decode(raw.subarray(8, 8 + length)));
  } catch {
    throw new CorruptEntry("record header is not JSON");
  }
  if (
    typeof header !== "object" || header === null || header.key !== key ||
    typeof header.integrity !== "string" || typeof header.size !== "number" ||
    typeof header.status !== "number" || typeof header.fetchedAt !== "number"
  ) {
    throw new CorruptEntry("record header is incomplete");
  }
  if (header.encoding !== undefined && !isBodyEncoding(header.encoding)) {
    throw new CorruptEntry(`record body encoding ${JSON.stringify(header.encoding)} is unknown`);
  }
  const inline = raw.subarray(8 + length);
  if (header.body === null && inline.length !== header.size) {
    throw new CorruptEntry(`inline body is ${inline.length} bytes, expected ${header.size}`);
  }
  return { header, inline };
}

/**
 * The entry metadata of a header (the header less its body key).
 *
 * @param header The header.
 * @returns The metadata.
 */
export function infoOf(header: RecordHeader): CacheEntryInfo {
  const { body: _body, ...info } = header;
  return info;
}
