import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import { parseArchitecture } from "./index.ts";
import { buildTrainingGraph } from "./training-graph.ts";
import { WeightPlan } from "./weights.ts";

/** The int4 training graph's nodes: outside the backward branch, inside it, and per op type. */
function countTrainingGraphNodes(arch: Architecture) {
  const g = new GraphBuilder("count");
  buildTrainingGraph(
    g,
    arch,
    new WeightPlan(g, { kind: "nbits", bits: 4, blockSize: 32, emulate: false }, "d"),
  );
  const byOp: Record<string, number> = {};
  let [forward, backward] = [0, 0];
  for (const node of g.build().nodes) {
    forward++;
    byOp[node.opType] = (byOp[node.opType] ?? 0) + 1;
    const then = node.opType === "If" ? node.attributes.then_branch : undefined;
    if (then?.kind !== "graph") continue;
    for (const inner of then.value.nodes) {
      backward++;
      byOp[inner.opType] = (byOp[inner.opType] ?? 0) + 1;
    }
  }
  return { forward, backward, byOp };
}

const arch = (name: "llama-tiny" | "qwen2-tiny") => {
  const a = parseArchitecture(JSON.parse(readFileSync(join(fixture(name), "base", "config.json"), "utf8")));
  assert.ok(a.ok);
  return a.value;
};

describe("training graph nodes", () => {
  for (const name of ["llama-tiny", "qwen2-tiny"] as const) {
    it(`${name}: no run-time shape arithmetic in the backward, no per-factor copies`, () => {
      const a = arch(name);
      const layers = a.dims.numLayers;
      const n = countTrainingGraphNodes(a);
      // Range: the forward's three (rotary rows, the mask's query and key columns); the backward
      // has none, nor NonZero, nor Size: every reduction axis and reshape target is a constant.
      assert.equal(n.byOp.Range, 3);
      assert.equal(n.byOp.NonZero, undefined);
      assert.equal(n.byOp.Size, undefined);
      // One Shape per layer (attention's merged heads back to [batch, seq, heads, dim]) and the
      // forward's own (token count, mask length).
      assert.ok((n.byOp.Shape ?? 0) <= layers + 4, `Shape: ${n.byOp.Shape}`);
      assert.equal(n.byOp.Identity, undefined, "gradients leave the branch as they are");
      // Before build-time shapes: 17,161 nodes on Qwen2.5-0.5B (24 layers), 715 per layer.
      const perLayer = (n.forward + n.backward) / layers;
      assert.ok(perLayer < 330, `${perLayer} nodes per layer`);
    });
  }
});
