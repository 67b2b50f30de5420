/**
 * The demo that `npm start` runs: GRPO on the tiny random demo base, with a reward for digits in
 * the completion. Random weights put digits at about 4% of sampled bytes; a rank-8 LoRA learns to
 * produce them in a few dozen steps. A progress line per step shows the reward and which version
 * each generator serves; a summary closes it.
 */
import { isAbsolute, join, relative } from "node:path";
import type { Service } from "@loracast/dev-support/supervisor";
import { adapterListSchema } from "@loracast/shared/generator-api";
import { readSse } from "@loracast/shared/platform";
import type { AdapterStore } from "@loracast/shared/store";
import { type RunMetrics, type RunStreamEvent, runStreamEventSchema } from "@loracast/shared/trainer-api";
import { dashboardLink } from "./dashboard-link.ts";
import { saveAdapter } from "./demo-adapter.ts";
import { chooseDemoRun, DemoError, type DemoRunOptions } from "./demo-run.ts";

/** What the demo needs: the running services, where the data lives, and how to talk to the user. */
export interface DemoOptions extends DemoRunOptions {
  generators: readonly Service[];
  /** The stack's store, to save the final adapter from. */
  store: AdapterStore;
  /** The trainer's TRAINER_TENSORBOARD_DIR, where the demo run's event files go. */
  tensorboardDir: string;
  say(line: string): void;
}

async function activeVersion(g: Service, run: string, signal: AbortSignal): Promise<string> {
  try {
    const a = adapterListSchema.parse(await (await fetch(`${g.url}/v1/adapters`, { signal })).json());
    const v = a.active[run]?.version;
    return v === undefined ? "-" : `v${v}`;
  } catch {
    return "?";
  }
}

/** `path` relative to the working directory when it is inside it, else as given. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

/**
 * Runs the demo to its end: continues the demo's own unfinished run if the trainer resumed one,
 * otherwise starts a fresh one; prints a progress line per step and a summary. Throws `DemoError` when
 * the trainer refuses the run or the run does not complete; aborting `signal` ends it early (the
 * rejection is then the abort's).
 */
export async function runTrainingDemo(o: DemoOptions): Promise<void> {
  const chosen = await chooseDemoRun(o);
  if (chosen.kind === "busy") {
    o.say(
      `\ndemo: skipped, run ${chosen.run} is training (the trainer trains one run at a time); follow it:`,
    );
    o.say(`  curl -N ${o.trainer.url}/v1/runs/${chosen.run}/events`);
    o.say(`  or watch it: ${dashboardLink(o.trainer.url, o.token, chosen.run)}`);
    return;
  }
  const { run, steps } = chosen;
  o.say(
    chosen.kind === "continued"
      ? `\ndemo: continuing GRPO run ${run}, which the last stop interrupted (the trainer resumes it from its newest checkpoint)`
      : `\ndemo: GRPO run ${run}: ${steps} steps, 4 prompts × 8 samples, reward = share of digits in the completion`,
  );

  const t0 = performance.now();
  // The history from its start: a `resumed` event drops the steps it redoes (their redone events
  // follow), while every `published` version stays, as it does in the store.
  const kept = new Map<number, { reward: number; phasesMs: RunMetrics }>();
  const versions: { version: number; step: number }[] = [];
  /** The newest resume's checkpoint step, and the versions published from steps a resume redid. */
  let resumedAt: number | null = null;
  const redone = new Set<number>();
  let status: Extract<RunStreamEvent, { type: "status" }> | null = null;
  for await (const data of readSse(`${o.trainer.url}/v1/runs/${run}/events`, o.signal)) {
    const e = runStreamEventSchema.parse(data);
    if (e.type === "published") versions.push({ version: e.version, step: e.step });
    if (e.type === "status") {
      status = e;
      break;
    }
    if (e.type === "resumed") {
      for (const s of [...kept.keys()]) if (s > e.step) kept.delete(s);
      for (const v of versions) if (v.step > e.step) redone.add(v.version);
      resumedAt = e.step;
      o.say(
        e.lastStep > e.step
          ? `  resumed from the checkpoint at step ${e.step}: steps ${e.step + 1}–${e.lastStep} are redone`
          : `  resumed from the checkpoint at step ${e.step}`,
      );
      continue;
    }
    if (e.type !== "step") continue;
    const r = e.metrics.reward_mean ?? 0;
    kept.set(e.step, { reward: r, phasesMs: e.phasesMs });
    const width = 24;
    const done = Math.round((e.step / steps) * width);
    const serving = await Promise.all(
      o.generators.map(async (g) => `${g.name} ${await activeVersion(g, run, o.signal)}`),
    );
    o.say(
      `  step ${String(e.step).padStart(3)}/${steps} [${"#".repeat(done)}${".".repeat(width - done)}] reward ${r.toFixed(3)}  trainer v${e.metrics.version}  ${serving.join("  ")}`,
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  if (status === null)
    throw new DemoError(`the trainer closed run ${run}'s event stream before the run ended`);
  if (status.status !== "completed") throw new DemoError(`run ${run} ${status.status}: ${status.error}`);
  o.say(`\ndemo summary (${run})`);
  const last = [...kept.keys()].at(-1) ?? 0;
  o.say(
    resumedAt === null
      ? `  steps            ${kept.size} in ${seconds.toFixed(1)} s`
      : // The demo attached as the trainer resumed; its clock saw only the steps after the checkpoint.
        `  steps            ${kept.size}; resumed after step ${resumedAt}, steps ${resumedAt + 1}–${last} took ${seconds.toFixed(1)} s since the demo attached`,
  );
  const rewards = [...kept.values()].map((k) => k.reward);
  if (rewards.length > 0) {
    const first = mean(rewards.slice(0, 5));
    const lastFive = mean(rewards.slice(-5));
    o.say(
      `  reward           first 5 steps ${first.toFixed(3)} → last 5 steps ${lastFive.toFixed(3)} (${(lastFive / first).toFixed(1)}×)`,
    );
    const phases = new Map<string, number[]>();
    for (const k of kept.values()) {
      for (const [p, v] of Object.entries(k.phasesMs)) phases.set(p, [...(phases.get(p) ?? []), v ?? 0]);
    }
    o.say(`  step time (mean) ${[...phases].map(([k, v]) => `${k} ${mean(v).toFixed(0)} ms`).join(", ")}`);
  }
  const newest = versions.at(-1)?.version;
  if (newest !== undefined) {
    const lost = [...redone].sort((a, b) => a - b);
    const note =
      lost.length === 0 ? "" : `; ${lost.map((v) => `v${v}`).join(", ")} from steps a resume redid`;
    o.say(
      `  versions         ${versions.length} published (v${versions[0]?.version}…v${newest}), every 2 steps${note}`,
    );
    // The last version is published after the last step; give the webhooks a moment to land.
    for (let i = 0; i < 50; i++) {
      const now = await Promise.all(o.generators.map((g) => activeVersion(g, run, o.signal)));
      if (now.every((v) => v === `v${newest}`)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const serving = await Promise.all(
    o.generators.map(async (g) => `${g.name} ${await activeVersion(g, run, o.signal)}`),
  );
  o.say(`  serving now      ${serving.join(", ")}`);
  if (newest !== undefined) {
    const dir = join(o.dataDir, "adapters", run);
    await saveAdapter(o.store, run, newest, dir);
    o.say(`  saved as PEFT    v${newest} in ${shortPath(dir)}`);
  }
  o.say(`  tensorboard      tensorboard --logdir ${shortPath(o.tensorboardDir)}`);
  o.say(`  events           curl -N ${o.trainer.url}/v1/runs/${run}/events`);
  o.say(`  curves, fleet    ${dashboardLink(o.trainer.url, o.token, run)}`);
  const g0 = o.generators[0];
  if (g0 !== undefined) {
    o.say(`\nAsk a generator: curl ${g0.url}/v1/completions -H 'content-type: application/json' \\`);
    o.say(`  -d '{"model": "${run}", "prompt": "q5:", "max_tokens": 16}'`);
  }
}
