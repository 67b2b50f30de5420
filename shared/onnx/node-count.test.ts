import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attr, GraphBuilder } from "./graph-builder.ts";
import { encodeModel, type GraphValue } from "./model.ts";
import { countGraphNodes } from "./node-count.ts";

const encode = (graph: GraphValue) => encodeModel({ graph, opsets: { "": 21 }, producer: "test" });

describe("countGraphNodes", () => {
  it("counts a built graph's nodes by op type, initializers and attributes skipped", () => {
    const g = new GraphBuilder("g");
    g.input("x", "float32", [2, 3]);
    g.initializer("w", "float32", [3, 3], new Float32Array(9).fill(0.5));
    const y = g.op1("MatMul", ["x", "w"]);
    const z = g.op1("Tanh", [y]);
    const s = g.op1("Softmax", [z], { axis: attr.int(-1) });
    g.op("Tanh", [s], {}, { names: ["out"] });
    g.output("out", "float32", [2, 3]);
    const counts = countGraphNodes(encode(g.build()));
    assert.deepEqual(Object.fromEntries(counts.byOp), { MatMul: 1, Tanh: 2, Softmax: 1 });
    assert.equal(counts.nested, 0);
  });

  it("counts the nodes of If branches apart from the main graph's", () => {
    const g = new GraphBuilder("g");
    g.input("c", "bool", []);
    g.input("x", "float32", [2]);
    const branch = (name: string, ops: string[]): GraphValue => {
      const mark = g.mark();
      let v = "x";
      for (const op of ops) v = g.op1(op, [v]);
      return { name, nodes: g.takeNodesSince(mark), initializers: [], inputs: [], outputs: [] };
    };
    const thenBranch = branch("then", ["Neg"]);
    const elseBranch = branch("else", ["Abs", "Relu"]);
    g.op(
      "If",
      ["c"],
      { then_branch: attr.graph(thenBranch), else_branch: attr.graph(elseBranch) },
      { names: ["y"] },
    );
    g.output("y", "float32", null);
    const counts = countGraphNodes(encode(g.build()));
    assert.deepEqual(Object.fromEntries(counts.byOp), { If: 1 });
    assert.equal(counts.nested, 3);
  });

  it("throws on bytes that are not a model", () => {
    assert.throws(() => countGraphNodes(new Uint8Array([0x3a, 0xff, 0xff, 0x0f])), /malformed ONNX model/);
  });
});
