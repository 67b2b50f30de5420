/**
 * Everything about a run that can fail on the user's config, checked before `POST /v1/runs`
 * answers: the schema, the reward functions the algorithm needs, the LoRA targets against this
 * base's module map, and every dataset line against what the algorithm and rewards read. The
 * background launch then only does work that cannot fail on input.
 */
import { checkEgressUrl, type EgressPolicy } from "@loracast/shared/egress";
import type { ModelSpec } from "@loracast/shared/model-spec";
import { isTargeted, type LoraConfig, parseLoraConfig } from "@loracast/shared/peft";
import { err, ok, type Result } from "@loracast/shared/result";
import { TrainerError } from "../errors.ts";
import { algorithmFor } from "./algorithms/index.ts";
import { describeConfigError, type RunConfig, runConfigSchema, withAbsoluteDatasetPath } from "./config.ts";
import { datasetNeeds, type Example, loadDataset } from "./dataset.ts";

/** A run config that passed every input check, with what the checks produced. */
export interface RunPlan {
  config: RunConfig;
  /** `config.lora` as PEFT's LoraConfig, checked against the base (runLora): the one conversion. */
  lora: LoraConfig;
  /** The dataset, every line checked against what the algorithm and rewards read. */
  data: Example[];
}

const invalid = (message: string) => err(new TrainerError("invalid_config", message));

/**
 * The run's LoRA as PEFT config, checked against the base: every `lora.targetModules` entry must
 * select at least one module (a typo would otherwise train fewer modules than asked, silently),
 * and the scaling must fit float32.
 */
export function runLora(config: RunConfig, spec: ModelSpec): Result<LoraConfig, TrainerError> {
  const { lora } = config;
  const parsed = parseLoraConfig({
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r: lora.r,
    lora_alpha: lora.alpha,
    target_modules: lora.targetModules,
    use_rslora: lora.rslora,
    bias: "none",
  });
  if (!parsed.ok) {
    // Only target_modules can fail here (the schema checked r and alpha): a string is a Python regex.
    const e = parsed.error;
    return invalid(e.field === "target_modules" ? `lora.targetModules: ${e.reason}` : `lora: ${e.message}`);
  }
  // The engine folds the scaling into B as float32; past that range every published version would
  // be refused (verify.ts), the first one before any step.
  const scaling = lora.rslora ? lora.alpha / Math.sqrt(lora.r) : lora.alpha / lora.r;
  if (!Number.isFinite(Math.fround(scaling))) {
    const rule = lora.rslora ? "alpha / sqrt(r)" : "alpha / r";
    return invalid(`lora.alpha: the LoRA scaling ${rule} = ${scaling} is not finite in float32`);
  }
  const modules = [...spec.modules.keys()];
  const suffixes = [...new Set(modules.map((m) => m.slice(m.lastIndexOf(".") + 1)))];
  const entries = typeof lora.targetModules === "string" ? [] : lora.targetModules;
  for (const [i, entry] of entries.entries()) {
    if (!modules.some((m) => m === entry || m.endsWith(`.${entry}`))) {
      return invalid(
        `lora.targetModules.${i}: "${entry}" selects no module of this base (its modules end in ${suffixes.join(", ")})`,
      );
    }
  }
  if (!modules.some((m) => isTargeted(parsed.value, m))) {
    const example = modules[0] ?? "";
    return invalid(
      `lora.targetModules: ${JSON.stringify(lora.targetModules)} selects no module of this base (a string other than "all-linear" is a Python regex that must match a whole module path, such as ${example})`,
    );
  }
  return ok(parsed.value);
}

/** An algorithm trained on rewards (GRPO's advantages, online DPO's pairs) needs a reward function. */
function checkRewards(config: RunConfig): Result<null, TrainerError> {
  const why = algorithmFor(config.algorithm).rewardsFor;
  if (why !== null && config.rewards.length === 0) {
    return invalid(`rewards: ${why} come from reward functions; give at least one`);
  }
  return ok(null);
}

/** `loggingDir` says where TensorBoard files go, so it is refused where none are written. */
function checkReporting(config: RunConfig): Result<null, TrainerError> {
  if (config.loggingDir !== null && !config.reportTo.includes("tensorboard")) {
    return invalid(`loggingDir: TensorBoard files are written only with reportTo: ["tensorboard"]`);
  }
  return ok(null);
}

/**
 * Every URL the run will call (HTTP rewards, the generator fleet) against the egress policy; the
 * connect-time check (egressFetch) catches names that resolve to refused addresses.
 */
function checkUrls(config: RunConfig, egress: EgressPolicy): Result<null, TrainerError> {
  const urls = [
    ...config.rewards.flatMap((r, i) =>
      r.type === "http" ? [{ field: `rewards.${i}.url`, url: r.url }] : [],
    ),
    ...(config.generators?.urls ?? []).map((url, i) => ({ field: `generators.urls.${i}`, url })),
  ];
  for (const { field, url } of urls) {
    const checked = checkEgressUrl(url, egress);
    if (!checked.ok) return invalid(`${field}: ${checked.error.message}`);
  }
  return ok(null);
}

/** The plan of a checked config: its LoRA and its dataset; `givenPath` is `dataset.path` as posted. */
async function plan(
  config: RunConfig,
  spec: ModelSpec,
  givenPath: string,
): Promise<Result<RunPlan, TrainerError>> {
  const lora = runLora(config, spec);
  if (!lora.ok) return lora;
  const data = await loadDataset(config.dataset.path, datasetNeeds(config), givenPath);
  return data.ok ? ok({ config, lora: lora.value, data: data.value }) : data;
}

/**
 * The plan of a config accepted earlier (a run resumed after a restart; its `dataset.path` is the
 * absolute one `planRun` stored): its LoRA and its dataset again, as the base or the file may have
 * changed since. A failure is `invalid_config`.
 */
export async function replanRun(config: RunConfig, spec: ModelSpec): Promise<Result<RunPlan, TrainerError>> {
  return plan(config, spec, config.dataset.path);
}

/**
 * Checks a `POST /v1/runs` body completely; a failure is `invalid_config` naming the field path.
 * The plan's config has `dataset.path` absolute, a relative one resolved against `cwd` (the
 * trainer's working directory): what the run stores, reports and resumes with.
 */
export async function planRun(
  body: unknown,
  spec: ModelSpec,
  egress: EgressPolicy,
  cwd: string,
): Promise<Result<RunPlan, TrainerError>> {
  const parsed = runConfigSchema.safeParse(body);
  if (!parsed.success) return invalid(describeConfigError(parsed.error));
  const config = withAbsoluteDatasetPath(parsed.data, cwd);
  const rewards = checkRewards(config);
  if (!rewards.ok) return rewards;
  const urls = checkUrls(config, egress);
  if (!urls.ok) return urls;
  const reporting = checkReporting(config);
  if (!reporting.ok) return reporting;
  return plan(config, spec, parsed.data.dataset.path);
}
