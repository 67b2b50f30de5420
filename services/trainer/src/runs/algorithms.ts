/**
 * One optimizer step's worth of gradient for each algorithm, given the step's samples. Each turns
 * its loss into per-token seeds (shared/losses) and runs the training graph per micro-batch;
 * gradients accumulate into one map. Phase times and metrics are recorded for the step event.
 */
import { dpoLoss, groupAdvantages, grpoLoss, sftLoss } from "@loracast/shared/losses";
import { baseFeeds } from "@loracast/shared/runtime";
import { type LoraParams, packBatch, type Sample, type TrainingSession } from "@loracast/shared/training";
import type { RunConfig } from "./config.ts";

export interface StepSample extends Sample {
  /** The sampler's log-probabilities of the completion tokens, when sampled. */
  samplerLogprobs: number[] | null;
  reward: number;
}

export interface GradientResult {
  loss: number;
  grads: Map<string, Float32Array>;
  trainedTokens: number;
  metrics: Record<string, number>;
  phases: Record<string, number>;
}

interface Ctx {
  session: TrainingSession;
  params: LoraParams;
  config: RunConfig;
  now: () => number;
  /**
   * Applies an optimizer step. GRPO with numIterations μ takes μ optimizer steps per generation
   * batch, as TRL does; all but the last go through here, the last is returned to the caller.
   */
  optimize(grads: Map<string, Float32Array>): void;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function timed(phases: Record<string, number>, name: string, now: () => number) {
  const start = now();
  return () => {
    phases[name] = (phases[name] ?? 0) + (now() - start);
  };
}

export async function grpoGradients(ctx: Ctx, samples: StepSample[]): Promise<GradientResult> {
  const { session, params, config, now } = ctx;
  const alg = config.algorithm;
  if (alg.name !== "grpo") throw new Error("grpoGradients needs a GRPO config");
  const invT = 1 / config.sampling.temperature;
  const advantages = groupAdvantages(
    samples.map((s) => s.reward),
    alg.numGenerations,
    alg.scaleRewards,
  );
  const micro = chunks(
    samples.map((s, i) => ({ s, a: advantages[i] ?? 0 })),
    config.microBatch,
  ).map((part) => ({ ...packBatch(part.map((p) => p.s)), part }));
  const items = micro.reduce((n, m) => n + m.tokens.mask.reduce((a, b) => a + b, 0), 0);
  const phases: Record<string, number> = {};
  const feeds = params.feeds();
  const needOld = alg.numIterations > 1 || alg.importanceSamplingCap !== null || alg.beta !== 0;

  const ref: Float32Array[] = [];
  const old: (Float32Array | null)[] = [];
  for (const m of micro) {
    if (alg.beta !== 0) {
      const done = timed(phases, "reference", now);
      ref.push(await session.score(m.batch, baseFeeds(session.spec), invT));
      done();
    }
    const done = timed(phases, "old_logprobs", now);
    old.push(needOld ? await session.score(m.batch, feeds, invT) : null);
    done();
  }

  let grads = new Map<string, Float32Array>();
  let loss = 0;
  let clip = 0;
  let kl = 0;
  for (let it = 0; it < alg.numIterations; it++) {
    if (it > 0) {
      ctx.optimize(grads);
      grads = new Map();
      loss = 0;
    }
    const current = it === 0 ? feeds : params.feeds();
    for (const [i, m] of micro.entries()) {
      const o = old[i] ?? null;
      const sampler = m.part.flatMap((p) => p.s.samplerLogprobs ?? []);
      const isWeights =
        alg.importanceSamplingCap === null || o === null || sampler.length !== o.length
          ? null
          : Float32Array.from(o, (v, t) =>
              Math.min(Math.exp(v - (sampler[t] ?? v)), alg.importanceSamplingCap ?? 1),
            );
      let logprobs = o;
      if (logprobs === null || it > 0) {
        const done = timed(phases, "policy_logprobs", now);
        logprobs = it === 0 ? Float32Array.from(sampler) : await session.score(m.batch, current, invT);
        done();
      }
      const r = grpoLoss({
        tokens: m.tokens,
        logprobs,
        oldLogprobs: o,
        refLogprobs: alg.beta !== 0 ? (ref[i] ?? null) : null,
        advantages: Float64Array.from(m.part, (p) => p.a),
        isWeights,
        settings: {
          lossType: alg.lossType,
          epsilonLow: alg.epsilon,
          epsilonHigh: alg.epsilonHigh ?? alg.epsilon,
          delta: alg.delta,
          beta: alg.beta,
          maxCompletionLength: config.sampling.maxTokens,
          gradientAccumulationSteps: micro.length,
          itemsInGenerationBatch: items,
        },
      });
      const done = timed(phases, "train", now);
      const out = await session.backward(m.batch, current, r.grad, invT);
      done();
      params.gradients(out.grads, grads);
      loss += r.loss;
      clip += r.clipFraction / micro.length / alg.numIterations;
      kl += r.klMean / micro.length / alg.numIterations;
    }
  }
  return {
    loss,
    grads,
    trainedTokens: items * alg.numIterations,
    metrics: { clip_fraction: clip, kl },
    phases,
  };
}

export async function dpoGradients(ctx: Ctx, samples: StepSample[]): Promise<GradientResult> {
  const { session, params, config, now } = ctx;
  const alg = config.algorithm;
  if (alg.name !== "online_dpo") throw new Error("dpoGradients needs an online DPO config");
  // samples come as (first, second) per prompt; the higher reward is chosen, ties go to the first.
  const pairs = chunks(samples, 2).map(([a, b]) => ((b?.reward ?? 0) > (a?.reward ?? 0) ? [b, a] : [a, b]));
  const phases: Record<string, number> = {};
  const grads = new Map<string, Float32Array>();
  const feeds = params.feeds();
  let loss = 0;
  let accuracy = 0;
  let margin = 0;
  let trained = 0;
  const micro = chunks(pairs, Math.max(1, Math.floor(config.microBatch / 2)));
  for (const part of micro) {
    const ordered = part.flatMap((p) => p as StepSample[]);
    const { batch, tokens } = packBatch(ordered);
    let done = timed(phases, "reference", now);
    const ref = await session.score(batch, baseFeeds(session.spec));
    done();
    done = timed(phases, "policy_logprobs", now);
    const logprobs = await session.score(batch, feeds);
    done();
    const r = dpoLoss({
      tokens,
      logprobs,
      refLogprobs: ref,
      pairs: part.map((_, i) => ({ chosen: 2 * i, rejected: 2 * i + 1 })),
      beta: alg.beta,
      lossType: alg.lossType,
    });
    const scale = part.length / pairs.length;
    done = timed(phases, "train", now);
    const out = await session.backward(
      batch,
      feeds,
      r.grad.map((g) => g * scale),
    );
    done();
    params.gradients(out.grads, grads);
    loss += r.loss * scale;
    accuracy += r.accuracy * scale;
    margin += r.margin * scale;
    trained += tokens.mask.reduce((a, b) => a + b, 0);
  }
  return { loss, grads, trainedTokens: trained, metrics: { accuracy, margin }, phases };
}

export async function sftGradients(ctx: Ctx, samples: StepSample[]): Promise<GradientResult> {
  const { session, params, config, now } = ctx;
  const phases: Record<string, number> = {};
  const grads = new Map<string, Float32Array>();
  const feeds = params.feeds();
  const micro = chunks(samples, config.microBatch);
  let loss = 0;
  let trained = 0;
  for (const part of micro) {
    const { batch, tokens } = packBatch(part);
    // SFT's seed does not depend on the log-probabilities, so one pass gives the gradient and
    // the log-probabilities the loss is then computed from.
    const { grad } = sftLoss(tokens, new Float32Array(tokens.seq.length), micro.length);
    const done = timed(phases, "train", now);
    const out = await session.backward(batch, feeds, grad);
    done();
    params.gradients(out.grads, grads);
    loss += sftLoss(tokens, out.logprobs, micro.length).loss;
    trained += tokens.mask.reduce((a, b) => a + b, 0);
  }
  return { loss, grads, trainedTokens: trained, metrics: {}, phases };
}
