/**
 * Where a decode step's time goes on an execution provider, from ORT's own profiler: one session
 * with `profileFilePrefix`, a batch-1 generation with the adapter, then the Chrome-trace file read
 * back. Per decode step: each op type's node count and kernel time by the provider that ran it
 * (`MemcpyFromHost`/`MemcpyToHost` are the host↔device copies ORT inserted around nodes placed on
 * the CPU), the sum of kernel times, ORT's own wall time of the run (`model_run`), and our wall
 * time per step. The gap between kernel sum and `model_run` is per-node dispatch; the gap between
 * `model_run` and our step is the binding: feeds in, outputs copied out.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { DecoderSession, type ExecutionProvider, type LoraFeeds } from "@loracast/shared/runtime";
import { engineGeneration } from "./ours.ts";

/** One row of a profile: an op type on a provider, per decode step. */
interface ProfileRow {
  op: string;
  provider: string;
  nodesPerStep: number;
  microsPerStep: number;
}

/** A decode step's profile: rows by kernel time, and the step's totals in µs. */
export interface StepProfile {
  steps: number;
  rows: ProfileRow[];
  kernelMicros: number;
  modelRunMicros: number;
  wallMicros: number;
}

interface TraceEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; provider?: string };
}

/**
 * Summarises an ORT profile (Chrome trace JSON: `cat` "Session" events named `model_run`, one per
 * run; `cat` "Node" events named `<node>_kernel_time` with `args.op_name` and `args.provider`) over
 * its last `steps` runs, the decode steps (the first runs of a generation are warm-up and prefill).
 */
function summarizeProfile(trace: readonly TraceEvent[], steps: number, wallMicros: number): StepProfile {
  const runs = trace.filter((e) => e.cat === "Session" && e.name === "model_run");
  const last = runs.slice(-steps);
  // ORT appends an event when it ends: a run's node events precede its `model_run`, so the last
  // runs' nodes are those after the `model_run` of the run before them.
  const before = runs[runs.length - last.length - 1];
  const from = before === undefined ? 0 : trace.indexOf(before) + 1;
  const byKey = new Map<string, { op: string; provider: string; n: number; us: number }>();
  let kernel = 0;
  for (const e of trace.slice(from)) {
    if (e.cat !== "Node" || !e.name?.endsWith("_kernel_time")) continue;
    const op = e.args?.op_name ?? "?";
    const provider = (e.args?.provider ?? "?").replace("ExecutionProvider", "");
    const key = `${op}@${provider}`;
    const row = byKey.get(key) ?? { op, provider, n: 0, us: 0 };
    row.n++;
    row.us += e.dur ?? 0;
    kernel += e.dur ?? 0;
    byKey.set(key, row);
  }
  const n = Math.max(1, last.length);
  return {
    steps: last.length,
    rows: [...byKey.values()]
      .map((r) => ({ op: r.op, provider: r.provider, nodesPerStep: r.n / n, microsPerStep: r.us / n }))
      .sort((a, b) => b.microsPerStep - a.microsPerStep),
    kernelMicros: kernel / n,
    modelRunMicros: last.reduce((s, e) => s + (e.dur ?? 0), 0) / n,
    wallMicros,
  };
}

/**
 * Profiles `tokens` decode steps at batch 1 of the model in `dir` on `ep` with `feeds`' adapter (a
 * session of its own, profiling slows every run). Writes the trace into `outDir`, returns the summary.
 */
export async function profileDecode(
  dir: string,
  ep: ExecutionProvider,
  lora: (session: DecoderSession) => LoraFeeds,
  tokens: number,
  outDir: string,
): Promise<StepProfile> {
  const prefix = join(outDir, `ort-profile-${ep}`);
  // The adapter's steps are profiled: a base graph would be a second session no step runs.
  const loaded = await DecoderSession.load(dir, {
    executionProviders: [ep],
    profileFilePrefix: prefix,
    baseGraph: "off",
  });
  if (!loaded.ok) throw loaded.error;
  const session = loaded.value;
  const generate = engineGeneration(session, lora(session));
  await generate(1, 4);
  const t = await generate(1, tokens + 1);
  session.endProfiling();
  await session.release();
  const name = (await readdir(outDir)).find((f) => join(outDir, f).startsWith(prefix) && f.endsWith(".json"));
  if (name === undefined) throw new Error(`ORT wrote no profile under ${prefix}`);
  const trace = JSON.parse(await readFile(join(outDir, name), "utf8")) as TraceEvent[];
  await rm(join(outDir, name));
  return summarizeProfile(trace, tokens, ((t.end - t.firstToken) / tokens) * 1000);
}

/** The profile as markdown lines: totals, then the op types that take 95% of kernel time. */
export function formatProfile(p: StepProfile): string[] {
  const us = (x: number) => x.toFixed(0);
  const nodes = p.rows.reduce((s, r) => s + r.nodesPerStep, 0);
  const lines = [
    `per decode step (batch 1, LoRA, mean of ${p.steps}): ${nodes.toFixed(0)} kernels, kernel time ${us(p.kernelMicros)} µs, ORT model_run ${us(p.modelRunMicros)} µs, our step ${us(p.wallMicros)} µs`,
    "| op | provider | nodes / step | µs / step |",
    "|---|---|---|---|",
  ];
  let covered = 0;
  for (const r of p.rows) {
    if (covered > 0.95 * p.kernelMicros && r.op !== "MemcpyFromHost" && r.op !== "MemcpyToHost") continue;
    covered += r.microsPerStep;
    lines.push(`| ${r.op} | ${r.provider} | ${r.nodesPerStep.toFixed(1)} | ${us(r.microsPerStep)} |`);
  }
  return lines;
}
