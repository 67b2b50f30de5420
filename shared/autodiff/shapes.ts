/**
 * Static shapes of the values of a graph under construction: what follows from the graph inputs'
 * declared dims, the initializers and each op's shape rule (the ONNX operator specs; ORT's
 * `docs/ContribOperators.md` for `com.microsoft` ops). The backward pass asks for them so that a
 * shape known when the graph is built becomes a constant, or no node at all, instead of a
 * `Shape`/`Range`/`NonZero` chain evaluated on every run. Symbolic dims stay symbolic: `batch`,
 * `sequence` and their products (`batch*sequence`, a reshape's `-1`) compare equal by name. Where a
 * rule cannot tell (an unknown op, a data-dependent size), the dim or shape is unknown and callers
 * fall back to run-time shapes.
 */
import type { GraphBuilder, NodeValue } from "../onnx/index.ts";

/**
 * One dimension: a size, a product of symbolic names in canonical form (`"batch*sequence"`, a
 * factor first when it is not 1: `"14*batch"`), or null when it is not known at build time.
 */
export type StaticDim = number | string | null;

/** `d` as an integer factor and sorted symbol names. */
function factors(d: number | string): { c: number; syms: string[] } {
  if (typeof d === "number") return { c: d, syms: [] };
  let c = 1;
  const syms: string[] = [];
  for (const part of d.split("*")) {
    if (/^\d+$/.test(part)) c *= Number(part);
    else syms.push(part);
  }
  return { c, syms: syms.sort() };
}

function canonical(c: number, syms: readonly string[]): number | string {
  if (syms.length === 0 || c === 0) return c;
  return [...(c === 1 ? [] : [String(c)]), ...[...syms].sort()].join("*");
}

function mul(a: StaticDim, b: StaticDim): StaticDim {
  if (a === null || b === null) return null;
  const [x, y] = [factors(a), factors(b)];
  return canonical(x.c * y.c, [...x.syms, ...y.syms]);
}

/** a / b when it divides exactly (b's symbols among a's, the factor a multiple); else null. */
function div(a: StaticDim, b: StaticDim): StaticDim {
  if (a === null || b === null) return null;
  const [x, y] = [factors(a), factors(b)];
  if (y.c === 0 || x.c % y.c !== 0) return null;
  const rest = [...x.syms];
  for (const s of y.syms) {
    const i = rest.indexOf(s);
    if (i < 0) return null;
    rest.splice(i, 1);
  }
  return canonical(x.c / y.c, rest);
}

function add(a: StaticDim, b: StaticDim): StaticDim {
  return typeof a === "number" && typeof b === "number" ? a + b : null;
}

const product = (dims: readonly StaticDim[]): StaticDim => dims.reduce<StaticDim>((p, d) => mul(p, d), 1);

/** numpy broadcasting of two dims; null where the result depends on sizes not known now. */
function broadcastDim(a: StaticDim | undefined, b: StaticDim | undefined): StaticDim {
  if (a === undefined) return b ?? null;
  if (b === undefined || a === b || b === 1) return a;
  if (a === 1) return b;
  if (a === null) return b;
  if (b === null) return a;
  // Two different symbols (or sizes): equal at run time or the graph would fail; not provable.
  return null;
}

function broadcast(shapes: readonly (readonly StaticDim[])[]): StaticDim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: rank }, (_, i) =>
    shapes.reduce<StaticDim | undefined>((acc, s) => {
      const d = s[s.length - rank + i];
      return acc === undefined ? d : broadcastDim(acc, d);
    }, undefined),
  ).map((d) => d ?? null);
}

const axis = (a: number, rank: number) => (a < 0 ? a + rank : a);

/** Ops whose single output has the shape of their first input. */
const SAME_AS_FIRST = new Set([
  "Identity",
  "Cast",
  "Neg",
  "Sigmoid",
  "Cos",
  "Sin",
  "Exp",
  "Log",
  "Sqrt",
  "Reciprocal",
  "Floor",
  "Softmax",
  "LogSoftmax",
  "Softplus",
  "Not",
  "CumSum",
  "Clip",
  "RotaryEmbedding",
  "SimplifiedLayerNormalization",
  "ScatterND",
  "ScatterElements",
]);

/** Ops whose output broadcasts all of their inputs (numpy rules). */
const BROADCASTING = new Set([
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Pow",
  "Max",
  "Min",
  "Sum",
  "Equal",
  "Less",
  "LessOrEqual",
  "Greater",
  "GreaterOrEqual",
  "And",
  "Or",
  "Where",
]);

/**
 * The static shape (and, for small int64 tensors such as shapes, the static value) of every value
 * of a `GraphBuilder`'s graph, inferred node by node as the graph grows. Read-only towards the
 * graph: it adds no node.
 */
export class StaticShapes {
  private readonly shapes = new Map<string, readonly StaticDim[]>();
  /** Elements of int64 tensors of rank 0 or 1 whose values are known (shape arithmetic). */
  private readonly values = new Map<string, readonly StaticDim[]>();
  private seen = 0;

  /**
   * `aliases` renames symbolic input dims that are equal at run time, so that values built from
   * both compare equal (the training graph: no past, the mask's `total_sequence` is `sequence`).
   */
  constructor(
    private readonly g: GraphBuilder,
    private readonly aliases: Readonly<Record<string, string>> = {},
  ) {}

  /** The shape of `x`, dims null where unknown; null when even the rank is unknown. */
  shape(x: string): readonly StaticDim[] | null {
    this.sync();
    return this.shapeOf(x);
  }

  /** The shape of `x` when every dim is known (sizes or symbols), else null. */
  known(x: string): readonly (number | string)[] | null {
    const s = this.shape(x);
    return s === null || s.some((d) => d === null) ? null : (s as readonly (number | string)[]);
  }

  private sync(): void {
    const count = this.g.mark();
    if (count < this.seen) this.seen = count;
    for (const node of this.g.nodesSince(this.seen)) this.infer(node);
    this.seen = count;
  }

  private shapeOf(x: string): readonly StaticDim[] | null {
    const s = this.shapes.get(x);
    if (s !== undefined) return s;
    const d = this.g.declaration(x);
    if (d === undefined) return null;
    if ("dims" in d) {
      const t = d;
      if (t.type === "int64" && "inline" in t.data && t.dims.length <= 1 && t.data.inline.byteLength <= 512) {
        const copy = new BigInt64Array(t.data.inline.slice().buffer);
        this.values.set(x, Array.from(copy, Number));
      }
      this.shapes.set(x, t.dims);
      return t.dims;
    }
    return d.shape?.map((dim) => (typeof dim === "string" ? (this.aliases[dim] ?? dim) : dim)) ?? null;
  }

  private valueOf(x: string): readonly StaticDim[] | null {
    if (x === "") return null;
    this.shapeOf(x);
    return this.values.get(x) ?? null;
  }

  private numbers(x: string | undefined): number[] | null {
    const v = x === undefined ? null : this.valueOf(x);
    return v?.every((d) => typeof d === "number") ? (v as number[]) : null;
  }

  private intAttr(n: NodeValue, name: string, fallback: number): number {
    const a = n.attributes[name];
    return a?.kind === "int" ? a.value : fallback;
  }

  private set(n: NodeValue, shape: readonly StaticDim[] | null, value?: readonly StaticDim[] | null): void {
    const out = n.outputs[0];
    if (out === undefined || shape === null) return;
    this.shapes.set(out, shape);
    if (value !== undefined && value !== null) this.values.set(out, value);
  }

  private infer(n: NodeValue): void {
    const ins = n.inputs.map((x) => (x === "" ? null : this.shapeOf(x)));
    const [a, b] = ins;
    const op = n.opType;
    if (SAME_AS_FIRST.has(op)) {
      this.set(n, a ?? null, op === "Cast" || op === "Identity" ? this.valueOf(n.inputs[0] ?? "") : null);
    } else if (BROADCASTING.has(op)) {
      if (ins.some((s) => s === null)) return;
      this.set(n, broadcast(ins as StaticDim[][]), this.arithmetic(n));
    } else if (op === "Shape") {
      if (a === undefined || a === null) return;
      const dims = a.slice(
        this.intAttr(n, "start", 0),
        n.attributes.end ? this.intAttr(n, "end", 0) : a.length,
      );
      this.set(n, [dims.length], dims);
    } else if (op === "Size") {
      this.set(n, [], a === undefined || a === null ? null : [product(a)]);
    } else if (op === "Reshape") {
      this.set(n, this.reshape(a ?? null, this.valueOf(n.inputs[1] ?? "")));
    } else if (op === "Transpose") {
      const perm = n.attributes.perm;
      if (a && perm?.kind === "ints")
        this.set(
          n,
          perm.value.map((p) => a[p] ?? null),
        );
    } else if (op === "Unsqueeze" || op === "Squeeze") {
      this.squeeze(n, a ?? null, op === "Unsqueeze");
    } else if (op === "Gather") {
      this.gather(n, a ?? null, b ?? null);
    } else if (op === "Concat") {
      this.concat(n, ins);
    } else if (op === "Gemm" && a && b) {
      const [ta, tb] = [this.intAttr(n, "transA", 0), this.intAttr(n, "transB", 0)];
      this.set(n, [a[ta ? 1 : 0] ?? null, b[tb ? 0 : 1] ?? null]);
    } else if (op === "MatMulNBits" && a) {
      this.set(n, [...a.slice(0, -1), this.intAttr(n, "N", -1)]);
    } else if (op === "MatMul" && a && b && a.length >= 2 && b.length >= 2) {
      this.set(n, [...broadcast([a.slice(0, -2), b.slice(0, -2)]), a.at(-2) ?? null, b.at(-1) ?? null]);
    } else if (op === "Einsum" && a && b) {
      this.set(n, einsumShape(n, a, b));
    } else if (op.startsWith("Reduce")) {
      this.reduce(n, a ?? null);
    } else if (op === "Expand" && a) {
      const target = this.valueOf(n.inputs[1] ?? "");
      if (target !== null) this.set(n, broadcast([a, target]));
    } else if (op === "ConstantOfShape") {
      const target = this.valueOf(n.inputs[0] ?? "");
      if (target !== null) this.set(n, target);
    } else if (op === "GatherElements") {
      this.set(n, b ?? null);
    } else if (op === "Slice" && a) {
      this.slice(n, a);
    } else if (op === "Range") {
      this.set(n, [this.rangeLength(n)]);
    }
  }

  /** Elementwise int64 arithmetic on known values (shape sizes): products, and sums or differences of sizes or equal symbols. */
  private arithmetic(n: NodeValue): StaticDim[] | null {
    const [x, y] = [this.valueOf(n.inputs[0] ?? ""), this.valueOf(n.inputs[1] ?? "")];
    if (x === null || y === null || x.length !== y.length) return null;
    const op = n.opType;
    return x.map((d, i) => {
      const e = y[i] ?? null;
      if (op === "Mul") return mul(d, e);
      if (op === "Add") return add(d, e);
      if (op === "Sub")
        return d !== null && d === e ? 0 : typeof d === "number" && typeof e === "number" ? d - e : null;
      return null;
    });
  }

  /** Range's length: ⌈(limit − start)/delta⌉, from sizes, or `limit` itself from 0 in steps of 1. */
  private rangeLength(n: NodeValue): StaticDim {
    const [start, limit, delta] = n.inputs.map((x) => this.valueOf(x)?.[0] ?? null);
    if (start === 0 && delta === 1) return limit ?? null;
    if (typeof start === "number" && typeof limit === "number" && typeof delta === "number" && delta !== 0) {
      return Math.max(0, Math.ceil((limit - start) / delta));
    }
    return null;
  }

  /** Slice with constant starts, ends, axes and steps; a sliced symbolic dim becomes unknown. */
  private slice(n: NodeValue, x: readonly StaticDim[]): void {
    const [starts, ends] = [this.numbers(n.inputs[1]), this.numbers(n.inputs[2])];
    const axes = n.inputs[3] ? this.numbers(n.inputs[3]) : x.map((_, i) => i);
    const steps = n.inputs[4] ? this.numbers(n.inputs[4]) : x.map(() => 1);
    if (starts === null || ends === null || axes === null || steps === null) return;
    const out = [...x];
    axes.forEach((a, i) => {
      const ax = axis(a, x.length);
      const [dim, step] = [x[ax] ?? null, steps[i] ?? 1];
      if (typeof dim !== "number" || step <= 0) {
        out[ax] = null;
        return;
      }
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
      out[ax] = Math.max(0, Math.ceil((clamp(ends[i] ?? dim) - clamp(starts[i] ?? 0)) / step));
    });
    this.set(n, out);
  }

  private reshape(x: readonly StaticDim[] | null, target: readonly StaticDim[] | null): StaticDim[] | null {
    if (target === null) return null;
    const dims = target.map((d, i) => (d === 0 ? (x?.[i] ?? null) : d));
    const free = dims.indexOf(-1);
    if (free < 0) return dims;
    const rest = product(dims.filter((_, i) => i !== free));
    dims[free] = x === null ? null : div(product(x), rest);
    return dims;
  }

  private squeeze(n: NodeValue, x: readonly StaticDim[] | null, insert: boolean): void {
    if (x === null) return;
    const axes = this.numbers(n.inputs[1]);
    const value = this.valueOf(n.inputs[0] ?? "");
    if (insert) {
      if (axes === null) return;
      const rank = x.length + axes.length;
      const at = new Set(axes.map((a) => axis(a, rank)));
      const out: StaticDim[] = [];
      for (let i = 0, j = 0; i < rank; i++) out.push(at.has(i) ? 1 : (x[j++] ?? null));
      this.set(n, out, value);
    } else {
      const drop =
        axes === null
          ? x.every((d) => d !== null)
            ? new Set(x.flatMap((d, i) => (d === 1 ? [i] : [])))
            : null
          : new Set(axes.map((a) => axis(a, x.length)));
      if (drop !== null)
        this.set(
          n,
          x.filter((_, i) => !drop.has(i)),
          value,
        );
    }
  }

  private gather(n: NodeValue, data: readonly StaticDim[] | null, idx: readonly StaticDim[] | null): void {
    if (data === null || idx === null) return;
    const ax = axis(this.intAttr(n, "axis", 0), data.length);
    const shape = [...data.slice(0, ax), ...idx, ...data.slice(ax + 1)];
    const values = this.valueOf(n.inputs[0] ?? "");
    const at = this.numbers(n.inputs[1]);
    const picked =
      values !== null && at !== null && data.length === 1
        ? at.map((i) => values[axis(i, values.length)] ?? null)
        : null;
    this.set(n, shape, picked);
  }

  private concat(n: NodeValue, ins: readonly (readonly StaticDim[] | null)[]): void {
    if (ins.some((s) => s === null) || ins.length === 0) return;
    const shapes = ins as readonly (readonly StaticDim[])[];
    const first = shapes[0] as readonly StaticDim[];
    const ax = axis(this.intAttr(n, "axis", 0), first.length);
    const out = [...first];
    out[ax] = shapes.reduce<StaticDim>((s, x) => add(s, x[ax] ?? null), 0);
    const values = n.inputs.map((x) => this.valueOf(x));
    const joined = values.every((v) => v !== null) ? values.flat() : null;
    this.set(n, out, first.length === 1 ? (joined as StaticDim[] | null) : null);
  }

  private reduce(n: NodeValue, x: readonly StaticDim[] | null): void {
    if (x === null) return;
    const attrAxes = n.attributes.axes;
    const axes =
      n.inputs[1] !== undefined && n.inputs[1] !== ""
        ? this.numbers(n.inputs[1])
        : attrAxes?.kind === "ints"
          ? [...attrAxes.value]
          : [];
    if (axes === null) return;
    const keep = this.intAttr(n, "keepdims", 1) === 1;
    if (axes.length === 0 && this.intAttr(n, "noop_with_empty_axes", 0) === 1) {
      this.set(n, x, this.valueOf(n.inputs[0] ?? ""));
      return;
    }
    const reduced = new Set(axes.length === 0 ? x.map((_, i) => i) : axes.map((a) => axis(a, x.length)));
    const shape = x.flatMap((d, i) => (!reduced.has(i) ? [d] : keep ? [1] : []));
    const value = this.valueOf(n.inputs[0] ?? "");
    const folded = n.opType === "ReduceProd" && value !== null && x.length <= 1 ? [product(value)] : null;
    this.set(n, shape, folded);
  }
}

/** Output shape of a two-operand `Einsum` whose equation may use one ellipsis per term. */
function einsumShape(n: NodeValue, a: readonly StaticDim[], b: readonly StaticDim[]): StaticDim[] | null {
  const eq = n.attributes.equation;
  if (eq?.kind !== "string") return null;
  const [lhs, rhs] = eq.value.replaceAll(" ", "").split("->");
  const terms = lhs?.split(",");
  if (rhs === undefined || terms?.length !== 2) return null;
  const letters = new Map<string, StaticDim>();
  const ellipses: StaticDim[][] = [];
  for (const [term, shape] of [
    [terms[0] ?? "", a],
    [terms[1] ?? "", b],
  ] as const) {
    const [head, tail] = term.includes("...") ? term.split("...") : ["", term];
    const named = (head ?? "").length + (tail ?? "").length;
    const ell = shape.length - named;
    if (ell < 0) return null;
    ellipses.push(shape.slice((head ?? "").length, (head ?? "").length + ell));
    [...(head ?? "")].forEach((c, i) => {
      letters.set(c, broadcastDim(letters.get(c), shape[i] ?? null));
    });
    [...(tail ?? "")].forEach((c, i) => {
      letters.set(c, broadcastDim(letters.get(c), shape[(head ?? "").length + ell + i] ?? null));
    });
  }
  const [head, tail] = rhs.includes("...") ? rhs.split("...") : [rhs, null];
  const out = [...(head ?? "")].map((c) => letters.get(c) ?? null);
  if (tail === null) return out;
  return [...out, ...broadcast(ellipses), ...[...(tail ?? "")].map((c) => letters.get(c) ?? null)];
}
