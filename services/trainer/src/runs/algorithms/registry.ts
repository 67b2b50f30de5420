/**
 * Every algorithm a run config may name, and the run config's `algorithm` schema derived from
 * them: a discriminated union on `name` over each algorithm's own schema. Adding an algorithm is
 * one file, plus its import and its entry in ALGORITHMS here (and its name in README's algorithm
 * list, which registry.test.ts checks); the registry's tests hold for every entry without an edit.
 */
import { z } from "zod";
import type { Algorithm, AlgorithmSchema, GradientResult, StepContext, StepSample } from "./algorithm.ts";
import { grpo } from "./grpo.ts";
import { onlineDpo } from "./online-dpo.ts";
import { rloo } from "./rloo.ts";
import { sft } from "./sft.ts";

const ALGORITHMS = [grpo, onlineDpo, sft, rloo] as const;

type Schemas<T extends readonly Algorithm<AlgorithmSchema>[]> = {
  -readonly [K in keyof T]: T[K] extends Algorithm<infer S> ? S : never;
};

/** The run config's `algorithm` field: one branch per registered algorithm, chosen by `name`. */
export const algorithmConfigSchema = z.discriminatedUnion(
  "name",
  // `map` loses the tuple's element types; Schemas restores them (each element is its record's schema).
  ALGORITHMS.map((a) => a.schema) as Schemas<typeof ALGORITHMS>,
);

/** A run's parsed `algorithm` config: one registered algorithm's, defaults filled in. */
export type AlgorithmConfig = z.output<typeof algorithmConfigSchema>;

/** The names `algorithm.name` accepts, in registry order. */
export const ALGORITHM_NAMES: readonly AlgorithmConfig["name"][] = ALGORITHMS.map((a) => a.name);

/** An algorithm bound to its run's config: what the run loop calls. */
export interface RunAlgorithm {
  readonly name: AlgorithmConfig["name"];
  /** See Algorithm.rollouts. */
  readonly rollouts: boolean;
  /** See Algorithm.rewardsFor. */
  readonly rewardsFor: string | null;
  /** Completions per prompt under this config. */
  readonly samplesPerPrompt: number;
  /** Whether a completion that stopped for `finishReason` is left out of the loss. */
  masked(finishReason: "stop" | "length"): boolean;
  /** The step's gradient from its samples (Algorithm.gradients under this config). */
  gradients(ctx: StepContext, samples: StepSample[]): Promise<GradientResult>;
}

/**
 * A record seen over the whole union. Its methods take the union where each record takes its own
 * branch; the union parsed `config` with the schema of the record whose name it carries, so the
 * record found by that name always gets its own branch.
 */
interface AnyAlgorithm {
  readonly name: string;
  readonly rollouts: boolean;
  readonly rewardsFor: string | null;
  samplesPerPrompt(config: AlgorithmConfig): number;
  masked(config: AlgorithmConfig, finishReason: "stop" | "length"): boolean;
  gradients(ctx: StepContext, config: AlgorithmConfig, samples: StepSample[]): Promise<GradientResult>;
}

/** The registered algorithm `config.name` selects, bound to `config`. */
export function algorithmFor(config: AlgorithmConfig): RunAlgorithm {
  const records: readonly AnyAlgorithm[] = ALGORITHMS;
  const record = records.find((a) => a.name === config.name);
  if (record === undefined) throw new Error(`no registered algorithm ${config.name}`);
  return {
    name: config.name,
    rollouts: record.rollouts,
    rewardsFor: record.rewardsFor,
    samplesPerPrompt: record.samplesPerPrompt(config),
    masked: (finishReason) => record.masked(config, finishReason),
    gradients: (ctx, samples) => record.gradients(ctx, config, samples),
  };
}
