/**
 * Conformance of the built graph against a PEFT reference fixture. fp32: our logits, logprobs and
 * greedy tokens must equal PyTorch's within tolerance. int8/int4: the quantized graph must equal an
 * fp32 graph built from the same dequantized weights (proving the kernels are wired right), and its
 * distance from PyTorch is reported as KL divergence and top-1 agreement.
 */
import { basename, join } from "node:path";
import { type BaseQuant, buildArtifacts } from "@loracast/shared/model-builder";
import type { ModelManifest } from "@loracast/shared/model-format";
import { peftKey } from "@loracast/shared/model-spec";
import {
  adapterFeeds,
  baseFeeds,
  DecoderSession,
  type ExecutionProvider,
  greedyDecode,
  type LoraFeeds,
  logProbAt,
  type StepInput,
} from "@loracast/shared/runtime";
import { type TrainBatch, TrainingSession } from "@loracast/shared/training";
import { type Reference, readAdapter, readReference } from "./fixture.ts";
import { distributionAgreement, maxAbsDiff, relativeL2 } from "./metrics.ts";
import { tolerancesFor } from "./tolerances.ts";

export type QuantChoice = "fp32" | "int8" | "int4";

export interface ConformanceOptions {
  fixtureDir: string;
  quant: QuantChoice;
  blockSize: 32 | 128;
  /** Scratch directory for built artifacts. */
  workDir: string;
  /** Where the decoder and training sessions run (default `cpu`); the reference is PyTorch's CPU. */
  ep?: ExecutionProvider;
  /**
   * On `cuda`: whether MatMul/Gemm may use TF32 (ORT's default). onnxruntime-node 1.29 passes only
   * `deviceId` to the CUDA EP, so ORT's `use_tf32` option is unreachable; off sets
   * `NVIDIA_TF32_OVERRIDE=0` in this process, which cuBLAS and cuDNN honour over what ORT asks.
   * Decides the tolerances (`tolerances.ts`). Ignored on other EPs.
   */
  tf32?: boolean;
}

interface Outputs {
  logitsBase: Float32Array;
  logitsLora: Float32Array;
  logprobsLora: Float32Array;
  greedy: number[];
  /** The training graph's d Σ weights·logprobs / d factor, by PEFT key (B unscaled, as PEFT's). */
  grads: Map<string, Float32Array>;
  /** The training graph's log-probabilities at the same positions as `logprobsLora`. */
  trainingLogprobs: Float32Array;
}

/** Builds the fixture's base with `quant`, runs it, and releases the session. */
async function measure(
  opts: ConformanceOptions,
  ref: Reference,
  name: string,
  quant: BaseQuant,
): Promise<{ out: Outputs; manifest: ModelManifest }> {
  const outDir = join(opts.workDir, name);
  const built = await buildArtifacts({ checkpointDir: join(opts.fixtureDir, "base"), outDir, quant });
  if (!built.ok) throw built.error;
  const providers = { executionProviders: [opts.ep ?? "cpu"] };
  const session = await DecoderSession.load(outDir, providers);
  if (!session.ok) throw session.error;
  let inference: Omit<Outputs, "grads" | "trainingLogprobs">;
  try {
    inference = await evaluate(session.value, ref, opts.fixtureDir);
  } finally {
    await session.value.release();
  }
  const training = await TrainingSession.load(outDir, providers);
  if (!training.ok) throw training.error;
  try {
    const grads = await differentiate(training.value, ref, opts.fixtureDir);
    return { out: { ...inference, ...grads }, manifest: training.value.manifest };
  } finally {
    await training.value.release();
  }
}

/** The fixture's objective Σ weights·logprobs through the training graph: its seed is `weights`. */
async function differentiate(session: TrainingSession, ref: Reference, fixtureDir: string) {
  const { batch, seq } = ref;
  const adapter = await readAdapter(fixtureDir, session.spec);
  const rows: bigint[] = [];
  const targets: bigint[] = [];
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq - 1; t++) {
      rows.push(BigInt(b * seq + t));
      targets.push(ref.inputIds[b * seq + t + 1] ?? 0n);
    }
  }
  const trainBatch: TrainBatch = {
    batch,
    seq,
    inputIds: ref.inputIds,
    attentionMask: ref.attentionMask,
    positionIds: ref.positionIds,
    rows: BigInt64Array.from(rows),
    targets: BigInt64Array.from(targets),
  };
  const out = await session.backward(trainBatch, adapterFeeds(session.spec, adapter), ref.weights);
  // The graph's B input is scaling·B, so PEFT's dB is scaling times the graph's.
  const scaling = new Map(adapter.modules.map((m) => [peftKey(m.module, "B"), m.scaling]));
  for (const [key, grad] of out.grads) {
    const s = scaling.get(key);
    if (s !== undefined) for (let i = 0; i < grad.length; i++) grad[i] = (grad[i] ?? 0) * s;
  }
  return { grads: out.grads, trainingLogprobs: out.logprobs };
}

/**
 * Worst relative L2 error over the fixture's gradient tensors (the adapter's factors); a missing
 * tensor counts as infinite.
 */
function gradientErrors(
  ours: Map<string, Float32Array>,
  reference: Map<string, Float32Array>,
  keys: Iterable<string> = reference.keys(),
) {
  let worst = { key: "", relError: 0 };
  let tensors = 0;
  for (const key of keys) {
    tensors++;
    const want = reference.get(key) ?? new Float32Array(0);
    const got = ours.get(key);
    const rel =
      got === undefined || got.length !== want.length ? Number.POSITIVE_INFINITY : relativeL2(got, want);
    if (!(rel <= worst.relError)) worst = { key, relError: rel };
  }
  return { tensors, maxRelError: round(worst.relError), worstTensor: worst.key };
}

/** The reference batch as one step with no past, asking for logits at every position. */
export function referenceStep(ref: Reference): StepInput {
  const { batch, seq } = ref;
  return {
    batch,
    seq,
    inputIds: ref.inputIds,
    attentionMask: ref.attentionMask,
    positionIds: ref.positionIds,
    logitsPositions: BigInt64Array.from({ length: batch * seq }, (_, i) => BigInt(i % seq)),
    logitsCount: seq,
    past: null,
  };
}

async function evaluate(
  session: DecoderSession,
  ref: Reference,
  fixtureDir: string,
): Promise<Omit<Outputs, "grads" | "trainingLogprobs">> {
  const { batch, seq } = ref;
  const vocab = session.manifest.dims.vocabSize;
  const input = referenceStep(ref);
  const lora = adapterFeeds(session.spec, await readAdapter(fixtureDir, session.spec));
  const run = async (feeds: LoraFeeds) => (await session.step(input, feeds)).logits;
  const logitsBase = await run(baseFeeds(session.spec));
  const logitsLora = await run(lora);
  const logprobsLora = new Float32Array(batch * (seq - 1));
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq - 1; t++) {
      const next = Number(ref.inputIds[b * seq + t + 1]);
      logprobsLora[b * (seq - 1) + t] = logProbAt(logitsLora, b * seq + t, vocab, next);
    }
  }
  const greedy = await greedyDecode(session, lora, ref.greedyPrompt, ref.greedyTokens.length);
  return { logitsBase, logitsLora, logprobsLora, greedy };
}

const round = (x: number) => Number(x.toPrecision(4));
const maxAbs = (xs: Float32Array) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

export async function runConformance(opts: ConformanceOptions) {
  const ep = opts.ep ?? "cpu";
  const tf32 = ep === "cuda" && opts.tf32 !== false;
  if (ep === "cuda" && !tf32) process.env.NVIDIA_TF32_OVERRIDE = "0";
  const ref = await readReference(opts.fixtureDir);
  const fixture = basename(opts.fixtureDir);
  const tol = tolerancesFor(ep, tf32, Math.max(maxAbs(ref.logitsBase), maxAbs(ref.logitsLora)));
  const where = { ep, ...(ep === "cuda" ? { tf32 } : {}), toleranceWhy: tol.why };
  const vsReference = (o: Outputs) => ({
    logitsBaseMaxAbs: round(maxAbsDiff(o.logitsBase, ref.logitsBase)),
    logitsLoraMaxAbs: round(maxAbsDiff(o.logitsLora, ref.logitsLora)),
    logprobsLoraMaxAbs: round(maxAbsDiff(o.logprobsLora, ref.logprobsLora)),
    greedyMatch: o.greedy.join() === ref.greedyTokens.join(),
    trainingLogprobsMaxAbs: round(maxAbsDiff(o.trainingLogprobs, ref.logprobsLora)),
    gradients: gradientErrors(o.grads, ref.grads),
  });

  if (opts.quant === "fp32") {
    const { out, manifest } = await measure(opts, ref, "fp32", { kind: "fp32" });
    const errors = vsReference(out);
    const pass =
      errors.logitsBaseMaxAbs <= tol.fp32 &&
      errors.logitsLoraMaxAbs <= tol.fp32 &&
      errors.logprobsLoraMaxAbs <= tol.fp32 &&
      errors.trainingLogprobsMaxAbs <= tol.fp32 &&
      errors.gradients.maxRelError <= tol.gradient &&
      errors.greedyMatch;
    return {
      fixture,
      model: manifest.architecture,
      quant: "fp32",
      ...where,
      tolerance: tol.fp32,
      gradientTolerance: tol.gradient,
      ...errors,
      greedyTokens: out.greedy,
      expectedGreedyTokens: ref.greedyTokens,
      pass,
    };
  }

  const bits = opts.quant === "int8" ? 8 : 4;
  const nbits = (emulate: boolean): BaseQuant => ({
    kind: "nbits",
    bits,
    blockSize: opts.blockSize,
    emulate,
  });
  const { out: q, manifest } = await measure(opts, ref, opts.quant, nbits(false));
  const { out: e } = await measure(opts, ref, `${opts.quant}-dequantized`, nbits(true));
  const vocab = manifest.dims.vocabSize;
  const base = distributionAgreement(ref.logitsBase, q.logitsBase, vocab);
  const lora = distributionAgreement(ref.logitsLora, q.logitsLora, vocab);
  const kernel = {
    logitsBaseMaxAbs: round(maxAbsDiff(q.logitsBase, e.logitsBase)),
    logitsLoraMaxAbs: round(maxAbsDiff(q.logitsLora, e.logitsLora)),
    // The backward rebuilds W from the packed codes; it must see the weights the forward used.
    gradients: gradientErrors(q.grads, e.grads, ref.grads.keys()),
  };
  return {
    fixture,
    model: manifest.architecture,
    quant: opts.quant,
    blockSize: opts.blockSize,
    ...where,
    tolerance: tol.quant,
    gradientTolerance: tol.quantGradient,
    vsDequantizedFp32: kernel,
    vsPytorchFp32: {
      ...vsReference(q),
      klBase: round(base.meanKl),
      klLora: round(lora.meanKl),
      top1Base: round(base.top1),
      top1Lora: round(lora.top1),
    },
    pass:
      kernel.logitsBaseMaxAbs <= tol.quant &&
      kernel.logitsLoraMaxAbs <= tol.quant &&
      kernel.gradients.maxRelError <= tol.quantGradient,
  };
}
