/** `npm run docs:api`: rewrites the parameter and message-field tables in docs/api.md from their registries, then lets biome align them. */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderMessageFieldTable } from "./message-fields.ts";
import { renderParameterTable } from "./render.ts";

const path = join(import.meta.dirname, "../../../../../docs/api.md");
let doc = readFileSync(path, "utf8");
for (const [marker, table] of [
  ["parameters", renderParameterTable()],
  ["message-fields", renderMessageFieldTable()],
] as const) {
  const begin = `<!-- ${marker}:begin -->\n`;
  const end = `\n<!-- ${marker}:end -->`;
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < 0) throw new Error(`${path} lacks the ${begin.trim()} … ${end.trim()} markers`);
  doc = doc.slice(0, from + begin.length) + table + doc.slice(to);
}
writeFileSync(path, doc);
spawnSync("npx", ["biome", "format", "--write", path], { stdio: "inherit" });
