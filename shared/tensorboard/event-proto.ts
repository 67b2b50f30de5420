/**
 * TensorBoard's `Event` message (tensorboard/compat/proto/event.proto, vendored in `proto/` with
 * its source and license), loaded with protobufjs from the `.proto` files themselves, so the field
 * numbers and types are TensorBoard's and not a transcription of them.
 */
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const PROTO_ROOT = fileURLToPath(new URL("./proto/", import.meta.url));

/** `SessionLog.SessionStatus` (event.proto): START makes TensorBoard drop later-step data of earlier sessions. */
export type SessionStatus = "STATUS_UNSPECIFIED" | "START" | "STOP" | "CHECKPOINT";

/**
 * The part of TensorBoard's `Event` this project writes and reads: `wallTime` in seconds since the
 * Unix epoch (event.proto `wall_time`), `step` (`step`), and one of the file version header, a
 * summary of scalars (`Summary.Value.simple_value`, a float32, as PyTorch's and tensorboardX's
 * `SummaryWriter.add_scalar` write it) or a session log.
 */
export type TensorBoardEvent = {
  wallTime: number;
  step: number;
} & (
  | { kind: "file_version"; fileVersion: string }
  | { kind: "scalars"; scalars: { tag: string; value: number }[] }
  | { kind: "session_log"; status: SessionStatus; msg: string }
  | { kind: "other" }
);

let eventType: protobuf.Type | null = null;

/** The protobufjs type of `tensorboard.Event`, loaded once from the vendored `.proto` files. */
function eventProto(): protobuf.Type {
  if (eventType !== null) return eventType;
  const root = new protobuf.Root();
  // The protos import each other by their path in TensorBoard's tree (`tensorboard/compat/proto/…`).
  root.resolvePath = (origin, target) =>
    target.startsWith("tensorboard/") ? `${PROTO_ROOT}${target}` : protobuf.util.path.resolve(origin, target);
  root.loadSync("tensorboard/compat/proto/event.proto", { keepCase: true });
  root.resolveAll();
  eventType = root.lookupType("tensorboard.Event");
  return eventType;
}

/** Serializes one event as TensorBoard's `Event` message (protobuf wire format). */
export function encodeEvent(e: TensorBoardEvent): Uint8Array {
  const type = eventProto();
  const body: Record<string, unknown> = { wall_time: e.wallTime, step: e.step };
  if (e.kind === "file_version") body.file_version = e.fileVersion;
  else if (e.kind === "scalars")
    body.summary = { value: e.scalars.map((s) => ({ tag: s.tag, simple_value: s.value })) };
  else if (e.kind === "session_log") body.session_log = { status: e.status, msg: e.msg };
  return type.encode(type.fromObject(body)).finish();
}

interface DecodedEvent {
  wall_time?: number;
  step?: number;
  file_version?: string;
  summary?: { value?: { tag?: string; simple_value?: number }[] };
  session_log?: { status?: SessionStatus; msg?: string };
}

/**
 * Parses one `Event` message. Summary values other than `simple_value` (images, histograms, tensor
 * scalars) are left out; an event of another kind (a graph, run metadata) is `other`. Throws
 * protobufjs's error on bytes that are not an `Event`.
 */
export function decodeEvent(bytes: Uint8Array): TensorBoardEvent {
  const type = eventProto();
  const o = type.toObject(type.decode(bytes), { longs: Number, enums: String }) as DecodedEvent;
  const head = { wallTime: o.wall_time ?? 0, step: o.step ?? 0 };
  if (o.file_version !== undefined) return { ...head, kind: "file_version", fileVersion: o.file_version };
  if (o.summary !== undefined) {
    const scalars = (o.summary.value ?? []).flatMap((v) =>
      v.simple_value === undefined ? [] : [{ tag: v.tag ?? "", value: v.simple_value }],
    );
    return { ...head, kind: "scalars", scalars };
  }
  if (o.session_log !== undefined) {
    return {
      ...head,
      kind: "session_log",
      status: o.session_log.status ?? "STATUS_UNSPECIFIED",
      msg: o.session_log.msg ?? "",
    };
  }
  return { ...head, kind: "other" };
}
