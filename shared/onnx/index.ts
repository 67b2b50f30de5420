/** ONNX models from TypeScript: a graph builder and a protobuf writer, no generated code. */
export { attr, GraphBuilder } from "./graph-builder.ts";
export {
  type ElemType,
  encodeModel,
  type GraphValue,
  type NodeValue,
} from "./model.ts";
