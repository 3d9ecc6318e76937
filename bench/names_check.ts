/**
 * Runs {@linkcode packageNameProblem} over every name of the pinned `all-the-package-names`
 * list (every name the public registry has served) and prints the names it rejects, with the
 * reason. Every one of them is a real package, so the expected output ends in `0 rejected`;
 * the exit status is 1 otherwise.
 *
 * Run: `deno task bench:names`.
 *
 * @module
 */

import { ensureNames, NAMES_FILE } from "./_measure.ts";
import { packageNameProblem } from "../src/npm/package_name.ts";

if (import.meta.main) {
  await ensureNames();
  const names: string[] = JSON.parse(await Deno.readTextFile(NAMES_FILE));
  const started = performance.now();
  const rejected: { name: string; problem: string }[] = [];
  for (const name of names) {
    const problem = packageNameProblem(name);
    if (problem !== undefined) rejected.push({ name, problem });
  }
  const ms = performance.now() - started;
  for (const { name, problem } of rejected) {
    console.log(`rejected ${JSON.stringify(name)}: ${problem}`);
  }
  console.log(
    `${names.length} names checked in ${Math.round(ms)} ms, ${rejected.length} rejected`,
  );
  if (rejected.length > 0) Deno.exitCode = 1;
}
