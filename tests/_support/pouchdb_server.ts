/**
 * Runs the real CouchDB-compatible peer `pouchdb-server@4.2.0` under Node, in memory, loaded
 * with a set of ids, for tests that check the client against something that is not our own
 * fixture.
 *
 * It is installed by npm, never by this harness:
 *
 * ```sh
 * npm install --ignore-scripts --no-audit --no-fund --prefix tests/peers
 * ```
 *
 * Behaviour of pouchdb-server 4.2.0 (memory adapter) that matters to a client, measured:
 *
 * - `_all_docs` sorts ids in UTF-16 code-unit order (JavaScript `<`): plain ASCII order for ASCII
 *   ids (`-` `1` `12.15rk..` `@x/y` `A` `Ab` `B` `Z` `a` `aa` `b` `z` `~`, upper case before
 *   lower case), but an astral character (a surrogate pair) sorts before U+E000..U+FFFF, where
 *   code-point order puts it after.
 * - Without an `endkey` (ascending) or `startkey` (descending), the range silently stops at
 *   `"\u00ff"`: ids above it (e.g. `Ā`, `中文`, `😀`, `\ufffd`) are left out. Give an explicit
 *   high end such as {@linkcode POUCHDB_HIGH_KEY} to list them.
 * - `offset` is always 0 unless `skip` is given; `limit` has no default and no cap; `skip`,
 *   `include_docs`, `start_key` and unquoted keys (`startkey=express`) are all accepted; a
 *   start past the end gives an empty page, not a 400; ids cannot start with `_` (except
 *   `_design/`); JSON comes back as `text/plain` unless the request accepts `application/json`;
 *   Express adds a weak `ETag` and answers `If-None-Match` with 304.
 *
 * @module
 */

import { freePort, spawnNode, waitUntilUp } from "./spawn.ts";

/** One row of the listing. */
export interface PouchdbRow {
  /** The document id. */
  id: string;
  /** Its revision, as pouchdb-server created it (`1-<md5>`). */
  rev: string;
}

/** Options of {@linkcode startPouchdbServer}. */
export interface PouchdbServerOptions {
  /** The ids to load into the `registry` database (duplicates are loaded once). */
  ids: readonly string[];
  /** Documents per `_bulk_docs` request (default 5000). */
  batchSize?: number;
}

/** A running pouchdb-server; see {@linkcode startPouchdbServer}. */
export interface PouchdbServer {
  /** The database URL, `http://127.0.0.1:PORT/registry`; `_all_docs` is below it. */
  readonly origin: string;
  /** Every loaded id with its revision, in the server's own `_all_docs` order. */
  readonly rows: readonly PouchdbRow[];
  /** How long start-up, loading and reading back took, in milliseconds. */
  readonly timings: { start: number; load: number; readBack: number };
  /** Stops the server, waits for it to exit and removes its temporary directory. */
  close(): Promise<void>;
}

/** An `endkey` above every realistic id in pouchdb's (UTF-16) order. */
export const POUCHDB_HIGH_KEY: string = "\uffff\uffff\uffff\uffff";

const root = new URL("../../", import.meta.url);
/** The pouchdb-server entry point, installed by `npm install --prefix tests/peers`. */
export const POUCHDB_BIN: string = new URL(
  "tests/peers/node_modules/pouchdb-server/bin/pouchdb-server",
  root,
).pathname;
/** The command that installs the peers. */
export const PEERS_INSTALL_COMMAND: string =
  "npm install --ignore-scripts --no-audit --no-fund --prefix tests/peers";

async function request(
  url: string,
  init: RequestInit & { json?: unknown } = {},
): Promise<{ status: number; body: unknown }> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  headers.set("accept", "application/json");
  if (json !== undefined) headers.set("content-type", "application/json");
  const response = await fetch(url, {
    ...rest,
    headers,
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Keep the text.
  }
  return { status: response.status, body };
}

interface AllDocsPage {
  rows: { id: string; value: { rev: string } }[];
}

/**
 * Starts `pouchdb-server` in memory on a free port of 127.0.0.1, with its working directory in a
 * new temporary directory (it writes `config.json` and `log.txt` there), creates the database
 * `registry`, loads one empty document per id with `_bulk_docs`, and reads the revisions back
 * from `_all_docs`.
 *
 * @throws If the peers are not installed, an id starts with `_`, the server does not come up
 *   (its output is in the message), or a document is refused.
 */
export async function startPouchdbServer(options: PouchdbServerOptions): Promise<PouchdbServer> {
  const ids = [...new Set(options.ids)];
  const bad = ids.find((id) => id.startsWith("_"));
  if (bad !== undefined) throw new TypeError(`pouchdb refuses ids starting with "_": ${bad}`);
  const batchSize = options.batchSize ?? 5000;
  try {
    await Deno.stat(POUCHDB_BIN);
  } catch {
    throw new Error(`pouchdb-server is not installed; run: ${PEERS_INSTALL_COMMAND}`);
  }

  const t0 = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "pouchdb_server_" });
  const port = freePort();
  const peer = spawnNode([
    POUCHDB_BIN,
    "--in-memory",
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
    "-n",
  ], dir);

  const base = `http://127.0.0.1:${port}`;
  const origin = `${base}/registry`;
  try {
    await waitUntilUp(peer, "pouchdb-server", `${base}/`);
    const t1 = performance.now();

    const created = await request(origin, { method: "PUT" });
    if (created.status !== 201) {
      throw new Error(`creating the database: ${created.status} ${JSON.stringify(created.body)}`);
    }
    for (let i = 0; i < ids.length; i += batchSize) {
      const docs = ids.slice(i, i + batchSize).map((id) => ({ _id: id }));
      const result = await request(`${origin}/_bulk_docs`, { method: "POST", json: { docs } });
      if (result.status !== 201 || !Array.isArray(result.body)) {
        throw new Error(`_bulk_docs: ${result.status} ${JSON.stringify(result.body)}`);
      }
      const failed = (result.body as { ok?: boolean; id?: string; reason?: string }[])
        .find((r) => r.ok !== true);
      if (failed !== undefined) throw new Error(`_bulk_docs refused: ${JSON.stringify(failed)}`);
    }
    const t2 = performance.now();

    const rows: PouchdbRow[] = [];
    const high = encodeURIComponent(JSON.stringify(POUCHDB_HIGH_KEY));
    let startkey: string | undefined;
    for (;;) {
      const start = startkey === undefined
        ? ""
        : `&startkey=${encodeURIComponent(JSON.stringify(startkey))}`;
      const page = await request(`${origin}/_all_docs?limit=10000&endkey=${high}${start}`);
      if (page.status !== 200) throw new Error(`_all_docs: ${page.status}`);
      const pageRows = (page.body as AllDocsPage).rows;
      for (const row of startkey === undefined ? pageRows : pageRows.slice(1)) {
        rows.push({ id: row.id, rev: row.value.rev });
      }
      const last = pageRows[pageRows.length - 1];
      if (pageRows.length < 10000 || last === undefined) break;
      startkey = last.id;
    }
    if (rows.length !== ids.length) {
      throw new Error(`read back ${rows.length} rows, loaded ${ids.length}`);
    }
    const t3 = performance.now();
    return {
      origin,
      rows,
      timings: { start: t1 - t0, load: t2 - t1, readBack: t3 - t2 },
      close: peer.close,
    };
  } catch (error) {
    await peer.close();
    throw error;
  }
}
