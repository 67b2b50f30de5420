/**
 * The demo that `npm start` runs: GRPO on the tiny random demo base, with a reward for digits in
 * the completion. Random weights put digits at about 4% of sampled bytes; a rank-8 LoRA learns to
 * produce them in a few dozen steps. A progress line per step shows the reward and which version
 * each generator serves; a summary closes it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSse } from "@loracast/shared/platform";
import { type RunStreamEvent, runStreamEventSchema } from "@loracast/shared/run-events";
import type { Service } from "@loracast/shared/supervisor";

export interface DemoOptions {
  trainer: Service;
  generators: readonly Service[];
  token: string;
  dataDir: string;
  steps: number;
  say(line: string): void;
}

async function activeVersion(g: Service, run: string): Promise<string> {
  try {
    const a = (await (await fetch(`${g.url}/v1/adapters`)).json()) as {
      active: Record<string, { version: number }>;
    };
    const v = a.active[run]?.version;
    return v === undefined ? "-" : `v${v}`;
  } catch {
    return "?";
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

export async function runTrainingDemo(o: DemoOptions): Promise<void> {
  const dataset = join(o.dataDir, "demo-prompts.jsonl");
  writeFileSync(
    dataset,
    Array.from({ length: 64 }, (_, i) => JSON.stringify({ prompt: `q${i * 37}:` })).join("\n"),
  );
  const existing = (await (await fetch(`${o.trainer.url}/v1/runs`)).json()) as { runs: unknown[] };
  const run = `digits-${existing.runs.length + 1}`;
  const config = {
    run,
    seed: 1,
    algorithm: { name: "grpo", numGenerations: 8, lossType: "dapo" },
    dataset: { path: dataset },
    rewards: [{ type: "regex", pattern: "[0-9]", mode: "fraction" }],
    lora: { r: 8, alpha: 16 },
    optimizer: { lr: 0.02 },
    steps: o.steps,
    promptsPerStep: 4,
    microBatch: 32,
    sampling: { temperature: 1, maxTokens: 16 },
    publishEvery: 2,
    checkpointEvery: 10,
  };
  const res = await fetch(`${o.trainer.url}/v1/runs`, {
    method: "POST",
    headers: { authorization: `Bearer ${o.token}`, "content-type": "application/json" },
    body: JSON.stringify(config),
  });
  if (res.status !== 201) throw new Error(`POST /v1/runs: HTTP ${res.status} ${await res.text()}`);
  o.say(
    `\ndemo: GRPO run ${run}: ${o.steps} steps, 4 prompts × 8 samples, reward = share of digits in the completion`,
  );

  const t0 = performance.now();
  const rewards: number[] = [];
  const phases = new Map<string, number[]>();
  const versions: number[] = [];
  let status: Extract<RunStreamEvent, { type: "status" }> | null = null;
  for await (const data of readSse(`${o.trainer.url}/v1/runs/${run}/events`)) {
    const e = runStreamEventSchema.parse(data);
    if (e.type === "published") versions.push(e.version);
    if (e.type === "status") {
      status = e;
      break;
    }
    if (e.type !== "step") continue;
    const r = e.metrics.reward_mean ?? 0;
    rewards.push(r);
    for (const [k, v] of Object.entries(e.phasesMs)) phases.set(k, [...(phases.get(k) ?? []), v ?? 0]);
    const width = 24;
    const done = Math.round((e.step / o.steps) * width);
    const serving = await Promise.all(
      o.generators.map(async (g) => `${g.name} ${await activeVersion(g, run)}`),
    );
    o.say(
      `  step ${String(e.step).padStart(3)}/${o.steps} [${"#".repeat(done)}${".".repeat(width - done)}] reward ${r.toFixed(3)}  trainer v${e.metrics.version}  ${serving.join("  ")}`,
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  if (status?.status !== "completed") throw new Error(`run ${run} ended ${status?.status}: ${status?.error}`);
  const first = mean(rewards.slice(0, 5));
  const last = mean(rewards.slice(-5));
  o.say(`\ndemo summary (${run})`);
  o.say(`  steps            ${rewards.length} in ${seconds.toFixed(1)} s`);
  o.say(
    `  reward           first 5 steps ${first.toFixed(3)} → last 5 steps ${last.toFixed(3)} (${(last / first).toFixed(1)}×)`,
  );
  o.say(
    `  versions         ${versions.length} published (v${versions[0]}…v${versions.at(-1)}), every 2 steps`,
  );
  o.say(`  step time (mean) ${[...phases].map(([k, v]) => `${k} ${mean(v).toFixed(0)} ms`).join(", ")}`);
  // The last version is published after the last step; give the webhooks a moment to land.
  const newest = `v${versions.at(-1)}`;
  for (let i = 0; i < 50; i++) {
    const now = await Promise.all(o.generators.map((g) => activeVersion(g, run)));
    if (now.every((v) => v === newest)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const serving = await Promise.all(
    o.generators.map(async (g) => `${g.name} ${await activeVersion(g, run)}`),
  );
  o.say(`  serving now      ${serving.join(", ")}`);
  o.say(`  events           curl ${o.trainer.url}/v1/runs/${run}/events`);
}
