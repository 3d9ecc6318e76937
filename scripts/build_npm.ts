/**
 * Builds the npm package into `npm/`: `deno task build:npm` (`deno run -A scripts/build_npm.ts`).
 *
 * JSR is out of reach here, so `dnt` is not used: this drives the TypeScript compiler from npm
 * (`typescript@5.9.3`) itself.
 *
 * 1. Reads `deno.json`: name, version, license, exports and the `npm:` entries of its import map.
 * 2. Writes `npm/package.json` (ESM, `exports` with `types` and `import` for each subpath, the
 *    `_all_docs` bin, `engines.node >= 20`, `dependencies` from the import map and nothing else)
 *    and runs `npm install --omit=dev --ignore-scripts` in `npm/`, so the compiler resolves bare
 *    specifiers against exactly the packages a consumer gets.
 * 3. Compiles `mod.ts`, `cli.node.ts`, `cli/`, `drivers/` and `src/` with `module`/
 *    `moduleResolution` `NodeNext`, `rewriteRelativeImportExtensions`, declarations, target
 *    ES2022 and the strict options of `deno.json`, into `npm/` as `.js` + `.d.ts`. Runtime
 *    variants are named `NAME.deno.ts` / `NAME.node.ts`: the Deno-only `.deno.ts` modules are
 *    left out, and an export of one is its `.node.ts` sibling in the package. Bare
 *    specifiers stay bare, but one the import map sends to a subpath (`registry-auth-token/
 *    registry-url` → `npm:registry-auth-token@5.1.1/registry-url.js`) is written as that subpath
 *    (`registry-auth-token/registry-url.js`).
 * 4. Fails when the exports of `deno.json` and of the package differ (`./drivers/deno_kv` is
 *    `drivers/deno_kv.deno.ts` in one and `drivers/deno_kv.node.ts` in the other), or when a
 *    compiled module imports a `.deno.ts` one, copies README.md and LICENSE, and
 *    makes `cli.node.js` executable with its `#!/usr/bin/env node` line.
 *
 * A build whose inputs (sources, `deno.json`, README, LICENSE, this script) are unchanged since
 * the last one is skipped (`npm/node_modules/.all-docs-build-stamp`); `--force` builds anyway. `--out DIR` builds
 * elsewhere.
 *
 * @module
 */

import ts from "npm:typescript@5.9.3";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** The repository root. */
export const ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Folders compiled whole (less Deno-only modules and tests). */
const SOURCE_DIRS = ["src", "cli", "drivers"];
/** Single files compiled. */
const SOURCE_FILES = ["mod.ts", "cli.node.ts"];
/**
 * Runtime variants are named `NAME.deno.ts` / `NAME.node.ts`. A `.deno.ts` module uses `Deno.*`
 * and is never compiled; an export of one in `deno.json` is its `.node.ts` sibling in the
 * package.
 */
const DENO_SUFFIX = ".deno.ts";
/** The suffix of a Deno-only module's Node flavour. */
const NODE_SUFFIX = ".node.ts";
/** The Hono read-replica app, exported as `./replica` once it exists. */
const REPLICA_APP = "./src/replica/app.ts";
/**
 * Types for `node:*` imports, installed next to the build (never a package dependency). 22, not
 * 20: the CLI names `ParseArgsOptionsConfig`, which 20's types do not export; the Node 20 runs of
 * `tests/runtimes/npm_build_test.ts` check that nothing newer than Node 20 is used at run time.
 */
const TYPES_NODE = "@types/node@22.20.7";
/** Where {@linkcode TYPES_NODE} is installed. */
const TOOLS_DIR = join(ROOT, ".tmp", "npm-build-tools");
/** TS7016: a package has JavaScript but no declarations. */
const UNTYPED_PACKAGE = 7016;
/** The package's bin. */
const BIN = { name: "_all_docs", source: "./cli.node.ts" };

/** What the build needs of `deno.json`. */
interface DenoJson {
  name: string;
  version: string;
  license?: string;
  exports: Record<string, string>;
  imports?: Record<string, string>;
  compilerOptions?: Record<string, unknown>;
}

/** An `npm:` import-map target, parsed. */
interface NpmTarget {
  name: string;
  version: string;
  /** The subpath after the version, without its leading slash, or `""`. */
  subpath: string;
}

/** Parses `npm:pkg@1.2.3/sub`, `npm:@scope/pkg@1.2.3` or `npm:/pkg@1.2.3/` (prefix form). */
export function parseNpmSpecifier(target: string): NpmTarget | undefined {
  const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)(?:\/(.*))?$/.exec(target);
  if (!match) return undefined;
  return { name: match[1]!, version: match[2]!, subpath: match[3] ?? "" };
}

/**
 * The bare-specifier rewrites and package dependencies an import map implies. An exact entry
 * `key → npm:pkg@v/sub` emits `key` as `pkg/sub`; a prefix entry `key/ → npm:/pkg@v/sub/` emits
 * `key/x` as `pkg/sub/x`. Any other kind of target (`jsr:`, URLs) cannot be published to npm.
 */
export function importMapPlan(imports: Record<string, string>): {
  dependencies: Record<string, string>;
  rewrite(specifier: string): string;
} {
  const dependencies: Record<string, string> = {};
  const exact = new Map<string, string>();
  const prefixes: [string, string][] = [];
  for (const [key, target] of Object.entries(imports)) {
    const parsed = parseNpmSpecifier(target);
    if (!parsed) {
      throw new Error(
        `Cannot build the npm package: import map entry ${JSON.stringify(key)} maps to ` +
          `${JSON.stringify(target)}, expected an npm: specifier`,
      );
    }
    const known = dependencies[parsed.name];
    if (known !== undefined && known !== parsed.version) {
      throw new Error(
        `Cannot build the npm package: ${parsed.name} is imported at versions ${known} and ` +
          `${parsed.version}`,
      );
    }
    dependencies[parsed.name] = parsed.version;
    const emitted = parsed.subpath ? `${parsed.name}/${parsed.subpath}` : parsed.name;
    if (key.endsWith("/")) prefixes.push([key, emitted.endsWith("/") ? emitted : `${emitted}/`]);
    else exact.set(key, emitted);
  }
  prefixes.sort((a, b) => b[0].length - a[0].length);
  return {
    dependencies: Object.fromEntries(
      Object.entries(dependencies).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
    ),
    rewrite(specifier: string): string {
      const hit = exact.get(specifier);
      if (hit !== undefined) return hit;
      for (const [key, emitted] of prefixes) {
        if (specifier.startsWith(key)) return emitted + specifier.slice(key.length);
      }
      return specifier;
    },
  };
}

/** Whether a module specifier is bare (a package), not relative, absolute or a URL scheme. */
function isBare(specifier: string): boolean {
  return !specifier.startsWith(".") && !specifier.startsWith("/") &&
    !/^[a-z][a-z0-9+.-]*:/i.test(specifier);
}

/** A `.ts` source path (`./x.ts`) as its emitted module (`./x.js`) and declarations. */
function emitted(source: string): { types: string; import: string } {
  const base = source.replace(/\.ts$/, "");
  return { types: `${base}.d.ts`, import: `${base}.js` };
}

/** Whether a module is Deno-only (`NAME.deno.ts`). */
function isDenoOnly(path: string): boolean {
  return path.endsWith(DENO_SUFFIX);
}

/**
 * The module the npm package uses for `source`: its Node flavour (`NAME.node.ts`) when `source`
 * is Deno-only (`NAME.deno.ts`), else `source` itself.
 */
export function nodeFlavour(source: string): string {
  return isDenoOnly(source) ? source.slice(0, -DENO_SUFFIX.length) + NODE_SUFFIX : source;
}

/**
 * The package's exports (subpath → source module): those of `deno.json`, with Deno-only
 * modules replaced by their Node flavour, plus `./replica` once `src/replica/app.ts` exists.
 * Throws when the package's subpaths and `deno.json`'s differ.
 */
export function packageExports(
  denoExports: Record<string, string>,
  replicaExists: boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [subpath, source] of Object.entries(denoExports)) {
    out[subpath] = nodeFlavour(source);
  }
  const wanted = new Set(Object.keys(out));
  if (replicaExists && !wanted.has("./replica")) {
    throw new Error(
      `Cannot build the npm package: exports differ between deno.json and package.json, ` +
        `received ${REPLICA_APP} without a "./replica" export in deno.json ` +
        `(add "./replica": "${REPLICA_APP}")`,
    );
  }
  if (wanted.has("./replica") && out["./replica"] !== REPLICA_APP) {
    throw new Error(
      `Cannot build the npm package: "./replica" of deno.json must be ${REPLICA_APP}, ` +
        `received ${out["./replica"]}`,
    );
  }
  return out;
}

/** Compares two export maps' subpaths; throws naming what one has and the other lacks. */
export function assertSameSubpaths(
  deno: Record<string, unknown>,
  pkg: Record<string, unknown>,
): void {
  const a = new Set(Object.keys(deno));
  const b = new Set(Object.keys(pkg));
  const onlyDeno = [...a].filter((s) => !b.has(s));
  const onlyPkg = [...b].filter((s) => !a.has(s));
  if (onlyDeno.length > 0 || onlyPkg.length > 0) {
    throw new Error(
      `Cannot build the npm package: exports differ between deno.json and package.json, ` +
        `received only in deno.json ${JSON.stringify(onlyDeno)}, ` +
        `only in package.json ${JSON.stringify(onlyPkg)}`,
    );
  }
}

/**
 * Lists the `.ts` files to compile and the Deno-only ones left out, relative to the root with
 * `/` separators, sorted.
 */
async function sourceFiles(): Promise<{ files: string[]; denoOnly: string[] }> {
  const files = [...SOURCE_FILES];
  const denoOnly: string[] = [];
  for (const dir of SOURCE_DIRS) {
    for (const entry of await fsp.readdir(join(ROOT, dir), { recursive: true })) {
      const path = `${dir}/${String(entry).split(sep).join("/")}`;
      if (!path.endsWith(".ts") || path.endsWith(".d.ts")) continue;
      if (/_(test|bench)\.ts$/.test(path)) continue;
      (isDenoOnly(path) ? denoOnly : files).push(path);
    }
  }
  return { files: files.sort(), denoOnly: denoOnly.sort() };
}

/** A hash of every input of the build. */
async function inputsHash(files: string[], denoOnly: string[]): Promise<string> {
  const hash = createHash("sha256");
  const inputs = [
    ...files,
    "deno.json",
    "README.md",
    "LICENSE",
    "scripts/build_npm.ts",
    ...denoOnly,
  ];
  for (const file of inputs.sort()) {
    hash.update(`${file}\0`);
    try {
      hash.update(await fsp.readFile(join(ROOT, file)));
    } catch {
      hash.update("\0missing");
    }
    hash.update("\0");
  }
  return hash.digest("hex");
}

/** Runs a command, inheriting stderr; throws on a non-zero exit. */
async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const { spawn } = await import("node:child_process");
  await new Promise<void>((done, fail) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "ignore", "inherit"] });
    child.on("error", fail);
    child.on(
      "exit",
      (code) =>
        code === 0 ? done() : fail(
          new Error(`Cannot build the npm package: '${cmd} ${args.join(" ")}' exited ${code}`),
        ),
    );
  });
}

/** Installs the `node:*` types the compiler needs, once. */
async function ensureNodeTypes(): Promise<string> {
  const typeRoot = join(TOOLS_DIR, "node_modules", "@types");
  const version = TYPES_NODE.slice(TYPES_NODE.lastIndexOf("@") + 1);
  try {
    const meta = JSON.parse(await fsp.readFile(join(typeRoot, "node", "package.json"), "utf8"));
    if (meta.version === version) return typeRoot;
  } catch {
    // Not installed yet.
  }
  await fsp.mkdir(TOOLS_DIR, { recursive: true });
  await fsp.writeFile(
    join(TOOLS_DIR, "package.json"),
    JSON.stringify({ private: true, devDependencies: { "@types/node": version } }, null, 2),
  );
  await run("npm", [
    "install",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--no-package-lock",
  ], TOOLS_DIR);
  return typeRoot;
}

/** Rewrites module specifiers of imports, exports and `import()` (types too) per the map. */
function specifierTransformer(
  rewrite: (specifier: string) => string,
): ts.TransformerFactory<ts.SourceFile | ts.Bundle> {
  return (context) => {
    const f = context.factory;
    const literal = (node: ts.Expression | undefined): ts.StringLiteral | undefined => {
      if (!node || !ts.isStringLiteral(node) || !isBare(node.text)) return undefined;
      const next = rewrite(node.text);
      return next === node.text ? undefined : f.createStringLiteral(next);
    };
    const visit = (node: ts.Node): ts.Node => {
      if (ts.isImportDeclaration(node)) {
        const spec = literal(node.moduleSpecifier);
        if (spec) {
          return f.updateImportDeclaration(
            node,
            node.modifiers,
            node.importClause,
            spec,
            node.attributes,
          );
        }
      } else if (ts.isExportDeclaration(node)) {
        const spec = literal(node.moduleSpecifier);
        if (spec) {
          return f.updateExportDeclaration(
            node,
            node.modifiers,
            node.isTypeOnly,
            node.exportClause,
            spec,
            node.attributes,
          );
        }
      } else if (ts.isImportTypeNode(node)) {
        const arg = node.argument;
        if (ts.isLiteralTypeNode(arg)) {
          const spec = literal(arg.literal as ts.Expression);
          if (spec) {
            return f.updateImportTypeNode(
              node,
              f.updateLiteralTypeNode(arg, spec),
              node.attributes,
              node.qualifier,
              ts.visitNodes(node.typeArguments, visit, ts.isTypeNode),
              node.isTypeOf,
            );
          }
        }
      } else if (
        ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
      ) {
        const spec = literal(node.arguments[0]);
        if (spec) {
          return f.updateCallExpression(node, node.expression, node.typeArguments, [
            spec,
            ...node.arguments.slice(1),
          ]);
        }
      }
      return ts.visitEachChild(node, visit, context);
    };
    return (root) => ts.visitNode(root, visit) as ts.SourceFile | ts.Bundle;
  };
}

/** Compiles `files` into `outDir`; throws with the formatted diagnostics on any error. */
function compile(
  files: string[],
  outDir: string,
  typeRoot: string,
  deno: DenoJson,
  rewrite: (specifier: string) => string,
): void {
  const strictFromDeno: ts.CompilerOptions = {};
  for (
    const key of [
      "strict",
      "noUncheckedIndexedAccess",
      "exactOptionalPropertyTypes",
      "noImplicitOverride",
      "noImplicitReturns",
      "noFallthroughCasesInSwitch",
    ] as const
  ) {
    const value = deno.compilerOptions?.[key];
    if (typeof value === "boolean") strictFromDeno[key] = value;
  }
  const options: ts.CompilerOptions = {
    ...strictFromDeno,
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    rewriteRelativeImportExtensions: true,
    allowImportingTsExtensions: true,
    declaration: true,
    lib: ["lib.esnext.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts", "lib.dom.asynciterable.d.ts"],
    types: ["node"],
    typeRoots: [typeRoot],
    skipLibCheck: true,
    rootDir: ROOT,
    outDir,
    newLine: ts.NewLineKind.LineFeed,
  };
  const host = ts.createCompilerHost(options);
  // The sources have no package.json of their own: a virtual one makes them ES modules.
  const rootPackageJson = join(ROOT, "package.json");
  const virtualPackageJson = JSON.stringify({ type: "module" });
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.fileExists = (path) => resolve(path) === rootPackageJson || fileExists(path);
  host.readFile = (path) => {
    const full = resolve(path);
    if (full === rootPackageJson) return virtualPackageJson;
    return readFile(path);
  };
  // Bare specifiers resolve as the import map says, from the package's own node_modules.
  const fromPackage = join(outDir, "__resolve__.ts");
  const cache = ts.createModuleResolutionCache(ROOT, (s) => s, options);
  host.resolveModuleNameLiterals = (literals, containingFile, redirect, opts, sourceFile) =>
    literals.map((literal) => {
      const text = literal.text;
      const mode = ts.getModeForUsageLocation(sourceFile, literal, opts);
      if (isBare(text) && !text.startsWith("node:")) {
        return ts.resolveModuleName(rewrite(text), fromPackage, opts, host, cache, redirect, mode);
      }
      return ts.resolveModuleName(text, containingFile, opts, host, cache, redirect, mode);
    });
  const program = ts.createProgram({
    rootNames: files.map((file) => join(ROOT, file)),
    options,
    host,
  });
  const transformer = specifierTransformer(rewrite);
  const result = program.emit(undefined, undefined, undefined, undefined, {
    before: [transformer as ts.TransformerFactory<ts.SourceFile>],
    afterDeclarations: [transformer],
  });
  // Like Deno, an npm package without types is `any` rather than an error.
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics]
    .filter((d) => d.code !== UNTYPED_PACKAGE);
  if (diagnostics.length > 0) {
    throw new Error(
      "Cannot build the npm package: TypeScript reported errors\n" +
        ts.formatDiagnosticsWithColorAndContext(diagnostics, {
          getCanonicalFileName: (s) => s,
          getCurrentDirectory: () => ROOT,
          getNewLine: () => "\n",
        }),
    );
  }
  const outside = program.getSourceFiles()
    .map((s) => s.fileName)
    .filter((name) => !name.includes("/node_modules/") && !name.startsWith(TOOLS_DIR))
    .map((name) => relative(ROOT, name).split(sep).join("/"))
    .filter(isDenoOnly);
  if (outside.length > 0) {
    throw new Error(
      `Cannot build the npm package: Deno-only modules are imported: ${outside.join(", ")}`,
    );
  }
}

/** Options of {@linkcode buildNpm}. */
export interface BuildOptions {
  /** The output folder (default `npm/` at the root). */
  outDir?: string;
  /** Build even when the inputs are unchanged. */
  force?: boolean;
  /** Lines of progress go here (default stderr). */
  log?: (line: string) => void;
}

/** What {@linkcode buildNpm} did. */
export interface BuildResult {
  /** The output folder. */
  outDir: string;
  /** Whether it was built now (`false`: the last build was still current). */
  built: boolean;
  /** The generated package.json. */
  packageJson: Record<string, unknown>;
}

/** Builds the npm package (see the module doc). */
export async function buildNpm(options: BuildOptions = {}): Promise<BuildResult> {
  const outDir = resolve(options.outDir ?? join(ROOT, "npm"));
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = performance.now();
  const deno = JSON.parse(await fsp.readFile(join(ROOT, "deno.json"), "utf8")) as DenoJson;
  const { files, denoOnly } = await sourceFiles();
  const stamp = await inputsHash(files, denoOnly);
  const stampFile = join(outDir, "node_modules", ".all-docs-build-stamp");
  if (!options.force && existsSync(join(outDir, "node_modules"))) {
    try {
      if ((await fsp.readFile(stampFile, "utf8")) === stamp) {
        const packageJson = JSON.parse(await fsp.readFile(join(outDir, "package.json"), "utf8"));
        log(`npm package in ${relative(ROOT, outDir) || "."} is up to date`);
        return { outDir, built: false, packageJson };
      }
    } catch {
      // No stamp: build.
    }
  }

  const plan = importMapPlan(deno.imports ?? {});
  const replicaExists = existsSync(join(ROOT, REPLICA_APP));
  const sources = packageExports(deno.exports, replicaExists);
  const exportsMap: Record<string, { types: string; import: string }> = {};
  for (const [subpath, source] of Object.entries(sources)) exportsMap[subpath] = emitted(source);
  assertSameSubpaths(deno.exports, exportsMap);
  for (const source of Object.values(sources)) {
    const file = source.slice(2);
    if (!files.includes(file)) {
      throw new Error(`Cannot build the npm package: export ${source} is not compiled`);
    }
  }

  const packageJson: Record<string, unknown> = {
    name: deno.name,
    version: deno.version,
    description: "Mirror npm registry metadata at scale: _all_docs partitions, packuments, " +
      "pluggable storage.",
    license: deno.license ?? "MIT",
    type: "module",
    exports: exportsMap,
    main: exportsMap["."]?.import,
    types: exportsMap["."]?.types,
    bin: { [BIN.name]: emitted(BIN.source).import },
    engines: { node: ">=20" },
    dependencies: plan.dependencies,
  };

  // Keep the installed node_modules between builds; everything else is rebuilt.
  await fsp.mkdir(outDir, { recursive: true });
  await fsp.rm(stampFile, { force: true });
  for (const entry of await fsp.readdir(outDir)) {
    if (entry !== "node_modules") {
      await fsp.rm(join(outDir, entry), { recursive: true, force: true });
    }
  }
  await fsp.writeFile(join(outDir, "package.json"), `${JSON.stringify(packageJson, null, 2)}\n`);
  await run("npm", [
    "install",
    "--omit=dev",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--no-package-lock",
  ], outDir);
  const installed = performance.now();

  const typeRoot = await ensureNodeTypes();
  compile(files, outDir, typeRoot, deno, plan.rewrite);
  const compiled = performance.now();

  const bin = join(outDir, emitted(BIN.source).import);
  const binText = await fsp.readFile(bin, "utf8");
  if (!binText.startsWith("#!")) await fsp.writeFile(bin, `#!/usr/bin/env node\n${binText}`);
  await fsp.chmod(bin, 0o755);
  for (const file of ["README.md", "LICENSE"]) {
    await fsp.copyFile(join(ROOT, file), join(outDir, file));
  }
  await fsp.writeFile(stampFile, stamp);
  log(
    `built npm package ${deno.name}@${deno.version} in ${relative(ROOT, outDir) || "."}: ` +
      `${files.length} modules, ${Object.keys(exportsMap).length} exports ` +
      `(npm install ${((installed - started) / 1000).toFixed(1)}s, ` +
      `tsc ${((compiled - installed) / 1000).toFixed(1)}s)`,
  );
  return { outDir, built: true, packageJson };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { out: { type: "string" }, force: { type: "boolean" } },
  });
  try {
    const buildOptions: BuildOptions = { force: values.force === true };
    if (values.out !== undefined) buildOptions.outDir = values.out;
    await buildNpm(buildOptions);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
