/**
 * Runs the S3-compatible peer `s3rver@3.7.1` under Node, for the tests of the s3 driver.
 *
 * It is installed by npm, never by this harness:
 *
 * ```sh
 * npm install --ignore-scripts --no-audit --no-fund --prefix tests/peers
 * ```
 *
 * s3rver 3.7.1 is started by `s3rver_peer.cjs`, which works around what it does not do (see
 * that file): it does not check Signature Version 4 signatures (the peer script checks each one
 * with node:crypto and answers 403 `SignatureDoesNotMatch`), its filesystem store cannot hold
 * every key nor list in UTF-8 byte order (an in-memory store replaces it), and it has no
 * AbortMultipartUpload (the peer script adds it). It makes ListObjectsV2 continuation tokens with
 * DES, which Node 17+ (OpenSSL 3) refuses unless started with `--openssl-legacy-provider`, so it
 * is. The credentials are s3rver's defaults,
 * {@linkcode S3RVER_CREDENTIALS}.
 *
 * @module
 */

import { freePort, spawnNode, waitUntilUp } from "./spawn.ts";
import { PEERS_INSTALL_COMMAND } from "./pouchdb_server.ts";

/** s3rver's built-in account. */
export const S3RVER_CREDENTIALS: { accessKeyId: string; secretAccessKey: string } = {
  accessKeyId: "S3RVER",
  secretAccessKey: "S3RVER",
};

const root = new URL("../../", import.meta.url);
/** The s3rver package directory, installed by `npm install --prefix tests/peers`. */
export const S3RVER_DIR: string = new URL("tests/peers/node_modules/s3rver", root).pathname;
const PEER_SCRIPT = new URL("./s3rver_peer.cjs", import.meta.url).pathname;

/** What the peer holds, from its unsigned test hook. */
export interface S3rverState {
  /** Every object key of the bucket, in UTF-8 byte order. */
  objects: string[];
  /** The object key of every multipart upload neither completed nor aborted. */
  uploads: string[];
}

/** A running s3rver; see {@linkcode startS3rver}. */
export interface S3rver {
  /** The endpoint, `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** The bucket created at start-up. */
  readonly bucket: string;
  /** What the peer holds now. */
  state(): Promise<S3rverState>;
  /** Stops the server, waits for it to exit and removes its temporary directory. */
  close(): Promise<void>;
}

/**
 * Starts s3rver on a free port of 127.0.0.1, with its directory in a new temporary directory,
 * and creates `bucket`.
 *
 * @throws If the peers are not installed or the server does not come up (its output is in the
 *   message).
 */
export async function startS3rver(bucket = "all-docs-test"): Promise<S3rver> {
  try {
    await Deno.stat(`${S3RVER_DIR}/package.json`);
  } catch {
    throw new Error(`s3rver is not installed; run: ${PEERS_INSTALL_COMMAND}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "s3rver_" });
  const port = freePort();
  // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in
  // its legacy provider: without it every truncated listing is a 500.
  const peer = spawnNode([
    "--openssl-legacy-provider",
    PEER_SCRIPT,
    S3RVER_DIR,
    String(port),
    dir,
    bucket,
  ], dir);
  const endpoint = `http://127.0.0.1:${port}`;
  const state = async (): Promise<S3rverState> => {
    const response = await fetch(`${endpoint}/__peer/state`);
    if (!response.ok) throw new Error(`s3rver state: HTTP ${response.status}`);
    return await response.json() as S3rverState;
  };
  try {
    await waitUntilUp(peer, "s3rver", `${endpoint}/__peer/state`);
    return { endpoint, bucket, state, close: peer.close };
  } catch (error) {
    await peer.close();
    throw error;
  }
}
