/**
 * Our model over a PEFT reference fixture: built (`buildArtifacts`), run as the decoder (base and
 * LoRA logits, log-probabilities, greedy tokens) and as the training graph (log-probabilities and
 * the factors' gradients), each session released before the next.
 */
import { join } from "node:path";
import { type BaseQuant, buildArtifacts, type DecoderAttention } from "@loracast/shared/model-builder";
import type { ModelManifest } from "@loracast/shared/model-format";
import { peftKey } from "@loracast/shared/model-spec";
import {
  adapterFeeds,
  baseFeeds,
  DecoderSession,
  greedyDecode,
  type LoraFeeds,
  logProbAt,
  type StepInput,
} from "@loracast/shared/runtime";
import { type TrainBatch, TrainingSession } from "@loracast/shared/training";
import { type Reference, readAdapter } from "./fixture.ts";
import { type ConformanceOptions, loraFormOf } from "./options.ts";

/** What one build of the fixture's model gives, compared with the reference by `harness.ts`. */
export interface Outputs {
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

/** Builds the fixture's base with `quant` and `attention`, runs its decoder, and releases it. */
export async function infer(
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
export function atRealTokens(values: Float32Array, ref: Reference, width: number, per: number): Float32Array {
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
export async function measure(
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

/** The decoder's outputs over the fixture: base and LoRA logits of one pass, log-probabilities, greedy tokens. */
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
