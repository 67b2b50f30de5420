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
   * Nodes that read a LoRA factor input (`lora_A`/`lora_B`): two `Gemm`s per LoRA pair, or one
   * `LoraShrinkExpand` (`loraOp: "shrink-expand"`).
   */
  lora: number;
  byOp: Record<string, number>;
}

/**
 * Counts the nodes of the generation graph (`model.onnx`, the one that returns the KV cache) that
 * `buildArtifacts` builds for `arch` in `quant`, in `layout`, with `graph`'s attention, KV cache
 * element type and LoRA op (`ops`, float32 and `gemm` when absent), and with LoRA inputs unless `graph.lora` is false
 * (`model.base.onnx`, whose `lora` count is 0). Builds the graph in memory only: no weight is read.
 * Throws as `buildDecoderGraph` does for a combination it refuses.
 */
export function countDecodeStepNodes(
  arch: Architecture,
  quant: BaseQuant,
  layout: DecoderLayout,
  graph: Pick<DecoderGraphOptions, "attention" | "kvCacheDtype" | "lora" | "loraOp"> = {},
): StepNodeCounts {
  const g = new GraphBuilder("count");
  buildDecoderGraph(g, arch, new WeightPlan(g, quant, "count.data"), { lora: true, layout, ...graph });
  const built = g.build();
  const factors = new Set(built.inputs.map((i) => i.name).filter((n) => n.startsWith("base_model.")));
  const byOp = new Map<string, number>();
  let lora = 0;
  for (const n of built.nodes) {
    byOp.set(n.opType, (byOp.get(n.opType) ?? 0) + 1);
    if (n.inputs.some((i) => factors.has(i))) lora++;
  }
  return {
    total: built.nodes.length,
    lora,
    byOp: Object.fromEntries([...byOp].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))),
  };
}
