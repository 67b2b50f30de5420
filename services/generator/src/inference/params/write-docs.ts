/** `npm run docs:api`: rewrites the parameter table in docs/api.md from the registry, then lets biome align it. */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderParameterTable } from "./render.ts";

const path = join(import.meta.dirname, "../../../../../docs/api.md");
const doc = readFileSync(path, "utf8");
const begin = "<!-- parameters:begin -->\n";
const end = "\n<!-- parameters:end -->";
const from = doc.indexOf(begin);
const to = doc.indexOf(end);
if (from < 0 || to < 0) throw new Error(`${path} lacks the ${begin.trim()} … ${end.trim()} markers`);
writeFileSync(path, doc.slice(0, from + begin.length) + renderParameterTable() + doc.slice(to));
spawnSync("npx", ["biome", "format", "--write", path], { stdio: "inherit" });
