/**
 * Global options of the CLI: flags, their environment variables, validation and defaults.
 *
 * @module
 */

import { host } from "./host.ts";
import { isAbsolute, join } from "node:path";

/** A usage error: printed as one line, exit status 2, before any request or write. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Storage backends the CLI can use. */
export type StorageKind = "fs" | "kv" | "memory" | "s3";

/** Where `--storage s3` keeps the cache, from `ALL_DOCS_S3_URL` and the `AWS_*` variables. */
export interface S3Settings {
  /** The service endpoint, `http(s)://host[:port]`. */
  endpoint: string;
  /** The bucket. */
  bucket: string;
  /** The key prefix inside the bucket (`""` for none). */
  prefix: string;
  /** The signing region (`AWS_REGION`, default `us-east-1`). */
  region: string;
  /** The credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** The resolved global options. */
export interface GlobalOptions {
  cacheDir: string;
  storage: StorageKind;
  /** Set when `storage` is `s3`. */
  s3: S3Settings | undefined;
  origin: string | undefined;
  originKey: string | undefined;
  registry: string | undefined;
  concurrency: number;
  rateLimit: number;
  retries: number;
  timeout: number;
  storeEncoding: "gzip" | "identity";
  json: boolean;
  quiet: boolean;
  progress: boolean;
}

/** parseArgs option definitions of the global options. */
export const GLOBAL_FLAGS = {
  "cache-dir": { type: "string" },
  storage: { type: "string" },
  origin: { type: "string" },
  "origin-key": { type: "string" },
  registry: { type: "string" },
  concurrency: { type: "string" },
  "rate-limit": { type: "string" },
  retries: { type: "string" },
  timeout: { type: "string" },
  "store-encoding": { type: "string" },
  json: { type: "boolean" },
  quiet: { type: "boolean" },
  progress: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

/** Help text for the global options. */
export const GLOBAL_HELP = `Global options (each also read from the environment variable shown;
a flag wins over its variable, and a bad value is reported under the name it came from):
  --cache-dir DIR     where embedded storage lives           ALL_DOCS_CACHE_DIR
                      (default: $XDG_CACHE_HOME/_all_docs when it is an absolute
                      path, else ~/.cache/_all_docs); checked first: made if
                      missing and probed for writing by commands that write;
                      must exist for those that only read
  --storage KIND      fs | kv | memory | s3 (default fs)     ALL_DOCS_STORAGE
                      (s3: ALL_DOCS_S3_URL=http(s)://host:port/bucket[/prefix],
                      AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
                      AWS_REGION)
  --origin URL        CouchDB replication endpoint           ALL_DOCS_ORIGIN
                      (http(s), no user info, query or fragment: exit 2)
  --origin-key KEY    name the origin in cache keys          ALL_DOCS_ORIGIN_KEY
  --registry URL      packument registry                     ALL_DOCS_REGISTRY
                      (default: the registry npm is configured with;
                      http(s), no user info, query or fragment: exit 2)
  --concurrency N     requests in flight, 1 to 1024          ALL_DOCS_CONCURRENCY
                      (default 16)
  --rate-limit N      requests per second, 0 = unlimited     ALL_DOCS_RATE_LIMIT
  --retries N         retries per request (default 5), a     ALL_DOCS_RETRIES
                      body cut short included, with backoff
  --timeout MS        per-request timeout (default 30000)    ALL_DOCS_TIMEOUT
  --store-encoding E  gzip | identity: how new packument and ALL_DOCS_STORE_ENCODING
                      partition bodies are stored (default gzip, about a
                      tenth of the bytes); both read back the same
  --json              machine-readable output; an error is also printed as
                      {"type":"error","message":...,"exitCode":N} on stdout
  --quiet             no progress output
  --progress          progress even when stderr is not a terminal or is
                      TERM=dumb (a plain line each second); on a terminal the
                      line is cut to its width
  -h, --help          show help
  -v, -V, --version   show the version
Proxies: HTTPS_PROXY, HTTP_PROXY, NO_PROXY (lower case too); on Node also
.npmrc proxy, https-proxy, noproxy (winning over the variables) and cafile.`;

function env(name: string): string | undefined {
  const value = host().env(name);
  return value === "" ? undefined : value;
}

/** A setting's raw value and where it came from: `--flag` or the environment variable's name. */
interface Setting {
  value: string | undefined;
  source: string;
}

/**
 * The most requests in flight `--concurrency` allows: each holds a socket, buffers and a worker,
 * and no registry serves one client faster beyond a few dozen.
 */
export const MAX_CONCURRENCY = 1024;

function integer(
  setting: Setting,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const { value: raw, source } = setting;
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    const expected = max === Number.MAX_SAFE_INTEGER
      ? `an integer of at least ${min}`
      : `an integer from ${min} to ${max}`;
    throw new UsageError(`Invalid ${source}: expected ${expected}, received '${raw}'`);
  }
  return value;
}

/**
 * A URL as it may be shown: its user info masked, the user name kept and every password or
 * token replaced by `***` (`https://user:***@host/`, `https://***@host/`).
 *
 * @param raw The URL as given.
 * @returns The URL without secrets.
 */
export function maskUrl(raw: string): string {
  return raw.replace(
    /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i,
    (_match, scheme: string, info: string) => {
      const colon = info.indexOf(":");
      return `${scheme}${colon === -1 ? "***" : `${info.slice(0, colon)}:***`}@`;
    },
  );
}

/**
 * Checks a registry or origin URL up front: http or https, no user info (credentials go in
 * `.npmrc`), no query or fragment (the path is the base of every request). `source` names where
 * it came from (`--origin`, `ALL_DOCS_ORIGIN`, npm's `registry` setting); secrets are masked.
 *
 * @param source Where the value came from, for the message.
 * @param raw The URL as given.
 * @returns The URL as given.
 * @throws {UsageError} When it is not acceptable.
 */
export function checkServiceUrl(source: string, raw: string): string {
  const bad = (why: string) =>
    new UsageError(`Invalid ${source}: ${why}, received '${maskUrl(raw)}'`);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw bad("expected an http(s) URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw bad("expected an http(s) URL");
  }
  if (parsed.username !== "" || parsed.password !== "") {
    throw bad("credentials in the URL are not supported (put the token in .npmrc)");
  }
  if (parsed.search !== "" || parsed.hash !== "" || /[?#]/.test(raw)) {
    // A query may carry a token too: it is not shown.
    throw new UsageError(
      `Invalid ${source}: a query or fragment is not allowed, received '${
        maskUrl(raw).replace(/([?#]).*$/s, "$1***")
      }'`,
    );
  }
  return raw;
}

/**
 * Checks a redis queue URL up front, as the engine (`queues/bullmq.ts`) will read it:
 * `redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]`, or `rediss://` for TLS; no query or fragment.
 * The message never shows a password (nor a query, which may hold one).
 *
 * @param source Where the value came from, for the message (`--queue`, `ALL_DOCS_QUEUE`).
 * @param raw The URL as given.
 * @returns The URL as given.
 * @throws {UsageError} When it is not acceptable.
 */
export function checkRedisUrl(source: string, raw: string): string {
  const bad = (why: string) =>
    new UsageError(
      `Invalid ${source}: expected memory, kv or redis://HOST:PORT[/DB] (${why}), received '${
        maskUrl(raw).replace(/([?#]).*$/s, "$1***")
      }'`,
    );
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw bad("not a URL");
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw bad("the scheme is redis or rediss");
  }
  if (parsed.hostname === "") throw bad("no host");
  if (parsed.search !== "" || parsed.hash !== "" || /[?#]/.test(raw)) {
    throw bad("no query or fragment");
  }
  if (!/^\/?(\d{1,5})?$/.test(parsed.pathname)) throw bad("the path is a database number");
  return raw;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Reads the s3 settings from the environment; any missing or bad one is a usage error. */
export function resolveS3Settings(): S3Settings {
  const raw = env("ALL_DOCS_S3_URL");
  if (raw === undefined) {
    throw new UsageError(
      "--storage s3 needs ALL_DOCS_S3_URL (http(s)://host:port/bucket[/prefix])",
    );
  }
  // What the URL says, without any user info (a password must never be printed).
  const shown = raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1***@");
  const bad = (why: string) =>
    new UsageError(
      `Invalid ALL_DOCS_S3_URL: ${why}; expected http(s)://host:port/bucket[/prefix], ` +
        `received '${shown}'`,
    );
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw bad("not a URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw bad("not http(s)");
  if (parsed.username !== "" || parsed.password !== "") {
    throw bad("credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not the URL");
  }
  if (parsed.search !== "" || parsed.hash !== "") throw bad("no query or fragment allowed");
  // The URL parser resolves "." and ".." segments (also as %2e) and turns "\\" into "/": the
  // bucket and prefix must be the path as written.
  const written = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(\/[^?#]*)?/i.exec(raw)?.[1] ?? "/";
  if (written.includes("\\") || written.split("/").some((part) => /^(\.|%2e){1,2}$/i.test(part))) {
    throw bad("the path must not hold '.' or '..' segments or backslashes");
  }
  const path = parsed.pathname.slice(1);
  const slash = path.indexOf("/");
  const bucket = slash === -1 ? path : path.slice(0, slash);
  if (!BUCKET.test(bucket)) {
    throw bad("the bucket must be 3 to 63 lower-case letters, digits, dots and hyphens");
  }
  let prefix: string;
  try {
    prefix = slash === -1 ? "" : decodeURIComponent(path.slice(slash + 1));
  } catch {
    throw bad("the prefix is not valid percent-encoded UTF-8");
  }
  if (new TextEncoder().encode(prefix).byteLength >= 512) {
    throw bad("the prefix must be shorter than 512 UTF-8 bytes");
  }
  const accessKeyId = env("AWS_ACCESS_KEY_ID");
  const secretAccessKey = env("AWS_SECRET_ACCESS_KEY");
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    throw new UsageError(
      "--storage s3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
    );
  }
  const region = env("AWS_REGION") ?? "us-east-1";
  if (!/^[a-z0-9-]{1,64}$/.test(region)) {
    throw new UsageError(
      `Invalid AWS_REGION: expected lower-case letters, digits and hyphens, received '${region}'`,
    );
  }
  const credentials: S3Settings["credentials"] = { accessKeyId, secretAccessKey };
  const sessionToken = env("AWS_SESSION_TOKEN");
  if (sessionToken !== undefined) credentials.sessionToken = sessionToken;
  return { endpoint: parsed.origin, bucket, prefix, region, credentials };
}

/**
 * The default cache directory: `$XDG_CACHE_HOME/_all_docs` when that is an absolute path, else
 * the platform's cache dir (`~/.cache/_all_docs` on Linux).
 */
export function defaultCacheDir(): string {
  // The XDG Base Directory spec: a relative path in XDG_CACHE_HOME is invalid and ignored.
  const xdg = env("XDG_CACHE_HOME");
  if (xdg && isAbsolute(xdg)) return join(xdg, "_all_docs");
  const { platform } = host();
  const homedir = () => host().homedir();
  if (platform === "darwin") return join(homedir(), "Library", "Caches", "_all_docs");
  if (platform === "win32") {
    return join(env("LOCALAPPDATA") ?? join(homedir(), "AppData", "Local"), "_all_docs");
  }
  return join(homedir(), ".cache", "_all_docs");
}

/** What an origin key may be. */
const ORIGIN_KEY = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The flags of a command whose `--origin` names where the documents it reads are cached (the
 * views, in the upstream's vocabulary): a URL is the registry they came from (`--registry`),
 * anything else their origin KEY (`--origin-key`). Giving both spellings of one is an error.
 *
 * @param values The parsed flags.
 * @returns The flags with `--origin` moved to `--registry` or `--origin-key`.
 * @throws {UsageError} When `--origin` and the flag it stands for are both given.
 */
export function documentOriginFlags(
  values: Record<string, string | boolean | undefined>,
): Record<string, string | boolean | undefined> {
  const origin = values["origin"];
  if (typeof origin !== "string") return values;
  const flag = /^[a-z][a-z0-9+.-]*:\/\//i.test(origin) ? "registry" : "origin-key";
  if (flag === "origin-key" && !ORIGIN_KEY.test(origin)) {
    throw new UsageError(
      "Invalid --origin: expected a registry URL, or an origin key of 1 to 64 characters of " +
        `[A-Za-z0-9._-], received '${origin}'`,
    );
  }
  if (values[flag] !== undefined) {
    throw new UsageError(`Conflicting options: --origin ${origin} and --${flag}: give one`);
  }
  const { origin: _, ...rest } = values;
  return { ...rest, [flag]: origin };
}

/** Resolves global options from parsed flags, then the environment, then defaults. */
export function resolveGlobalOptions(
  values: Record<string, string | boolean | undefined>,
): GlobalOptions {
  // A flag wins over its environment variable; an error names the one the value came from.
  const setting = (flag: string, name: string): Setting => {
    const value = values[flag];
    return typeof value === "string"
      ? { value, source: `--${flag}` }
      : { value: env(name), source: name };
  };
  const url = (setting: Setting) =>
    setting.value === undefined ? undefined : checkServiceUrl(setting.source, setting.value);
  const storageSetting = setting("storage", "ALL_DOCS_STORAGE");
  const storage = storageSetting.value ?? "fs";
  if (storage !== "fs" && storage !== "kv" && storage !== "memory" && storage !== "s3") {
    throw new UsageError(
      `Invalid ${storageSetting.source}: expected fs, kv, memory or s3, received '${storage}'`,
    );
  }
  const s3 = storage === "s3" ? resolveS3Settings() : undefined;
  const originKeySetting = setting("origin-key", "ALL_DOCS_ORIGIN_KEY");
  const originKey = originKeySetting.value;
  if (originKey !== undefined && !ORIGIN_KEY.test(originKey)) {
    throw new UsageError(
      `Invalid ${originKeySetting.source}: expected 1 to 64 characters of [A-Za-z0-9._-], ` +
        `received '${originKey}'`,
    );
  }
  if (values["quiet"] === true && values["progress"] === true) {
    throw new UsageError("--quiet and --progress contradict each other: give one");
  }
  const cacheDir = setting("cache-dir", "ALL_DOCS_CACHE_DIR").value ?? defaultCacheDir();
  const encodingSetting = setting("store-encoding", "ALL_DOCS_STORE_ENCODING");
  const storeEncoding = encodingSetting.value ?? "gzip";
  if (storeEncoding !== "gzip" && storeEncoding !== "identity") {
    throw new UsageError(
      `Invalid ${encodingSetting.source}: expected gzip or identity, received '${storeEncoding}'`,
    );
  }
  return {
    cacheDir,
    storage,
    s3,
    origin: url(setting("origin", "ALL_DOCS_ORIGIN")),
    originKey,
    registry: url(setting("registry", "ALL_DOCS_REGISTRY")),
    concurrency: integer(
      setting("concurrency", "ALL_DOCS_CONCURRENCY"),
      16,
      1,
      MAX_CONCURRENCY,
    ),
    rateLimit: integer(setting("rate-limit", "ALL_DOCS_RATE_LIMIT"), 0, 0),
    retries: integer(setting("retries", "ALL_DOCS_RETRIES"), 5, 0),
    timeout: integer(setting("timeout", "ALL_DOCS_TIMEOUT"), 30000, 1),
    storeEncoding,
    json: values["json"] === true,
    quiet: values["quiet"] === true,
    progress: values["progress"] === true,
  };
}
