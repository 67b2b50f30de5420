/**
 * Conformance of the built graph against a PEFT reference fixture. fp32: our logits, logprobs and
 * greedy tokens must equal PyTorch's within tolerance. int8/int4: the quantized graph must equal an
 * fp32 graph built from the same dequantized weights (proving the kernels are wired right), and its
 * distance from PyTorch is reported as KL divergence and top-1 agreement.
 */
import { basename, join } from "node:path";
import {
  type BaseQuant,
  buildArtifacts,
  type DecoderAttention,
  defaultLoraForm,
} from "@loracast/shared/model-builder";
import type { KvCacheDtype, LoraForm, LoraOp, ModelManifest } from "@loracast/shared/model-format";
import { peftKey } from "@loracast/shared/model-spec";
import {
  adapterFeeds,
  baseFeeds,
  DecoderSession,
  type ExecutionProvider,
  greedyDecode,
  type LoraFeeds,
  logProbAt,
  type OrtBackend,
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
  /**
   * The decoder graphs' attention. With `gqa` the report adds `vsOpsAttention`: the GQA graph's
   * logits against the `ops` graph's, same weights (what the GroupQueryAttention kernel changes).
   * The training graph always uses `ops`. @default "ops"
   */
  attention?: DecoderAttention;
  /**
   * The GQA decoder's KV cache element type (`build-model --kv-cache-dtype`): `float16` is the
   * CUDA build, whose attention computes in float16 (`tolerances.ts` says what that allows). Needs
   * `attention: "gqa"`; the `ops` decoder `vsOpsAttention` compares with stays float32. @default "float32"
   */
  kvCacheDtype?: KvCacheDtype;
  /**
   * The decoder graphs' LoRA op (`build-model --lora-op`): `shrink-expand` runs on the ort-native
   * addon only (`backend` `auto` or `ort-native`); the training graph keeps its Gemms. @default "gemm"
   */
  loraOp?: LoraOp;
  /** Scratch directory for built artifacts. */
  workDir: string;
  /** Where the decoder and training sessions run (default `cpu`); the reference is PyTorch's CPU. */
  ep?: ExecutionProvider;
  /**
   * On `cuda`: whether MatMul/Gemm may use TF32 (ORT's default). onnxruntime-node 1.29 passes only
   * `deviceId` to the CUDA EP, so ORT's `use_tf32` option is unreachable; off sets
   * `NVIDIA_TF32_OVERRIDE=0` in this process, which cuBLAS and cuDNN honour over what ORT asks.
   * The decoder gets it as `cudaTf32` too, which the ort-native backend passes to the CUDA EP as
   * `use_tf32`. Decides the tolerances (`tolerances.ts`). Ignored on other EPs.
   */
  tf32?: boolean;
  /** The decoder's ORT binding (`DecoderSessionOptions.backend`); the training graph is the stock one's. */
  backend?: OrtBackend;
  /**
   * How the decoder graphs compute each LoRA pair's first product (`build-model --lora-form`); the
   * training graph keeps `gemm`. @default `defaultLoraForm(ep)`: the build the EP runs
   */
  loraForm?: LoraForm;
}

interface Outputs {
  logitsBase: Float32Array;
  logitsLora: Float32Array;
  logprobsLora: Float32Array;
  greedy: number[];
  /**
   * float32 [greedy.length, vocab]: the decoder's logits before each greedy token, teacher-forced
   * over the prompt and `greedy` in one pass (where a near tie is judged: `greedyAgreement`).
   */
  greedyLogits: Float32Array;
  /** The training graph's d Σ weights·logprobs / d factor, by PEFT key (B unscaled, as PEFT's). */
  grads: Map<string, Float32Array>;
  /** The training graph's log-probabilities at the same positions as `logprobsLora`. */
  trainingLogprobs: Float32Array;
  /** The decoder's ORT binding, as loaded (`auto` decided). */
  backend: string;
}

/**
 * The LoRA form the decoder is built with: the one asked for, or the EP's (`defaultLoraForm`); `gemm`
 * with `loraOp: "shrink-expand"`, whose fused node computes the whole branch.
 */
const loraFormOf = (opts: ConformanceOptions): LoraForm =>
  opts.loraOp === "shrink-expand" ? "gemm" : (opts.loraForm ?? defaultLoraForm(opts.ep ?? "cpu"));

/** Builds the fixture's base with `quant` and `attention`, runs its decoder, and releases it. */
async function infer(
  opts: ConformanceOptions,
  ref: Reference,
  name: string,
  quant: BaseQuant,
  attention: DecoderAttention,
): Promise<{ inference: Omit<Outputs, "grads" | "trainingLogprobs">; outDir: string }> {
  const outDir = join(opts.workDir, name);
  const checkpointDir = join(opts.fixtureDir, "base");
  const kvCacheDtype = attention === "gqa" ? (opts.kvCacheDtype ?? "float32") : "float32";
  const ep = opts.ep ?? "cpu";
  const loraOp = opts.loraOp ?? "gemm";
  const loraForm = loraFormOf(opts);
  const built = await buildArtifacts({
    checkpointDir,
    outDir,
    quant,
    attention,
    kvCacheDtype,
    loraForm,
    loraOp,
  });
  if (!built.ok) throw built.error;
  const session = await DecoderSession.load(outDir, {
    executionProviders: [ep],
    backend: opts.backend ?? "auto",
    // Base logits from what a base-only request runs: the decoder without LoRA inputs; on cuda
    // what `auto` decides for the binding the session resolves to (off on the stock binding,
    // chooseBaseGraph), which also covers `--backend auto` falling back to it.
    baseGraph: ep === "cuda" ? "auto" : "on",
    ...(ep === "cuda" ? { cudaTf32: opts.tf32 !== false } : {}),
  });
  if (!session.ok) throw session.error;
  try {
    const out = await evaluate(session.value, ref, opts.fixtureDir);
    const vocab = session.value.manifest.dims.vocabSize;
    const real = (xs: Float32Array, width: number, per: number) =>
      opts.attention === "gqa" ? atRealTokens(xs, ref, width, per) : xs;
    const inference = {
      ...out,
      backend: session.value.backend,
      logitsBase: real(out.logitsBase, vocab, ref.seq),
      logitsLora: real(out.logitsLora, vocab, ref.seq),
      logprobsLora: real(out.logprobsLora, 1, ref.seq - 1),
    };
    return { inference, outDir };
  } finally {
    await session.value.release();
  }
}

/**
 * The rows of `values` (`width` numbers each, `per` rows per batch row, the first `per` positions)
 * at the reference's real tokens. Padding positions have no defined output: PyTorch's there come
 * from queries whose keys are all masked (a uniform softmax), GroupQueryAttention's from padding
 * it moves after the row's tokens; no caller reads them.
 */
function atRealTokens(values: Float32Array, ref: Reference, width: number, per: number): Float32Array {
  const kept: Float32Array[] = [];
  for (let b = 0; b < ref.batch; b++)
    for (let t = 0; t < per; t++)
      if (ref.attentionMask[b * ref.seq + t] === 1n) {
        const at = (b * per + t) * width;
        kept.push(values.subarray(at, at + width));
      }
  const out = new Float32Array(kept.length * width);
  kept.forEach((row, i) => {
    out.set(row, i * width);
  });
  return out;
}

/** `infer` with `opts.attention`, then the training graph's log-probabilities and gradients. */
async function measure(
  opts: ConformanceOptions,
  ref: Reference,
  name: string,
  quant: BaseQuant,
): Promise<{ out: Outputs; manifest: ModelManifest }> {
  const { inference, outDir } = await infer(opts, ref, name, quant, opts.attention ?? "ops");
  const training = await TrainingSession.load(outDir, { executionProviders: [opts.ep ?? "cpu"] });
  if (!training.ok) throw training.error;
  try {
    const grads = await differentiate(training.value, ref, opts.fixtureDir);
    const trainingLogprobs =
      opts.attention === "gqa"
        ? atRealTokens(grads.trainingLogprobs, ref, 1, ref.seq - 1)
        : grads.trainingLogprobs;
    return { out: { ...inference, ...grads, trainingLogprobs }, manifest: training.value.manifest };
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
): Promise<Omit<Outputs, "grads" | "trainingLogprobs" | "backend">> {
  const { batch, seq } = ref;
  const vocab = session.manifest.dims.vocabSize;
  const input = referenceStep(ref);
  const lora = adapterFeeds(session.spec, await readAdapter(fixtureDir, session.spec));
  const run = async (feeds: LoraFeeds) => (await session.step(input, feeds)).logits;
  const logitsBase = await run(baseFeeds(session.spec));
  if (session.baseGraph.graphPath !== null && session.stepCounts().base !== 1)
    throw new Error("the base logits did not come from the base graph");
  const logitsLora = await run(lora);
  const logprobsLora = new Float32Array(batch * (seq - 1));
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq - 1; t++) {
      const next = Number(ref.inputIds[b * seq + t + 1]);
      logprobsLora[b * (seq - 1) + t] = logProbAt(logitsLora, b * seq + t, vocab, next);
    }
  }
  const greedy = await greedyDecode(session, lora, ref.greedyPrompt, ref.greedyTokens.length);
  const forced = [...ref.greedyPrompt, ...greedy.slice(0, -1)];
  const from = ref.greedyPrompt.length - 1;
  const { logits: greedyLogits } = await session.step(
    {
      batch: 1,
      seq: forced.length,
      inputIds: BigInt64Array.from(forced.map(BigInt)),
      attentionMask: new BigInt64Array(forced.length).fill(1n),
      positionIds: BigInt64Array.from(forced.map((_, i) => BigInt(i))),
      logitsPositions: BigInt64Array.from(greedy.map((_, i) => BigInt(from + i))),
      logitsCount: greedy.length,
      past: null,
    },
    lora,
  );
  return { logitsBase, logitsLora, logprobsLora, greedy, greedyLogits };
}

/**
 * Whether our greedy tokens agree with `theirs`: equal, or (with `tieTolerance`, the float16
 * attention's logits tolerance) parting first at a near tie, where our logits of our token and of
 * theirs differ by at most `tieTolerance`. Up to that token both decoded the same prefix, so our
 * logits there are the ones that chose. After it the sequences have different prefixes and are not
 * compared. `tieTolerance` 0 asks for equal tokens.
 */
function greedyAgreement(o: Outputs, theirs: readonly number[], vocab: number, tieTolerance: number) {
  const at = o.greedy.findIndex((t, i) => t !== theirs[i]);
  if (at < 0 && o.greedy.length === theirs.length) return { greedyMatch: true, greedyAgrees: true };
  const row = o.greedyLogits.subarray(at * vocab, (at + 1) * vocab);
  const margin = round((row[o.greedy[at] ?? 0] ?? 0) - (row[theirs[at] ?? 0] ?? Number.NEGATIVE_INFINITY));
  return { greedyMatch: false, greedyAgrees: at >= 0 && margin <= tieTolerance, greedyTie: { at, margin } };
}

const round = (x: number) => Number(x.toPrecision(4));
const maxAbs = (xs: Float32Array) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * With `attention: gqa`, the decoder's outputs against the same weights' `ops` decoder: how far the
 * GroupQueryAttention kernel moves them. Null for `ops`.
 */
async function vsOpsAttention(
  opts: ConformanceOptions,
  ref: Reference,
  quant: BaseQuant,
  gqa: Outputs,
  tieTolerance: number,
) {
  if ((opts.attention ?? "ops") === "ops") return null;
  const { inference: ops } = await infer(opts, ref, "ops-attention", quant, "ops");
  return {
    logitsBaseMaxAbs: round(maxAbsDiff(gqa.logitsBase, ops.logitsBase)),
    logitsLoraMaxAbs: round(maxAbsDiff(gqa.logitsLora, ops.logitsLora)),
    ...greedyAgreement(gqa, ops.greedy, ops.greedyLogits.length / ops.greedy.length, tieTolerance),
  };
}

/** Whether `vsOpsAttention`'s figures are within `tolerance` (true when there are none). */
const opsAgree = (v: Awaited<ReturnType<typeof vsOpsAttention>>, tolerance: number) =>
  v === null || (v.logitsBaseMaxAbs <= tolerance && v.logitsLoraMaxAbs <= tolerance && v.greedyAgrees);

export async function runConformance(opts: ConformanceOptions) {
  const ep = opts.ep ?? "cpu";
  const tf32 = ep === "cuda" && opts.tf32 !== false;
  if (ep === "cuda" && !tf32) process.env.NVIDIA_TF32_OVERRIDE = "0";
  const read = await readReference(opts.fixtureDir);
  // GQA runs are compared at real tokens only (`atRealTokens`).
  const vocab = read.logitsBase.length / (read.batch * read.seq);
  const real = (xs: Float32Array, width: number, per: number) =>
    opts.attention === "gqa" ? atRealTokens(xs, read, width, per) : xs;
  const ref: Reference = {
    ...read,
    logitsBase: real(read.logitsBase, vocab, read.seq),
    logitsLora: real(read.logitsLora, vocab, read.seq),
    logprobsLora: real(read.logprobsLora, 1, read.seq - 1),
  };
  const fixture = basename(opts.fixtureDir);
  const kvCacheDtype = opts.attention === "gqa" ? (opts.kvCacheDtype ?? "float32") : "float32";
  const tol = tolerancesFor(ep, tf32, Math.max(maxAbs(ref.logitsBase), maxAbs(ref.logitsLora)), kvCacheDtype);
  // Near ties may part greedy sequences only where attention computes in float16.
  const ties = kvCacheDtype === "float16";
  const where = {
    ep,
    ...(ep === "cuda" ? { tf32 } : {}),
    ...(kvCacheDtype === "float32" ? {} : { kvCacheDtype }),
    ...((opts.loraOp ?? "gemm") === "gemm" ? {} : { loraOp: opts.loraOp }),
    toleranceWhy: tol.why,
  };
  const vsReference = (o: Outputs) => ({
    logitsBaseMaxAbs: round(maxAbsDiff(o.logitsBase, ref.logitsBase)),
    logitsLoraMaxAbs: round(maxAbsDiff(o.logitsLora, ref.logitsLora)),
    logprobsLoraMaxAbs: round(maxAbsDiff(o.logprobsLora, ref.logprobsLora)),
    ...greedyAgreement(o, ref.greedyTokens, vocab, ties ? tol.fp32 : 0),
    trainingLogprobsMaxAbs: round(maxAbsDiff(o.trainingLogprobs, ref.logprobsLora)),
    gradients: gradientErrors(o.grads, ref.grads),
  });

  if (opts.quant === "fp32") {
    const { out, manifest } = await measure(opts, ref, "fp32", { kind: "fp32" });
    const errors = vsReference(out);
    const vsOps = await vsOpsAttention(opts, ref, { kind: "fp32" }, out, ties ? tol.fp32 : 0);
    const pass =
      opsAgree(vsOps, tol.fp32) &&
      errors.logitsBaseMaxAbs <= tol.fp32 &&
      errors.logitsLoraMaxAbs <= tol.fp32 &&
      errors.logprobsLoraMaxAbs <= tol.fp32 &&
      errors.trainingLogprobsMaxAbs <= tol.training &&
      errors.gradients.maxRelError <= tol.gradient &&
      errors.greedyAgrees;
    return {
      fixture,
      model: manifest.architecture,
      quant: "fp32",
      attention: opts.attention ?? "ops",
      loraForm: loraFormOf(opts),
      positions: opts.attention === "gqa" ? "real tokens" : "all",
      ...where,
      backend: out.backend,
      tolerance: tol.fp32,
      ...(tol.training === tol.fp32 ? {} : { trainingTolerance: tol.training }),
      gradientTolerance: tol.gradient,
      ...errors,
      greedyTokens: out.greedy,
      expectedGreedyTokens: ref.greedyTokens,
      ...(vsOps === null ? {} : { vsOpsAttention: vsOps }),
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
  const vsOps = await vsOpsAttention(opts, ref, nbits(false), q, ties ? tol.quant : 0);
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
    attention: opts.attention ?? "ops",
    loraForm: loraFormOf(opts),
    positions: opts.attention === "gqa" ? "real tokens" : "all",
    ...where,
    backend: q.backend,
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
    ...(vsOps === null ? {} : { vsOpsAttention: vsOps }),
    pass:
      opsAgree(vsOps, tol.quant) &&
      kernel.logitsBaseMaxAbs <= tol.quant &&
      kernel.logitsLoraMaxAbs <= tol.quant &&
      kernel.gradients.maxRelError <= tol.quantGradient,
  };
}
