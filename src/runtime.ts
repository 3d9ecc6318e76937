/**
 * Runtime detection: the one module that looks at globals to tell where the code runs.
 *
 * The order is fixed: the `RUNTIME` environment value `cloudrun`; `globalThis.fastly`;
 * `globalThis.caches` without `globalThis.process` (a Workers-style edge); Deno; Node. (Deno is
 * told before `process` is read: Deno has `caches` and `process` too, and on Deno the first read
 * of `process` loads Node's compatibility layer.)
 *
 * @module
 */

/** A runtime this package knows. */
export type Runtime = "cloudrun" | "fastly" | "workerd" | "deno" | "node" | "unknown";

/** What {@linkcode detectRuntime} inspects; tests pass their own. */
export interface RuntimeProbe {
  /** The global object to inspect.
   * @default {globalThis} */
  globals?: Record<string, unknown>;
  /** The `RUNTIME` environment value, when the caller already read it.
   * @default {undefined (read from the environment when permitted)} */
  runtimeEnv?: string | undefined;
}

/**
 * Tells which runtime the code runs on.
 *
 * @param probe What to inspect.
 * @returns The runtime name.
 *
 * @example Detect with an explicit probe
 * ```ts
 * import { detectRuntime } from "./runtime.ts";
 * console.assert(detectRuntime({ globals: { caches: {} } }) === "workerd");
 * console.assert(detectRuntime({ globals: {}, runtimeEnv: "cloudrun" }) === "cloudrun");
 * ```
 */
export function detectRuntime(probe: RuntimeProbe = {}): Runtime {
  const g = probe.globals ?? (globalThis as unknown as Record<string, unknown>);
  const env = "runtimeEnv" in probe ? probe.runtimeEnv : readRuntimeEnv(g);
  if (env === "cloudrun") return "cloudrun";
  if (g["fastly"] !== undefined) return "fastly";
  // (Deno before `process`: on Deno, the first touch of `process` loads Node's compatibility
  // layer, tens of milliseconds. Deno has `caches` and `process` both: it is never workerd.)
  const deno = g["Deno"] !== undefined;
  if (!deno && g["caches"] !== undefined && g["process"] === undefined) return "workerd";
  if (deno) return "deno";
  const proc = g["process"] as { versions?: { node?: string } } | undefined;
  if (proc?.versions?.node !== undefined) return "node";
  return "unknown";
}

function readRuntimeEnv(g: Record<string, unknown>): string | undefined {
  const deno = g["Deno"] as
    | {
      env?: { get(name: string): string | undefined };
      permissions?: { querySync?(d: { name: string; variable: string }): { state: string } };
    }
    | undefined;
  try {
    if (!deno?.env) {
      const proc = g["process"] as { env?: Record<string, string | undefined> } | undefined;
      return proc?.env?.["RUNTIME"];
    }
    const state = deno.permissions?.querySync?.({ name: "env", variable: "RUNTIME" }).state;
    if (state !== undefined && state !== "granted") return undefined;
    return deno.env.get("RUNTIME");
  } catch {
    return undefined;
  }
}
