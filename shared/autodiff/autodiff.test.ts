import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { quantize, quantLayout } from "../model-builder/index.ts";
import { attr, encodeModel, GraphBuilder } from "../onnx/index.ts";
import { createRng } from "../random/index.ts";
import { disableOrtTelemetry } from "../runtime/index.ts";
import { AutodiffError, addGradients } from "./index.ts";

// These tests create ORT sessions themselves, not through createSession.
disableOrtTelemetry();

type Feed = { shape: number[]; data?: Float32Array | BigInt64Array; wrt?: boolean };

interface Case {
  name: string;
  feeds: Record<string, Feed>;
  /** Builds the output from the declared inputs (by name). */
  build(g: GraphBuilder): string;
}

const OPSETS = { "": 21, "com.microsoft": 1 };

/** Declares the case's inputs; `symbolic` names every dim instead, so no shape is known at build time. */
function declare(g: GraphBuilder, c: Case, symbolic = false) {
  for (const [name, f] of Object.entries(c.feeds)) {
    const shape = symbolic ? f.shape.map((_, i) => `${name}_${i}`) : f.shape;
    g.input(name, f.data instanceof BigInt64Array ? "int64" : "float32", shape);
  }
}

function tensor(f: Feed, data: Float32Array | BigInt64Array): ort.Tensor {
  return data instanceof BigInt64Array
    ? new ort.Tensor("int64", data, f.shape)
    : new ort.Tensor("float32", data, f.shape);
}

/**
 * Checks dObjective/dInput for objective = Σ seed·y against central differences along a random
 * direction: (f(x + εv) − f(x − εv)) / 2ε must equal Σ⟨grad, v⟩. `symbolic` declares the backward
 * graph's inputs with named dims, so its shapes are read at run time instead of built in. Returns
 * the gradients and the backward graph's op types.
 */
async function checkGradient(
  c: Case,
  seed = 1,
  symbolic = false,
): Promise<{ grads: Float32Array[]; ops: Set<string> }> {
  const rng = createRng(seed);
  const values = new Map<string, Float32Array | BigInt64Array>();
  for (const [name, f] of Object.entries(c.feeds)) {
    const n = f.shape.reduce((a, b) => a * b, 1);
    values.set(name, f.data ?? Float32Array.from({ length: n }, () => rng.next() * 2 - 1));
  }
  const wrt = Object.entries(c.feeds)
    .filter(([, f]) => f.wrt)
    .map(([n]) => n);

  const fg = new GraphBuilder("forward");
  declare(fg, c);
  fg.op("Identity", [c.build(fg)], {}, { names: ["y"] });
  fg.output("y", "float32", null);
  const forward = await ort.InferenceSession.create(
    encodeModel({ graph: fg.build(), opsets: OPSETS, producer: "test" }),
  );
  const run = async (feeds: Map<string, Float32Array | BigInt64Array>) => {
    const out = await forward.run(
      Object.fromEntries([...feeds].map(([n, d]) => [n, tensor(c.feeds[n] as Feed, d)])),
    );
    return out.y as ort.Tensor;
  };
  const y0 = await run(values);
  const dy = Float32Array.from({ length: y0.data.length }, () => rng.next() * 2 - 1);

  const g = new GraphBuilder("backward");
  declare(g, c, symbolic);
  const y = c.build(g);
  const seedName = g.input(
    "dy",
    "float32",
    y0.dims.map((d, i) => (symbolic ? `dy_${i}` : d)),
  );
  const grads = addGradients(g, { seeds: [{ value: y, grad: seedName }], wrt });
  for (const w of wrt) {
    g.op("Identity", [grads.get(w) ?? ""], {}, { names: [`grad.${w}`] });
    g.output(`grad.${w}`, "float32", c.feeds[w]?.shape ?? null);
  }
  const backward = await ort.InferenceSession.create(
    encodeModel({ graph: g.build(), opsets: OPSETS, producer: "test" }),
  );
  const feeds = Object.fromEntries([...values].map(([n, d]) => [n, tensor(c.feeds[n] as Feed, d)]));
  const out = await backward.run({ ...feeds, dy: new ort.Tensor("float32", dy, y0.dims as number[]) });

  const eps = 1e-3;
  const direction = new Map(
    wrt.map((w) => [
      w,
      Float32Array.from({ length: (values.get(w) as Float32Array).length }, () => rng.next() - 0.5),
    ]),
  );
  const shifted = (sign: number) =>
    new Map(
      [...values].map(([n, d]) => {
        const v = direction.get(n);
        return [n, v === undefined ? d : (d as Float32Array).map((x, i) => x + sign * eps * (v[i] ?? 0))];
      }),
    );
  const objective = async (sign: number) => {
    const yd = (await run(shifted(sign))).data as Float32Array;
    return yd.reduce((s, v, i) => s + v * (dy[i] ?? 0), 0);
  };
  const numeric = ((await objective(1)) - (await objective(-1))) / (2 * eps);
  let analytic = 0;
  // The sum of |terms| bounds the cancellation, so small derivatives are not judged on noise.
  let magnitude = 0;
  for (const w of wrt) {
    const gw = out[`grad.${w}`] as ort.Tensor;
    assert.deepEqual(gw.dims, c.feeds[w]?.shape, `grad.${w} has the shape of ${w}`);
    const v = direction.get(w) as Float32Array;
    (gw.data as Float32Array).forEach((x, i) => {
      analytic += x * (v[i] ?? 0);
      magnitude += Math.abs(x * (v[i] ?? 0));
    });
  }
  const scale = Math.max(Math.abs(numeric), magnitude);
  assert.ok(
    Math.abs(numeric - analytic) / scale < 3e-3,
    `${c.name}: directional derivative ${analytic}, finite differences ${numeric}`,
  );
  await forward.release();
  await backward.release();
  return {
    grads: wrt.map((w) => (out[`grad.${w}`] as ort.Tensor).data as Float32Array),
    ops: new Set(g.build().nodes.map((n) => n.opType)),
  };
}

const x = (...shape: number[]): Feed => ({ shape, wrt: true });
const k = (...shape: number[]): Feed => ({ shape });
const op =
  (type: string, attrs: Record<string, ReturnType<typeof attr.int>> = {}, domain?: string) =>
  (...inputs: string[]) =>
  (g: GraphBuilder) =>
    g.op1(type, inputs, attrs, domain === undefined ? {} : { domain });

const CASES: Case[] = [
  { name: "Add broadcast", feeds: { a: x(2, 3, 4), b: x(3, 1) }, build: op("Add")("a", "b") },
  { name: "Sub broadcast", feeds: { a: x(4), b: x(2, 3, 4) }, build: op("Sub")("a", "b") },
  { name: "Mul broadcast", feeds: { a: x(2, 1, 4), b: x(1, 3, 1) }, build: op("Mul")("a", "b") },
  {
    name: "Div",
    feeds: {
      a: x(3, 4),
      b: { shape: [3, 4], wrt: true, data: Float32Array.from({ length: 12 }, (_, i) => 1 + i / 7) },
    },
    build: op("Div")("a", "b"),
  },
  { name: "Sum of three", feeds: { a: x(3, 4), b: x(4), c: x(3, 1) }, build: op("Sum")("a", "b", "c") },
  { name: "Exp", feeds: { a: x(3, 4) }, build: op("Exp")("a") },
  {
    name: "Log",
    feeds: { a: { shape: [5], wrt: true, data: Float32Array.from([0.5, 1, 2, 3, 4]) } },
    build: op("Log")("a"),
  },
  { name: "Sigmoid", feeds: { a: x(3, 4) }, build: op("Sigmoid")("a") },
  { name: "Softplus", feeds: { a: x(3, 4) }, build: op("Softplus")("a") },
  { name: "Neg", feeds: { a: x(3) }, build: op("Neg")("a") },
  { name: "Min", feeds: { a: x(3, 4), b: x(4) }, build: op("Min")("a", "b") },
  { name: "Max", feeds: { a: x(3, 4), b: x(3, 4) }, build: op("Max")("a", "b") },
  {
    name: "Clip",
    feeds: { a: x(3, 4) },
    build: (g) => g.op1("Clip", ["a", g.constant("float32", [], [-0.3]), g.constant("float32", [], [0.4])]),
  },
  {
    name: "Where",
    feeds: { a: x(3, 4), b: x(4) },
    build: (g) => g.op1("Where", [g.op1("Greater", ["a", "b"]), "a", "b"]),
  },
  {
    name: "Reshape, Transpose, Unsqueeze",
    feeds: { a: x(2, 3, 4) },
    build: (g) => {
      const t = g.op1("Transpose", ["a"], { perm: attr.ints([2, 0, 1]) });
      const r = g.op1("Reshape", [t, g.constant("int64", [2], [4, 6])]);
      return g.op1("Unsqueeze", [r, g.constant("int64", [1], [1])]);
    },
  },
  {
    name: "Concat",
    feeds: { a: x(2, 3), b: k(2, 1), c: x(2, 2) },
    build: op("Concat", { axis: attr.int(1) })("a", "b", "c"),
  },
  {
    name: "Expand",
    feeds: { a: x(3, 1) },
    build: (g) => g.op1("Expand", ["a", g.constant("int64", [3], [2, 3, 4])]),
  },
  {
    name: "Gather rows, repeated",
    feeds: { a: x(5, 3), i: { shape: [4], data: BigInt64Array.from([4n, 0n, 4n, 2n]) } },
    build: op("Gather")("a", "i"),
  },
  {
    name: "GatherElements",
    feeds: { a: x(3, 5), i: { shape: [3, 2], data: BigInt64Array.from([0n, 4n, 1n, 1n, 3n, 2n]) } },
    build: op("GatherElements", { axis: attr.int(1) })("a", "i"),
  },
  {
    name: "ReduceSum keepdims 0",
    feeds: { a: x(2, 3, 4) },
    build: (g) => g.op1("ReduceSum", ["a", g.constant("int64", [1], [1])], { keepdims: attr.int(0) }),
  },
  {
    name: "ReduceMean keepdims 1",
    feeds: { a: x(2, 3, 4) },
    build: (g) => g.op1("ReduceMean", ["a", g.constant("int64", [1], [-1])], { keepdims: attr.int(1) }),
  },
  {
    name: "ReduceSum over everything",
    feeds: { a: x(2, 3) },
    build: (g) => g.op1("ReduceSum", ["a"], { keepdims: attr.int(0) }),
  },
  { name: "Softmax", feeds: { a: x(3, 5) }, build: op("Softmax", { axis: attr.int(-1) })("a") },
  { name: "LogSoftmax", feeds: { a: x(3, 5) }, build: op("LogSoftmax", { axis: attr.int(-1) })("a") },
  {
    name: "MatMul batch-broadcast",
    feeds: { a: x(2, 3, 4, 5), b: x(2, 1, 5, 6) },
    build: op("MatMul")("a", "b"),
  },
  {
    name: "MatMul with a 2-D right operand",
    feeds: { a: x(2, 3, 4), b: x(4, 5) },
    build: op("MatMul")("a", "b"),
  },
  ...[0, 1].flatMap((ta) =>
    [0, 1].map(
      (tb): Case => ({
        name: `Gemm transA=${ta} transB=${tb} with bias`,
        feeds: { a: x(...(ta ? [4, 3] : [3, 4])), b: x(...(tb ? [5, 4] : [4, 5])), c: x(5) },
        build: op("Gemm", { transA: attr.int(ta), transB: attr.int(tb) })("a", "b", "c"),
      }),
    ),
  ),
  {
    name: "SimplifiedLayerNormalization",
    feeds: { a: x(3, 8), gamma: k(8) },
    build: op("SimplifiedLayerNormalization", { axis: attr.int(-1), epsilon: attr.float(1e-6) })(
      "a",
      "gamma",
    ),
  },
  {
    name: "RotaryEmbedding",
    feeds: {
      a: x(1, 3, 8),
      pos: { shape: [1, 3], data: BigInt64Array.from([0n, 1n, 2n]) },
      cos: {
        shape: [3, 2],
        data: Float32Array.from([0, 1, 2, 0, 1, 2], (p, j) => Math.cos(p * 0.7 ** (j % 2))),
      },
      sin: {
        shape: [3, 2],
        data: Float32Array.from([0, 1, 2, 0, 1, 2], (p, j) => Math.sin(p * 0.7 ** (j % 2))),
      },
    },
    build: op("RotaryEmbedding", { num_heads: attr.int(2) }, "com.microsoft")("a", "pos", "cos", "sin"),
  },
];

describe("autodiff rules match central differences", () => {
  for (const c of CASES)
    it(c.name, async () => {
      await checkGradient(c);
    });

  // Shapes known at build time replace the run-time shape arithmetic (Shape, Range, NonZero): the
  // gradients must not change by a bit.
  for (const c of CASES) {
    it(`${c.name}: build-time shapes give the run-time path's gradients exactly`, async () => {
      const built = await checkGradient(c, 2);
      const runtime = await checkGradient(c, 2, true);
      assert.deepEqual(built.grads, runtime.grads);
      for (const op of ["Range", "NonZero"]) assert.ok(!built.ops.has(op), `${op} in the backward`);
    });
  }

  for (const [bits, K] of [
    [4, 64],
    [4, 50],
    [8, 40],
  ] as const) {
    it(`MatMulNBits int${bits}, K=${K}: the input gradient uses the dequantized weights`, async () => {
      const N = 6;
      const layout = quantLayout(N, K, bits, 16);
      const rng = createRng(7);
      const q = quantize(
        Float32Array.from({ length: N * K }, () => rng.next() - 0.5),
        layout,
      );
      await checkGradient({
        name: `MatMulNBits int${bits}`,
        feeds: { a: x(3, K) },
        build: (g) => {
          const packed = g.initializer("w", "uint8", [N, layout.kBlocks, layout.blobBytes], q.packed);
          const scales = g.initializer("s", "float32", [N, layout.kBlocks], q.scales);
          const zps = g.initializer("z", "uint8", [N, layout.zeroPointCols], q.zeroPoints);
          const attrs = {
            K: attr.int(K),
            N: attr.int(N),
            bits: attr.int(bits),
            block_size: attr.int(16),
          };
          return g.op1("MatMulNBits", ["a", packed, scales, zps], attrs, { domain: "com.microsoft" });
        },
      });
    });
  }
});

describe("autodiff semantics", () => {
  it("Min and Max split the gradient at ties, as torch does", async () => {
    const g = new GraphBuilder("ties");
    g.input("a", "float32", [3]);
    g.input("b", "float32", [3]);
    const y = g.op1("Min", ["a", "b"]);
    const grads = addGradients(g, {
      seeds: [{ value: y, grad: g.constant("float32", [3], [1, 1, 1]) }],
      wrt: ["a", "b"],
    });
    g.op("Identity", [grads.get("a") ?? ""], {}, { names: ["da"] });
    g.op("Identity", [grads.get("b") ?? ""], {}, { names: ["db"] });
    g.output("da", "float32", [3]);
    g.output("db", "float32", [3]);
    const s = await ort.InferenceSession.create(
      encodeModel({ graph: g.build(), opsets: OPSETS, producer: "t" }),
    );
    const out = await s.run({
      a: new ort.Tensor("float32", Float32Array.from([1, 2, 3]), [3]),
      b: new ort.Tensor("float32", Float32Array.from([2, 2, 1]), [3]),
    });
    assert.deepEqual(Array.from((out.da as ort.Tensor).data as Float32Array), [1, 0.5, 0]);
    assert.deepEqual(Array.from((out.db as ort.Tensor).data as Float32Array), [0, 0.5, 1]);
    await s.release();
  });

  it("refuses an op without a rule, naming it", () => {
    const g = new GraphBuilder("t");
    g.input("a", "float32", [3]);
    const y = g.op1("Erf", ["a"]);
    assert.throws(
      () => addGradients(g, { seeds: [{ value: y, grad: "a" }], wrt: ["a"] }),
      (e: unknown) => e instanceof AutodiffError && /no gradient rule for Erf/.test(e.message),
    );
  });

  it("refuses a wrt value that does not reach the seed", () => {
    const g = new GraphBuilder("t");
    g.input("a", "float32", [3]);
    g.input("b", "float32", [3]);
    const y = g.op1("Exp", ["a"]);
    assert.throws(
      () => addGradients(g, { seeds: [{ value: y, grad: "a" }], wrt: ["a", "b"] }),
      /b has no path to the seeded values/,
    );
  });
});
