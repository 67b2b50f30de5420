/**
 * One run's training loop: rollouts from the newest published version, rewards, gradients,
 * AdamW, then publish and checkpoint on their cadences. Step s draws its prompts and sampling
 * seed from (seed, s), so a run resumed from a checkpoint replays nothing before it and repeats
 * exactly what came after it.
 */

import { AdamW, learningRate } from "@loracast/shared/optim";
import type { Clock, Logger } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import type { RunEvent } from "@loracast/shared/run-events";
import type { LoraFeeds } from "@loracast/shared/runtime";
import { sha256Concurrent, sharedBytes } from "@loracast/shared/store";
import type { TextTokenizer } from "@loracast/shared/tokenizer";
import { LoraParams, microBatchSize, packBatch, type TrainingSession } from "@loracast/shared/training";
import { TrainerError } from "../errors.ts";
import type { PublishExtras, PublishResult } from "../publisher.ts";
import { algorithmFor, type GradientResult, type RunAlgorithm, type StepSample } from "./algorithms/index.ts";
import type { CheckpointStore } from "./checkpoints.ts";
import type { RunConfig } from "./config.ts";
import { type Example, examplesForStep } from "./dataset.ts";
import { copyParams, firstNonFiniteParam, restore, snapshot } from "./parameter-state.ts";
import { rewardModel } from "./rewards.ts";
import type { RolloutSource } from "./rollouts.ts";
import type { RunPlan } from "./run-plan.ts";

/** What the loop reports as it goes; the run manager adds the `resumed` and final status events. */
export type RunLoopEvent = Exclude<RunEvent, { type: "status" | "resumed" | "stopped" }>;

/** What a run loop trains with; each is an interface the unit tests fake (run-loop.test.ts). */
export interface RunLoopDeps {
  session: Pick<TrainingSession, "spec" | "score" | "backward">;
  tokenizer: Pick<TextTokenizer, "encode" | "decode" | "stopTokenIds">;
  rollouts: RolloutSource;
  /**
   * Publishes the adapter's PEFT files as the run's next version. `sha256` is the weights' (hex;
   * a promise while a worker thread computes it, shared/store `sha256Concurrent`),
   * `phasesMs` the loop's own publish phases so far; `extras` may still be computing (the probe,
   * started once this is called), and is awaited once the version is numbered.
   */
  publish(
    run: string,
    files: {
      configBytes: Uint8Array;
      weights: Uint8Array;
      sha256: string | Promise<string>;
      phasesMs: Readonly<Record<string, number>>;
    },
    extras: Promise<PublishExtras>,
  ): Promise<PublishResult>;
  checkpoints: Pick<CheckpointStore, "save" | "latest">;
  /**
   * The run's live versions (neither failed nor revoked) in the store, by the sha256 of their
   * adapter_model.safetensors: a resumed run adopts the version an earlier attempt published with
   * the same weights instead of publishing them again.
   */
  publishedWeights(run: string): Promise<ReadonlyMap<string, number>>;
  clock: Clock;
  log: Logger;
  /**
   * Activation memory one forward/backward pass may use, in bytes: it sizes each step's
   * micro-batch when the run's config sets none (shared/training/memory.ts).
   */
  memoryBudgetBytes: number;
  /** The egress-checked fetch (egressFetch) HTTP rewards call through. */
  fetch: typeof fetch;
  emit(event: RunLoopEvent): void;
}

/**
 * Trains one run: `restore()` from its newest checkpoint (if any), then `run()` to its last step.
 * Throws TrainerError from `run()` when the run cannot go on (`non_finite` after
 * maxNonFiniteSteps skipped steps; the rollout source's and rewards' errors as they come).
 */
export class RunLoop {
  private readonly config: RunConfig;
  private readonly data: readonly Example[];
  private readonly algorithm: RunAlgorithm;
  private readonly params: LoraParams;
  private readonly optimizer: AdamW;
  private step = 0;
  private version = 0;
  private versionStep = 0;
  /** Whether a step changed the parameters since the last publish; skipped steps change nothing. */
  private changed = false;
  /** The parameters of `version` (a copy taken when it was published): the rollout policy. */
  private policy: Map<string, Float32Array> | null = null;
  /** After a resume: versions after the checkpoint's, by weights sha256, that this attempt may adopt. */
  private adoptable = new Map<string, number>();
  /**
   * The last publish's encoded weights, which nothing reads once that publish returned: the next
   * publish encodes into it (`LoraParams.toPeft`). Taken while a publish runs, so one that fails
   * (its upload possibly still reading) leaves nothing to reuse.
   */
  private spareWeights: Uint8Array | undefined;
  private readonly reward;

  /** `plan`: the run's checked config, its LoRA as PEFT config and its dataset (run-plan.ts). */
  constructor(
    plan: RunPlan,
    private readonly d: RunLoopDeps,
  ) {
    const { config } = plan;
    this.config = config;
    this.data = plan.data;
    this.algorithm = algorithmFor(config.algorithm);
    this.params = LoraParams.init(d.session.spec, plan.lora, createRng(config.seed));
    const o = config.optimizer;
    this.optimizer = new AdamW({ beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
    this.reward = rewardModel(config.rewards, d.fetch);
  }

  /**
   * Continues from the run's newest checkpoint, if it has one. Returns the step it resumes after
   * and the newest version published by then (0 for none; both 0 without a checkpoint).
   */
  async restore(): Promise<{ step: number; version: number }> {
    const c = await this.d.checkpoints.latest(this.config.run);
    if (c === null) return { step: 0, version: 0 };
    this.params.assign(c.params);
    Object.assign(this.optimizer.state, c.optimizer);
    this.step = c.state.step;
    this.version = c.state.version;
    this.versionStep = c.state.versionStep;
    this.policy = c.policy ?? (c.state.versionStep === c.state.step ? copyParams(c.params) : null);
    // Steps after the checkpoint are redone exactly, so the versions an earlier attempt published
    // from them come back byte for byte: those are adopted, not published again.
    for (const [sha, v] of await this.d.publishedWeights(this.config.run)) {
      if (v > this.version) this.adoptable.set(sha, v);
    }
    this.d.log.info("resumed from checkpoint", {
      run: this.config.run,
      step: this.step,
      version: this.version,
    });
    return { step: this.step, version: this.version };
  }

  /** Trains from the restored step to `config.steps`, publishing and checkpointing on their cadences. */
  async run(signal: AbortSignal): Promise<void> {
    const { config } = this;
    // The rollout policy is always a published version, so samples name what produced them. A
    // resume off the publish cadence samples from the checkpoint's copy of that version; only a
    // checkpoint written before checkpoints kept that copy makes it publish the current parameters.
    if (this.version === 0) await this.publish();
    else if (this.versionStep === this.step) this.d.rollouts.offer(this.version, this.params.feeds());
    else if (this.policy !== null) this.d.rollouts.offer(this.version, this.policyFeeds(this.policy));
    else await this.publish();
    let nonFinite = 0;
    while (this.step < config.steps) {
      signal.throwIfAborted();
      const before = snapshot(this.params, this.optimizer);
      const skipped = await this.trainStep(signal);
      if (skipped !== null) {
        // Nothing of a skipped step survives: intermediate optimizer steps (GRPO's numIterations)
        // or the last one may already have written NaN into the parameters or the moments.
        restore(this.params, this.optimizer, before);
        nonFinite++;
        this.d.log.warn("step skipped", { run: config.run, step: this.step + 1, reason: skipped });
        this.d.emit({ type: "skipped", step: this.step + 1, reason: `${skipped}; step skipped` });
        if (nonFinite >= config.maxNonFiniteSteps) {
          throw new TrainerError(
            "non_finite",
            `${skipped}; ${nonFinite} consecutive non-finite steps (maxNonFiniteSteps = ${config.maxNonFiniteSteps})`,
          );
        }
      } else {
        nonFinite = 0;
        this.changed = true;
      }
      this.step++;
      const last = this.step === config.steps;
      // A copy of the previous version is no new version (after skipped steps, say).
      if ((this.step % config.publishEvery === 0 || last) && this.changed) await this.publish();
      if (this.step % config.checkpointEvery === 0 || last) await this.checkpoint();
    }
  }

  /**
   * Trains one step, in order: samples (rollouts of the newest version, then their rewards; or the
   * dataset's completions), the algorithm's gradients, the optimizer. Null when it was applied,
   * else why it was skipped (in training terms).
   */
  private async trainStep(signal: AbortSignal): Promise<string | null> {
    const { config, d } = this;
    const now = () => d.clock.now();
    const stepStart = now();
    const examples = examplesForStep(this.data, config.seed, this.step, config.promptsPerStep);
    const phases: Record<string, number> = {};
    const samples = this.algorithm.rollouts
      ? await this.rolloutSamples(examples, phases, signal)
      : this.datasetSamples(examples);
    // Dataset completions come from no version, so they are never stale.
    const staleness = this.algorithm.rollouts ? this.step - this.versionStep : 0;

    const lr = learningRate(
      {
        kind: config.optimizer.schedule,
        lr: config.optimizer.lr,
        warmupSteps: config.optimizer.warmupSteps,
        totalSteps: config.steps,
      },
      this.step,
    );
    // Intermediate optimizer steps (GRPO's numIterations > 1) skip silently on a non-finite norm;
    // the step's last one is checked and reported below.
    const optimize = (grads: Map<string, Float32Array>) => {
      this.optimizer.clippedStep(this.params.named(), grads, lr, config.optimizer.maxGradNorm);
    };
    // Never more than the step's sequences: the step event reports the passes' size as used, not
    // the budget's ceiling (a budget for 18,093 sequences reported that figure for a step of 32).
    const microBatch = Math.max(
      1,
      Math.min(config.microBatch ?? this.microBatchFor(samples), samples.length),
    );
    const g: GradientResult = await this.algorithm.gradients(
      {
        session: d.session,
        params: this.params,
        microBatch,
        sampling: config.sampling,
        now,
        optimize,
      },
      samples,
    );
    Object.assign(phases, g.phases);

    if (!Number.isFinite(g.loss)) return `non-finite loss at step ${this.step + 1}`;
    const t2 = now();
    // Clip and step in one pass; a non-finite norm leaves parameters and moments as they were.
    const gradNorm = this.optimizer.clippedStep(
      this.params.named(),
      g.grads,
      lr,
      config.optimizer.maxGradNorm,
    );
    if (!Number.isFinite(gradNorm)) return `non-finite gradient norm at step ${this.step + 1}`;
    phases.optimizer = now() - t2;
    const broken = firstNonFiniteParam(this.params.named());
    if (broken !== null) {
      return `parameters became non-finite after the optimizer step at step ${this.step + 1} (${broken}; optimizer.lr = ${lr})`;
    }

    const rewards = samples.map((s) => s.reward).filter((r) => !Number.isNaN(r));
    const mean = rewards.reduce((a, b) => a + b, 0) / Math.max(rewards.length, 1);
    const std = Math.sqrt(rewards.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(rewards.length - 1, 1));
    const trainMs = phases.train ?? 0;
    d.emit({
      type: "step",
      step: this.step + 1,
      metrics: {
        // Rewards of rollouts only: SFT trains on the dataset's completions and has none (TRL's
        // SFTTrainer logs no reward either), so it reports none rather than 0.
        ...(this.algorithm.rollouts
          ? { reward_mean: mean, reward_std: std, rewards_skipped: samples.length - rewards.length }
          : {}),
        loss: g.loss,
        grad_norm: gradNorm,
        lr,
        version: this.version,
        staleness,
        tokens_per_second: trainMs > 0 ? (g.trainedTokens / trainMs) * 1000 : 0,
        step_ms: now() - stepStart,
        micro_batch: microBatch,
        // TRL's completions/mean_length: rollouts only (SFT's completions are the dataset's).
        ...(this.algorithm.rollouts ? { completion_length: meanLength(samples) } : {}),
        ...g.metrics,
      },
      phasesMs: phases,
    });
    return null;
  }

  /**
   * The step's samples from rollouts: `samplesPerPrompt` completions of each prompt from the
   * newest published version, then their rewards. Records the `rollout` and `reward` phases.
   */
  private async rolloutSamples(
    examples: readonly Example[],
    phases: Record<string, number>,
    signal: AbortSignal,
  ): Promise<StepSample[]> {
    const { config, d } = this;
    const now = () => d.clock.now();
    const t0 = now();
    const prompts = examples.map((e) => d.tokenizer.encode(e.prompt));
    const rollouts = await d.rollouts.generate(
      {
        run: config.run,
        version: this.version,
        prompts,
        n: this.algorithm.samplesPerPrompt,
        sampling: config.sampling,
        stopTokens: d.tokenizer.stopTokenIds,
        seed: config.seed * 1_000_003 + this.step,
      },
      signal,
    );
    phases.rollout = now() - t0;
    const stop = new Set(d.tokenizer.stopTokenIds);
    const t1 = now();
    const texts = rollouts.map((r) => d.tokenizer.decode(r.completion.filter((t) => !stop.has(t))));
    const rewards = await this.reward(
      rollouts.map((r, i) => {
        const e = examples[r.promptIndex] as Example;
        return {
          prompt: e.prompt,
          completion: texts[i] ?? "",
          completionTokens: r.completion.length,
          answer: e.answer,
        };
      }),
      signal,
    );
    phases.reward = now() - t1;
    if (rollouts.some((r) => r.completion.length === 0)) {
      throw new TrainerError(
        "internal",
        "a rollout came back empty; samplers must return at least one token",
      );
    }
    return rollouts.map((r, i) => ({
      prompt: prompts[r.promptIndex] ?? [],
      completion: r.completion,
      masked: this.algorithm.masked(r.finishReason),
      samplerLogprobs: r.logprobs,
      reward: rewards[i] ?? Number.NaN,
    }));
  }

  /** The step's samples from the dataset: each prompt with its line's completion, reward 0. */
  private datasetSamples(examples: readonly Example[]): StepSample[] {
    const { tokenizer } = this.d;
    return examples.map((e) => {
      // loadDataset checked every line for a completion (datasetNeeds) before the loop was built.
      if (e.completion === null) throw new TrainerError("internal", "a dataset line has no completion");
      return {
        prompt: tokenizer.encode(e.prompt),
        completion: tokenizer.encode(e.completion),
        samplerLogprobs: null,
        reward: 0,
      };
    });
  }

  /** Sequences per pass that fit the memory budget at this step's longest sequence. */
  private microBatchFor(samples: readonly StepSample[]): number {
    return microBatchSize({
      dims: this.d.session.spec.dims,
      loraRanks: this.params.modules.reduce((n, m) => n + m.rank, 0),
      // reduce, not Math.max(...): a step may hold more samples than a call takes arguments.
      longest: samples.reduce((n, s) => Math.max(n, s.prompt.length + s.completion.length), 1),
      scored: samples.reduce((n, s) => Math.max(n, s.completion.length), 1),
      budgetBytes: this.d.memoryBudgetBytes,
    });
  }

  /** A probe: the first example's prompt and the log-probabilities along it of the adapter `feeds` holds. */
  private async probe(feeds: LoraFeeds): Promise<{ tokens: number[][]; logprobs: number[][] }> {
    const first = this.data[0];
    const ids = this.d.tokenizer.encode(first?.prompt ?? "").slice(0, 16);
    if (ids.length < 2) return { tokens: [], logprobs: [] };
    // As a sample: the first token as the prompt scores every later one.
    const { batch } = packBatch([{ prompt: ids.slice(0, 1), completion: ids.slice(1) }]);
    const lp = await this.d.session.score(batch, feeds);
    return { tokens: [ids], logprobs: [[...lp]] };
  }

  /** The engine feeds of `policy` (a copy of the parameters at an earlier step). */
  private policyFeeds(policy: ReadonlyMap<string, Float32Array>): ReturnType<LoraParams["feeds"]> {
    const current = copyParams(this.params.named());
    this.params.assign(policy);
    const feeds = this.params.feeds();
    this.params.assign(current);
    return feeds;
  }

  private async publish(): Promise<void> {
    const start = this.d.clock.now();
    const phasesMs: Record<string, number> = {};
    // Into a SharedArrayBuffer the first time, so that the publisher's hash and float scan read it
    // on worker threads.
    const files = this.params.toPeft({}, this.spareWeights ?? sharedBytes);
    this.spareWeights = undefined;
    phasesMs.encode = Math.round(this.d.clock.now() - start);
    // Hashed once, on a worker: the adoption check below, the blob's address and the upload's signature.
    const sha = sha256Concurrent(files.weights);
    const adopted = this.adoptable.size === 0 ? undefined : this.adoptable.get(await sha);
    if (adopted !== undefined) {
      this.adoptable.delete(await sha);
      this.spareWeights = files.weights;
      this.d.log.info("version already published by an earlier attempt", {
        run: this.config.run,
        step: this.step,
        version: adopted,
      });
      this.settle(adopted, this.params.feeds());
      return;
    }
    // The publisher checks and hashes the weights on worker threads; this thread makes the
    // version's feeds meanwhile (one set: the probe scores them, then the rollouts sample from
    // them, `settle`; the parameters do not change in between, the loop awaits the publish) and
    // starts the probe, whose forward runs on ORT's threads during the upload.
    let startProbe: (probe: Promise<PublishExtras["probe"]>) => void = () => {};
    const probing = new Promise<PublishExtras["probe"]>((resolve) => {
      startProbe = resolve;
    });
    const training = { step: this.step, algorithm: this.config.algorithm.name, metrics: {} };
    const extras = probing.then((probe) => ({ probe, training }));
    // Awaited by the publisher once numbered; a publish that fails before must not leave it unhandled.
    extras.catch(() => undefined);
    const publishing = this.d.publish(this.config.run, { ...files, sha256: sha, phasesMs }, extras);
    const feeds = this.params.feeds();
    startProbe(this.probe(feeds));
    const result = await publishing;
    this.spareWeights = files.weights;
    this.settle(result.version, feeds);
    this.d.emit({
      type: "published",
      step: this.step,
      version: result.version,
      sha256: result.sha256,
      ms: this.d.clock.now() - start,
    });
  }

  /** `version` now holds the current parameters (`feeds`, their feeds): it becomes the rollout policy. */
  private settle(version: number, feeds: LoraFeeds): void {
    this.version = version;
    this.versionStep = this.step;
    this.changed = false;
    this.policy = copyParams(this.params.named());
    this.d.rollouts.offer(version, feeds);
  }

  private async checkpoint(): Promise<void> {
    const start = this.d.clock.now();
    const key = await this.d.checkpoints.save(this.config.run, {
      state: { step: this.step, version: this.version, versionStep: this.versionStep },
      params: this.params.named(),
      policy: this.versionStep === this.step ? null : this.policy,
      optimizer: this.optimizer.state,
    });
    this.d.emit({ type: "checkpoint", step: this.step, key, ms: this.d.clock.now() - start });
  }
}

/** Mean completion length of the samples, in tokens (0 for none). */
function meanLength(samples: readonly StepSample[]): number {
  return samples.reduce((n, s) => n + s.completion.length, 0) / Math.max(samples.length, 1);
}
