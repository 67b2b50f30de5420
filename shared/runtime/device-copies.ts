/**
 * Where each execution provider keeps the KV cache and the LoRA factors, and so what one decode
 * step copies between host and device memory (issue 18: "state the copies that remain, and what
 * each costs per token"). onnxruntime-node decides most of it (../shared/docs/gpu.md):
 * - WebGPU: session outputs may stay on the device (`preferredOutputLocation: "gpu-buffer"`) and be
 *   fed back, so the cache stays there and factors are uploaded once per adapter (`gpu-transfer.ts`).
 * - CUDA: a `gpu-buffer` output fails at run (`BatchOrCopyMLValue … allocator != nullptr`) and the
 *   binding has no device tensors or I/O binding for CUDA, so every input is a host tensor copied
 *   in on every run and every output is copied out: the cache lives on the host, written by the
 *   append graph (only each step's new keys and values come back), and the whole cache and every
 *   LoRA factor go to the device on every step.
 * - CPU: everything is host memory; nothing is copied.
 * - The ort-native addon (`shared/ort-native`, `native-decoder.ts`), on CUDA by default: what the
 *   stock binding cannot do there. Device outputs stay as the next step's past and factors are
 *   uploaded once per adapter, so a step copies in only its ids, mask and positions and copies out
 *   its logits.
 */
import type { KvCacheDtype } from "../model-format/index.ts";
import type { ExecutionProvider } from "./execution-provider.ts";

/** Where a decoder session keeps its KV cache. */
export type KvPlacement = "host" | "device";

/**
 * The KV cache's home on `ep` on the stock binding: on the device only where onnxruntime-node lets
 * outputs stay there (the ort-native backend keeps it on the device on every EP).
 */
export function kvPlacement(ep: ExecutionProvider): KvPlacement {
  return ep === "webgpu" ? "device" : "host";
}

/** One tensor copied between host and device in a decode step. */
export interface StepCopy {
  /** The inputs or outputs copied, e.g. `attention_mask`. */
  what: string;
  /** How many tensors: each is a transfer of its own. */
  tensors: number;
  direction: "host→device" | "device→host";
  /** Bytes per step (all rows). */
  bytes: number;
}

/** The shape of one decode step (one new token per row) whose copies `decodeStepCopies` lists. */
export interface DecodeStepShape {
  ep: ExecutionProvider;
  /** Where the session keeps the cache: `kvPlacement(ep)` on the stock binding, `device` on ort-native. */
  kv: KvPlacement;
  batch: number;
  /** Columns of the past cache the step is fed (a host cache's capacity, spare columns included). */
  pastColumns: number;
  layers: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  /** The adapter's factor feeds (all A and B inputs, rank-0 ones included) and their bytes. */
  factorTensors: number;
  factorBytes: number;
  /** Whether those factors are already on the device (WebGPU and ort-native, after the adapter's first step). */
  factorsResident: boolean;
  /** A host cache is written by the append graph (only new keys and values come back), not replaced. */
  appendGraph: boolean;
  /** The cache's element type: 4 bytes per key or value element, or 2 with float16. */
  kvCacheDtype: KvCacheDtype;
}

/**
 * The host↔device copies of one decode step on `shape.ep` (none on the CPU), largest first, from
 * the placement above; sizes in bytes per step (`bytesPerToken` divides by the batch).
 */
export function decodeStepCopies(shape: DecodeStepShape): StepCopy[] {
  const { ep, batch, pastColumns, layers, kvHeads, headDim, vocab } = shape;
  if (ep === "cpu") return [];
  const int64 = 8;
  const float32 = 4;
  const up = (what: string, tensors: number, bytes: number): StepCopy => ({
    what,
    tensors,
    direction: "host→device",
    bytes,
  });
  const down = (what: string, tensors: number, bytes: number): StepCopy => ({
    what,
    tensors,
    direction: "device→host",
    bytes,
  });
  const copies = [
    up("input_ids, position_ids, logits_positions", 3, 3 * batch * int64),
    up("attention_mask", 1, batch * (pastColumns + 1) * int64),
    down("logits", 1, batch * vocab * float32),
  ];
  const kvRow = batch * kvHeads * headDim * (shape.kvCacheDtype === "float16" ? 2 : float32);
  if (shape.kv === "host") {
    copies.push(up("past keys and values", 2 * layers, 2 * layers * pastColumns * kvRow));
    copies.push(
      shape.appendGraph
        ? down("appended keys and values", 2 * layers, 2 * layers * kvRow)
        : down("present keys and values", 2 * layers, 2 * layers * (pastColumns + 1) * kvRow),
    );
  }
  if (!shape.factorsResident && shape.factorTensors > 0)
    copies.push(up("LoRA factors", shape.factorTensors, shape.factorBytes));
  return copies.sort((a, b) => b.bytes - a.bytes);
}

/** Bytes a step's copies move per generated token (per row), both directions together. */
export function bytesPerToken(copies: readonly StepCopy[], batch: number): number {
  return copies.reduce((sum, c) => sum + c.bytes, 0) / batch;
}
