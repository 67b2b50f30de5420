/**
 * The one definition of the scalars a run reports outside its SSE stream (TensorBoard event files,
 * OTLP), and of their names there. Where TRL logs the same quantity, the tag is TRL's name as
 * transformers' `TensorBoardCallback` writes it: `train/` + the key (transformers'
 * `integrations/integration_utils.py`, `rewrite_logs`), so `train/reward` in a loracast run and in
 * a `GRPOTrainer` run are comparable on one TensorBoard. Names are from trl/trainer/grpo_trainer.py,
 * rloo_trainer.py and trl/experimental/online_dpo/online_dpo_trainer.py, plus transformers'
 * `Trainer` (`loss`, `grad_norm`, `learning_rate`). Quantities TRL has no name for (the handoff:
 * versions, staleness, phases) are under `loracast/`.
 */
import type { RunEvent } from "@loracast/shared/run-events";

/** One reported scalar: where it comes from in the run's events, its tag, and TRL's counterpart. */
export interface ScalarName {
  /** The run event field it comes from (`metrics.reward_mean`, `published.ms`, …). */
  source: string;
  /** Its tag in TensorBoard (the metric name in OTLP). */
  tag: string;
  /** The TRL trainer(s) logging the same quantity under that name; null for loracast's own. */
  trl: string | null;
  /** What it is, with its unit. */
  meaning: string;
}

/** Step metrics (the `step` event's `metrics`) with a name of their own, TRL's where it has one. */
const STEP_METRICS: readonly ScalarName[] = [
  {
    source: "metrics.reward_mean",
    tag: "train/reward",
    trl: "GRPO, RLOO",
    meaning: "mean reward of the step's samples (skipped rewards left out); none for SFT",
  },
  {
    source: "metrics.reward_std",
    tag: "train/reward_std",
    trl: "GRPO, RLOO",
    meaning: "standard deviation of those rewards (Bessel-corrected)",
  },
  {
    source: "metrics.frac_reward_zero_std",
    tag: "train/frac_reward_zero_std",
    trl: "GRPO, RLOO",
    meaning: "share of the step's prompts whose rewards all equal (std 0: no learning signal)",
  },
  { source: "metrics.loss", tag: "train/loss", trl: "all", meaning: "the step's loss" },
  {
    source: "metrics.grad_norm",
    tag: "train/grad_norm",
    trl: "all",
    meaning: "global L2 norm of the gradient, before clipping",
  },
  {
    source: "metrics.lr",
    tag: "train/learning_rate",
    trl: "all",
    meaning: "the learning rate of the step's optimizer update",
  },
  {
    source: "metrics.kl",
    tag: "train/kl",
    trl: "GRPO, RLOO",
    meaning: "mean k3 KL to the base over completion tokens (0 when beta is 0)",
  },
  {
    source: "metrics.clip_fraction",
    tag: "train/clip_ratio/region_mean",
    trl: "GRPO, RLOO",
    meaning: "share of completion tokens whose ratio was clipped (low with A < 0 or high with A > 0)",
  },
  {
    source: "metrics.completion_length",
    tag: "train/completions/mean_length",
    trl: "GRPO, RLOO",
    meaning: "mean completion length of the step's rollouts, in tokens",
  },
  {
    source: "metrics.accuracy",
    tag: "train/rewards/accuracies",
    trl: "online DPO",
    meaning: "share of pairs whose implicit reward margin is positive",
  },
  {
    source: "metrics.margin",
    tag: "train/rewards/margins",
    trl: "online DPO",
    meaning: "mean implicit reward margin, beta × (chosen − rejected log-ratio)",
  },
  {
    source: "metrics.version",
    tag: "loracast/rollout_version",
    trl: null,
    meaning: "the adapter version the step's rollouts were sampled from",
  },
  {
    source: "metrics.staleness",
    tag: "loracast/staleness",
    trl: null,
    meaning: "steps between that version's parameters and the ones trained (0: on-policy)",
  },
  {
    source: "metrics.rewards_skipped",
    tag: "loracast/rewards_skipped",
    trl: null,
    meaning: "samples whose HTTP reward failed and were skipped; none for SFT",
  },
  {
    source: "metrics.tokens_per_second",
    tag: "loracast/tokens_per_second",
    trl: null,
    meaning: "trained completion tokens per second of the train phase",
  },
  { source: "metrics.step_ms", tag: "loracast/step_ms", trl: null, meaning: "the step's wall time, ms" },
];

/** Scalars of the other events and of the open-ended names (phases, metrics not listed above). */
const OTHER_SCALARS: readonly ScalarName[] = [
  {
    source: "phasesMs.<phase>",
    tag: "loracast/phase_ms/<phase>",
    trl: null,
    meaning: "ms the step spent in a phase (rollout, reward, old_logprobs, train, optimizer, …)",
  },
  {
    source: "published.version",
    tag: "loracast/published_version",
    trl: null,
    meaning: "a version published after this step",
  },
  {
    source: "published.ms",
    tag: "loracast/publish_ms",
    trl: null,
    meaning: "wall time of that publish (store upload, manifest, webhooks queued), ms",
  },
  {
    source: "checkpoint.ms",
    tag: "loracast/checkpoint_ms",
    trl: null,
    meaning: "wall time of a checkpoint written after this step, ms",
  },
  {
    source: "skipped",
    tag: "loracast/skipped_step",
    trl: null,
    meaning: "1 at a step undone for a non-finite loss, gradient or parameter",
  },
  {
    source: "metrics.<other>",
    tag: "loracast/<other>",
    trl: null,
    meaning: "any step metric not listed here, under its own name",
  },
];

/** Every reported scalar, in the order of the README's table. */
export const SCALAR_NAMES: readonly ScalarName[] = [...STEP_METRICS, ...OTHER_SCALARS];

const metricTags = new Map(STEP_METRICS.map((s) => [s.source.slice("metrics.".length), s.tag]));

/** A metric's tag: its own from the table, else `loracast/<name>`. */
function metricTag(name: string): string {
  return metricTags.get(name) ?? `loracast/${name}`;
}

/** The scalars one run event reports, at the run step it belongs to; null for events with none. */
export interface StepScalars {
  /** The run's step (the event's `step`: completed steps). */
  step: number;
  /** Tag → value; a value that was not finite (null in JSON) is NaN. */
  values: Map<string, number>;
}

/**
 * The scalars of one run event, tagged as SCALAR_NAMES says: `step` events give their metrics and
 * phases, `published`, `checkpoint` and `skipped` events theirs; the others (`resumed`, `stopped`,
 * `status`) none.
 */
export function runEventScalars(e: RunEvent): StepScalars | null {
  const values = new Map<string, number>();
  switch (e.type) {
    case "step":
      for (const [k, v] of Object.entries(e.metrics)) values.set(metricTag(k), v ?? Number.NaN);
      for (const [k, v] of Object.entries(e.phasesMs)) values.set(`loracast/phase_ms/${k}`, v ?? Number.NaN);
      break;
    case "published":
      values.set("loracast/published_version", e.version);
      values.set("loracast/publish_ms", e.ms);
      break;
    case "checkpoint":
      values.set("loracast/checkpoint_ms", e.ms);
      break;
    case "skipped":
      values.set("loracast/skipped_step", 1);
      break;
    default:
      return null;
  }
  return { step: e.step, values };
}

/** SCALAR_NAMES as a Markdown table, padded as `biome format` pads tables (the README holds this text). */
export function scalarNamesTable(): string {
  const rows = [
    ["run event field", "TensorBoard tag, OTLP metric", "TRL logs it in", "meaning"],
    ...SCALAR_NAMES.map((s) => [`\`${s.source}\``, `\`${s.tag}\``, s.trl ?? "—", s.meaning]),
  ];
  const widths = rows[0]?.map((_, c) => Math.max(3, ...rows.map((r) => [...(r[c] ?? "")].length))) ?? [];
  const line = (cells: string[]) =>
    `| ${cells.map((cell, c) => cell + " ".repeat((widths[c] ?? 0) - [...cell].length)).join(" | ")} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
