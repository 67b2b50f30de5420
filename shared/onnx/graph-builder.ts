/**
 * A small imperative builder for ONNX graphs. Ops return the names of their outputs, so model code
 * reads like the math it implements. Node and value names come from a scope stack, which keeps the
 * emitted graph debuggable ("layers.3/attn/MatMul_2").
 */
import {
  type AttrValue,
  type Dim,
  ELEM_BYTES,
  type ElemType,
  type GraphValue,
  type NodeValue,
  type TensorData,
  type TensorValue,
  type ValueInfo,
} from "./model.ts";

/** Node attribute constructors, one per `AttributeProto` type the builders use: `attr.int(1)`. */
export const attr = {
  int: (value: number): AttrValue => ({ kind: "int", value }),
  float: (value: number): AttrValue => ({ kind: "float", value }),
  string: (value: string): AttrValue => ({ kind: "string", value }),
  ints: (value: readonly number[]): AttrValue => ({ kind: "ints", value }),
  floats: (value: readonly number[]): AttrValue => ({ kind: "floats", value }),
  graph: (value: GraphValue): AttrValue => ({ kind: "graph", value }),
};

/** Options of one op: its domain (`""` is ONNX's, `com.microsoft` ORT's contrib ops) and outputs. */
export interface OpOptions {
  domain?: string;
  /** How many outputs the node has (named automatically). @default 1 */
  outputs?: number;
  /** Explicit output names, e.g. graph outputs. */
  names?: readonly string[];
  /**
   * Indices of optional outputs left out: named `""`, as ONNX marks an absent optional output, so
   * that a later output keeps its position (`SkipSimplifiedLayerNormalization`'s output 3).
   */
  omit?: readonly number[];
}

function bytesOf(values: ArrayBufferView): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * Builds one `GraphValue` op by op: inputs, initializers (inline or external), nodes and outputs,
 * each value named once (a second definition throws). `build()` returns the graph for `encodeModel`.
 */
export class GraphBuilder {
  private readonly nodes: NodeValue[] = [];
  private readonly initializers: TensorValue[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly scopes: string[] = [];
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private readonly declared = new Map<string, ValueInfo | TensorValue>();

  constructor(private readonly graphName: string) {}

  /** Runs `body` with names prefixed by `scope`. */
  scoped<T>(scope: string, body: () => T): T {
    this.scopes.push(scope);
    try {
      return body();
    } finally {
      this.scopes.pop();
    }
  }

  /** A fresh name under the current scope. */
  private fresh(base: string): string {
    const prefix = this.scopes.length > 0 ? `${this.scopes.join("/")}/` : "";
    let name = `${prefix}${base}`;
    for (let i = 1; this.used.has(name); i++) name = `${prefix}${base}_${i}`;
    this.used.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`graph value ${name} defined twice`);
    this.used.add(name);
    return name;
  }

  input(name: string, type: ElemType, shape: readonly Dim[]): string {
    const info = { name: this.claim(name), type, shape };
    this.inputs.push(info);
    this.declared.set(name, info);
    return name;
  }

  /** Declares an already-computed value as a graph output. */
  output(name: string, type: ElemType, shape: readonly Dim[] | null): void {
    this.outputs.push({ name, type, shape });
  }

  /** A weight or constant tensor. `data` is the raw little-endian bytes or a typed array of them. */
  initializer(
    name: string,
    type: ElemType,
    dims: readonly number[],
    data: ArrayBufferView | TensorData,
  ): string {
    const tensorData: TensorData = "inline" in data || "external" in data ? data : { inline: bytesOf(data) };
    if ("inline" in tensorData) {
      const expected = dims.reduce((a, b) => a * b, 1) * ELEM_BYTES[type];
      if (type !== "uint8" && tensorData.inline.byteLength !== expected) {
        throw new Error(
          `initializer ${name}: ${tensorData.inline.byteLength} bytes for dims [${dims}] of ${type}`,
        );
      }
    }
    const tensor = { name: this.claim(name), type, dims, data: tensorData };
    this.initializers.push(tensor);
    this.declared.set(name, tensor);
    return name;
  }

  /** A small constant, deduplicated by value. Scalars have dims []. */
  constant(type: "float32" | "int64" | "int32", dims: readonly number[], values: readonly number[]): string {
    const key = `${type}:${dims.join(",")}:${values.join(",")}`;
    const cached = this.constCache.get(key);
    if (cached !== undefined) return cached;
    const data =
      type === "float32"
        ? Float32Array.from(values)
        : type === "int32"
          ? Int32Array.from(values)
          : BigInt64Array.from(values.map((v) => BigInt(v)));
    const saved = this.scopes.splice(0);
    const name = this.fresh(`const_${type}_${values.length === 1 ? values[0] : this.constCache.size}`);
    this.scopes.push(...saved);
    const tensor = { name, type, dims, data: { inline: bytesOf(data) } };
    this.initializers.push(tensor);
    this.declared.set(name, tensor);
    this.constCache.set(key, name);
    return name;
  }

  /** Appends a node and returns its output names. */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, AttrValue> = {},
    options: OpOptions = {},
  ): string[] {
    const outputs =
      options.names?.map((n) => this.claim(n)) ??
      Array.from({ length: options.outputs ?? 1 }, (_, i) =>
        options.omit?.includes(i) ? "" : this.fresh(i === 0 ? opType : `${opType}.${i}`),
      );
    this.nodes.push({
      name: this.fresh(`${opType}_node`),
      opType,
      domain: options.domain ?? "",
      inputs,
      outputs,
      attributes,
    });
    return outputs;
  }

  /** A node with exactly one output. */
  op1(
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, AttrValue> = {},
    options: Omit<OpOptions, "outputs"> = {},
  ): string {
    const [out] = this.op(opType, inputs, attributes, options);
    if (out === undefined) throw new Error("unreachable: op without output");
    return out;
  }

  /** How many nodes have been emitted; pass it to `takeNodesSince` to move later nodes elsewhere. */
  mark(): number {
    return this.nodes.length;
  }

  /** The nodes emitted since `mark`, left in place (a pass that follows the graph as it grows). */
  nodesSince(mark: number): readonly NodeValue[] {
    return this.nodes.slice(mark);
  }

  /**
   * A graph input (its `ValueInfo`: declared shape) or initializer (its `TensorValue`: dims and
   * bytes) by name; undefined for a node output or an unknown name.
   */
  declaration(name: string): ValueInfo | TensorValue | undefined {
    return this.declared.get(name);
  }

  /**
   * Removes and returns the nodes emitted since `mark`, to become the body of a subgraph (an `If`
   * branch). Their value names stay claimed, so the outer graph cannot reuse them.
   */
  takeNodesSince(mark: number): NodeValue[] {
    return this.nodes.splice(mark);
  }

  /**
   * Puts nodes back into the graph, each right after the node that produces its first input (or
   * first, for a graph input or initializer), so a cheap reader of a large value runs while the
   * value is live instead of keeping it alive for later.
   */
  insertAfterProducers(nodes: readonly NodeValue[]): void {
    for (const node of nodes) {
      const source = node.inputs[0];
      const at = this.nodes.findIndex((n) => n.outputs.includes(source ?? ""));
      this.nodes.splice(at + 1, 0, node);
    }
  }

  build(): GraphValue {
    return {
      name: this.graphName,
      nodes: [...this.nodes],
      initializers: [...this.initializers],
      inputs: [...this.inputs],
      outputs: [...this.outputs],
    };
  }
}
