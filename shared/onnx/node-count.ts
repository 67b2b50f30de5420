/**
 * Reading back how many nodes of each op type an ONNX model's main graph has, from its protobuf
 * bytes (field numbers from onnx.proto: ModelProto.graph 7, GraphProto.node 1, NodeProto.op_type
 * 4). For the graphs ORT writes back (`optimizedModelFilePath`) as well as ours: on a GPU, decode
 * pays a fixed cost per node (docs/benchmarks.md), so the count is what a benchmark reports.
 */

/** Reads a protobuf varint at `pos`; returns the value and the position after it. */
function varint(bytes: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let p = pos; p < bytes.length && p < pos + 10; p++) {
    const b = bytes[p] ?? 0;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) return [value, p + 1];
  }
  throw new Error(`malformed ONNX model: bad varint at byte ${pos}`);
}

/** Calls `visit(field, bytes)` for each length-delimited field of one message; skips the others. */
function fields(message: Uint8Array, visit: (field: number, bytes: Uint8Array) => void): void {
  let pos = 0;
  while (pos < message.length) {
    const [tag, next] = varint(message, pos);
    const wire = tag % 8;
    pos = next;
    if (wire === 0) pos = varint(message, pos)[1];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [length, start] = varint(message, pos);
      if (start + length > message.length) throw new Error("malformed ONNX model: field past the end");
      visit(Math.floor(tag / 8), message.subarray(start, start + length));
      pos = start + length;
    } else throw new Error(`malformed ONNX model: wire type ${wire} at byte ${pos}`);
  }
}

/** What `countGraphNodes` finds: the main graph's nodes by op type, and those inside subgraphs. */
export interface NodeCounts {
  /** Main-graph nodes by `op_type` (the nodes every run executes). */
  byOp: Map<string, number>;
  /** Nodes inside subgraph attributes (If branches, Loop bodies), all branches, at any depth. */
  nested: number;
}

/** Nodes in a GraphProto's subgraph attributes (AttributeProto.g 6, .graphs 11), recursively. */
function nestedIn(node: Uint8Array): number {
  let n = 0;
  fields(node, (field, attribute) => {
    if (field !== 5) return;
    fields(attribute, (f, graph) => {
      if (f === 6 || f === 11) n += allNodes(graph);
    });
  });
  return n;
}

/** Every node of a GraphProto, its subgraphs' included. */
function allNodes(graph: Uint8Array): number {
  let n = 0;
  fields(graph, (f, node) => {
    if (f === 1) n += 1 + nestedIn(node);
  });
  return n;
}

/**
 * The nodes of an ONNX model (`ModelProto` bytes, with or without external data): its main graph's
 * by op type, and the count inside subgraphs. Throws `Error` on bytes that are not a protobuf
 * message.
 */
export function countGraphNodes(model: Uint8Array): NodeCounts {
  const byOp = new Map<string, number>();
  let nested = 0;
  const decoder = new TextDecoder();
  fields(model, (field, graph) => {
    if (field !== 7) return;
    fields(graph, (f, node) => {
      if (f !== 1) return;
      let op = "";
      fields(node, (nf, value) => {
        if (nf === 4) op = decoder.decode(value);
      });
      byOp.set(op, (byOp.get(op) ?? 0) + 1);
      nested += nestedIn(node);
    });
  });
  return { byOp, nested };
}
