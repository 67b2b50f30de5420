import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { StaticShapes } from "../autodiff/shapes.ts";
import { parseArchitecture } from "../model-builder/architecture.ts";
import { buildTrainingGraph } from "../model-builder/training-graph.ts";
import { WeightPlan } from "../model-builder/weights.ts";
import { GraphBuilder } from "../onnx/index.ts";
import { activationBytes, microBatchSize } from "./index.ts";

/**
 * Float32 bytes of the forward values the training graph's backward branch reads, for one sequence
 * of `seq` tokens, all scored, LoRA rank `rank` on every projection: summed over the graph's own
 * tensors, their shapes known at build time.
 */
function savedByGraph(name: "llama-tiny" | "qwen2-tiny", seq: number, rank: number): number {
  const arch = parseArchitecture(
    JSON.parse(readFileSync(join(fixture(name), "base", "config.json"), "utf8")),
  );
  assert.ok(arch.ok);
  const g = new GraphBuilder("t");
  buildTrainingGraph(
    g,
    arch.value,
    new WeightPlan(g, { kind: "nbits", bits: 4, blockSize: 32, emulate: false }, "d"),
  );
  const shapes = new StaticShapes(g, { total_sequence: "sequence" });
  const nodes = g.build().nodes;
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  const branch = nodes.find((n) => n.opType === "If")?.attributes.then_branch;
  assert.ok(branch?.kind === "graph");
  const inner = new Set(branch.value.nodes.flatMap((n) => n.outputs));
  const read = new Set(
    branch.value.nodes.flatMap((n) => n.inputs.filter((i) => produced.has(i) && !inner.has(i))),
  );
  const size = (d: number | string): number =>
    typeof d === "number"
      ? d
      : d
          .split("*")
          .map((f) => (/^\d+$/.test(f) ? Number(f) : f === "batch" ? 1 : f.startsWith("r.") ? rank : seq))
          .reduce((a, b) => a * b, 1);
  let floats = 0;
  for (const v of read) {
    const s = shapes.known(v);
    assert.ok(s !== null, `${v}: shape unknown at build time`);
    floats += s.reduce<number>((n, d) => n * size(d), 1);
  }
  return 4 * floats;
}

describe("activation memory", () => {
  for (const name of ["llama-tiny", "qwen2-tiny"] as const) {
    it(`${name}: the closed form is the training graph's saved tensors (within 3%)`, () => {
      const arch = parseArchitecture(
        JSON.parse(readFileSync(join(fixture(name), "base", "config.json"), "utf8")),
      );
      assert.ok(arch.ok);
      const { dims } = arch.value;
      for (const seq of [8, 64]) {
        const rank = 16;
        const graph = savedByGraph(name, seq, rank);
        // The closed form also counts the head backward's three vocabulary-wide transients.
        const closed =
          activationBytes(dims, 7 * rank * dims.numLayers, seq, seq) - 4 * seq * 3 * dims.vocabSize;
        assert.ok(
          Math.abs(closed - graph) / graph < 0.03,
          `seq ${seq}: closed form ${closed}, graph ${graph}`,
        );
      }
    });
  }

  it("micro-batch: as many of the longest sequences as fit the budget, at least one", () => {
    const arch = parseArchitecture(
      JSON.parse(readFileSync(join(fixture("qwen2-tiny"), "base", "config.json"), "utf8")),
    );
    assert.ok(arch.ok);
    const request = { dims: arch.value.dims, loraRanks: 48, longest: 40, scored: 20 };
    const one = activationBytes(request.dims, 48, 40, 20) * 1.7;
    assert.equal(microBatchSize({ ...request, budgetBytes: 4.99 * one }), 4);
    assert.equal(microBatchSize({ ...request, budgetBytes: 5 * one }), 5);
    assert.equal(microBatchSize({ ...request, budgetBytes: 0.1 * one }), 1);
    // Longer sequences cost more than linearly (attention is quadratic): fewer fit.
    assert.ok(microBatchSize({ ...request, longest: 80, budgetBytes: 5 * one }) < 3);
  });
});
