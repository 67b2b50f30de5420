/**
 * How one build's outputs agree with another's: the gradients' worst relative error
 * (`gradientErrors`), the greedy tokens up to a near tie (`greedyAgreement`), and, for a
 * GroupQueryAttention build, its logits against the same weights' `ops` build (`vsOpsAttention`).
 */
import type { BaseQuant } from "@loracast/shared/model-builder";
import type { Reference } from "./fixture.ts";
import { infer, type Outputs } from "./measure.ts";
import { maxAbsDiff, relativeL2 } from "./metrics.ts";
import type { ConformanceOptions } from "./options.ts";

/** `x` to 4 significant digits, as the report prints every figure. */
export const round = (x: number) => Number(x.toPrecision(4));

/**
 * Worst relative L2 error over the fixture's gradient tensors (the adapter's factors); a missing
 * tensor counts as infinite.
 */
export function gradientErrors(
  ours: Map<string, Float32Array>,
  reference: Map<string, Float32Array>,
  keys: Iterable<string> = reference.keys(),
) {
  let worst = { key: "", relError: 0 };
  let tensors = 0;
  for (const key of keys) {
    tensors++;
    const want = reference.get(key) ?? new Float32Array(0);
    const got = ours.get(key);
    const rel =
      got === undefined || got.length !== want.length ? Number.POSITIVE_INFINITY : relativeL2(got, want);
    if (!(rel <= worst.relError)) worst = { key, relError: rel };
  }
  return { tensors, maxRelError: round(worst.relError), worstTensor: worst.key };
}

/**
 * Whether our greedy tokens agree with `theirs`: equal, or (with `tieTolerance`, the float16
 * attention's logits tolerance) parting first at a near tie, where our logits of our token and of
 * theirs differ by at most `tieTolerance`. Up to that token both decoded the same prefix, so our
 * logits there are the ones that chose. After it the sequences have different prefixes and are not
 * compared. `tieTolerance` 0 asks for equal tokens.
 */
export function greedyAgreement(o: Outputs, theirs: readonly number[], vocab: number, tieTolerance: number) {
  const at = o.greedy.findIndex((t, i) => t !== theirs[i]);
  if (at < 0 && o.greedy.length === theirs.length) return { greedyMatch: true, greedyAgrees: true };
  const row = o.greedyLogits.subarray(at * vocab, (at + 1) * vocab);
  const margin = round((row[o.greedy[at] ?? 0] ?? 0) - (row[theirs[at] ?? 0] ?? Number.NEGATIVE_INFINITY));
  return { greedyMatch: false, greedyAgrees: at >= 0 && margin <= tieTolerance, greedyTie: { at, margin } };
}

/**
 * With `attention: gqa`, the decoder's outputs against the same weights' `ops` decoder: how far the
 * GroupQueryAttention kernel moves them. Null for `ops`.
 */
export async function vsOpsAttention(
  opts: ConformanceOptions,
  ref: Reference,
  quant: BaseQuant,
  gqa: Outputs,
  tieTolerance: number,
) {
  if ((opts.attention ?? "ops") === "ops") return null;
  const { inference: ops } = await infer(opts, ref, "ops-attention", quant, "ops");
  return {
    logitsBaseMaxAbs: round(maxAbsDiff(gqa.logitsBase, ops.logitsBase)),
    logitsLoraMaxAbs: round(maxAbsDiff(gqa.logitsLora, ops.logitsLora)),
    ...greedyAgreement(gqa, ops.greedy, ops.greedyLogits.length / ops.greedy.length, tieTolerance),
  };
}

/** Whether `vsOpsAttention`'s figures are within `tolerance` (true when there are none). */
export const opsAgree = (v: Awaited<ReturnType<typeof vsOpsAttention>>, tolerance: number) =>
  v === null || (v.logitsBaseMaxAbs <= tolerance && v.logitsLoraMaxAbs <= tolerance && v.greedyAgrees);
