/**
 * Whether a decoder session runs base-only requests (no adapter: `baseFeeds`) on the decoder graph
 * without LoRA inputs that the model builder writes beside the LoRA one (`model.base.onnx`,
 * `model.base.append.onnx`; docs/architecture.md, "The decoder session"). Fed rank-0 factors, the
 * LoRA graph still dispatches its LoRA nodes every step (two per packed module and layer); the
 * base graph has none. It costs a second ORT session over the same weights.
 */
import { z } from "zod";
import { ModelArtifactsError, type ModelManifest } from "../model-format/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import type { ExecutionProvider } from "./execution-provider.ts";

/**
 * `DecoderSessionOptions.baseGraph`: `auto` (on for the GPU EPs, where each node costs a fixed
 * dispatch; off on the CPU, `AUTO_ON` says why), `on` (a load error where the model directory has
 * no base graph), `off` (base requests run the LoRA graph with rank-0 factors). The generator's
 * `GENERATOR_BASE_GRAPH` and the engine bench's `--base-graph` accept these.
 */
export const baseGraphSchema = z.enum(["auto", "on", "off"]);
/** One of `baseGraphSchema`'s values. */
export type BaseGraphMode = z.infer<typeof baseGraphSchema>;

/**
 * `auto` per EP. On the CPU the step-time gain did not pay for the second session's memory on the
 * 0.5B bench model (docs/benchmarks.md, "Base-only requests on the base graph").
 */
const AUTO_ON: Record<ExecutionProvider, boolean> = { cpu: false, webgpu: true, cuda: true };

/**
 * `baseGraph: "on"` for a model directory without the base graph it needs (built before base
 * graphs): rebuild the model. A `ModelArtifactsError`, so that callers that handle those handle it.
 */
export class BaseGraphMissingError extends ModelArtifactsError {}

/** What a session decided: the base graph's file (null: base requests run the LoRA graph), and why. */
export interface BaseGraphChoice {
  /** The manifest's file the base runner loads, relative to the model directory; null when off. */
  file: string | null;
  /** `on: asked for`, `auto on <ep>`, or why it is off (`off: asked for`, ...). */
  reason: string;
}

/**
 * Why `auto` leaves the base graph off on cuda with the stock binding: onnxruntime-node cannot pass
 * the CUDA EP's `use_tf32`, and `NVIDIA_TF32_OVERRIDE=0` did not keep every kernel of the base graph
 * at float32 there. On the H200 its base logits were 2.6e-3 from PyTorch's where the LoRA graph's
 * (and the base graph's on the ort-native addon, `use_tf32=0`) were 2e-6 (docs/benchmarks.md, issue 18
 * session 16): a base request would not compute what the conformance checks.
 */
const STOCK_CUDA_OFF =
  "auto on cuda with the stock binding: base requests run the LoRA graph with rank-0 factors (the base graph's kernels there do not all honour NVIDIA_TF32_OVERRIDE=0)";

/**
 * Decides the base graph of a session on `ep` over `manifest`'s files, `appending` when the session
 * runs the append graphs (the host cache), on `binding`. A model built before the base graphs has
 * none: `auto` then runs base requests on the LoRA graph and says so; `on` returns a
 * `BaseGraphMissingError` naming the missing file (rebuild the model). A merged base has no LoRA
 * inputs: its one graph is already the base graph. `auto` is off on cuda with the stock binding
 * (`STOCK_CUDA_OFF` says why); `on` there is taken as asked.
 */
export function chooseBaseGraph(
  asked: BaseGraphMode,
  ep: ExecutionProvider,
  manifest: ModelManifest,
  appending: boolean,
  binding: "ort-native" | "onnxruntime-node",
): Result<BaseGraphChoice, BaseGraphMissingError> {
  if (manifest.modules.length === 0) return ok({ file: null, reason: "a merged base: no LoRA inputs" });
  if (asked === "off") return ok({ file: null, reason: "off: asked for" });
  if (asked === "auto" && !AUTO_ON[ep]) return ok({ file: null, reason: `auto on ${ep}` });
  if (asked === "auto" && ep === "cuda" && binding === "onnxruntime-node")
    return ok({ file: null, reason: STOCK_CUDA_OFF });
  const key = appending ? "baseAppend" : "base";
  const file = manifest.files[key];
  if (file !== undefined) return ok({ file, reason: asked === "on" ? "on: asked for" : `auto on ${ep}` });
  const missing = `the model has no files.${key} (built before base graphs)`;
  if (asked === "on")
    return err(
      new BaseGraphMissingError(`baseGraph on: ${missing}; rebuild the model (npm run build-model)`),
    );
  return ok({ file: null, reason: `${missing}: base requests run the LoRA graph with rank-0 factors` });
}
