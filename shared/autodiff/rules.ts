/**
 * Adjoint rules, one per op the builders emit on a differentiable path. Each follows the op's ONNX
 * (or com.microsoft) semantics; min/max/clip split or pass gradients exactly as torch autograd does,
 * so clipped objectives differentiate as in TRL (`trl/trainer/grpo_trainer.py`, `_compute_loss`).
 */
import { attr, type NodeValue } from "../onnx/index.ts";
import { dequantizedWeight } from "./dequantize.ts";
import type { GradContext, Rule, RuleInput } from "./differentiate.ts";

function intAttr(node: NodeValue, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a?.kind === "int" ? a.value : fallback;
}

function floatAttr(node: NodeValue, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a?.kind === "float" ? a.value : fallback;
}

function only(node: NodeValue, what: string, ok: boolean): void {
  if (!ok) throw new Error(`gradient of ${node.opType} (${node.name}): ${what} is not supported`);
}

/** Calls `body` with the single upstream gradient, or gives no gradients when there is none. */
function unary(body: (dy: string, input: RuleInput) => (string | null)[]): Rule {
  return (input) => {
    const dy = input.dy[0];
    if (dy === null || dy === undefined) return input.node.inputs.map(() => null);
    return body(dy, input);
  };
}

const input = (node: NodeValue, i: number): string => node.inputs[i] ?? "";
const output = (node: NodeValue, i: number): string => node.outputs[i] ?? "";

/** Gradient of a two-input broadcasting op, given each side's local product with dy. */
function binary(
  local: (ctx: GradContext, dy: string, a: string, b: string, y: string) => [() => string, () => string],
): Rule {
  return unary((dy, { ctx, node, wants }) => {
    const [a, b] = [input(node, 0), input(node, 1)];
    const [da, db] = local(ctx, dy, a, b, output(node, 0));
    return [wants[0] ? ctx.unbroadcast(da(), a) : null, wants[1] ? ctx.unbroadcast(db(), b) : null];
  });
}

/** torch's rule for elementwise min/max: the winner takes the gradient, ties split it evenly. */
function extremum(winner: "Less" | "Greater"): Rule {
  return binary((ctx, dy, a, b) => {
    const g = ctx.g;
    const half = g.op1("Mul", [dy, ctx.f32(0.5)]);
    const zero = ctx.f32(0);
    const share = (mine: string, other: string) => () =>
      g.op1("Where", [
        g.op1(winner, [mine, other]),
        dy,
        g.op1("Where", [g.op1("Equal", [mine, other]), half, zero]),
      ]);
    return [share(a, b), share(b, a)];
  });
}

/** Expands a reduced gradient back over the reduced axes. */
function reduceRule(mean: boolean): Rule {
  return unary((dy, { ctx, node }) => {
    const g = ctx.g;
    const x = input(node, 0);
    const axes = node.inputs[1];
    const keep = intAttr(node, "keepdims", 1) === 1;
    only(node, "noop_with_empty_axes", intAttr(node, "noop_with_empty_axes", 0) === 0);
    const kept = keep || axes === undefined || axes === "" ? dy : g.op1("Unsqueeze", [dy, axes]);
    let dx = g.op1("Expand", [kept, ctx.shapeOf(x)]);
    if (mean) {
      const count = g.op1("Div", [g.op1("Size", [x]), g.op1("Size", [dy])]);
      dx = g.op1("Div", [dx, g.op1("Cast", [count], { to: attr.int(1) })]);
    }
    return [dx, null];
  });
}

const reshapeBack: Rule = unary((dy, { ctx, node }) => [
  ctx.g.op1("Reshape", [dy, ctx.reshapeTarget(input(node, 0), dy)]),
  ...node.inputs.slice(1).map(() => null),
]);

/**
 * The adjoint rule of each ONNX (or `com.microsoft`) op type the builders emit on a differentiable
 * path, keyed by op type. Each returns one gradient per input, null where not wanted.
 */
export const RULES: Readonly<Record<string, Rule>> = {
  Identity: unary((dy) => [dy]),
  Cast: unary((dy) => [dy]),
  Neg: unary((dy, { ctx }) => [ctx.g.op1("Neg", [dy])]),
  Add: binary((_c, dy) => [() => dy, () => dy]),
  Sub: binary((ctx, dy) => [() => dy, () => ctx.g.op1("Neg", [dy])]),
  Mul: binary((ctx, dy, a, b) => [() => ctx.g.op1("Mul", [dy, b]), () => ctx.g.op1("Mul", [dy, a])]),
  Div: binary((ctx, dy, _a, b, y) => [
    () => ctx.g.op1("Div", [dy, b]),
    () => ctx.g.op1("Neg", [ctx.g.op1("Div", [ctx.g.op1("Mul", [dy, y]), b])]),
  ]),
  Sum: unary((dy, { ctx, node, wants }) =>
    node.inputs.map((x, i) => (wants[i] ? ctx.unbroadcast(dy, x) : null)),
  ),
  Min: extremum("Less"),
  Max: extremum("Greater"),
  Exp: unary((dy, { ctx, node }) => [ctx.g.op1("Mul", [dy, output(node, 0)])]),
  Log: unary((dy, { ctx, node }) => [ctx.g.op1("Div", [dy, input(node, 0)])]),
  Sigmoid: unary((dy, { ctx, node }) => {
    const g = ctx.g;
    const y = output(node, 0);
    return [g.op1("Mul", [dy, g.op1("Mul", [y, g.op1("Sub", [ctx.f32(1), y])])])];
  }),
  Softplus: unary((dy, { ctx, node }) => [ctx.g.op1("Mul", [dy, ctx.g.op1("Sigmoid", [input(node, 0)])])]),
  /** torch.clamp: the gradient passes where min ≤ x ≤ max, bounds included. */
  Clip: unary((dy, { ctx, node }) => {
    const g = ctx.g;
    const x = input(node, 0);
    let pass: string | null = null;
    const [lo, hi] = [node.inputs[1], node.inputs[2]];
    if (lo !== undefined && lo !== "") pass = g.op1("GreaterOrEqual", [x, lo]);
    if (hi !== undefined && hi !== "") {
      const below = g.op1("LessOrEqual", [x, hi]);
      pass = pass === null ? below : g.op1("And", [pass, below]);
    }
    return [pass === null ? dy : g.op1("Where", [pass, dy, ctx.f32(0)]), null, null];
  }),
  Where: unary((dy, { ctx, node, wants }) => {
    const g = ctx.g;
    const [c, a, b] = [input(node, 0), input(node, 1), input(node, 2)];
    const zero = ctx.f32(0);
    return [
      null,
      wants[1] ? ctx.unbroadcast(g.op1("Where", [c, dy, zero]), a) : null,
      wants[2] ? ctx.unbroadcast(g.op1("Where", [c, zero, dy]), b) : null,
    ];
  }),
  Reshape: reshapeBack,
  Unsqueeze: reshapeBack,
  Squeeze: reshapeBack,
  Flatten: reshapeBack,
  Expand: unary((dy, { ctx, node }) => [ctx.unbroadcast(dy, input(node, 0)), null]),
  Transpose: unary((dy, { ctx, node }) => {
    const perm = node.attributes.perm;
    only(node, "a transpose without perm", perm?.kind === "ints");
    const p = perm?.kind === "ints" ? perm.value : [];
    const inverse = p.map((_, i) => p.indexOf(i));
    return [ctx.g.op1("Transpose", [dy], { perm: attr.ints(inverse) })];
  }),
  Concat: unary((dy, { ctx, node, wants }) => {
    const g = ctx.g;
    const axis = intAttr(node, "axis", 0);
    const known = node.inputs.map((x) => ctx.static.known(x)?.at(axis));
    const split = known.every((d) => typeof d === "number")
      ? ctx.i64(...(known as number[]))
      : g.op1(
          "Concat",
          node.inputs.map((x) => g.op1("Gather", [ctx.shapeOf(x), ctx.i64(axis)])),
          { axis: attr.int(0) },
        );
    const parts = g.op(
      "Split",
      [dy, split],
      { axis: attr.int(axis) },
      {
        outputs: node.inputs.length,
      },
    );
    return node.inputs.map((_, i) => (wants[i] ? (parts[i] ?? null) : null));
  }),
  Gather: unary((dy, { ctx, node, wants }) => {
    only(node, "a gradient for the indices", !wants[1]);
    only(node, "an axis other than 0", intAttr(node, "axis", 0) === 0);
    const g = ctx.g;
    const [data, indices] = [input(node, 0), input(node, 1)];
    const zeros = ctx.zerosLike(data);
    const idx = g.op1("Unsqueeze", [indices, ctx.i64(-1)]);
    return [g.op1("ScatterND", [zeros, idx, dy], { reduction: attr.string("add") }), null];
  }),
  GatherElements: unary((dy, { ctx, node, wants }) => {
    only(node, "a gradient for the indices", !wants[1]);
    const g = ctx.g;
    const [data, indices] = [input(node, 0), input(node, 1)];
    const zeros = ctx.zerosLike(data);
    return [
      g.op1("ScatterElements", [zeros, indices, dy], {
        axis: attr.int(intAttr(node, "axis", 0)),
        reduction: attr.string("add"),
      }),
      null,
    ];
  }),
  ReduceSum: reduceRule(false),
  ReduceMean: reduceRule(true),
  Softmax: unary((dy, { ctx, node }) => {
    const g = ctx.g;
    const y = output(node, 0);
    const axis = ctx.i64(intAttr(node, "axis", -1));
    const dot = g.op1("ReduceSum", [g.op1("Mul", [dy, y]), axis], { keepdims: attr.int(1) });
    return [g.op1("Mul", [y, g.op1("Sub", [dy, dot])])];
  }),
  LogSoftmax: unary((dy, { ctx, node }) => {
    const g = ctx.g;
    const p = g.op1("Exp", [output(node, 0)]);
    const total = g.op1("ReduceSum", [dy, ctx.i64(intAttr(node, "axis", -1))], { keepdims: attr.int(1) });
    return [g.op1("Sub", [dy, g.op1("Mul", [p, total])])];
  }),
  MatMul: unary((dy, { ctx, node, wants }) => {
    // Einsum's ellipsis takes the batch axes whatever the rank, so no rank is needed here. The
    // other operand is first expanded to dy's batch axes: WebGPU's Einsum refuses ellipses that
    // differ (a broadcast), and unbroadcast sums the expanded axes back either way.
    // Both operands must be at least 2-D, which every MatMul the builders emit is.
    const g = ctx.g;
    const [a, b] = [input(node, 0), input(node, 1)];
    const einsum = (eq: string, x: string, y: string) =>
      g.op1("Einsum", [x, y], { equation: attr.string(eq) });
    const expanded = (x: string) => {
      const [sx, sdy] = [ctx.static.known(x), ctx.static.known(dy)];
      if (sx !== null && sdy !== null && sx.length === sdy.length) {
        const [bx, bdy] = [sx.slice(0, -2), sdy.slice(0, -2)];
        if (bx.every((d, i) => d === bdy[i])) return x;
        // Expand broadcasts: a 1 in the target keeps x's dim, so only the broadcast axes need sizes.
        const target = bx.map((d, i) => (d === bdy[i] ? 1 : d === 1 ? bdy[i] : null));
        if (target.every((d) => typeof d === "number")) {
          return g.op1("Expand", [x, ctx.i64(...(target as number[]), 1, 1)]);
        }
      }
      const batchOfDy = g.op1("Shape", [dy], { end: attr.int(-2) });
      return g.op1("Expand", [
        x,
        g.op1("Concat", [batchOfDy, g.op1("Shape", [x], { start: attr.int(-2) })], { axis: attr.int(0) }),
      ]);
    };
    return [
      wants[0] ? ctx.unbroadcast(einsum("...ik,...jk->...ij", dy, expanded(b)), a) : null,
      wants[1] ? ctx.unbroadcast(einsum("...ki,...kj->...ij", expanded(a), dy), b) : null,
    ];
  }),
  Gemm: unary((dy, { ctx, node, wants }) => {
    only(
      node,
      "alpha ≠ 1 or beta ≠ 1",
      floatAttr(node, "alpha", 1) === 1 && floatAttr(node, "beta", 1) === 1,
    );
    const g = ctx.g;
    const [a, b, c] = [input(node, 0), input(node, 1), node.inputs[2]];
    const ta = intAttr(node, "transA", 0);
    const tb = intAttr(node, "transB", 0);
    const gemm = (x: string, y: string, transA: number, transB: number) =>
      g.op1("Gemm", [x, y], { transA: attr.int(transA), transB: attr.int(transB) });
    // y = A'·B' with A' = op(A), B' = op(B): dA' = dy·B'ᵀ and dB' = A'ᵀ·dy, transposed back where op transposed.
    const da = ta === 0 ? gemm(dy, b, 0, 1 - tb) : gemm(b, dy, tb, 1);
    const db = tb === 0 ? gemm(a, dy, 1 - ta, 0) : gemm(dy, a, 1, ta);
    return [
      wants[0] ? da : null,
      wants[1] ? db : null,
      ...(c === undefined ? [] : [wants[2] ? ctx.unbroadcast(dy, c) : null]),
    ];
  }),
  MatMulNBits: unary((dy, { ctx, node, wants }) => {
    only(node, "a gradient for the quantized weight", !wants[1] && !wants[2] && !wants[3]);
    only(node, "g_idx", (node.inputs[4] ?? "") === "");
    const g = ctx.g;
    const w = ctx.memoDequantized(input(node, 1), () => dequantizedWeight(ctx, node));
    const bias = node.inputs[5];
    return [
      wants[0] ? g.op1("MatMul", [dy, w]) : null,
      null,
      null,
      null,
      null,
      ...(bias === undefined ? [] : [wants[5] ? ctx.unbroadcast(dy, bias) : null]),
    ];
  }),
  /**
   * y = γ·x·r with r = (mean(x²) + ε)^-½ over the last axis; γ frozen. With n = x·r and dn = γ·dy:
   * dx = r·(dn − n·mean(dn·n)), llm.c's `layernorm_backward` without the mean-subtraction term.
   */
  SimplifiedLayerNormalization: unary((dy, { ctx, node, wants }) => {
    only(node, "an axis other than -1", intAttr(node, "axis", -1) === -1);
    only(node, "a gradient for the scale", !wants[1]);
    const g = ctx.g;
    const [x, gamma] = [input(node, 0), input(node, 1)];
    const last = ctx.i64(-1);
    const meanSq = g.op1("ReduceMean", [g.op1("Mul", [x, x]), last], { keepdims: attr.int(1) });
    const r = g.op1("Reciprocal", [
      g.op1("Sqrt", [g.op1("Add", [meanSq, ctx.f32(floatAttr(node, "epsilon", 1e-5))])]),
    ]);
    const n = g.op1("Mul", [x, r]);
    const dn = g.op1("Mul", [dy, gamma]);
    const proj = g.op1("ReduceMean", [g.op1("Mul", [dn, n]), last], { keepdims: attr.int(1) });
    return [g.op1("Mul", [r, g.op1("Sub", [dn, g.op1("Mul", [n, proj])])]), null];
  }),
  /**
   * The inverse rotation: the same op with sin negated. y = x·cos + R(x)·sin with Rᵀ = −R gives
   * dx = dy·cos − R(dy·sin) (RoFormer, Su et al. 2021, arXiv:2104.09864).
   */
  RotaryEmbedding: unary((dy, { ctx, node }) => {
    const g = ctx.g;
    const [, positions, cos, sin] = node.inputs;
    const inputs = [dy, positions ?? "", cos ?? "", g.op1("Neg", [sin ?? ""])];
    return [
      g.op1("RotaryEmbedding", inputs, { ...node.attributes }, { domain: node.domain }),
      null,
      null,
      null,
    ];
  }),
};
