import assert from "node:assert/strict";
import {
  ACCEPT,
  acceptsAbbreviated,
  CORGI_MEDIA_TYPE,
  FULL_MEDIA_TYPE,
} from "../../src/npm/media_types.ts";

Deno.test("ACCEPT asks for each representation by its media type", () => {
  assert.deepEqual(ACCEPT, { full: FULL_MEDIA_TYPE, abbreviated: CORGI_MEDIA_TYPE });
  assert.equal(CORGI_MEDIA_TYPE, "application/vnd.npm.install-v1+json");
  assert.equal(FULL_MEDIA_TYPE, "application/json");
});

Deno.test("acceptsAbbreviated() follows npm's registry: the corgi type or */* anywhere", () => {
  for (
    const accept of [
      CORGI_MEDIA_TYPE,
      "Application/VND.npm.install-v1+JSON",
      "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
      "*/*",
      "text/html, */*;q=0.1",
    ]
  ) {
    assert.ok(acceptsAbbreviated(accept), accept);
  }
  for (const accept of [FULL_MEDIA_TYPE, "application/*", "", null, undefined]) {
    assert.ok(!acceptsAbbreviated(accept), String(accept));
  }
});
