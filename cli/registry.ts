/**
 * Where packuments come from: `--registry` / `ALL_DOCS_REGISTRY`, else npm's own configuration
 * (`npm_config_registry`, project and user `.npmrc`, per-scope `@scope:registry=`), read through
 * the `registry-auth-token` package, which also finds each registry's bearer token. A token is
 * sent only to the registry it is configured for, and is never printed.
 *
 * @module
 */

import getAuthToken from "registry-auth-token";
import getRegistryUrl from "registry-auth-token/registry-url";
import { originKey } from "../src/keys.ts";
import type { RegistryTarget } from "../src/packument_fetch.ts";
import type { GlobalOptions } from "./options.ts";

function slash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

/** Builds the per-name registry lookup for the options, memoized per scope. */
export function registryResolver(options: GlobalOptions): (name: string) => RegistryTarget {
  const byScope = new Map<string, RegistryTarget>();
  const tokenFor = (url: string) => {
    try {
      const auth = getAuthToken(url, { recursive: true });
      return auth?.type === "Bearer" ? auth.token : undefined;
    } catch {
      return undefined;
    }
  };
  return (name: string) => {
    const scope = name.startsWith("@") ? name.slice(0, name.indexOf("/")) : "";
    let target = byScope.get(scope);
    if (!target) {
      const scoped = scope ? getRegistryUrl(scope) : undefined;
      const fallback = getRegistryUrl();
      // An explicit --registry replaces the default registry; scoped registries still apply.
      const url = slash(
        scoped && scoped !== fallback ? scoped : options.registry ?? fallback,
      );
      target = { url, originKey: originKey(url), token: tokenFor(url) };
      byScope.set(scope, target);
    }
    return target;
  };
}
