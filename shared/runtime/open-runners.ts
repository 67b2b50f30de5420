/**
 * The runners a `DecoderSession` steps on: one over the LoRA decoder graph and, where the session
 * has one (`chooseBaseGraph`), one over the decoder without LoRA inputs, on the same binding and
 * EP with the same options. Both graphs have the same KV cache inputs and outputs, so either
 * runner's caches are laid out alike.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { IO, ModelArtifactsError, type ModelManifest } from "../model-format/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { type BaseGraphChoice, BaseGraphMissingError, chooseBaseGraph } from "./base-graph.ts";
import { type Runner, StockRunner } from "./decoder-runner.ts";
import { kvPlacement } from "./device-copies.ts";
import type { ExecutionProvider } from "./execution-provider.ts";
import { GpuDownloader, GpuFeeds } from "./gpu-transfer.ts";
import { type BackendChoice, NativeDecoder } from "./native-decoder.ts";
import { createSession, type DecoderSessionOptions } from "./session-options.ts";

let created = 0;

/** How many ORT sessions the decoders of this process have created (with the WebGPU transfers). */
export function sessionsCreated(): number {
  return created;
}

/** A session's runners, the graphs they run (relative to the model directory) and the cache kind. */
export interface OpenedRunners {
  run: Runner;
  /** `model.append.onnx` when appending, else `model.onnx`. */
  graph: string;
  /** The graph returns only each step's new keys and values; the cache lives in host buffers. */
  appending: boolean;
  /** The runner over the base graph (`base.file`), or null where base requests run `run`. */
  baseRun: Runner | null;
  base: BaseGraphChoice;
}

/**
 * The graphs a session is about to open, checked on disk: a file the manifest names that the
 * directory lacks (a model copied in part) is a `ModelArtifactsError` naming it, a
 * `BaseGraphMissingError` for the base graph, rather than ORT's bare load failure.
 */
function missingGraph(dir: string, graph: string, base: string | null): ModelArtifactsError | null {
  const hint =
    "which loracast-model.json names, is not in the model directory; rebuild the model (npm run build-model)";
  if (!existsSync(join(dir, graph))) return new ModelArtifactsError(`${graph}, ${hint}`);
  if (base !== null && !existsSync(join(dir, base)))
    return new BaseGraphMissingError(`base graph ${base}, ${hint}`);
  return null;
}

/**
 * Opens the runners of a session on `ep` over the model in `dir` on the decided binding `choice`.
 * Returns a `ModelArtifactsError` (from `chooseBaseGraph`, or a graph file missing on disk) before
 * creating any ORT session;
 * throws what creating one throws (`ExecutionProviderError`, ORT's errors), after releasing any
 * runner already made.
 */
export async function openRunners(
  dir: string,
  manifest: ModelManifest,
  options: DecoderSessionOptions,
  ep: ExecutionProvider,
  choice: BackendChoice,
): Promise<Result<OpenedRunners, ModelArtifactsError>> {
  const presents = Array.from({ length: manifest.dims.numLayers }, (_, l) => [
    IO.presentKey(l),
    IO.presentValue(l),
  ]).flat();
  if (choice.backend === "ort-native") {
    // The full graphs: their presents stay on the device as the next step's past.
    const base = chooseBaseGraph(options.baseGraph ?? "auto", ep, manifest, false, "ort-native");
    if (!base.ok) return base;
    const missing = missingGraph(dir, manifest.files.model, base.value.file);
    if (missing !== null) return err(missing);
    const open = (graph: string): NativeDecoder => {
      const native = choice.addon.createSession(join(dir, graph), {
        ep: ep === "cuda" ? "cuda" : "cpu",
        ...(ep === "cuda" ? { deviceId: options.cudaDeviceId ?? 0 } : {}),
        // TF32 off unless asked for: PyTorch's default for float32 matmuls (allow_tf32 = False
        // since 1.12), the CPU conformance tolerances, and on the H200 the faster setting
        // (docs/benchmarks.md, the ort-native probe: 15.1 -> 11.4 ms per step).
        ...(ep === "cuda" ? { useTf32: options.cudaTf32 ?? false } : {}),
        ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}),
        // A decoder's steps run one after another: a thread of its own keeps them off libuv's
        // four-thread pool, which fs, dns and crypto share.
        dedicatedThread: true,
      });
      created++;
      const factors = native.inputNames.filter((n) => n.startsWith("base_model."));
      return new NativeDecoder(native, factors, IO.logits, presents);
    };
    const run = open(manifest.files.model);
    const baseRun = await withBase(run, base.value.file, async (f) => open(f));
    return ok({ run, graph: manifest.files.model, appending: false, baseRun, base: base.value });
  }
  // Every decode step's present is the next step's past: where the EP lets outputs stay on the
  // device (WebGPU), leave it there; without this, each step copied the whole cache to the host
  // and back (docs/benchmarks.md). On CUDA onnxruntime-node cannot (device-copies.ts): the cache
  // lives on the host, like the CPU's, and the append graph returns only the new columns.
  const onGpu = kvPlacement(ep) === "device";
  const appending = !onGpu && manifest.files.append !== undefined;
  const base = chooseBaseGraph(options.baseGraph ?? "auto", ep, manifest, appending, "onnxruntime-node");
  if (!base.ok) return base;
  const graph = appending ? (manifest.files.append ?? "") : manifest.files.model;
  const missing = missingGraph(dir, graph, base.value.file);
  if (missing !== null) return err(missing);
  // One downloader serves both runners: it reads any of the device's buffers.
  const downloader = onGpu
    ? await GpuDownloader.create(presents.length, manifest.decoder.kvCacheDtype ?? "float32")
    : null;
  if (downloader !== null) created++;
  const open = async (file: string, ownsDownloader: boolean): Promise<StockRunner> => {
    const session = await createSession(
      join(dir, file),
      options,
      onGpu ? { preferredOutputLocation: Object.fromEntries(presents.map((n) => [n, "gpu-buffer"])) } : {},
    );
    created++;
    const factors = session.inputNames.filter((n) => n.startsWith("base_model."));
    const gpuFeeds = onGpu && factors.length > 0 ? await GpuFeeds.create(factors) : null;
    if (gpuFeeds !== null) created++;
    return new StockRunner(session, gpuFeeds, downloader, ownsDownloader);
  };
  let run: StockRunner;
  try {
    run = await open(graph, true);
  } catch (e) {
    await downloader?.release();
    throw e;
  }
  const baseRun = await withBase(run, base.value.file, (f) => open(f, false));
  return ok({ run, graph, appending, baseRun, base: base.value });
}

/** Opens the base runner over `file` (none for null), releasing `run` when that throws. */
async function withBase(
  run: Runner,
  file: string | null,
  open: (file: string) => Promise<Runner>,
): Promise<Runner | null> {
  if (file === null) return null;
  try {
    return await open(file);
  } catch (e) {
    await run.release();
    throw e;
  }
}
