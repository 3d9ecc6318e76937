import assert from "node:assert/strict";
import { runCli } from "../_support/run_cli.ts";
import { generatePackument } from "../_support/packuments.ts";
import {
  type Fault,
  onlyName,
  type RegistryFaultPlan,
  startRegistryFixture,
} from "../_support/registry_fixture.ts";

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines.at(-1)!);
}

/** Faults for the first request of a name, then a normal answer. */
function firstOnly(name: string, fault: Fault): RegistryFaultPlan {
  return onlyName(name, ({ n }) => n === 0 ? fault : undefined);
}

function both(...plans: RegistryFaultPlan[]): RegistryFaultPlan {
  return (request) => {
    for (const plan of plans) {
      const fault = plan(request);
      if (fault) return fault;
    }
    return undefined;
  };
}

Deno.test("packument fetch: the summary counts every request the registry saw, retries and cut bodies included", async () => {
  const names = ["plain-a", "limited-b", "cut-c", "failing-d", "gone-e"];
  const packuments = new Map(
    names.filter((name) => name !== "gone-e").map((name, i) => [
      name,
      generatePackument(name, { versions: 40, seed: i }),
    ]),
  );
  const registry = await startRegistryFixture({
    packuments,
    faults: both(
      firstOnly("limited-b", { kind: "status", status: 429, retryAfter: "0" }),
      firstOnly("cut-c", { kind: "truncate", bytes: 100 }),
      firstOnly("failing-d", { kind: "status", status: 503 }),
    ),
  });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_REGISTRY: registry.url, ALL_DOCS_CACHE_DIR: dir };
    const result = await runCli(["packument", "fetch", ...names, "--json"], env);
    assert.equal(result.code, 0, result.stderr);
    const summary = lastJson(result.stdout);
    assert.equal(summary.fetched, 4);
    assert.equal(summary.notFound, 1);
    // 5 names, plus one more request for each of the three faults.
    assert.equal(registry.requests.length, 8);
    assert.equal(summary.requests, registry.requests.length);
    assert.equal(summary.retries, 3);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("packument fetch: a request that failed for good is counted too", async () => {
  const registry = await startRegistryFixture({
    packuments: new Map([["cut-a", generatePackument("cut-a", { versions: 40, seed: 1 })]]),
    faults: onlyName("cut-a", () => ({ kind: "truncate", bytes: 100 })),
  });
  const dir = await Deno.makeTempDir();
  try {
    const env = { ALL_DOCS_REGISTRY: registry.url, ALL_DOCS_CACHE_DIR: dir };
    const result = await runCli(["packument", "fetch", "cut-a", "--retries", "1", "--json"], env);
    assert.equal(result.code, 1);
    const summary = lastJson(result.stdout);
    assert.equal(registry.requests.length, 2);
    assert.equal(summary.requests, registry.requests.length);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
