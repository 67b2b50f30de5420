/**
 * TensorBoard event files, written and read: TFRecord framing with masked CRC-32C (@aws-crypto/crc32c)
 * around TensorBoard's own `Event` protobuf (its vendored `.proto` files, through protobufjs). Ours
 * because no npm package writes them without TensorFlow's native library (`@tensorflow/tfjs-node`
 * downloads it at install time); the format is small and fixed, and the parts that are not (CRC,
 * protobuf) are libraries.
 */
export { EventFileWriter, readEventDir } from "./event-file.ts";
export type { TensorBoardEvent } from "./event-proto.ts";
