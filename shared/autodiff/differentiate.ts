/**
 * Reverse-mode differentiation of a graph under construction. The pass reads the nodes emitted so
 * far, finds the ones on a path from the `wrt` values to the seeded values, and appends their
 * adjoint nodes to the same builder in reverse order. Each op's rule lives in `rules.ts`; an op on
 * the path without a rule is an error naming it, never a silent zero.
 */
import { attr, type GraphBuilder, type NodeValue } from "../onnx/index.ts";
import { RULES } from "./rules.ts";
import { StaticShapes } from "./shapes.ts";

/** What `addGradients` differentiates: from which seeded values back to which inputs. */
export interface GradientRequest {
  /** Values with a known upstream gradient (value → the name of dLoss/dValue, same shape). */
  seeds: readonly { value: string; grad: string }[];
  /** Values to differentiate with respect to: graph inputs or initializers. */
  wrt: readonly string[];
  /**
   * Symbolic input dims equal at run time, by name (`{ total_sequence: "sequence" }` where the
   * graph has no past): lets build-time shapes prove more of the backward's shapes.
   */
  sameDims?: Readonly<Record<string, string>>;
}

/**
 * A graph this pass cannot differentiate: an op on the path from `wrt` to a seed without a rule,
 * or an attribute or input a rule does not support. Thrown: it is a bug in the graph builder, not
 * input to handle.
 */
export class AutodiffError extends Error {
  override readonly name = "AutodiffError";
}

/** Ops whose outputs carry no gradient: shapes, comparisons, integer results. */
const NON_DIFFERENTIABLE = new Set([
  "Shape",
  "Size",
  "Equal",
  "Less",
  "LessOrEqual",
  "Greater",
  "GreaterOrEqual",
  "And",
  "Or",
  "Not",
  "ArgMax",
  "ArgMin",
  "NonZero",
  "Range",
  "ConstantOfShape",
]);

const FLOAT = 1;

function carriesGradient(node: NodeValue): boolean {
  if (NON_DIFFERENTIABLE.has(node.opType)) return false;
  if (node.opType === "Cast") {
    const to = node.attributes.to;
    return to?.kind === "int" && to.value === FLOAT;
  }
  return true;
}

/**
 * Helpers the rules share; every name they return is a value in the graph. Shapes known when the
 * graph is built (`StaticShapes`) become constants or no node at all; the others are read at run
 * time with `Shape`.
 */
export class GradContext {
  private readonly shapes = new Map<string, string>();
  private readonly dequantized = new Map<string, string>();
  /** Static shapes of the graph's values, forward and backward, inferred as the graph grows. */
  readonly static: StaticShapes;

  constructor(
    readonly g: GraphBuilder,
    sameDims: Readonly<Record<string, string>> = {},
  ) {
    this.static = new StaticShapes(g, sameDims);
  }

  i64(...values: number[]): string {
    return this.g.constant("int64", [values.length], values);
  }

  f32(value: number): string {
    return this.g.constant("float32", [], [value]);
  }

  /** int64 `[rank]`: the shape of `x`, a constant when every dim is a known size. */
  shapeOf(x: string): string {
    let s = this.shapes.get(x);
    if (s === undefined) {
      const known = this.static.known(x);
      s =
        known?.every((d) => typeof d === "number") === true
          ? this.i64(...(known as number[]))
          : this.g.op1("Shape", [x]);
      this.shapes.set(x, s);
    }
    return s;
  }

  /**
   * A `Reshape` target that turns `from` back into `x`'s shape: a constant when every symbolic dim
   * but one either sits at the same axis of `from` (0: copy it) or is the one left (-1, which the
   * element count settles); else `shapeOf(x)`.
   */
  reshapeTarget(x: string, from: string): string {
    const known = this.static.known(x);
    const source = this.static.known(from) ?? [];
    if (known !== null) {
      const target = known.map((d, i) => (typeof d === "number" ? d : d === source[i] ? 0 : -1));
      if (target.filter((d) => d === -1).length <= 1) return this.i64(...target);
    }
    return this.shapeOf(x);
  }

  /**
   * Sums `grad` down to the shape of `like`, undoing numpy broadcasting: leading axes that `like`
   * lacks are summed away, then every axis where `like` has size 1. With both shapes known at build
   * time that is one `ReduceSum` over constant axes (and a `Squeeze`), or nothing when they agree;
   * otherwise it is computed from run-time shapes, which needs no rank information.
   */
  unbroadcast(grad: string, like: string): string {
    const g = this.g;
    const sg = this.static.known(grad);
    const sl = this.static.known(like);
    if (sg !== null && sl !== null && sg.length >= sl.length) {
      const extra = sg.length - sl.length;
      const leading = Array.from({ length: extra }, (_, i) => i);
      const ones: number[] = [];
      const provable = sl.every((d, i) => {
        const e = sg[extra + i];
        if (d === e) return true;
        if (d === 1) ones.push(extra + i);
        return d === 1;
      });
      if (provable) {
        if (leading.length === 0 && ones.length === 0) return grad;
        // Two reductions, leading axes first, as the run-time path sums: the same float sums.
        let out = grad;
        if (leading.length > 0) {
          out = g.op1("ReduceSum", [out, this.i64(...leading)], { keepdims: attr.int(0) });
        }
        if (ones.length > 0) {
          out = g.op1("ReduceSum", [out, this.i64(...ones.map((a) => a - extra))], { keepdims: attr.int(1) });
        }
        return out;
      }
    }
    const target = this.shapeOf(like);
    // Rank as Shape(Shape(x)): ORT's shape inference folds Size(Shape(x)) to the product of the
    // dims, not the rank, and warns about the mismatch on every session load.
    const rank = (s: string) => g.op1("Shape", [s]);
    const extra = g.op1("Squeeze", [g.op1("Sub", [rank(this.shapeOf(grad)), rank(target)])]);
    const leading = g.op1("Range", [g.constant("int64", [], [0]), extra, g.constant("int64", [], [1])]);
    const summed = g.op1("ReduceSum", [grad, leading], {
      keepdims: attr.int(0),
      noop_with_empty_axes: attr.int(1),
    });
    const ones = g.op1("Reshape", [g.op1("NonZero", [g.op1("Equal", [target, this.i64(1)])]), this.i64(-1)]);
    const reduced = g.op1("ReduceSum", [summed, ones], {
      keepdims: attr.int(1),
      noop_with_empty_axes: attr.int(1),
    });
    return g.op1("Reshape", [reduced, target]);
  }

  /** float32 zeros of `x`'s shape, for scattering a gradient into. */
  zerosLike(x: string): string {
    return this.g.op1("ConstantOfShape", [this.shapeOf(x)], {
      value: {
        kind: "tensor",
        value: { name: "zero", type: "float32", dims: [1], data: { inline: new Uint8Array(4) } },
      },
    });
  }

  /** Memoized per weight: a matrix used twice (tied embeddings) is dequantized once per step. */
  memoDequantized(key: string, build: () => string): string {
    let w = this.dequantized.get(key);
    if (w === undefined) {
      w = build();
      this.dequantized.set(key, w);
    }
    return w;
  }
}

/** What a rule sees of one node during the backward pass. */
export interface RuleInput {
  ctx: GradContext;
  node: NodeValue;
  /** dLoss/d output i, or null where nothing downstream needs it. */
  dy: readonly (string | null)[];
  /** Which inputs need a gradient. */
  wants: readonly boolean[];
}

/** Gradient per input, null where not wanted or not differentiable. */
export type Rule = (input: RuleInput) => (string | null)[];

/**
 * Appends the adjoint graph and returns dLoss/d value for every `wrt` value that reaches a seed.
 * A `wrt` value with no path to the seeds is an error: its gradient would be an unexplained zero.
 */
export function addGradients(g: GraphBuilder, request: GradientRequest): Map<string, string> {
  const nodes = g.build().nodes;
  const active = new Set(request.wrt);
  for (const node of nodes) {
    if (carriesGradient(node) && node.inputs.some((i) => active.has(i))) {
      for (const o of node.outputs) active.add(o);
    }
  }
  const needed = new Set(request.seeds.map((s) => s.value));
  for (const s of request.seeds) {
    if (!active.has(s.value)) throw new AutodiffError(`seed ${s.value} does not depend on any wrt value`);
  }
  const path: NodeValue[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (node === undefined || !carriesGradient(node) || !node.outputs.some((o) => needed.has(o))) continue;
    if (!node.inputs.some((x) => active.has(x))) continue;
    path.push(node);
    for (const x of node.inputs) if (active.has(x)) needed.add(x);
  }

  const ctx = new GradContext(g, request.sameDims);
  const parts = new Map<string, string[]>();
  const add = (value: string, grad: string) => {
    const list = parts.get(value);
    if (list === undefined) parts.set(value, [grad]);
    else list.push(grad);
  };
  const total = (value: string): string | null => {
    const list = parts.get(value);
    if (list === undefined || list.length === 0) return null;
    // A chain of Adds, not one Sum: WebGPU has no Sum kernel, and ORT would copy each addend to
    // the CPU and back.
    const sum = list.slice(1).reduce((acc, x) => g.op1("Add", [acc, x]), list[0] as string);
    parts.set(value, [sum]);
    return sum;
  };
  for (const s of request.seeds) add(s.value, s.grad);

  g.scoped("grad", () => {
    for (const node of path) {
      const rule = RULES[node.opType];
      if (rule === undefined) {
        throw new AutodiffError(`no gradient rule for ${node.opType} (node ${node.name})`);
      }
      const dy = node.outputs.map(total);
      const wants = node.inputs.map((x) => x !== "" && active.has(x) && needed.has(x));
      const dx = g.scoped(node.name, () => rule({ ctx, node, dy, wants }));
      node.inputs.forEach((x, i) => {
        const d = dx[i];
        if (wants[i] && d !== null && d !== undefined) add(x, d);
      });
    }
  });

  const grads = new Map<string, string>();
  for (const w of request.wrt) {
    const d = total(w);
    if (d === null) throw new AutodiffError(`${w} has no path to the seeded values`);
    grads.set(w, d);
  }
  return grads;
}
