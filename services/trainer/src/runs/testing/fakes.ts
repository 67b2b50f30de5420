/**
 * Fakes for the trainer's unit tests: a training session that records what it is asked and
 * answers with fixed log-probabilities, a model spec small enough to build in-process, a GRPO run
 * config checked against it, a clock that advances by 1 ms per read, and a silent logger. No ONNX
 * session is run.
 */

import { buildModelSpec, type ModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import type { Clock, Logger } from "@loracast/shared/platform";
import type { LoraFeeds } from "@loracast/shared/runtime";
import type { TrainBatch, TrainingSession } from "@loracast/shared/training";
import { planRun } from "../run-plan.ts";

/** A 1-layer Llama of hidden size 16 (its module map only; no weights). */
export function tinySpec(): ModelSpec {
  const dims = parseDecoderDims({
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 16,
    intermediate_size: 32,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    num_hidden_layers: 1,
    head_dim: 8,
    vocab_size: 64,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  });
  if (!dims.ok) throw dims.error;
  return buildModelSpec(dims.value);
}

/**
 * `POST /v1/runs`'s checks (`planRun`) on a GRPO config over the dataset at `path`, with one
 * `json_valid` reward, `extra` fields merged in, for `tinySpec()` and a trainer whose working
 * directory is `cwd`.
 */
export function planGrpoRun(path: string, cwd: string, extra: Record<string, unknown> = {}) {
  const body = {
    run: "r",
    steps: 2,
    dataset: { path },
    algorithm: { name: "grpo" },
    rewards: [{ type: "json_valid" }],
    ...extra,
  };
  return planRun(body, tinySpec(), { allowPrivate: false }, cwd);
}

/** One call the fake session got. */
interface SessionCall {
  kind: "score" | "backward";
  /** Scored tokens of the batch (batch.targets). */
  targets: number[];
  /** dLoss/dLogprob per scored token (backward only). */
  seeds: number[] | null;
  invTemperature: number;
  /** Whether the call ran on the base (every LoRA feed rank 0): a reference pass. */
  base: boolean;
}

/**
 * A training session that records its calls. `score` and `backward` give `logprob` for every
 * scored token; `backward`'s gradient for every non-empty LoRA feed is filled with Σ seeds, so a
 * test reads the seeds' sum back from the accumulated gradients.
 */
export class FakeSession implements Pick<TrainingSession, "spec" | "score" | "backward"> {
  readonly calls: SessionCall[] = [];

  constructor(
    readonly spec: ModelSpec = tinySpec(),
    private readonly logprob = -1,
  ) {}

  private record(
    kind: SessionCall["kind"],
    batch: TrainBatch,
    lora: LoraFeeds,
    seeds: Float32Array | null,
    invT: number,
  ) {
    const base = Object.values(lora).every((t) => t.data.length === 0);
    this.calls.push({
      kind,
      targets: [...batch.targets].map(Number),
      seeds: seeds && [...seeds],
      invTemperature: invT,
      base,
    });
  }

  async score(batch: TrainBatch, lora: LoraFeeds, invTemperature = 1): Promise<Float32Array> {
    this.record("score", batch, lora, null, invTemperature);
    return new Float32Array(batch.targets.length).fill(this.logprob);
  }

  async backward(batch: TrainBatch, lora: LoraFeeds, seeds: Float32Array, invTemperature = 1) {
    this.record("backward", batch, lora, seeds, invTemperature);
    const sum = seeds.reduce((a, b) => a + b, 0);
    const grads = new Map<string, Float32Array>();
    for (const [key, t] of Object.entries(lora)) {
      if (t.data.length > 0) grads.set(key, new Float32Array(t.data.length).fill(sum));
    }
    return { logprobs: new Float32Array(batch.targets.length).fill(this.logprob), grads };
  }
}

/** A clock that starts at 0 and advances 1 ms at every read. */
export function tickingClock(): Clock {
  let t = 0;
  return { now: () => t++ };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
