/**
 * What a training algorithm is to the run loop: a record with its own config schema, where its
 * samples come from, which of them the loss leaves out, and its gradients over that config. The
 * loop reads rollout → reward → `gradients()` → optimizer and never asks which algorithm it runs.
 */
import type { LoraParams, Sample, TrainingSession } from "@loracast/shared/training";
import type { z } from "zod";

/** One sequence of a step: a prompt, its completion, and what the loss needs besides the tokens. */
export interface StepSample extends Sample {
  /** The sampler's log-probability of each completion token; null for dataset completions (SFT). */
  samplerLogprobs: number[] | null;
  /** The sample's reward (NaN when an HTTP reward skipped it; 0 for dataset completions). */
  reward: number;
}

/** One optimizer step's worth of gradient, with what the step event reports about it. */
export interface GradientResult {
  /** The step's loss, as the reference implementation would log it. */
  loss: number;
  /** dLoss/dParameter by PEFT key (`…q_proj.lora_A.weight`), accumulated over micro-batches. */
  grads: Map<string, Float32Array>;
  /** Completion tokens that went into the loss (masked ones excluded), over every pass. */
  trainedTokens: number;
  /** The algorithm's own step metrics (`clip_fraction`, `margin`, …), merged into the step event. */
  metrics: Record<string, number>;
  /** Milliseconds per phase (`reference`, `old_logprobs`, `policy_logprobs`, `train`). */
  phases: Record<string, number>;
}

/** What `gradients()` may use: the training graph, the adapter, the step's settings, the clock. */
export interface StepContext {
  session: Pick<TrainingSession, "spec" | "score" | "backward">;
  params: Pick<LoraParams, "feeds" | "gradients">;
  /** Sequences per forward/backward pass (the run's `microBatch`). */
  microBatch: number;
  /** The run's sampling settings: log-probabilities are taken at `temperature`, as sampled. */
  sampling: { temperature: number; maxTokens: number };
  /** Milliseconds, for the phase times. */
  now: () => number;
  /**
   * Applies an optimizer step to `grads` (clipped; skipped when their norm is not finite). For
   * algorithms that take several optimizer steps per batch (GRPO's numIterations, as TRL does):
   * all but the last go through here, the last is returned to the loop.
   */
  optimize(grads: Map<string, Float32Array>): void;
}

/** The shape every algorithm's config schema has: a strict object tagged by its `name`. */
export type AlgorithmSchema = z.core.$ZodTypeDiscriminable & z.ZodType<{ name: string }>;

/**
 * One training algorithm. `S` is its config schema (`{"name": "<name>", …}`), one branch of the
 * run config's `algorithm` union (registry.ts); every method gets that branch's parsed config.
 */
export interface Algorithm<S extends AlgorithmSchema> {
  /** The value of `algorithm.name` that selects it. */
  readonly name: z.output<S>["name"];
  readonly schema: S;
  /**
   * Whether a step samples completions from the newest published version (true), or trains on
   * the dataset's `completion` of each prompt (false; every line must then carry one).
   */
  readonly rollouts: boolean;
  /**
   * What the rewards become, for the 400 a config without reward functions gets ("GRPO's
   * advantages"); null when the algorithm trains without rewards.
   */
  readonly rewardsFor: string | null;
  /** Completions sampled per prompt (1 for dataset completions). */
  samplesPerPrompt(config: z.output<S>): number;
  /** Whether a completion that stopped for `finishReason` is left out of the loss. */
  masked(config: z.output<S>, finishReason: "stop" | "length"): boolean;
  /**
   * The step's gradient from its samples, `samplesPerPrompt` consecutive ones per prompt. Throws
   * only on a broken invariant (a sample count that is not a whole number of groups).
   */
  gradients(ctx: StepContext, config: z.output<S>, samples: StepSample[]): Promise<GradientResult>;
}

/** `items` in consecutive runs of `size` (the last may be shorter). */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Starts timing phase `name`; the returned function adds the elapsed milliseconds to `phases`. */
export function timed(phases: Record<string, number>, name: string, now: () => number): () => void {
  const start = now();
  return () => {
    phases[name] = (phases[name] ?? 0) + (now() - start);
  };
}

/** Masked tokens of a packed micro-batch: the tokens its loss counts. */
export function countedTokens(mask: Float32Array): number {
  return mask.reduce((a, b) => a + b, 0);
}
