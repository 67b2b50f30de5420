/**
 * The node count of one decode step's graph, the quantity GPU decode pays for per node (issue 18,
 * ../shared/docs/gpu.md): as we build it, and as ORT runs it after its graph optimizer on the EP
 * (the session option `optimizedModelFilePath` writes the optimized graph; its initializers go to a
 * side file so that only the graph is read back), and, in ORT's verbose log of that session, the
 * nodes each EP was given.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { countGraphNodes } from "@loracast/shared/onnx";
import { createSession, type ExecutionProvider } from "@loracast/shared/runtime";

/** A decode graph's node count as built, and after ORT's optimizer on `ep` (null, and why, if unavailable). */
export interface GraphNodes {
  built: number;
  optimized: number | null;
  /** The optimized graph's most frequent op types, e.g. `MatMulNBits 168, Add 120` (or the built one's). */
  topOps: string;
  note: string;
}

/** Main-graph nodes of the model at `path`, and its most frequent op types. */
async function nodesOf(path: string): Promise<{ nodes: number; topOps: string }> {
  const { byOp, nested } = countGraphNodes(new Uint8Array(await readFile(path)));
  const sorted = [...byOp].sort((a, b) => b[1] - a[1]);
  return {
    nodes: sorted.reduce((n, [, c]) => n + c, 0),
    topOps: sorted
      .slice(0, 8)
      .map(([op, c]) => `${op} ${c}`)
      .join(", ")
      .concat(nested > 0 ? ` (and ${nested} nodes in subgraphs)` : ""),
  };
}

/** Counts the nodes of `graphPath` as built and as ORT optimizes it for `ep` (level "all"). */
export async function graphNodes(graphPath: string, ep: ExecutionProvider): Promise<GraphNodes> {
  const built = await nodesOf(graphPath);
  const dir = await mkdtemp(join(tmpdir(), "loracast-optimized-"));
  try {
    const optimizedPath = join(dir, "optimized.onnx");
    const session = await createSession(
      graphPath,
      { executionProviders: [ep] },
      {
        optimizedModelFilePath: optimizedPath,
        // Verbose: ORT then logs (stderr) which EP each node was placed on, e.g.
        // "All nodes placed on [CUDAExecutionProvider]. Number of nodes: N", or the CPU fallbacks.
        logSeverityLevel: 0,
        extra: {
          session: {
            optimized_model_external_initializers_file_name: "optimized.data",
            optimized_model_external_initializers_min_size_in_bytes: "1024",
          },
        },
      },
    );
    await session.release();
    const optimized = await nodesOf(optimizedPath);
    return {
      built: built.nodes,
      optimized: optimized.nodes,
      topOps: optimized.topOps,
      note: `after ORT's optimizer (level all) on ${ep}`,
    };
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0]?.slice(0, 200) : String(e);
    return {
      built: built.nodes,
      optimized: null,
      topOps: built.topOps,
      note: `(ORT could not write its optimized graph: ${why})`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
