/**
 * The nodes one decode step runs, by op type: the decoder graph has no control flow, so every node
 * of it runs once per step whatever the batch or sequence. On a GPU each node costs a fixed
 * dispatch (~8 µs on the CUDA EP, ~14 µs on WebGPU, ../shared/docs/gpu.md), which makes this count
 * the floor of a small-batch step. ORT's own graph optimizations may fuse further at session load
 * (e.g. `x · Sigmoid(x)` into `QuickGelu` on the CPU); this counts the graph as built.
 */
import { GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import { buildDecoderGraph, type DecoderGraphOptions, type DecoderLayout } from "./decoder-graph.ts";
import { type BaseQuant, WeightPlan } from "./weights.ts";

/** Nodes of one decode step: in all, those of the LoRA branches, and by op type (most first). */
export interface StepNodeCounts {
  total: number;
  /**
   * The nodes the LoRA branches add: the graph's count less that of the same graph without LoRA
   * inputs (two `Gemm`s per pair in the `gemm` form, five in `mulsum`: `Reshape`, `Mul`,
   * `ReduceSum`, `Reshape`, `Gemm`; one `LoraShrinkExpand` with `loraOp: "shrink-expand"` on a float
   * base, none on a 4-bit one, whose `MatMulNBitsLora` takes the place of its `MatMulNBits`). A base
   * graph's count is 0.
   */
  lora: number;
  byOp: Record<string, number>;
}

/**
 * Counts the nodes of the generation graph (`model.onnx`, the one that returns the KV cache) that
 * `buildArtifacts` builds for `arch` in `quant`, in `layout`, with `graph`'s attention and KV cache
 * element type (`ops` and float32 when absent), its `loraForm` and `loraOp` (`gemm` when absent),
 * and with LoRA inputs unless `graph.lora` is false
 * (`model.base.onnx`, whose `lora` count is 0). Builds the graph in memory only: no weight is read.
 * Throws as `buildDecoderGraph` does for a combination it refuses.
 */
export function countDecodeStepNodes(
  arch: Architecture,
  quant: BaseQuant,
  layout: DecoderLayout,
  graph: Pick<DecoderGraphOptions, "attention" | "kvCacheDtype" | "lora" | "loraForm" | "loraOp"> = {},
): StepNodeCounts {
  const build = (lora: boolean) => {
    const g = new GraphBuilder("count");
    buildDecoderGraph(g, arch, new WeightPlan(g, quant, "count.data"), { layout, ...graph, lora });
    return g.build();
  };
  const built = build(graph.lora ?? true);
  const byOp = new Map<string, number>();
  for (const n of built.nodes) byOp.set(n.opType, (byOp.get(n.opType) ?? 0) + 1);
  const lora = graph.lora === false ? 0 : built.nodes.length - build(false).nodes.length;
  return {
    total: built.nodes.length,
    lora,
    byOp: Object.fromEntries([...byOp].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))),
  };
}
