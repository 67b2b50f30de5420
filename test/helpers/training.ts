/** What training journeys share: a trainable demo-base model, a prompt file, and run events over SSE. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDemoModel } from "@loracast/dev-support/models";
import type { LoraOp } from "@loracast/shared/model-format";
import { type RunStreamEvent, runStreamEventSchema } from "@loracast/shared/trainer-api";
import { type Stack, startStack, TOKEN } from "./stack.ts";

/**
 * Builds the demo base (random weights, seed 7, int4 with the training graph, LoRA op `loraOp`)
 * into `<work>/model` and writes 50 prompts to `<work>/prompts.jsonl`. Returns both paths.
 */
export async function buildTrainingFixture(
  work: string,
  loraOp: LoraOp = "gemm",
): Promise<{ modelDir: string; dataset: string }> {
  const modelDir = await buildDemoModel(
    { checkpointDir: join(work, "base"), modelDir: join(work, "model") },
    7,
    loraOp,
  );
  const dataset = join(work, "prompts.jsonl");
  writeFileSync(
    dataset,
    Array.from({ length: 50 }, (_, i) => JSON.stringify({ prompt: `q${i * 37}:` })).join("\n"),
  );
  return { modelDir, dataset };
}

/** A stack on a training fixture (`startTrainingStack`), its prompt file, and how to stop it. */
export interface TrainingStack {
  stack: Stack;
  /** The fixture's prompts, `<work>/prompts.jsonl`. */
  dataset: string;
  /** The temp directory of the fixture. */
  work: string;
  /** Stops the stack and removes `work`. */
  stop(): Promise<void>;
}

/**
 * Builds a training fixture (`buildTrainingFixture`, LoRA op `loraOp`) in a new temp directory
 * named after `prefix`, and starts a stack of `generators` generators and a trainer (one ORT thread)
 * on its model.
 */
export async function startTrainingStack(
  prefix: string,
  generators: number,
  loraOp: LoraOp = "gemm",
): Promise<TrainingStack> {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const fixture = await buildTrainingFixture(work, loraOp);
  const stack = await startStack({
    generators,
    generatorEnv: { GENERATOR_MODEL_DIR: fixture.modelDir, GENERATOR_BASE_CONFIG: "" },
    trainerEnv: { TRAINER_MODEL_DIR: fixture.modelDir, TRAINER_THREADS: "1" },
  });
  return {
    stack,
    dataset: fixture.dataset,
    work,
    stop: async () => {
      await stack.stop();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A small GRPO run config on `dataset`: publishes and checkpoints every 2 steps. */
export function grpoRun(run: string, dataset: string, steps: number): Record<string, unknown> {
  return {
    run,
    seed: 3,
    algorithm: { name: "grpo", numGenerations: 8, lossType: "dapo" },
    dataset: { path: dataset },
    rewards: [{ type: "regex", pattern: "[0-9]", mode: "fraction" }],
    lora: { r: 8, alpha: 16 },
    optimizer: { lr: 0.02 },
    steps,
    promptsPerStep: 4,
    microBatch: 16,
    sampling: { temperature: 1, maxTokens: 16 },
    publishEvery: 2,
    checkpointEvery: 2,
  };
}

/** POST with the bearer token and a JSON body. */
export const postJson = (url: string, body: unknown): Promise<Response> =>
  fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** One SSE frame of a run's event stream, checked against the run event contract. */
export interface Frame {
  id: string;
  event: string;
  data: RunStreamEvent;
}

/**
 * Reads a run's whole event stream (it ends after the run's status event), optionally resuming
 * after `lastEventId` as EventSource does on reconnect.
 */
export async function readRunEvents(url: string, lastEventId?: string): Promise<Frame[]> {
  const res = await fetch(
    url,
    lastEventId === undefined ? {} : { headers: { "last-event-id": lastEventId } },
  );
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} ${await res.text()}`);
  const frames: Frame[] = [];
  for (const block of (await res.text()).split("\n\n")) {
    const fields = new Map<string, string>();
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
    }
    const data = fields.get("data");
    if (data === undefined) continue;
    frames.push({
      id: fields.get("id") ?? "",
      event: fields.get("event") ?? "",
      data: runStreamEventSchema.parse(JSON.parse(data)),
    });
  }
  return frames;
}
