/**
 * Runs the test suites with node's test runner. Node 20 cannot expand globs itself, so this finds the
 * files: `unit` is every *.test.ts beside the code and beside the dev support (test/support);
 * `integration` is test/conformance, test/integration, test/e2e and test/journeys, which start real
 * processes and so run one file at a time.
 *
 * Every test process, and every process a test starts, gets a fresh TMPDIR of its own. After the
 * suites, anything a test left there fails the run, named; then the folder is removed, so `npm test`
 * leaves nothing in the temp dir.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const which = process.argv[2] ?? "all";

/** tsx's transform cache (`tsx-<uid>`): the tool's, not a test's, and gone with the folder. */
const TOOL_CACHES = /^tsx-\d+$/;

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

const unit = [
  ...find(join(root, "shared")),
  ...find(join(root, "services")),
  ...find(join(root, "test", "support")),
];
const integration = [
  ...find(join(root, "test", "conformance")),
  ...find(join(root, "test", "integration")),
  ...find(join(root, "test", "e2e")),
  ...find(join(root, "test", "journeys")),
];

const scratch = mkdtempSync(join(tmpdir(), "loracast-test-"));
// Ctrl-C reaches the test processes directly (same process group); this one stays to clean up.
process.on("SIGINT", () => undefined);

function run(files: string[], concurrency: number): number {
  if (files.length === 0) return 0;
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...files],
    { cwd: root, stdio: "inherit", env: { ...process.env, TMPDIR: scratch } },
  );
  return r.status ?? 1;
}

let status = 0;
if (which === "all" || which === "unit") status ||= run(unit, 2);
if (which === "all" || which === "integration") status ||= run(integration, 1);

const leftovers = readdirSync(scratch).filter((name) => !TOOL_CACHES.test(name));
if (leftovers.length > 0) {
  process.stderr.write(
    `\nnpm test: tests left ${leftovers.length} entries in the temp dir (each test must remove what it creates):\n${leftovers.map((l) => `  ${l}`).join("\n")}\n`,
  );
  status ||= 1;
}
rmSync(scratch, { recursive: true, force: true });
process.exit(status);
