/**
 * The training graph: the decoder without a KV cache, a log-probability head over chosen
 * positions, and the gradient of every LoRA factor, derived by `addGradients` from the forward
 * graph rather than written per architecture. The loss stays outside: the trainer turns its
 * algorithm's loss into dLoss/dLogprob per position (the seed), which keeps one graph for GRPO,
 * DPO and SFT. The backward sits in an `If` on `compute_grads`: ORT runs every node of a graph
 * whatever outputs are fetched, so without the branch a forward-only scoring (old and reference
 * log-probabilities; reference = rank-0 LoRA inputs, the base) would cost a whole backward too.
 */
import { addGradients } from "../autodiff/index.ts";
import { TRAIN_IO } from "../model-format/index.ts";
import { attr, type GraphBuilder, type GraphValue, type NodeValue } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import { buildDecoderBody, lmHead } from "./decoder-graph.ts";
import type { WeightPlan } from "./weights.ts";

/**
 * Builds the training graph into `g`: token ids, mask, positions, scored rows and targets, LoRA
 * factors, dLoss/dLogprob seeds and `compute_grads` in; log p of each scored target, float32
 * `[scored]`, and (when `compute_grads`) one gradient per LoRA factor out. I/O names are `TRAIN_IO`'s.
 */
export function buildTrainingGraph(g: GraphBuilder, arch: Architecture, w: WeightPlan): void {
  const body = buildDecoderBody(g, arch, w, { lora: true, kvCache: null });
  const rows = g.input(TRAIN_IO.scoreRows, "int64", ["scored"]);
  const targets = g.input(TRAIN_IO.scoreTargets, "int64", ["scored"]);
  const invTemperature = g.input(TRAIN_IO.invTemperature, "float32", []);
  const seed = g.input(TRAIN_IO.logprobGrads, "float32", ["scored"]);

  const logprobs = g.scoped("logprobs", () => {
    const logits = lmHead(body, arch, g.op1("Gather", [body.hidden, rows], { axis: attr.int(0) }));
    const scaled = g.op1("Mul", [logits, invTemperature]);
    const logSoftmax = g.op1("LogSoftmax", [scaled], { axis: attr.int(-1) });
    const picked = g.op1(
      "GatherElements",
      [logSoftmax, g.op1("Unsqueeze", [targets, g.constant("int64", [1], [-1])])],
      {
        axis: attr.int(1),
      },
    );
    return g.op1("Reshape", [picked, g.constant("int64", [1], [-1])], {}, { names: [TRAIN_IO.logprobs] });
  });
  g.output(TRAIN_IO.logprobs, "float32", ["scored"]);

  const computeGrads = g.input(TRAIN_IO.computeGrads, "bool", []);
  const branch = (name: string, emit: () => string[]): GraphValue => {
    const mark = g.mark();
    const outputs = g.scoped(name, emit);
    // A forward value the branch reads stays alive until the If runs, after the whole forward.
    // The backward reads many only for their shape (unbroadcasting), so those Shape nodes move
    // out, next to the value, which can then be freed as the forward goes on.
    const inside = new Set<string>();
    const nodes: NodeValue[] = [];
    const hoisted: NodeValue[] = [];
    for (const n of g.takeNodesSince(mark)) {
      if (n.opType === "Shape" && !inside.has(n.inputs[0] ?? "")) hoisted.push(n);
      else {
        nodes.push(n);
        for (const o of n.outputs) inside.add(o);
      }
    }
    g.insertAfterProducers(hoisted);
    return {
      name,
      nodes,
      initializers: [],
      inputs: [],
      outputs: outputs.map((o) => ({ name: o, type: "float32", shape: null })),
    };
  };
  const backward = branch("backward", () => {
    // No past: the mask spans the sequence, which lets the backward's shapes be proven at build time.
    const grads = addGradients(g, {
      seeds: [{ value: logprobs, grad: seed }],
      wrt: body.loraInputs,
      sameDims: { total_sequence: "sequence" },
    });
    // Each gradient is a node output of this branch, so it is the branch output itself: no
    // Identity per factor (336 nodes on Qwen2.5-0.5B), except where one value would leave twice.
    const out = new Set<string>();
    return body.loraInputs.map((input) => {
      const grad = grads.get(input) ?? "";
      if (out.has(grad)) return g.op1("Identity", [grad]);
      out.add(grad);
      return grad;
    });
  });
  const skipped = branch("skipped", () => {
    const empty = g.op1("ConstantOfShape", [g.constant("int64", [1], [0])]);
    // One Split of the empty tensor into an empty output per factor: 2 nodes per scoring pass,
    // not an Identity per factor (337 on Qwen2.5-0.5B).
    const n = body.loraInputs.length;
    const none = g.constant("int64", [n], new Array<number>(n).fill(0));
    return g.op("Split", [empty, none], { axis: attr.int(0) }, { outputs: n });
  });
  const names = body.loraInputs.map((input) => TRAIN_IO.grad(input));
  g.op(
    "If",
    [computeGrads],
    { then_branch: attr.graph(backward), else_branch: attr.graph(skipped) },
    { names },
  );
  for (const name of names) g.output(name, "float32", null);
}
