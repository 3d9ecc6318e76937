import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await tsFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

Deno.test("src/ uses web standards only: no Deno, node: or npm: imports", async () => {
  const files = await tsFiles("src");
  assert.ok(files.length > 5);
  for (const file of files) {
    const text = await readFile(join(root, file), "utf8");
    assert.doesNotMatch(text, /\bDeno\./, file);
    assert.doesNotMatch(text, /from\s+["'](node|npm):/, file);
  }
});

Deno.test("library code has no dynamic import()", async () => {
  const files = ["mod.ts", ...await tsFiles("src"), ...await tsFiles("drivers")];
  for (const file of files) {
    const text = await readFile(join(root, file), "utf8");
    assert.doesNotMatch(text, /\bimport\s*\(/, file);
  }
});

Deno.test("mod.ts holds only its doc block and re-exports", async () => {
  const text = await readFile(join(root, "mod.ts"), "utf8");
  const code = text.replace(/\/\*\*[\s\S]*?\*\//, "").trim().split("\n").filter((l) => l.trim());
  assert.ok(code.length > 3);
  for (const line of code) {
    assert.match(line, /^export (\*|\{[^}]*\}|type \{[^}]*\}) from "\.\/src\//);
  }
});
