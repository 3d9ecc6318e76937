/**
 * Where packuments come from: `--registry` / `ALL_DOCS_REGISTRY`, else npm's own configuration
 * (`npm_config_registry`, project and user `.npmrc`, per-scope `@scope:registry=`), read once
 * with `@pnpm/npm-conf`, npm's config loader; each registry's credential is found by the
 * `registry-auth-token` package from the same configuration: a bearer token
 * (`//host/:_authToken=`), else Basic auth (`//host/:username=` + `//host/:_password=`, the
 * password base64-encoded, or `//host/:_auth=`, base64 of `user:password`). A credential is sent
 * only to the registry it is configured for (a top-level `_auth` names no registry and is sent
 * nowhere, as npm 9 refuses it), and is never printed. A registry URL from npm's configuration
 * is checked like `--registry` (http(s), no user info, query or fragment; shown masked) when
 * first used, before its first request.
 *
 * Both packages are loaded when first needed: on Deno, commands that never ask a registry
 * (`changes follow` without `--packuments`, `cache ...`, `partition ...`) start without them.
 * On Node, `cli.node.ts` reads npm's configuration first for every command (its proxy and
 * `cafile` settings).
 *
 * @module
 */

import { originKey } from "../src/storage/keys.ts";
import type { RegistryTarget } from "../src/jobs/fetch_packuments.ts";
import { checkServiceUrl, type GlobalOptions } from "./options.ts";

function slash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

/** npm's configuration as this process found it. */
export interface NpmConfig {
  /** One setting, by npm's key (`registry`, `//host/:_authToken`, `https-proxy`, ...). */
  get(key: string): unknown;
}

/** `registry-auth-token`'s lookup. */
type GetAuthToken = (
  url: string,
  options: { recursive: boolean; npmrc: Record<string, unknown> },
) => { token: string; type: string } | undefined;

let loaded: Promise<{ config: NpmConfig; getAuthToken: GetAuthToken }> | undefined;

/** Loads both packages and reads npm's configuration, once. */
function load(): Promise<{ config: NpmConfig; getAuthToken: GetAuthToken }> {
  return loaded ??= (async () => {
    const [conf, auth] = await Promise.all([
      import("@pnpm/npm-conf"),
      import("registry-auth-token"),
    ]);
    return { config: conf.default().config, getAuthToken: auth.default as GetAuthToken };
  })();
}

/**
 * npm's configuration (environment, project and user `.npmrc`, npm's defaults), read on first
 * use and then shared by everything in this process that needs it (registries, tokens, proxies).
 *
 * @returns The configuration.
 */
export async function npmConfig(): Promise<NpmConfig> {
  return (await load()).config;
}

/** The registry lookups for the options: per package name, and per registry URL. */
export interface RegistryLookup {
  /** The registry a package name is fetched from (scoped registries apply), with its token. */
  forName(name: string): RegistryTarget;
  /** A registry URL's target, with the token configured for it. */
  forUrl(url: string): RegistryTarget;
  /** The default registry: `--registry`, else npm's `registry` setting. */
  defaultTarget(): RegistryTarget;
}

/** Builds the registry lookups for the options; npm's configuration is read once. */
export async function registryLookup(options: GlobalOptions): Promise<RegistryLookup> {
  const { config, getAuthToken } = await load();
  const setting = (key: string) => {
    const value = config.get(key);
    return typeof value === "string" && value !== ""
      ? checkServiceUrl(`npm config '${key}'`, value)
      : undefined;
  };
  // registry-auth-token reads keys through `npmrc[key]`: answer from the loaded configuration,
  // except a top-level `_auth`, which it would send to every registry.
  const npmrc = new Proxy({}, {
    get: (_target, key) => key === "_auth" ? undefined : config.get(String(key)),
  });
  const targets = new Map<string, RegistryTarget>();
  const forUrl = (raw: string) => {
    const url = slash(raw);
    let target = targets.get(url);
    if (!target) {
      let token: string | undefined;
      let scheme: "Bearer" | "Basic" | undefined;
      try {
        const auth = getAuthToken(url, { recursive: true, npmrc });
        if (auth && auth.token && (auth.type === "Bearer" || auth.type === "Basic")) {
          token = auth.token;
          scheme = auth.type;
        }
      } catch {
        token = undefined;
      }
      target = { url, originKey: originKey(url), token, scheme };
      targets.set(url, target);
    }
    return target;
  };
  let fallback: string | undefined;
  // An explicit --registry replaces the default registry; scoped registries still apply.
  const defaultUrl = () => fallback ??= slash(options.registry ?? setting("registry") ?? "");
  return {
    forName(name: string) {
      const scoped = name.startsWith("@")
        ? setting(`${name.slice(0, name.indexOf("/"))}:registry`)
        : undefined;
      return forUrl(scoped ? slash(scoped) : defaultUrl());
    },
    forUrl,
    defaultTarget: () => forUrl(defaultUrl()),
  };
}

/** Builds the per-name registry lookup for the options; npm's configuration is read once. */
export async function registryResolver(
  options: GlobalOptions,
): Promise<(name: string) => RegistryTarget> {
  const lookup = await registryLookup(options);
  return (name) => lookup.forName(name);
}
