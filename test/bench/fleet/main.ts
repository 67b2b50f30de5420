/**
 * Fleet benchmark (issue 20, "scale past one machine, measured on this one"). For each fleet size N
 * it starts N verify-only generators (`test/helpers/fleet.ts`) against one trainer and the embedded
 * S3 server, publishes distinct PEFT adapters one after another through the trainer's upload API
 * and measures, per version:
 *
 * - publish → all N active: from the upload's response to the last generator's `adapter activated`
 *   line (each generator stamps it when it swaps the version in);
 * - webhook fan-out: first to last `webhook delivered` line of the trainer for that version;
 * - store requests per version, counted by the S3 server (`/_metrics`) over the publishes, and the
 *   background rate of reconcile passes with nothing published (per generator per second);
 * - CPU per version of the trainer, of all N generators together and of the S3 server
 *   (`/proc/<pid>/stat`), generator RSS, and the host's load average (the machine is shared).
 *
 * At each N in `--kill-at` it then publishes `--kill-versions` more versions back to back, SIGKILLs
 * `--kill` generators after the first few, restarts them on their ports while publishing goes on,
 * and measures how long until every generator serves the newest version with the right sha256.
 *
 *   npm run bench:fleet -- [--n=8,16,32,64] [--versions=20] [--mb=1] [--kill=8] [--kill-at=64]
 *     [--kill-versions=10] [--reconcile-ms=3000] [--timeout-s=300]
 */
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { type LogLine, type Service, supervisorEnvSchema } from "@loracast/dev-support/supervisor";
import { parseCommandLine, usageError } from "@loracast/shared/platform";
import { type PublishResult, publishResultSchema } from "@loracast/shared/trainer-api";
import { adapterOfSize, distinctWeights } from "../../helpers/adapters.ts";
import { cpuSeconds, type Fleet, startFleet, waitConverged } from "../../helpers/fleet.ts";
import { memory } from "../../helpers/memory.ts";
import { s3RequestCounts } from "../../helpers/s3.ts";
import { activationLine } from "../../helpers/stack.ts";
import { percentile } from "../percentile.ts";

const cli = {
  usage: "npm run bench:fleet -- [flags]",
  about:
    "Fleet benchmark: N verify-only generators against one trainer and the embedded S3 server; publish -> all active p50/p95, webhook fan-out, store requests and trainer CPU per version, then kill and restart generators mid-run and time their convergence.",
  flags: {
    n: { type: "string", default: "8,16,32,64", help: "fleet sizes, comma-separated" },
    versions: { type: "string", default: "20", help: "versions published per fleet size" },
    mb: { type: "string", default: "1", help: "adapter size in MiB" },
    kill: { type: "string", default: "8", help: "generators killed in the convergence case" },
    "kill-at": {
      type: "string",
      default: "64",
      help: "fleet sizes that run the convergence case, comma-separated",
    },
    "kill-versions": {
      type: "string",
      default: "10",
      help: "versions published during the convergence case",
    },
    "reconcile-ms": { type: "string", default: "3000", help: "the generators' RECONCILE_INTERVAL_MS" },
    "timeout-s": {
      type: "string",
      default: "300",
      help: "how long every generator may take to activate a version, and the convergence wait (a busy host stretches it)",
    },
  },
  env: supervisorEnvSchema,
} as const;
const { values } = parseCommandLine(cli);
const positive = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usageError(cli, `--${name}: a positive integer, not ${v}`);
  return n;
};
const sizes = values.n.split(",").map((v) => positive("n", v));
const versions = positive("versions", values.versions);
const mb = Number(values.mb);
if (!(mb > 0 && mb <= 1024)) usageError(cli, `--mb: a size in MiB in (0, 1024], not ${values.mb}`);
const killCount = positive("kill", values.kill);
const killAt = new Set(
  values["kill-at"] === "" ? [] : values["kill-at"].split(",").map((v) => positive("kill-at", v)),
);
const killVersions = Math.max(positive("kill-versions", values["kill-versions"]), 4);
const reconcileMs = positive("reconcile-ms", values["reconcile-ms"]);
const timeoutMs = positive("timeout-s", values["timeout-s"]) * 1000;

const at = (l: LogLine) => Date.parse(String(l.t));

/** The trainer's `webhook delivered` lines for run@version, once there are `n` of them (at most 60 s). */
async function deliveries(trainer: Service, run: string, version: number, n: number): Promise<LogLine[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const lines = trainer.logs.filter(
      (l) => l.msg === "webhook delivered" && l.run === run && l.version === version,
    );
    if (lines.length >= n) return lines;
    if (Date.now() > deadline)
      throw new Error(`${lines.length} of ${n} webhooks of ${run}@${version} delivered`);
    await sleep(20);
  }
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([op, n]) => [op, n - (before[op] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  );
}
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** What one fleet size measured. */
interface Row {
  n: number;
  startS: number;
  rssMbMean: number;
  rssMbMax: number;
  publishMsP50: number;
  activeMsP50: number;
  activeMsP95: number;
  fanoutMsP50: number;
  fanoutMsP95: number;
  storeRequestsPerVersion: number;
  storeRequestsPerVersionByOp: Record<string, number>;
  /**
   * Store requests per version net of the background reconcile passes that ran meanwhile (the
   * idle rate × N × the publish phase's duration): what the publish and the N pulls cost.
   */
  handoffRequestsPerVersion: number;
  idleRequestsPerGeneratorPerS: number;
  trainerCpuMsPerVersion: number;
  /** All N generators' CPU per version, summed, and the S3 server's: they do not depend on contention. */
  generatorsCpuMsPerVersion: number;
  s3CpuMsPerVersion: number;
  /** The host's 1-minute load average at the end (other processes share it). */
  load: number;
  /**
   * The kill/restart phase: generators killed, versions published during it, SIGKILL→ready time
   * of the restarts, and the time from the last publish's return until every generator served the
   * last version.
   */
  kill?: {
    killed: number;
    published: number;
    restartMs: number;
    convergedMs: number;
    version: number;
  };
}

async function publish(
  fleet: Fleet,
  run: string,
  adapter: { config: Uint8Array; weights: Uint8Array },
  i: number,
) {
  const t0 = performance.now();
  const res = await fleet.stack.publish(run, {
    config: adapter.config,
    weights: distinctWeights(adapter.weights, i),
  });
  const returned = Date.now();
  if (res.status !== 201) throw new Error(`publish failed: ${res.status} ${await res.text()}`);
  return { body: publishResultSchema.parse(await res.json()), returned, ms: performance.now() - t0 };
}

async function measure(n: number): Promise<Row> {
  const t0 = performance.now();
  const fleet = await startFleet({ generators: n, reconcileIntervalMs: reconcileMs });
  const startS = (performance.now() - t0) / 1000;
  const { stack } = fleet;
  try {
    const run = `fleet-${n}`;
    const adapter = adapterOfSize(fleet.base, mb, n);
    let i = 0;
    // The first version creates the run (its head, the generators' first listing of it): not timed.
    const first = await publish(fleet, run, adapter, i++);
    await Promise.all(stack.generators.map((g) => activationLine(g, run, first.body.version, timeoutMs)));

    const idle0 = await s3RequestCounts(stack.s3.url);
    const idleT = performance.now();
    await sleep(2 * reconcileMs);
    const idle = sum(diff(await s3RequestCounts(stack.s3.url), idle0));
    const idleRate = idle / n / ((performance.now() - idleT) / 1000);

    const trainerPid = stack.trainer.proc.pid as number;
    const cpu0 = cpuSeconds(trainerPid);
    const fleetCpu = () => stack.generators.reduce((a, g) => a + cpuSeconds(g.proc.pid as number), 0);
    const generatorsCpu0 = fleetCpu();
    const s3Cpu0 = cpuSeconds(stack.s3.proc.pid as number);
    const counts0 = await s3RequestCounts(stack.s3.url);
    const phase0 = performance.now();
    const active: number[] = [];
    const fanout: number[] = [];
    const publishMs: number[] = [];
    for (let v = 0; v < versions; v++) {
      const p = await publish(fleet, run, adapter, i++);
      publishMs.push(p.ms);
      const lines = await Promise.all(
        stack.generators.map((g) => activationLine(g, run, p.body.version, timeoutMs)),
      );
      active.push(Math.max(...lines.map(at)) - p.returned);
      const sent = (await deliveries(stack.trainer, run, p.body.version, n)).map(at);
      fanout.push(Math.max(...sent) - Math.min(...sent));
    }
    const byOp = diff(await s3RequestCounts(stack.s3.url), counts0);
    const phaseS = (performance.now() - phase0) / 1000;
    const cpu = cpuSeconds(trainerPid) - cpu0;
    const generatorsCpu = fleetCpu() - generatorsCpu0;
    const s3Cpu = cpuSeconds(stack.s3.proc.pid as number) - s3Cpu0;
    const rss = stack.generators.map((g) => memory(g.proc.pid as number).rss / 2 ** 20);
    const row: Row = {
      n,
      startS,
      rssMbMean: rss.reduce((a, b) => a + b, 0) / n,
      rssMbMax: Math.max(...rss),
      publishMsP50: percentile(publishMs, 50),
      activeMsP50: percentile(active, 50),
      activeMsP95: percentile(active, 95),
      fanoutMsP50: percentile(fanout, 50),
      fanoutMsP95: percentile(fanout, 95),
      storeRequestsPerVersion: sum(byOp) / versions,
      storeRequestsPerVersionByOp: Object.fromEntries(
        Object.entries(byOp).map(([op, c]) => [op, c / versions]),
      ),
      handoffRequestsPerVersion: (sum(byOp) - idleRate * n * phaseS) / versions,
      idleRequestsPerGeneratorPerS: idleRate,
      trainerCpuMsPerVersion: (cpu * 1000) / versions,
      generatorsCpuMsPerVersion: (generatorsCpu * 1000) / versions,
      s3CpuMsPerVersion: (s3Cpu * 1000) / versions,
      load: loadavg()[0] as number,
    };
    if (killAt.has(n) && n > killCount) row.kill = await killAndRestart(fleet, run, adapter, i);
    return row;
  } finally {
    await stack.stop();
  }
}

/**
 * Publishes versions back to back: SIGKILLs `killCount` generators spread over the fleet after the
 * first quarter of `killVersions`, restarts them (on their ports) after the half, and goes on
 * publishing until both `killVersions` are out and the restarted generators are ready. Then waits
 * until all N serve the last version with its sha256.
 */
async function killAndRestart(
  fleet: Fleet,
  run: string,
  adapter: { config: Uint8Array; weights: Uint8Array },
  from: number,
): Promise<NonNullable<Row["kill"]>> {
  const n = fleet.stack.generators.length;
  const victims = Array.from({ length: killCount }, (_, k) => Math.floor((k * n) / killCount));
  let last: PublishResult | undefined;
  let restartMs: number | undefined;
  let lastReturned = 0;
  let restarted = false;
  for (let v = 0; v < killVersions || !restarted; v++) {
    if (v === Math.floor(killVersions / 4)) await Promise.all(victims.map((g) => fleet.kill(g)));
    if (v === Math.floor(killVersions / 2)) {
      const t = performance.now();
      void Promise.all(victims.map((g) => fleet.restart(g))).then(() => {
        restartMs = performance.now() - t;
        restarted = true;
      });
    }
    const p = await publish(fleet, run, adapter, from + v);
    last = p.body;
    lastReturned = performance.now();
  }
  if (last === undefined || restartMs === undefined) throw new Error("nothing published");
  await waitConverged(fleet.stack, run, last.version, last.sha256, timeoutMs);
  return {
    killed: killCount,
    published: last.version - from,
    restartMs,
    convergedMs: performance.now() - lastReturned,
    version: last.version,
  };
}

const rows: Row[] = [];
for (const n of sizes) {
  const row = await measure(n);
  rows.push(row);
  console.log(JSON.stringify({ bench: "fleet", ...row }));
}

const f = (x: number, d = 0) => x.toFixed(d);
console.log(
  `\n${versions} versions of a ${mb} MiB-class adapter per N; reconcile every ${reconcileMs} ms; times in ms\n`,
);
console.log(
  "| N | start s | RSS MB mean/max | publish call p50 | publish → all active p50 | p95 | fan-out p50 | p95 | store req/version: all | net of reconcile | idle req/s per generator | CPU ms/version: trainer | generators | S3 | load |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.n} | ${f(r.startS)} | ${f(r.rssMbMean)}/${f(r.rssMbMax)} | ${f(r.publishMsP50)} | ${f(r.activeMsP50)} | ${f(r.activeMsP95)} | ${f(r.fanoutMsP50)} | ${f(r.fanoutMsP95)} | ${f(r.storeRequestsPerVersion, 1)} | ${f(r.handoffRequestsPerVersion, 1)} | ${f(r.idleRequestsPerGeneratorPerS, 2)} | ${f(r.trainerCpuMsPerVersion)} | ${f(r.generatorsCpuMsPerVersion)} | ${f(r.s3CpuMsPerVersion)} | ${f(r.load, 1)} |`,
  );
}
for (const r of rows.filter((r) => r.kill !== undefined)) {
  const k = r.kill as NonNullable<Row["kill"]>;
  console.log(
    `\nN=${r.n}: ${k.killed} generators SIGKILLed mid-run and restarted while ${k.published} versions were published (restart to ready ${f(k.restartMs)} ms); all ${r.n} served the last, v${k.version} (its sha256), ${f(k.convergedMs)} ms after its publish returned`,
  );
}
