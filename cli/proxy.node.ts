/**
 * Proxies and certificate authorities for the Node CLI. Deno's `fetch` honours `HTTPS_PROXY`,
 * `HTTP_PROXY` and `NO_PROXY` itself; Node 20's global `fetch` honours none of them, so the Node
 * CLI installs an `undici` dispatcher that does, with npm's own settings on top:
 *
 * - `https-proxy` (npm config), else `https_proxy` / `HTTPS_PROXY`, else the HTTP proxy, for
 *   https URLs;
 * - `proxy` (npm config), else `http_proxy` / `HTTP_PROXY`, for http URLs;
 * - `noproxy` (npm config), else `no_proxy` / `NO_PROXY`: hosts reached directly (comma or space
 *   separated; `host`, `.domain` or `*.domain` (the domain and its subdomains), `host:port`, or
 *   `*` for every host);
 * - `cafile` (npm config): a PEM file whose certificates replace the default ones, as in npm.
 *
 * Nothing is installed when none of these is set, and `undici` (a hundred modules) is loaded
 * only when something is (`./proxy_dispatcher.node.ts`).
 *
 * @module
 */

import { readFileSync } from "node:fs";

/** What the dispatcher is built from. */
export interface NetworkSettings {
  /** The proxy for http URLs. */
  httpProxy?: string;
  /** The proxy for https URLs. */
  httpsProxy?: string;
  /** Hosts reached without a proxy, as in `NO_PROXY`. */
  noProxy?: string;
  /** The `cafile` path. */
  cafile?: string;
}

function text(value: unknown): string | undefined {
  if (Array.isArray(value)) value = value.join(",");
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

/**
 * The settings from npm's configuration (`get`), else the environment.
 *
 * @param env The environment variables.
 * @param get Reads an npm setting.
 * @returns The settings that are set.
 */
export function networkSettings(
  env: Record<string, string | undefined>,
  get: (key: string) => unknown,
): NetworkSettings {
  const settings: NetworkSettings = {};
  const httpProxy = text(get("proxy")) ?? text(env["http_proxy"]) ?? text(env["HTTP_PROXY"]);
  const httpsProxy = text(get("https-proxy")) ?? text(env["https_proxy"]) ??
    text(env["HTTPS_PROXY"]) ?? httpProxy;
  const noProxy = text(get("noproxy")) ?? text(get("no-proxy")) ?? text(env["no_proxy"]) ??
    text(env["NO_PROXY"]);
  const cafile = text(get("cafile"));
  if (httpProxy !== undefined) settings.httpProxy = httpProxy;
  if (httpsProxy !== undefined) settings.httpsProxy = httpsProxy;
  if (noProxy !== undefined) settings.noProxy = noProxy;
  if (cafile !== undefined) settings.cafile = cafile;
  return settings;
}

/**
 * Whether `NO_PROXY`-style `noProxy` sends `hostname:port` directly.
 *
 * @param noProxy The list.
 * @param hostname The host, lower case (IPv6 in brackets).
 * @param port The port.
 * @returns `true` to bypass the proxy.
 */
export function bypassesProxy(noProxy: string, hostname: string, port: number): boolean {
  for (const raw of noProxy.toLowerCase().split(/[,\s]+/)) {
    if (raw === "") continue;
    if (raw === "*") return true;
    const match = /^(.*?)(?::(\d+))?$/.exec(raw)!;
    if (match[2] !== undefined && Number(match[2]) !== port) continue;
    const entry = match[1]!.replace(/^\*?\.?/, "");
    if (entry !== "" && (hostname === entry || hostname.endsWith(`.${entry}`))) return true;
  }
  return false;
}

/**
 * Makes `fetch` use the proxies and `cafile` of `settings`, when any is set.
 *
 * @param settings From {@linkcode networkSettings}.
 * @returns Whether a dispatcher was installed.
 * @throws {Error} When the `cafile` cannot be read.
 */
export async function installNetworkSettings(settings: NetworkSettings): Promise<boolean> {
  if (
    settings.httpProxy === undefined && settings.httpsProxy === undefined &&
    settings.cafile === undefined
  ) return false;
  let ca: string | undefined;
  if (settings.cafile !== undefined) {
    try {
      ca = readFileSync(settings.cafile, "utf8");
    } catch (error) {
      throw new Error(
        `Cannot read npm config 'cafile' (${settings.cafile}): ${(error as Error).message}`,
      );
    }
  }
  const { installProxyDispatcher } = await import("./proxy_dispatcher.node.ts");
  installProxyDispatcher(settings, ca);
  return true;
}
