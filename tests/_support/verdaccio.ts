/**
 * Runs the real npm registry `verdaccio@6.8.0` under Node, with no uplinks (it never proxies
 * anywhere), for tests that check the client against a registry that is not our own fixture.
 * Packages get into it the way they get into any registry: the real npm CLI publishes them.
 *
 * It is installed by npm, never by this harness:
 *
 * ```sh
 * npm install --ignore-scripts --no-audit --no-fund --prefix tests/peers
 * ```
 *
 * Behaviour of verdaccio 6.8.0 that matters to a client, measured:
 *
 * - `GET /{name}` (scoped as `/@scope%2fname`, `/@scope%2Fname` or `/@scope/name`) answers the
 *   full document pretty-printed (two-space indent, trailing newline) as
 *   `application/json; charset=utf-8`, with `_id`, `_rev`, `name`, `versions`, `time`
 *   (`created`, `modified`, one entry a version), `dist-tags`, `users`, `readme` and an empty
 *   `_attachments`; tarball URLs point back at verdaccio itself.
 * - The abbreviated ("corgi") document is served only when the `Accept` type of the highest
 *   quality is `application/vnd.npm.install-v1+json` (npm's own header
 *   `application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, *\/*` gets it), with
 *   content type `application/vnd.npm.install-v1+json; charset=utf-8`. `Accept: *\/*` alone (what
 *   `fetch` sends by default), `application/json`, or `application/json, <corgi type>` get the
 *   full document.
 * - The corgi document has `name`, `dist-tags`, `versions`, `modified` and, unlike the registry,
 *   the whole `time` object (for pnpm); each version keeps `name`, `version`, `description`
 *   (also unlike the registry), `deprecated`, `bin`, `dist`, `engines`, `cpu`, `os`, `funding`,
 *   `directories`, the five dependency maps, `_hasShrinkwrap` and `hasInstallScript` (always a
 *   boolean) where present.
 * - Every 2xx JSON answer carries a strong `ETag`, `"<md5 of the uncompressed body>"`, so full
 *   and corgi differ, and it is stable while the package does not change; `If-None-Match` with
 *   it (or `W/` plus it) answers 304 with no body (Express freshness). There is no
 *   `Last-Modified` and no `Cache-Control` on documents.
 * - Bodies of 1 KiB or more are compressed when the client accepts it (`fetch` does: brotli),
 *   then sent chunked, without `Content-Length`.
 * - Unknown packages answer 404 `{"error":"no such package available"}` (no ETag).
 * - With `access: $authenticated`, a request without a token, or with a wrong one, answers 401
 *   `{"error":"authorization required to access package NAME"}` with `WWW-Authenticate: Basic,
 *   Bearer` (unknown names too, so nothing leaks); `Authorization: Bearer <token>` with the
 *   token from `PUT /-/user/org.couchdb.user:NAME` works.
 *
 * @module
 */

import { PEERS_INSTALL_COMMAND } from "./pouchdb_server.ts";

import { freePort, run, spawnNode, waitUntilUp } from "./spawn.ts";

export { PEERS_INSTALL_COMMAND };

const root = new URL("../../", import.meta.url);
/** The verdaccio entry point, installed by `npm install --prefix tests/peers`. */
export const VERDACCIO_BIN: string = new URL(
  "tests/peers/node_modules/verdaccio/bin/verdaccio",
  root,
).pathname;

/** Options of {@linkcode startVerdaccio}. */
export interface VerdaccioOptions {
  /** Require a token to read packages too (`access: $authenticated`); default false. */
  privateAccess?: boolean;
}

/** A minimal package manifest for {@linkcode Verdaccio.packageDir}. */
export interface TestPackage {
  /** The package name, scoped or not. */
  name: string;
  /** Its version. */
  version: string;
  /** Any further `package.json` fields (dependencies, description, ...). */
  [field: string]: unknown;
}

/** A running verdaccio; see {@linkcode startVerdaccio}. */
export interface Verdaccio {
  /** The registry URL with a trailing slash, `http://127.0.0.1:PORT/`. */
  readonly url: string;
  /** A token of the user the harness created (for `Authorization: Bearer`). */
  readonly token: string;
  /** Path of an `.npmrc` with `registry=` and `//127.0.0.1:PORT/:_authToken=TOKEN`. */
  readonly npmrc: string;
  /**
   * Publishes the package in `dir` with the real npm CLI
   * (`npm publish --registry URL --userconfig NPMRC`).
   *
   * @throws If npm fails; its output is in the message.
   */
  publish(dir: string): Promise<void>;
  /** Writes `package.json` and `index.js` into a new folder below the harness's temp dir. */
  packageDir(manifest: TestPackage): Promise<string>;
  /** What verdaccio printed so far (the last 64 KiB of stdout and stderr). */
  output(): string;
  /** Stops verdaccio, waits for it to exit and removes its temporary directory. */
  close(): Promise<void>;
}

/** The verdaccio configuration (YAML; paths are written as JSON strings, which YAML reads). */
function configYaml(dir: string, port: number, privateAccess: boolean): string {
  const q = JSON.stringify;
  return [
    `storage: ${q(`${dir}/storage`)}`,
    "uplinks: {}",
    "packages:",
    "  '**':",
    `    access: ${privateAccess ? "$authenticated" : "$all"}`,
    "    publish: $authenticated",
    "auth:",
    "  htpasswd:",
    `    file: ${q(`${dir}/htpasswd`)}`,
    "    max_users: 100",
    `listen: 127.0.0.1:${port}`,
    "log: { type: stdout, format: pretty, level: warn }",
    "web:",
    "  enable: false",
    "",
  ].join("\n");
}

/**
 * Starts verdaccio on a free port of 127.0.0.1 with its configuration, storage and htpasswd
 * file in a new temporary directory, waits until `GET /-/ping` answers, and creates a user
 * through npm's adduser protocol (`PUT /-/user/org.couchdb.user:NAME`) to get a token.
 *
 * @throws If verdaccio is not installed, does not come up within 30 s (its output is in the
 *   message), or refuses to create the user.
 */
export async function startVerdaccio(options: VerdaccioOptions = {}): Promise<Verdaccio> {
  try {
    await Deno.stat(VERDACCIO_BIN);
  } catch {
    throw new Error(`verdaccio is not installed; run: ${PEERS_INSTALL_COMMAND}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "verdaccio_" });
  const port = freePort();
  const config = `${dir}/config.yaml`;
  await Deno.writeTextFile(config, configYaml(dir, port, options.privateAccess ?? false));
  const peer = spawnNode([VERDACCIO_BIN, "--config", config], dir);
  const { output, close } = peer;

  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitUntilUp(peer, "verdaccio", `${url}-/ping`, 100);

    const user = "tester";
    const password = crypto.randomUUID();
    const created = await fetch(`${url}-/user/org.couchdb.user:${user}`, {
      method: "PUT",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({
        _id: `org.couchdb.user:${user}`,
        name: user,
        password,
        email: `${user}@example.test`,
        type: "user",
        roles: [],
        date: new Date().toISOString(),
      }),
    });
    const body = await created.json() as { token?: unknown };
    if (created.status !== 201 || typeof body.token !== "string") {
      throw new Error(`adduser: ${created.status} ${JSON.stringify(body)}\n${output()}`);
    }
    const token = body.token;
    const npmrc = `${dir}/.npmrc`;
    await Deno.writeTextFile(
      npmrc,
      [
        `registry=${url}`,
        `//127.0.0.1:${port}/:_authToken=${token}`,
        "update-notifier=false",
        "audit=false",
        "fund=false",
        "",
      ].join("\n"),
    );

    let packages = 0;
    return {
      url,
      token,
      npmrc,
      async publish(packageDir: string): Promise<void> {
        const result = await run("npm", [
          "publish",
          "--registry",
          url,
          "--userconfig",
          npmrc,
        ], {
          cwd: packageDir,
          env: {
            npm_config_update_notifier: "false",
            npm_config_cache: `${dir}/npm-cache`,
            NO_UPDATE_NOTIFIER: "1",
          },
        });
        if (result.code !== 0) {
          throw new Error(
            `npm publish in ${packageDir} failed (${result.code})\nstdout: ${result.stdout}\n` +
              `stderr: ${result.stderr}\nverdaccio ${output()}`,
          );
        }
      },
      async packageDir(manifest: TestPackage): Promise<string> {
        const path = `${dir}/packages/${packages++}`;
        await Deno.mkdir(path, { recursive: true });
        const full = { main: "index.js", license: "MIT", ...manifest };
        await Deno.writeTextFile(`${path}/package.json`, JSON.stringify(full, null, 2) + "\n");
        await Deno.writeTextFile(
          `${path}/index.js`,
          `module.exports = ${JSON.stringify(`${manifest.name}@${manifest.version}`)};\n`,
        );
        return path;
      },
      output,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
