/**
 * npm run bench:train [-- --ep=cpu|webgpu|cuda --steps=4 --prompts=2 --generations=4 --prompt-tokens=64
 *   --max-tokens=64 --micro-batch=8 --memory-budget-mb=N --threads=0 --backend=auto --addon=FILE --build-only]
 *
 * The trainer as it runs in production: the embedded S3 server and a trainer service, each its own
 * process, on a model with Qwen2.5-0.5B's dimensions (seeded random weights, int4 block 32). One
 * GRPO run over REST with β > 0, so every step has all of its phases: rollouts from the in-process
 * engine, the reference forward (rank-0 factors), the old-policy forward, the training
 * forward+backward, AdamW, and a publish through the handoff path. The step events' phase times
 * are what the trainer itself measured, the publish's own phases its `published` log lines'
 * `phasesMs`; the peak RSS is the trainer process's VmHWM. Also printed: the training graph's node
 * count (read back from train.onnx: what every pass runs, and the backward branch that training
 * passes add), and the micro-batch the trainer chose. The model's generation graphs are in the EP's
 * LoRA form (`defaultLoraForm`: `splitk-t` on webgpu, in a directory of their own), the training
 * graph in `gemm` whatever the EP.
 */

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "@loracast/dev-support/fixtures";
import { writeRandomCheckpoint } from "@loracast/dev-support/models";
import { trainerEnv } from "@loracast/dev-support/stack";
import { startService, supervisorEnvSchema } from "@loracast/dev-support/supervisor";
import { buildArtifacts, defaultLoraForm } from "@loracast/shared/model-builder";
import { readModelManifest } from "@loracast/shared/model-format";
import { countGraphNodes } from "@loracast/shared/onnx";
import { parseCommandLine, readSse } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import { executionProviderSchema, ortBackendSchema } from "@loracast/shared/runtime";
import { type RunStreamEvent, runStreamEventSchema } from "@loracast/shared/trainer-api";
import { s3Env, startS3 } from "../../helpers/s3.ts";
import { SECRET, TOKEN } from "../../helpers/stack.ts";
import { QWEN25_05B } from "../engine/configs.ts";

const { values } = parseCommandLine({
  usage: "npm run bench:train -- [flags]",
  about:
    "Training benchmark: the embedded S3 server and a trainer service on a model with Qwen2.5-0.5B's dimensions; one GRPO run over REST, reporting each step phase's time and the trainer's peak RSS.",
  flags: {
    ep: {
      type: "string",
      default: "cpu",
      help: "execution provider: cpu, webgpu or cuda (anything else runs on the CPU)",
    },
    steps: { type: "string", default: "4", help: "training steps" },
    prompts: { type: "string", default: "2", help: "prompts per step" },
    generations: { type: "string", default: "4", help: "completions per prompt" },
    "prompt-tokens": { type: "string", default: "64", help: "tokens per prompt" },
    "max-tokens": { type: "string", default: "64", help: "most tokens per completion" },
    threads: { type: "string", default: "0", help: "TRAINER_THREADS (0: ORT decides)" },
    "micro-batch": {
      type: "string",
      help: "sequences per forward/backward pass (default: the trainer chooses by its memory budget)",
    },
    "memory-budget-mb": { type: "string", help: "TRAINER_MEMORY_BUDGET_MB (default: the trainer's)" },
    tf32: {
      type: "string",
      default: "off",
      help: "cuda only: TRAINER_CUDA_TF32, off (the trainer's default, the conformance precision) or on (TF32 for float32 GEMMs)",
    },
    backend: {
      type: "string",
      default: "auto",
      help: "the rollout decoder's ORT binding (TRAINER_ORT_BACKEND): auto, ort-native or onnxruntime-node",
    },
    addon: {
      type: "string",
      help: "the ort-native addon the trainer loads (LORACAST_ORT_NATIVE_ADDON); default its build path",
    },
    // Write the checkpoint and build the artifacts, then stop (the GPU script does this untimed).
    "build-only": {
      type: "boolean",
      default: false,
      help: "write the checkpoint and build the artifacts, then stop",
    },
    // Shares the engine benchmark's random checkpoint, which takes minutes to write.
    work: {
      type: "string",
      default: join(ROOT, ".bench", "engine"),
      help: "where the random checkpoint and artifacts are kept (shared with bench:engine)",
    },
  },
  env: supervisorEnvSchema,
});
// Anything but a known provider runs on the CPU.
const ep = executionProviderSchema.catch("cpu").parse(values.ep);
const steps = Number(values.steps);
const prompts = Number(values.prompts);
const generations = Number(values.generations);
const promptTokens = Number(values["prompt-tokens"]);
const maxTokens = Number(values["max-tokens"]);
const microBatch = values["micro-batch"] === undefined ? null : Number(values["micro-batch"]);
const say = (s: string) => process.stdout.write(`${s}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const checkpoint = join(values.work, "qwen25-05b-random");
// The rollouts' decoder in the EP's LoRA form; gemm keeps the directory name earlier runs built.
const loraForm = defaultLoraForm(ep);
const modelDir = join(values.work, `qwen25-05b-int4-train${loraForm === "gemm" ? "" : `-${loraForm}`}`);
await writeRandomCheckpoint(checkpoint, QWEN25_05B, 1);
const existing = await readModelManifest(modelDir);
if (!existing.ok || existing.value.manifest.files.training === undefined) {
  const t = performance.now();
  const built = await buildArtifacts({
    checkpointDir: checkpoint,
    outDir: modelDir,
    quant: { kind: "nbits", bits: 4, blockSize: 32, emulate: false, accuracyLevel: 4 },
    loraForm,
  });
  if (!built.ok) throw built.error;
  say(
    `int4 artifacts with the training graph (rollouts' LoRA form ${loraForm}): ${seconds(performance.now() - t)}`,
  );
}
const manifest = await readModelManifest(modelDir);
if (!manifest.ok) throw manifest.error;
if (values["build-only"]) process.exit(0);
const weightBytes = statSync(join(modelDir, manifest.value.manifest.files.data)).size;
const trainFile = manifest.value.manifest.files.training;
const nodes = countGraphNodes(readFileSync(join(modelDir, trainFile ?? "")));
const forwardNodes = [...nodes.byOp.values()].reduce((a, b) => a + b, 0);

// Prompts of exactly `promptTokens` bytes: the byte tokenizer makes each one token.
const rng = createRng(7);
const dataset = join(values.work, "train-prompts.jsonl");
writeFileSync(
  dataset,
  Array.from({ length: 64 }, () =>
    JSON.stringify({
      prompt: Array.from({ length: promptTokens }, () =>
        String.fromCharCode(97 + Math.floor(rng.next() * 26)),
      ).join(""),
    }),
  ).join("\n"),
);

// The store's objects and the trainer's state live for this run only.
const scratch = mkdtempSync(join(tmpdir(), "loracast-bench-train-"));
const s3 = await startS3(join(scratch, "s3"));
const loadStart = performance.now();
const trainer = await startService(
  "trainer",
  {
    ...s3Env(s3.url),
    ...trainerEnv({
      port: 0,
      dataDir: join(scratch, "trainer"),
      apiToken: TOKEN,
      webhookSecret: SECRET,
      generators: [],
    }),
    TRAINER_MODEL_DIR: modelDir,
    TRAINER_EXECUTION_PROVIDER: ep,
    TRAINER_ORT_BACKEND: ortBackendSchema.parse(values.backend),
    TRAINER_CUDA_TF32: values.tf32,
    ...(values.addon === undefined ? {} : { LORACAST_ORT_NATIVE_ADDON: values.addon }),
    TRAINER_THREADS: values.threads,
    ...(values["memory-budget-mb"] === undefined
      ? {}
      : { TRAINER_MEMORY_BUDGET_MB: values["memory-budget-mb"] }),
  },
  { readyTimeoutMs: 600_000 },
);
const loadMs = performance.now() - loadStart;
// Which binding the rollouts run on, and why (auto: ort-native on cuda where the addon loads).
const metricsText = await (await fetch(`${trainer.url}/metrics`)).text();
const backendInfo = metricsText
  .split("\n")
  .find((l) => l.startsWith("loracast_trainer_rollout_backend_info"));
say(`rollout decoder: ${backendInfo ?? "not reported"}`);
// TF32 on the trainer's CUDA sessions (TRAINER_CUDA_TF32, default off: the conformance precision).
const tf32Info = metricsText.split("\n").find((l) => l.startsWith("loracast_trainer_cuda_tf32_info"));
say(`cuda tf32: ${tf32Info ?? "not reported"}`);

const run = `bench-${Date.now().toString(36)}`;
const res = await fetch(`${trainer.url}/v1/runs`, {
  method: "POST",
  headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
  body: JSON.stringify({
    run,
    seed: 1,
    algorithm: { name: "grpo", numGenerations: generations, lossType: "dapo", beta: 0.04 },
    dataset: { path: dataset },
    rewards: [{ type: "regex", pattern: "[a-m]", mode: "fraction" }],
    lora: { r: 16, alpha: 32, targetModules: "all-linear" },
    steps,
    promptsPerStep: prompts,
    microBatch,
    // Completions run to maxTokens: the stop token is one of 151,936 under random weights.
    sampling: { temperature: 1, maxTokens },
    publishEvery: 1,
    checkpointEvery: steps,
  }),
});
if (res.status !== 201) throw new Error(`POST /v1/runs: HTTP ${res.status} ${await res.text()}`);

const events: RunStreamEvent[] = [];
for await (const data of readSse(`${trainer.url}/v1/runs/${run}/events`)) {
  const e = runStreamEventSchema.parse(data);
  events.push(e);
  if (e.type === "step") say(`step ${e.step}: ${seconds(e.metrics.step_ms ?? 0)}`);
}
const status = (/VmHWM:\s+(\d+) kB[\s\S]*VmRSS:\s+(\d+) kB/.exec(
  readFileSync(`/proc/${trainer.proc.pid}/status`, "utf8"),
) ?? []) as string[];
await trainer.stop();
await s3.stop();
rmSync(scratch, { recursive: true, force: true });
const last = events.at(-1);
const ended = last?.type === "status" ? last : null;
if (ended?.status !== "completed") throw new Error(`run ended ${ended?.status}: ${ended?.error}`);

const stepEvents = events.filter((e) => e.type === "step");
const publishes = events.filter((e) => e.type === "published").map((e) => e.ms);
const warm = stepEvents.slice(1);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
type StepEvent = Extract<RunStreamEvent, { type: "step" }>;
const phase = (e: StepEvent, name: string) => e.phasesMs[name] ?? 0;
const scored = (e: StepEvent) => ((e.metrics.tokens_per_second ?? 0) * phase(e, "train")) / 1000;
const sequences = prompts * generations;
const chosen = [...new Set(stepEvents.map((e) => e.metrics.micro_batch))].join(", ");

say(
  `\nQwen2.5-0.5B dims, random weights, int4 block 32 (accuracy_level 4); ${ep} EP; GRPO β=0.04, ` +
    `${prompts} prompts × ${generations} generations in micro-batches of ${chosen} (${microBatch === null ? "chosen by memory" : "--micro-batch"}), ` +
    `prompt ${promptTokens} + completion ≤ ${maxTokens} tokens, ` +
    `LoRA r=16 on all 7 projections; ${steps} steps`,
);
say(`trainer start-up (both sessions loaded): ${seconds(loadMs)}`);
say("| phase | step 1 (cold) | steps 2.. (mean) |");
say("|---|---|---|");
const first = stepEvents[0];
const rows: [string, (e: StepEvent) => number][] = [
  ["rollout (in-process engine)", (e) => phase(e, "rollout")],
  ["reward", (e) => phase(e, "reward")],
  ["reference forward", (e) => phase(e, "reference")],
  ["old-policy forward", (e) => phase(e, "old_logprobs")],
  ["training forward+backward", (e) => phase(e, "train")],
  ["optimizer (clip + AdamW)", (e) => phase(e, "optimizer")],
];
for (const [name, f] of rows) {
  say(`| ${name} | ${first === undefined ? "-" : seconds(f(first))} | ${seconds(mean(warm.map(f)))} |`);
}
say(
  `| publish (probe + PEFT safetensors + S3 + webhooks) | ${seconds(publishes[1] ?? 0)} | ${seconds(mean(publishes.slice(2)))} |`,
);
say(
  `| whole step | ${first === undefined ? "-" : seconds(first.metrics.step_ms ?? 0)} | ${seconds(mean(warm.map((e) => e.metrics.step_ms ?? 0)))} |`,
);
const trainMs = mean(warm.map((e) => phase(e, "train")));
const scoredTokens = mean(warm.map(scored));
const processed = scoredTokens + sequences * promptTokens;
say(
  `training forward+backward: ${((scoredTokens / trainMs) * 1000).toFixed(1)} completion tokens/s ` +
    `(${scoredTokens.toFixed(0)} scored per step), ${((processed / trainMs) * 1000).toFixed(1)} tokens/s counting prompts`,
);
const stepMs = mean(warm.map((e) => e.metrics.step_ms ?? 0));
say(`whole step: ${((scoredTokens / stepMs) * 1000).toFixed(1)} completion tokens/s`);
const meanPhase = (name: string) => mean(warm.map((e) => phase(e, name)));
say(
  `GRPO step (steps 2.. mean), rollout / reference / training fwd+bwd / publish: ${[
    meanPhase("rollout"),
    meanPhase("reference"),
    trainMs,
    mean(publishes.slice(2)),
  ]
    .map((ms) => (ms / 1000).toFixed(2))
    .join(" / ")} s`,
);
// The publisher's own phases (its `published` log lines), publishes after step 1 on.
const publishLogs = trainer.logs.filter((l) => l.msg === "published").slice(2);
const publishPhases = new Map<string, number[]>();
for (const l of publishLogs) {
  for (const [name, ms] of Object.entries((l.phasesMs ?? {}) as Record<string, number>)) {
    publishPhases.set(name, [...(publishPhases.get(name) ?? []), ms]);
  }
}
say(
  `publish phases (mean ms; blobs and extras are waits after the overlapped work): ${[...publishPhases]
    .map(([name, xs]) => `${name} ${mean(xs).toFixed(0)}`)
    .join(", ")}`,
);
say(
  `training graph (${trainFile}): ${forwardNodes} nodes run by every pass, ${nodes.nested} more in the ` +
    `If branches (the backward, and the empty gradients of a forward-only pass)`,
);
const mb = (kb: string | undefined) => Number(kb ?? Number.NaN) / 1024;
say(
  `trainer peak RSS (VmHWM): ${mb(status[1]).toFixed(0)} MB; RSS at the end ${mb(status[2]).toFixed(0)} MB; ` +
    `int4 weights file ${(weightBytes / 2 ** 20).toFixed(0)} MB (peak = ${((mb(status[1]) * 2 ** 20) / weightBytes).toFixed(2)}× the weights)`,
);
