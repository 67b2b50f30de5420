/**
 * The node count of one decode step's graph, the quantity GPU decode pays for per node (issue 18,
 * ../shared/docs/gpu.md): as we build it, and as ORT runs it after its graph optimizer on the EP
 * (the session option `optimizedModelFilePath` writes the optimized graph; its initializers go to a
 * side file so that only the graph is read back).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSession, type ExecutionProvider } from "@loracast/shared/runtime";

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
  throw new Error(`malformed varint at byte ${pos}`);
}

/** Calls `visit(field, start, end)` for each length-delimited field of one message; skips the rest. */
function fields(bytes: Uint8Array, visit: (field: number, start: number, end: number) => void): void {
  let pos = 0;
  while (pos < bytes.length) {
    const [tag, next] = varint(bytes, pos);
    const wire = tag % 8;
    pos = next;
    if (wire === 0) pos = varint(bytes, pos)[1];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [length, start] = varint(bytes, pos);
      visit(Math.floor(tag / 8), start, start + length);
      pos = start + length;
    } else throw new Error(`unsupported protobuf wire type ${wire} at byte ${pos}`);
  }
}

/**
 * Nodes of an ONNX model's main graph (onnx.proto: ModelProto.graph is field 7, GraphProto.node
 * field 1); nodes inside subgraphs (If, Loop) are not counted. Throws on a malformed file.
 */
export function countGraphNodes(model: Uint8Array): number {
  let nodes = 0;
  fields(model, (field, start, end) => {
    if (field === 7) fields(model.subarray(start, end), (f) => (f === 1 ? nodes++ : undefined));
  });
  return nodes;
}

/** A decode graph's node count as built, and after ORT's optimizer on `ep` (null, and why, if unavailable). */
export interface GraphNodes {
  built: number;
  optimized: number | null;
  note: string;
}

/** Counts the nodes of `graphPath` as built and as ORT optimizes it for `ep` (level "all"). */
export async function graphNodes(graphPath: string, ep: ExecutionProvider): Promise<GraphNodes> {
  const built = countGraphNodes(new Uint8Array(await readFile(graphPath)));
  const dir = await mkdtemp(join(tmpdir(), "loracast-optimized-"));
  try {
    const optimizedPath = join(dir, "optimized.onnx");
    const session = await createSession(
      graphPath,
      { executionProviders: [ep] },
      {
        optimizedModelFilePath: optimizedPath,
        extra: {
          session: {
            optimized_model_external_initializers_file_name: "optimized.data",
            optimized_model_external_initializers_min_size_in_bytes: "1024",
          },
        },
      },
    );
    await session.release();
    const optimized = countGraphNodes(new Uint8Array(await readFile(optimizedPath)));
    return { built, optimized, note: `after ORT's optimizer (level all) on ${ep}` };
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0]?.slice(0, 200) : String(e);
    return { built, optimized: null, note: `ORT could not write its optimized graph: ${why}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
