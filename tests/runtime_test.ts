import assert from "node:assert/strict";
import { detectRuntime } from "../src/runtime.ts";
import { VERSION } from "../src/version.ts";
import { run } from "./_support/spawn.ts";

Deno.test("detectRuntime() follows the documented order", () => {
  const node = { process: { versions: { node: "20.0.0" } } };
  assert.equal(
    detectRuntime({ globals: { ...node, Deno: {} }, runtimeEnv: "cloudrun" }),
    "cloudrun",
  );
  assert.equal(
    detectRuntime({ globals: { fastly: {}, caches: {} }, runtimeEnv: undefined }),
    "fastly",
  );
  assert.equal(detectRuntime({ globals: { caches: {} }, runtimeEnv: undefined }), "workerd");
  assert.equal(detectRuntime({ globals: { caches: {}, ...node }, runtimeEnv: undefined }), "node");
  assert.equal(detectRuntime({ globals: { Deno: {}, ...node }, runtimeEnv: undefined }), "deno");
  assert.equal(detectRuntime({ globals: node, runtimeEnv: "other" }), "node");
  assert.equal(detectRuntime({ globals: {}, runtimeEnv: undefined }), "unknown");
});

Deno.test("detectRuntime() on Deno leaves `process` alone (its first touch loads Node's compatibility layer)", () => {
  const globals = {
    Deno: {},
    caches: {},
    get process(): never {
      throw new Error("process was read");
    },
  };
  assert.equal(detectRuntime({ globals, runtimeEnv: undefined }), "deno");
});

Deno.test("detectRuntime() reads RUNTIME from the environment", async () => {
  assert.equal(detectRuntime(), "deno");
  const script = `import { detectRuntime } from ${
    JSON.stringify(
      new URL("../src/runtime.ts", import.meta.url).href,
    )
  }; console.log(detectRuntime());`;
  const runtimeWith = async (env: Record<string, string>) =>
    (await run(Deno.execPath(), ["eval", script], { env })).stdout.trim();
  assert.equal(await runtimeWith({ RUNTIME: "cloudrun" }), "cloudrun");
  assert.equal(await runtimeWith({ RUNTIME: "" }), "deno");
});

Deno.test("VERSION matches deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(VERSION, config.version);
});
