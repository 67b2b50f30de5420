/**
 * An ONNX model held as plain data, and its protobuf encoding (field numbers from onnx.proto,
 * IR version 10). Only what the builders here emit is modelled.
 */
import { ProtoWriter } from "./proto-writer.ts";

/** The tensor element types the builders emit, by their `TensorProto.DataType` names lower-cased. */
export type ElemType = "float32" | "float16" | "uint8" | "int8" | "int32" | "int64" | "bool";

/** TensorProto.DataType codes. */
const ELEM_CODE: Record<ElemType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
};

/** Bytes per element of each type (for checking an initializer's data length against its dims). */
export const ELEM_BYTES: Record<ElemType, number> = {
  float32: 4,
  float16: 2,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
};

/** A dimension: a fixed size or a symbolic name shared by every value that has it. */
export type Dim = number | string;

/** A graph input or output (`ValueInfoProto`): name, element type and shape. */
export interface ValueInfo {
  name: string;
  type: ElemType;
  /** null: unknown rank (an output whose shape the graph computes). */
  shape: readonly Dim[] | null;
}

/** Tensor bytes either inline or in the external data file beside the model. */
export type TensorData =
  | { inline: Uint8Array }
  | { external: { location: string; offset: number; length: number } };

/** An initializer or tensor attribute (`TensorProto`), `dims` in elements, row-major. */
export interface TensorValue {
  name: string;
  type: ElemType;
  dims: readonly number[];
  data: TensorData;
}

/** A node attribute (`AttributeProto`), tagged by its type. */
export type AttrValue =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "string"; value: string }
  | { kind: "ints"; value: readonly number[] }
  | { kind: "floats"; value: readonly number[] }
  | { kind: "tensor"; value: TensorValue }
  | { kind: "graph"; value: GraphValue };

/** One node (`NodeProto`): an op of `domain` reading `inputs` and writing `outputs` by name. */
export interface NodeValue {
  name: string;
  opType: string;
  domain: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes: Readonly<Record<string, AttrValue>>;
}

/** A graph (`GraphProto`): nodes in topological order, initializers, inputs and outputs. */
export interface GraphValue {
  name: string;
  nodes: readonly NodeValue[];
  initializers: readonly TensorValue[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
}

/** A model (`ModelProto`), IR version 10: one graph and the opset it imports per domain. */
export interface ModelValue {
  graph: GraphValue;
  /** Opset version per domain ("" is the default ONNX domain). */
  opsets: Readonly<Record<string, number>>;
  producer: string;
  metadata?: Readonly<Record<string, string>>;
}

const IR_VERSION = 10;

function encodeTensor(t: TensorValue): ProtoWriter {
  const w = new ProtoWriter();
  if (t.dims.length > 0) w.packedInts(1, t.dims);
  w.int(2, ELEM_CODE[t.type]);
  w.string(8, t.name);
  if ("inline" in t.data) {
    w.bytes(9, t.data.inline);
  } else {
    const { location, offset, length } = t.data.external;
    for (const [key, value] of [
      ["location", location],
      ["offset", String(offset)],
      ["length", String(length)],
    ] as const) {
      w.message(13, new ProtoWriter().string(1, key).string(2, value));
    }
    w.int(14, 1); // DataLocation.EXTERNAL
  }
  return w;
}

function encodeValueInfo(v: ValueInfo): ProtoWriter {
  const tensorType = new ProtoWriter().int(1, ELEM_CODE[v.type]);
  if (v.shape !== null) {
    const shape = new ProtoWriter();
    for (const d of v.shape) {
      const dim = new ProtoWriter();
      if (typeof d === "number") dim.int(1, d);
      else dim.string(2, d);
      shape.message(1, dim);
    }
    tensorType.message(2, shape);
  }
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

function encodeAttribute(name: string, a: AttrValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  switch (a.kind) {
    case "float":
      return w.float(2, a.value).int(20, 1);
    case "int":
      return w.int(3, a.value).int(20, 2);
    case "string":
      return w.string(4, a.value).int(20, 3);
    case "tensor":
      return w.message(5, encodeTensor(a.value)).int(20, 4);
    case "graph":
      return w.message(6, encodeGraph(a.value)).int(20, 5);
    case "floats":
      return w.packedFloats(7, a.value).int(20, 6);
    case "ints":
      return w.packedInts(8, a.value).int(20, 7);
  }
}

function encodeNode(n: NodeValue): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  for (const [name, a] of Object.entries(n.attributes)) w.message(5, encodeAttribute(name, a));
  if (n.domain !== "") w.string(7, n.domain);
  return w;
}

function encodeGraph(g: GraphValue): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, encodeTensor(t));
  for (const v of g.inputs) w.message(11, encodeValueInfo(v));
  for (const v of g.outputs) w.message(12, encodeValueInfo(v));
  return w;
}

/** Serializes a model to ONNX protobuf bytes. */
export function encodeModel(m: ModelValue): Uint8Array {
  const w = new ProtoWriter().int(1, IR_VERSION).string(2, m.producer).message(7, encodeGraph(m.graph));
  for (const [domain, version] of Object.entries(m.opsets)) {
    w.message(8, new ProtoWriter().string(1, domain).int(2, version));
  }
  for (const [key, value] of Object.entries(m.metadata ?? {})) {
    w.message(14, new ProtoWriter().string(1, key).string(2, value));
  }
  return w.finish();
}
