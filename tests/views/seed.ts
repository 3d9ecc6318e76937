/**
 * Packuments for the view tests: small hand-written ones that the upstream examples need
 * (install scripts with and without node-gyp, dependencies, publish times and integrities),
 * and helpers that store documents in a cache as `packument fetch` would.
 *
 * @module
 */

import type { Cache } from "../../src/storage/cache.ts";
import { packumentKey } from "../../src/storage/keys.ts";

const encoder = new TextEncoder();

/** A full packument with the given versions (each `{ scripts?, dependencies?, ... }`). */
export function packument(
  name: string,
  versions: Record<string, Record<string, unknown>>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const list = Object.keys(versions);
  const time: Record<string, string> = {
    created: "2015-01-01T00:00:00.000Z",
    modified: `2024-0${Math.min(list.length, 9)}-01T00:00:00.000Z`,
  };
  list.forEach((version, i) => {
    time[version] = `20${15 + i}-06-01T00:00:00.000Z`;
  });
  const docs: Record<string, unknown> = {};
  for (const [version, fields] of Object.entries(versions)) {
    docs[version] = {
      name,
      version,
      ...fields,
      dist: {
        integrity: `sha512-${name}-${version}`,
        tarball: `https://registry.example.test/${name}/-/${name}-${version}.tgz`,
      },
    };
  }
  return {
    _id: name,
    name,
    "dist-tags": { latest: list.at(-1) },
    versions: docs,
    time,
    license: "MIT",
    ...extra,
  };
}

/** The packuments of the examples, by name. */
export const EXAMPLE_PACKUMENTS: Readonly<Record<string, Record<string, unknown>>> = {
  "native-addon": packument("native-addon", {
    "1.0.0": { scripts: { install: "node-gyp rebuild" }, dependencies: { "node-gyp": "^9.0.0" } },
    "1.1.0": {
      scripts: { install: "node-gyp rebuild" },
      dependencies: { "node-gyp": "^10.0.0", nan: "^2.0.0" },
    },
  }),
  "prebuilt-addon": packument("prebuilt-addon", {
    "2.0.0": {
      scripts: { install: "prebuild-install || node-gyp rebuild" },
      dependencies: { "prebuild-install": "^7.0.0" },
      devDependencies: { "node-gyp": "^10.0.0" },
    },
  }),
  "sketchy-helper": packument("sketchy-helper", {
    "0.0.1": { dependencies: { "left-pad": "^1.0.0" } },
    "0.0.2": {
      scripts: { postinstall: "node collect.js" },
      dependencies: { "left-pad": "^1.3.0", ms: "^2.0.0" },
    },
  }),
  "tidy-lib": packument("tidy-lib", {
    "3.0.0": { dependencies: { ms: "^2.1.0" }, devDependencies: { mocha: "^10.0.0" } },
    "3.1.0": {
      dependencies: { ms: "^2.1.3", debug: "^4.0.0" },
      devDependencies: { mocha: "^10.0.0" },
    },
  }, { license: "ISC" }),
  "old-preinstaller": packument("old-preinstaller", {
    "0.1.0": { scripts: { preinstall: "sh setup.sh" } },
  }),
};

/**
 * Stores documents under an origin as 200 entries (objects as JSON, strings and bytes as
 * they are).
 */
export async function seed(
  cache: Cache,
  origin: string,
  docs: Record<string, unknown> | Iterable<[string, unknown]>,
  representation: "full" | "abbreviated" = "full",
): Promise<void> {
  const entries = Symbol.iterator in docs
    ? [...docs as Iterable<[string, unknown]>]
    : Object.entries(docs);
  for (const [name, doc] of entries) {
    const body = doc instanceof Uint8Array
      ? doc
      : encoder.encode(typeof doc === "string" ? doc : JSON.stringify(doc));
    await cache.put(packumentKey(origin, name, representation), body, { status: 200 });
  }
}
