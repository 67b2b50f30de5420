/**
 * The training graph as one ORT session. `score` turns the graph's backward branch off and runs
 * the forward alone; `backward` also returns every LoRA gradient. Both take the factors as feeds,
 * so the policy, the old policy and the reference (rank-0 factors) share one loaded base.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  IO,
  ModelArtifactsError,
  type ModelManifest,
  readModelManifest,
  TRAIN_IO,
} from "../model-format/index.ts";
import type { ModelSpec } from "../model-spec/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import {
  createSession,
  ExecutionProviderError,
  type LoraFeeds,
  type OrtSessionOptions,
} from "../runtime/index.ts";

/** Sequences laid out for the training graph, with the positions whose next token is scored. */
export interface TrainBatch {
  batch: number;
  seq: number;
  /** int64 [batch, seq] */
  inputIds: BigInt64Array;
  /** int64 [batch, seq]: 1 for real tokens, 0 for padding */
  attentionMask: BigInt64Array;
  /** int64 [batch, seq] */
  positionIds: BigInt64Array;
  /** int64 [k]: flat index row · seq + position of each scored position */
  rows: BigInt64Array;
  /** int64 [k]: the token scored at each of those positions (the next token) */
  targets: BigInt64Array;
}

/**
 * The training graph (`train.onnx`) as one ORT session (`TrainingSession.load`): `score` returns
 * log p of each scored token, float32 `[k]`; `backward` also returns dLoss/dFactor per LoRA input
 * given dLoss/dLogprob seeds. Load fails with `ModelArtifactsError` when the directory has no
 * training graph, and with `ExecutionProviderError` when the requested provider cannot load.
 */
export class TrainingSession {
  private constructor(
    readonly manifest: ModelManifest,
    readonly spec: ModelSpec,
    private readonly session: ort.InferenceSession,
    private readonly gradNames: readonly string[],
  ) {}

  static async load(
    dir: string,
    options: OrtSessionOptions = {},
  ): Promise<Result<TrainingSession, ModelArtifactsError | ExecutionProviderError>> {
    const read = await readModelManifest(dir);
    if (!read.ok) return read;
    const { manifest, spec } = read.value;
    const file = manifest.files.training;
    if (file === undefined) {
      return err(new ModelArtifactsError(`${dir} has no training graph; rebuild it with this version`));
    }
    // No graph optimization: constant folding would precompute every dequantized weight of the
    // backward at load (9 GB for a 0.5B int4 base) instead of one at a time per step. No memory
    // pattern: it is planned per input shape, training shapes change every step, and the arena
    // it grows for each kept 5 GB more per shape on that model. (Measured: docs/benchmarks.md.)
    let session: ort.InferenceSession;
    try {
      session = await createSession(join(dir, file), options, {
        graphOptimizationLevel: "disabled",
        enableMemPattern: false,
      });
    } catch (e) {
      if (e instanceof ExecutionProviderError) return err(e);
      throw e;
    }
    const gradNames = session.outputNames.filter((n) => n.startsWith(TRAIN_IO.grad("")));
    return ok(new TrainingSession(manifest, spec, session, gradNames));
  }

  private feeds(batch: TrainBatch, lora: LoraFeeds, invTemperature: number, seeds: Float32Array | null) {
    const { batch: b, seq } = batch;
    const k = batch.rows.length;
    if (batch.targets.length !== k || (seeds !== null && seeds.length !== k)) {
      throw new Error(`scored positions: ${k} rows, ${batch.targets.length} targets, ${seeds?.length} seeds`);
    }
    return {
      ...lora,
      [IO.inputIds]: new ort.Tensor("int64", batch.inputIds, [b, seq]),
      [IO.attentionMask]: new ort.Tensor("int64", batch.attentionMask, [b, seq]),
      [IO.positionIds]: new ort.Tensor("int64", batch.positionIds, [b, seq]),
      [TRAIN_IO.scoreRows]: new ort.Tensor("int64", batch.rows, [k]),
      [TRAIN_IO.scoreTargets]: new ort.Tensor("int64", batch.targets, [k]),
      [TRAIN_IO.invTemperature]: new ort.Tensor("float32", Float32Array.of(invTemperature), []),
      [TRAIN_IO.logprobGrads]: new ort.Tensor("float32", seeds ?? new Float32Array(k), [k]),
      [TRAIN_IO.computeGrads]: new ort.Tensor("bool", Uint8Array.of(seeds === null ? 0 : 1), []),
    };
  }

  /** log p(target | prefix) at every scored position, forward only. */
  async score(batch: TrainBatch, lora: LoraFeeds, invTemperature = 1): Promise<Float32Array> {
    const out = await this.session.run(this.feeds(batch, lora, invTemperature, null), [TRAIN_IO.logprobs]);
    return out[TRAIN_IO.logprobs]?.data as Float32Array;
  }

  /**
   * Log-probabilities and dLoss/dFactor for every LoRA input, given dLoss/dLogprob per scored
   * position. Gradients are with respect to the factors as fed (B already scaled).
   */
  async backward(
    batch: TrainBatch,
    lora: LoraFeeds,
    seeds: Float32Array,
    invTemperature = 1,
  ): Promise<{ logprobs: Float32Array; grads: Map<string, Float32Array> }> {
    const out = await this.session.run(this.feeds(batch, lora, invTemperature, seeds), [
      TRAIN_IO.logprobs,
      ...this.gradNames,
    ]);
    const grads = new Map<string, Float32Array>();
    for (const name of this.gradNames) {
      grads.set(name.slice(TRAIN_IO.grad("").length), out[name]?.data as Float32Array);
    }
    return { logprobs: out[TRAIN_IO.logprobs]?.data as Float32Array, grads };
  }

  /** Releases the ORT session; the object is unusable afterwards. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
