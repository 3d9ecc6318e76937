import assert from "node:assert/strict";
import { Cache } from "../../src/storage/cache.ts";
import { packumentKey } from "../../src/storage/keys.ts";
import { createReplicaApp } from "../../src/replica/app.ts";
import { MemoryDriver } from "../../drivers/memory.ts";

Deno.test("replica app: tarball paths answer 404 saying tarballs are not served", async (t) => {
  const cache = await Cache.open(new MemoryDriver(), { bloom: false });
  const doc = { name: "ms", versions: {} };
  await cache.put(packumentKey("npm", "ms"), new TextEncoder().encode(JSON.stringify(doc)), {
    status: 200,
  });
  const app = createReplicaApp({ cache, packumentOrigin: () => "npm" });
  const paths = [
    "/ms/-/ms-1.0.0.tgz",
    "/left-pad/-/left-pad-1.3.0.tgz",
    "/@babel/core/-/core-7.0.0.tgz",
    "/@babel%2fcore/-/core-7.0.0.tgz",
    "/@babel%2Fcore/-/core-7.0.0.tgz",
  ];
  for (const method of ["GET", "HEAD"]) {
    await t.step(`${method} answers 404 with a JSON reason`, async () => {
      for (const path of paths) {
        const response = await app.request(path, { method });
        assert.equal(response.status, 404, path);
        assert.equal(response.headers.get("content-type"), "application/json", path);
        if (method === "GET") {
          const body = await response.json();
          assert.equal(body.error, "Not found", path);
          assert.match(body.reason, /Tarballs are not served/, path);
        } else await response.body?.cancel();
      }
    });
  }
  await t.step("package documents and bad names are answered as before", async () => {
    const ok = await app.request("/ms", { headers: { accept: "application/json" } });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    const bad = await app.request("/ms/nope");
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });
});
