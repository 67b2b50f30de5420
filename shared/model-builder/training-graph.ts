/**
 * The training graph: the decoder without a KV cache, a log-probability head over chosen
 * positions, and the gradient of every LoRA factor, derived by `addGradients` from the forward
 * graph rather than written per architecture. The loss stays outside: the trainer turns its
 * algorithm's loss into dLoss/dLogprob per position (the seed), which keeps one graph for GRPO,
 * DPO and SFT. Fetching only `logprobs` runs the forward alone, which is how the trainer scores
 * old and reference log-probabilities (reference = rank-0 LoRA inputs, the base).
 */
import { addGradients } from "../autodiff/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import { buildDecoderBody, lmHead } from "./decoder-graph.ts";
import { TRAIN_IO } from "./io-names.ts";
import type { WeightPlan } from "./weights.ts";

export function buildTrainingGraph(g: GraphBuilder, arch: Architecture, w: WeightPlan): void {
  const body = buildDecoderBody(g, arch, w, { lora: true, kvCache: false });
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

  const grads = addGradients(g, { seeds: [{ value: logprobs, grad: seed }], wrt: body.loraInputs });
  for (const input of body.loraInputs) {
    const name = TRAIN_IO.grad(input);
    g.op("Identity", [grads.get(input) ?? ""], {}, { names: [name] });
    g.output(name, "float32", null);
  }
}
