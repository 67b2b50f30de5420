/**
 * How many sequences a training pass can take at once: the training graph's activation memory per
 * sequence against a budget. The estimate counts the float32 forward values that the graph's
 * backward branch reads (so they stay alive from the forward to the backward), read off the graph
 * built by shared/model-builder/training-graph.ts; memory.test.ts recomputes that sum from the
 * graph's own tensors (build-time shapes) and holds this closed form to it.
 */
import type { DecoderDims } from "../model-spec/index.ts";

/**
 * Bytes the allocator holds per byte of tensors the estimate counts: ORT's CPU arena rounds and
 * keeps freed blocks, and the backward's transients come on top. Measured with `npm run
 * bench:train` on the CPU EP (docs/benchmarks.md, "Training throughput and memory"): micro-batch 8
 * against 2 added 5,456 MB of peak RSS for 6 sequences whose estimate is 3,283 MB, a ratio of 1.66.
 */
export const ALLOCATOR_OVERHEAD = 1.7;

/**
 * Float32 bytes a training pass keeps from its forward for its backward, for one sequence of
 * `tokens` positions of which `scored` are scored, with LoRA ranks summing to `loraRanks` over every
 * targeted module of every layer. Per token and layer: the SwiGLU MLP's gate, up, sigmoid, SiLU and
 * product (5·intermediate), the two norms' inputs and outputs (4·hidden), the attention's query and
 * merged output (2·heads·headDim), key and value (2·kvHeads·headDim), and each LoRA's `x·Aᵀ` (its
 * rank); per layer the attention probabilities, heads·tokens² (the softmax's output). Per scored
 * token the head's log-softmax row and three vocabulary-wide transients of its backward (4·vocab)
 * and the gathered hidden row.
 */
export function activationBytes(
  dims: DecoderDims,
  loraRanks: number,
  tokens: number,
  scored: number,
): number {
  const { hiddenSize: D, intermediateSize: I, numLayers: L, numHeads: H, numKvHeads: Hkv, headDim: d } = dims;
  const perTokenLayer = 5 * I + 4 * D + 2 * H * d + 2 * Hkv * d;
  const floats =
    tokens * (L * perTokenLayer + loraRanks) + L * H * tokens * tokens + scored * (4 * dims.vocabSize + D);
  return 4 * floats;
}

/** What `microBatchSize` chooses from. */
export interface MicroBatchRequest {
  dims: DecoderDims;
  /** Sum of the LoRA ranks over every targeted module of every layer. */
  loraRanks: number;
  /** The longest sequence of the step (prompt + completion), in tokens: every sequence is padded to it at worst. */
  longest: number;
  /** The most scored positions of one sequence (its completion length). */
  scored: number;
  /** Activation memory a pass may use, in bytes. */
  budgetBytes: number;
}

/**
 * Sequences per forward/backward pass: as many of the step's longest as fit `budgetBytes` with
 * `ALLOCATOR_OVERHEAD`, at least 1 (a single sequence over the budget still trains, and is what the
 * budget cannot make smaller).
 */
export function microBatchSize(r: MicroBatchRequest): number {
  const perSequence = activationBytes(r.dims, r.loraRanks, r.longest, r.scored) * ALLOCATOR_OVERHEAD;
  return Math.max(1, Math.floor(r.budgetBytes / perSequence));
}
