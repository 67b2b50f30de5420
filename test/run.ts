/**
 * Runs the test suites with node's test runner. Node 20 cannot expand globs itself, so this finds the
 * files: `unit` is every *.test.ts beside the code, `integration` is test/conformance, test/integration, test/e2e and test/journeys,
 * which start real processes and so run one file at a time.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const which = process.argv[2] ?? "all";

function find(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...find(path));
    else if (entry.name.endsWith(".test.ts")) out.push(relative(root, path));
  }
  return out.sort();
}

const unit = [...find(join(root, "shared")), ...find(join(root, "services"))];
const integration = [
  ...find(join(root, "test", "conformance")),
  ...find(join(root, "test", "integration")),
  ...find(join(root, "test", "e2e")),
  ...find(join(root, "test", "journeys")),
];

function run(files: string[], concurrency: number): number {
  if (files.length === 0) return 0;
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...files],
    { cwd: root, stdio: "inherit" },
  );
  return r.status ?? 1;
}

let status = 0;
if (which === "all" || which === "unit") status ||= run(unit, 2);
if (which === "all" || which === "integration") status ||= run(integration, 1);
process.exit(status);
