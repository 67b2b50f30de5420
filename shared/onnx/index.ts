/**
 * ONNX models from TypeScript: a graph builder and a protobuf writer, no generated code, and a
 * node counter for models read back.
 */
export { attr, GraphBuilder } from "./graph-builder.ts";
export {
  type AttrValue,
  type ElemType,
  encodeModel,
  type GraphValue,
  type NodeValue,
} from "./model.ts";
export { countGraphNodes } from "./node-count.ts";
