/**
 * Runs the test suites with node's test runner. Node 20 cannot expand globs itself, so this finds the
 * files: `unit` is every *.test.ts beside the code, the dev support (test/support), the checks (test/lint),
 * the benches' helpers (test/bench) and the deployment manifests' checks (test/deploy, which render
 * infra/k8s with kubectl);
 * `integration` is test/conformance, test/integration, test/e2e and test/journeys, which start real
 * processes and so run one file at a time.
 *
 * The unit tests run as suites of their own, each in its own runner with its own header and
 * summary line: the trainer's, the generator's, the shared library's, the other services', the
 * dev support's, and the manifests'. `node test/run.ts <suite>` runs one of them (`trainer`, `generator`, `shared`,
 * `services`, `dev-support`, `deploy`);
 * `unit`, `integration` and `all` (the default) run those stages. The integration stage runs only
 * when every unit suite passed.
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

/** Services whose unit tests are a suite of their own; the other services' make up `services`. */
const OWN_SUITES = ["trainer", "generator"] as const;
const otherServices = readdirSync(join(root, "services")).filter(
  (name) => !(OWN_SUITES as readonly string[]).includes(name),
);
const unitSuites: { name: string; files: string[] }[] = [
  ...OWN_SUITES.map((name) => ({ name, files: find(join(root, "services", name)) })),
  { name: "shared", files: find(join(root, "shared")) },
  { name: "services", files: otherServices.flatMap((name) => find(join(root, "services", name))) },
  // The dev support, the repository checks (test/lint: the doc-comment check) and the benches'
  // own helpers (test/bench: the GPU probes' flag checks) are dev tooling.
  {
    name: "dev-support",
    files: [
      ...find(join(root, "test", "support")),
      ...find(join(root, "test", "lint")),
      ...find(join(root, "test", "bench")),
    ],
  },
  // The deployment manifests (infra/k8s), rendered with kubectl's kustomize and checked offline.
  { name: "deploy", files: find(join(root, "test", "deploy")) },
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

/** One line per suite run: its name, files, result and time. */
const summary: string[] = [];
function suite(name: string, files: string[], concurrency: number): number {
  process.stdout.write(`\n== ${name}: ${files.length} files ==\n`);
  const start = Date.now();
  const status = run(files, concurrency);
  const seconds = ((Date.now() - start) / 1000).toFixed(1);
  summary.push(
    `  ${name.padEnd(24)} ${String(files.length).padStart(3)} files  ${status === 0 ? "pass" : "FAIL"}  ${seconds} s`,
  );
  return status;
}

const picked = unitSuites.find((s) => s.name === which);
if (which !== "all" && which !== "unit" && which !== "integration" && picked === undefined) {
  process.stderr.write(
    `test/run.ts: unknown suite ${which}; expected all, unit, integration or one of ${unitSuites.map((s) => s.name).join(", ")}\n`,
  );
  process.exit(2);
}
let status = 0;
for (const s of unitSuites) {
  if (which === "all" || which === "unit" || which === s.name)
    status = suite(`unit: ${s.name}`, s.files, 2) || status;
}
if (which === "all" || which === "integration") status ||= suite("integration", integration, 1);
if (summary.length > 0) process.stdout.write(`\nsuites:\n${summary.join("\n")}\n`);

const leftovers = readdirSync(scratch).filter((name) => !TOOL_CACHES.test(name));
if (leftovers.length > 0) {
  process.stderr.write(
    `\nnpm test: tests left ${leftovers.length} entries in the temp dir (each test must remove what it creates):\n${leftovers.map((l) => `  ${l}`).join("\n")}\n`,
  );
  status ||= 1;
}
rmSync(scratch, { recursive: true, force: true });
process.exit(status);
