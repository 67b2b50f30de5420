/** ONNX models from TypeScript: a graph builder and a protobuf writer, no generated code. */
export { attr, GraphBuilder, type OpOptions } from "./graph-builder.ts";
export {
  type AttrValue,
  type Dim,
  ELEM_BYTES,
  type ElemType,
  encodeModel,
  type GraphValue,
  IR_VERSION,
  type ModelValue,
  type NodeValue,
  type TensorData,
  type TensorValue,
  type ValueInfo,
} from "./model.ts";
