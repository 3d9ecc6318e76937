import assert from "node:assert/strict";
import { loadWithPeers } from "../../cli/peers.ts";

function notFound(name: string): Error {
  return Object.assign(new Error(`Cannot find package '${name}' imported from /app/cli.node.js`), {
    code: "ERR_MODULE_NOT_FOUND",
  });
}

Deno.test("loadWithPeers() names a peer that is not installed, and the install line", async () => {
  const peers = ["hono", "@hono/node-server"];
  await assert.rejects(
    loadWithPeers("serve", peers, () => Promise.reject(notFound("@hono/node-server"))),
    {
      message: "serve needs the packages hono and @hono/node-server, and '@hono/node-server' " +
        "is not installed: npm install hono @hono/node-server",
    },
  );
  await assert.rejects(
    loadWithPeers("The kv storage", ["@deno/kv"], () => Promise.reject(notFound("@deno/kv"))),
    { message: /^The kv storage needs the package @deno\/kv, and '@deno\/kv' is not installed/ },
  );
  assert.deepEqual(await loadWithPeers("serve", peers, () => Promise.resolve({ ok: 1 })), {
    ok: 1,
  });
});

Deno.test("loadWithPeers() keeps the error of a peer that is there but fails to load, or of another package", async () => {
  // An installed package of the wrong version: its name is in the message, but it was found.
  const wrong = new SyntaxError(
    "The requested module '@deno/kv' does not provide an export named 'openKv'",
  );
  await assert.rejects(
    loadWithPeers("The kv storage", ["@deno/kv"], () => Promise.reject(wrong)),
    (error) => error === wrong,
  );
  // Not found, but not one of the peers.
  const other = notFound("left-pad");
  await assert.rejects(
    loadWithPeers("serve", ["hono"], () => Promise.reject(other)),
    (error) => error === other,
  );
});
