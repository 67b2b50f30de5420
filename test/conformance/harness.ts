/**
 * Conformance of the built graph against a PEFT reference fixture. fp32: our logits, logprobs and
 * greedy tokens must equal PyTorch's within tolerance. int8/int4: the quantized graph must equal an
 * fp32 graph built from the same dequantized weights (proving the kernels are wired right), and its
 * distance from PyTorch is reported as KL divergence and top-1 agreement. The run's parts: its
 * options (`options.ts`), building and running our model (`measure.ts`), and the comparisons of one
 * build's outputs with another's (`agreement.ts`).
 */
import { basename } from "node:path";
import type { BaseQuant } from "@loracast/shared/model-builder";
import { gradientErrors, greedyAgreement, opsAgree, round, vsOpsAttention } from "./agreement.ts";
import { type Reference, readReference } from "./fixture.ts";
import { atRealTokens, measure, type Outputs } from "./measure.ts";
import { distributionAgreement, maxAbsDiff } from "./metrics.ts";
import { type ConformanceOptions, loraFormOf } from "./options.ts";
import { tolerancesFor } from "./tolerances.ts";

const maxAbs = (xs: Float32Array) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * One conformance run (`opts`) over its fixture: builds and runs our model (`measure`) and returns
 * the report `npm run conformance` prints, whose `pass` says whether every figure is within its
 * tolerance (`tolerances.ts`). fp32: logits, log-probabilities, greedy tokens and gradients against
 * PyTorch's. int8/int4: against the fp32 build of the same dequantized weights
 * (`vsDequantizedFp32`, what decides `pass`), and against PyTorch's as KL divergence and top-1
 * agreement (`vsPytorchFp32`, reported). Throws where the model cannot be built or loaded.
 */
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
