/**
 * Verification of OIDC identity tokens (JWTs), such as the Google-signed tokens Cloud Tasks
 * and Pub/Sub push attach as `Authorization: Bearer TOKEN` when a service account is set on
 * the task or the subscription. Web standards only: `fetch` for the key set, WebCrypto for the
 * signature.
 *
 * A token is accepted when all of these hold:
 * - it is a compact JWS of at most {@linkcode MAX_OIDC_TOKEN_LENGTH} characters whose header
 *   says `alg: "RS256"` and names a `kid` (no other algorithm is accepted, `none` included);
 * - the signature verifies (RSASSA-PKCS1-v1_5 with SHA-256) against the key of that `kid` in
 *   the JSON Web Key Set at `jwksUrl`;
 * - `iss` is one of `issuers`, `aud` is `audience` (or an array holding it);
 * - `exp` is in the future and `iat` (and `nbf`, when present) in the past, each allowing
 *   {@linkcode OIDC_CLOCK_SKEW_SECONDS} of clock skew;
 * - with `serviceAccountEmail`: `email` is that address and `email_verified` is true.
 *
 * Keys are kept by `kid` and fetched again when the set is older than its `Cache-Control`
 * `max-age` (one hour without one, at most a day), or when a token names a `kid` the set does
 * not hold (keys rotate); either way at most once per {@linkcode JWKS_REFETCH_INTERVAL_MS}, so
 * tokens with made-up key ids cannot make the verifier hammer the key server. When a refresh
 * fails the keys in hand are kept; when there are none, verification fails with
 * `unavailable` set (not the token's fault: answer 503, not 401).
 *
 * Error messages say which check failed; they never contain the token or its claims.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { describe } from "../_util/describe.ts";

/** The issuers of Google-signed identity tokens. */
export const GOOGLE_ISSUERS: readonly string[] = [
  "https://accounts.google.com",
  "accounts.google.com",
];

/**
 * Where Google publishes the keys of its identity tokens (a JSON Web Key Set): the default
 * `jwksUrl`. Tests pass their own.
 */
export const GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs";

/** The longest token accepted, in characters. */
export const MAX_OIDC_TOKEN_LENGTH = 8192;

/** The clock skew allowed on `exp`, `iat` and `nbf`, in seconds. */
export const OIDC_CLOCK_SKEW_SECONDS = 60;

/** The least time between two fetches of the key set, in ms. */
export const JWKS_REFETCH_INTERVAL_MS = 60_000;

const DEFAULT_MAX_AGE_MS = 3_600_000;
const LONGEST_MAX_AGE_MS = 86_400_000;
const JWKS_TIMEOUT_MS = 10_000;
const MAX_JWKS_CHARS = 1024 * 1024;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const encoder = new TextEncoder();

/** Options of {@linkcode OidcVerifier}. */
export interface OidcOptions {
  /** The `aud` tokens must carry: what the task or subscription was configured with (for Cloud
   * Run, usually the service URL or the push endpoint URL). */
  audience: string;
  /** The accepted `iss` values.
   * @default {GOOGLE_ISSUERS} */
  issuers?: readonly string[];
  /** The JSON Web Key Set to verify signatures with (http or https).
   * @default {GOOGLE_JWKS_URL} */
  jwksUrl?: string;
  /** When given, the token's `email` must be this (the service account the task or the
   * subscription runs as) and `email_verified` true. Compared without regard to case. */
  serviceAccountEmail?: string;
  /** Fetches the key set.
   * @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** The clock for expiry checks and key refreshes.
   * @default {Date} */
  clock?: Pick<Clock, "now">;
}

/** The claims of a verified token (those checked, and any others it carries). */
export interface OidcClaims {
  /** The issuer. */
  iss: string;
  /** The audience. */
  aud: string | string[];
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** Issue time, seconds since the epoch. */
  iat: number;
  /** The caller's email, for a service account. */
  email?: string;
  /** Any other claim. */
  [claim: string]: unknown;
}

/** A token that was not accepted, or the keys to check it with could not be had. */
export class OidcError extends Error {
  /** Always `OidcError`. */
  override name: string = "OidcError";
  /** The key set could not be fetched and none is in hand: not the token's fault. */
  readonly unavailable: boolean;

  /**
   * Describes a refusal.
   *
   * @param message Which check failed (never the token).
   * @param options `unavailable` when the keys could not be had; the `cause`.
   */
  constructor(message: string, options: { unavailable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.unavailable = options.unavailable ?? false;
  }
}

function refuse(message: string): never {
  throw new OidcError(message);
}

function base64UrlBytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function jsonObjectOf(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64UrlBytes(part)));
  } catch {
    refuse(`The token is not a JWT: its ${what} is not base64url JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    refuse(`The token is not a JWT: its ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function maxAgeOf(cacheControl: string | null): number {
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,10})"?\s*(?:,|$)/i.exec(cacheControl ?? "");
  if (!match) return DEFAULT_MAX_AGE_MS;
  return Math.min(LONGEST_MAX_AGE_MS, Number(match[1]) * 1000);
}

function checkOptions(options: OidcOptions): void {
  const bad = (message: string): never => {
    throw new TypeError(`Cannot verify OIDC tokens: ${message}`);
  };
  if (typeof options !== "object" || options === null) bad("the options must be an object");
  const { audience, issuers, jwksUrl, serviceAccountEmail } = options;
  if (typeof audience !== "string" || audience.trim() === "") {
    bad(`'audience' must be a non-empty string, received ${describe(audience)}`);
  }
  if (
    issuers !== undefined &&
    (!Array.isArray(issuers) || issuers.length === 0 ||
      !issuers.every((issuer) => typeof issuer === "string" && issuer !== ""))
  ) {
    bad("'issuers' must be a non-empty array of non-empty strings");
  }
  if (jwksUrl !== undefined) {
    const url = typeof jwksUrl === "string" && URL.canParse(jwksUrl) ? new URL(jwksUrl) : null;
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      bad(`'jwksUrl' must be an absolute http(s) URL, received ${describe(jwksUrl)}`);
    }
  }
  if (
    serviceAccountEmail !== undefined &&
    (typeof serviceAccountEmail !== "string" || !/^[^@\s]+@[^@\s]+$/.test(serviceAccountEmail))
  ) {
    bad(
      `'serviceAccountEmail' must be an email address, received ${describe(serviceAccountEmail)}`,
    );
  }
  if (options.fetch !== undefined && typeof options.fetch !== "function") {
    bad(`'fetch' must be a function, received ${describe(options.fetch)}`);
  }
}

/**
 * Verifies OIDC identity tokens against a JSON Web Key Set: see the module documentation.
 *
 * @example Accept a token signed by a key of the set
 * ```ts
 * import { OidcVerifier } from "./oidc.ts";
 *
 * const pair = await crypto.subtle.generateKey(
 *   { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
 *   true,
 *   ["sign", "verify"],
 * );
 * const jwk = { ...(await crypto.subtle.exportKey("jwk", pair.publicKey)), kid: "k1", use: "sig" };
 * const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
 * const part = (value: unknown) => b64(new TextEncoder().encode(JSON.stringify(value)));
 * const now = Math.floor(Date.now() / 1000);
 * const claims = { iss: "https://accounts.google.com", aud: "https://worker.example", iat: now, exp: now + 3600 };
 * const signed = `${part({ alg: "RS256", kid: "k1", typ: "JWT" })}.${part(claims)}`;
 * const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", pair.privateKey, new TextEncoder().encode(signed));
 * const token = `${signed}.${b64(new Uint8Array(signature))}`;
 *
 * const verifier = new OidcVerifier({
 *   audience: "https://worker.example",
 *   jwksUrl: "http://127.0.0.1:9/certs",
 *   fetch: () => Promise.resolve(Response.json({ keys: [jwk] })),
 * });
 * console.assert((await verifier.verify(token)).aud === "https://worker.example");
 * ```
 */
export class OidcVerifier {
  #audience: string;
  #issuers: readonly string[];
  #jwksUrl: string;
  #email: string | undefined;
  #fetch: typeof fetch;
  #clock: Pick<Clock, "now">;
  #keys = new Map<string, CryptoKey>();
  #fetchedAt = -Infinity;
  #attemptedAt = -Infinity;
  #maxAgeMs = DEFAULT_MAX_AGE_MS;
  #loading: Promise<void> | undefined;
  #lastProblem = "";

  /**
   * Makes a verifier; nothing is fetched until the first token.
   *
   * @param options The audience and where the keys are.
   * @throws {TypeError} When an option is invalid.
   */
  constructor(options: OidcOptions) {
    checkOptions(options);
    this.#audience = options.audience;
    this.#issuers = [...(options.issuers ?? GOOGLE_ISSUERS)];
    this.#jwksUrl = options.jwksUrl ?? GOOGLE_JWKS_URL;
    this.#email = options.serviceAccountEmail?.toLowerCase();
    const fetchImpl = options.fetch ?? globalThis.fetch;
    this.#fetch = (input, init) => fetchImpl(input, init);
    this.#clock = options.clock ?? Date;
  }

  /**
   * Verifies a token.
   *
   * @param token The bearer token, without the `Bearer ` scheme.
   * @returns Its claims.
   * @throws {OidcError} Saying which check failed; with `unavailable` when no keys could be
   * fetched.
   */
  async verify(token: string): Promise<OidcClaims> {
    if (typeof token !== "string" || token.length > MAX_OIDC_TOKEN_LENGTH) {
      refuse("The token is not a JWT: it is too long");
    }
    const parts = token.split(".");
    if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) {
      refuse("The token is not a JWT: it must be three base64url parts");
    }
    const [headerPart, claimsPart, signaturePart] = parts as [string, string, string];
    const header = jsonObjectOf(headerPart, "header");
    if (header.alg !== "RS256") refuse("The token is not signed with RS256");
    if (header.crit !== undefined) refuse("The token has critical header extensions");
    const kid = header.kid;
    if (typeof kid !== "string" || kid === "" || kid.length > 256) {
      refuse("The token names no key ('kid')");
    }
    const key = await this.#keyFor(kid);
    let valid: boolean;
    try {
      valid = await crypto.subtle.verify(
        "RSASSA-PKCS1-v1_5",
        key,
        base64UrlBytes(signaturePart),
        encoder.encode(`${headerPart}.${claimsPart}`),
      );
    } catch {
      valid = false;
    }
    if (!valid) refuse("The token's signature does not verify");
    const claims = jsonObjectOf(claimsPart, "claims");
    this.#checkClaims(claims);
    return claims as OidcClaims;
  }

  #checkClaims(claims: Record<string, unknown>): void {
    const { iss, aud, exp, iat, nbf } = claims;
    if (typeof iss !== "string" || !this.#issuers.includes(iss)) {
      refuse("The token's issuer is not accepted");
    }
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (!audiences.includes(this.#audience)) refuse("The token's audience does not match");
    const now = this.#clock.now() / 1000;
    if (typeof exp !== "number" || !Number.isFinite(exp)) refuse("The token has no expiry");
    if (now >= exp + OIDC_CLOCK_SKEW_SECONDS) refuse("The token has expired");
    if (typeof iat !== "number" || !Number.isFinite(iat)) refuse("The token has no issue time");
    if (iat > now + OIDC_CLOCK_SKEW_SECONDS) refuse("The token is issued in the future");
    if (nbf !== undefined) {
      if (typeof nbf !== "number" || !Number.isFinite(nbf)) refuse("The token's nbf is invalid");
      if (nbf > now + OIDC_CLOCK_SKEW_SECONDS) refuse("The token is not valid yet");
    }
    if (this.#email !== undefined) {
      const email = claims.email;
      if (typeof email !== "string" || email.toLowerCase() !== this.#email) {
        refuse("The token's email is not the service account's");
      }
      if (claims.email_verified !== true && claims.email_verified !== "true") {
        refuse("The token's email is not verified");
      }
    }
  }

  async #keyFor(kid: string): Promise<CryptoKey> {
    const now = this.#clock.now();
    const stale = now - this.#fetchedAt >= this.#maxAgeMs;
    if ((stale || !this.#keys.has(kid)) && now - this.#attemptedAt >= JWKS_REFETCH_INTERVAL_MS) {
      this.#loading ??= this.#load().finally(() => this.#loading = undefined);
      await this.#loading;
    } else if (this.#loading) {
      await this.#loading;
    }
    const key = this.#keys.get(kid);
    if (key) return key;
    if (this.#fetchedAt === -Infinity) {
      throw new OidcError(
        `Cannot fetch the OIDC keys from ${this.#jwksUrl}: ${this.#lastProblem || "not yet"}`,
        { unavailable: true },
      );
    }
    return refuse("The token's key ('kid') is not in the key set");
  }

  /** Fetches the key set; on failure keeps the keys in hand and remembers why. */
  async #load(): Promise<void> {
    this.#attemptedAt = this.#clock.now();
    try {
      const response = await this.#fetch(this.#jwksUrl, {
        headers: { accept: "application/json" },
        signal: AbortSignal.timeout(JWKS_TIMEOUT_MS),
      });
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        throw new Error(`the key server answered ${response.status}`);
      }
      const text = await response.text();
      if (text.length > MAX_JWKS_CHARS) throw new Error("the key set is too large");
      const set = JSON.parse(text) as { keys?: unknown };
      if (!Array.isArray(set?.keys)) throw new Error("the answer is not a JSON Web Key Set");
      const keys = new Map<string, CryptoKey>();
      for (const jwk of set.keys as Record<string, unknown>[]) {
        if (
          typeof jwk !== "object" || jwk === null || jwk.kty !== "RSA" ||
          typeof jwk.kid !== "string" || typeof jwk.n !== "string" || typeof jwk.e !== "string" ||
          (jwk.use !== undefined && jwk.use !== "sig") ||
          (jwk.alg !== undefined && jwk.alg !== "RS256")
        ) continue;
        try {
          const key = await crypto.subtle.importKey(
            "jwk",
            { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS256", ext: true },
            { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
            false,
            ["verify"],
          );
          keys.set(jwk.kid, key);
        } catch {
          // A key that does not import cannot verify anything: leave it out.
        }
      }
      if (keys.size === 0) throw new Error("the key set holds no RS256 signing key");
      this.#keys = keys;
      this.#fetchedAt = this.#clock.now();
      this.#maxAgeMs = maxAgeOf(response.headers.get("cache-control"));
      this.#lastProblem = "";
    } catch (error) {
      this.#lastProblem = error instanceof Error ? error.message : String(error);
    }
  }
}
