/**
 * The decoder on loracast's ort-native addon (`shared/ort-native`) instead of onnxruntime-node's
 * `InferenceSession`: what the stock binding cannot do on CUDA (issue 18, item 6; measured 25.7 →
 * 15.1 ms per decode step on the H200, docs/benchmarks.md). Each adapter's packed LoRA factors are
 * uploaded once into device tensors (`ResidentFeeds`), the `present.*` outputs stay in device memory
 * and are the next step's past, and only the step's ids, mask and positions go in and its logits come
 * out. It runs `model.onnx` (full presents), never the append graph.
 */
import * as ort from "onnxruntime-node";
import { z } from "zod";
import { LORA_SHRINK_EXPAND, type LoraOp, MATMUL_NBITS_LORA } from "../model-format/index.ts";
import {
  DeviceTensor,
  type HostTensor,
  loadOrtNative,
  type NativeDType,
  type NativeSession,
  type OrtNative,
  OrtNativeError,
  type OrtNativeUnavailable,
} from "../ort-native/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import type { Runner, RunnerOutput, StepFeeds } from "./decoder-runner.ts";
import type { ExecutionProvider } from "./execution-provider.ts";
import type { KvTensor } from "./kv-cache.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import { type ResidentCounts, ResidentFeeds } from "./resident-feeds.ts";

/**
 * Which ORT binding runs a decoder: `auto` (ort-native on `cuda` where the addon loads, and on any
 * EP for a `shrink-expand` model, `LoraOp`; the stock binding otherwise), `ort-native` (the addon, on `cpu` or `cuda`; an error where it cannot load) or
 * `onnxruntime-node` (the stock binding). The services' `*_ORT_BACKEND` settings and the benches'
 * `--backend` flags accept these.
 */
export const ortBackendSchema = z.enum(["auto", "ort-native", "onnxruntime-node"]);
/** One of `ortBackendSchema`'s values. */
export type OrtBackend = z.infer<typeof ortBackendSchema>;
/** The binding a session runs on, once `auto` is decided. */
export type ResolvedBackend = Exclude<OrtBackend, "auto">;

/**
 * `ort-native` was asked for and cannot be used: the addon is not built or does not load
 * (`OrtNativeUnavailable`'s reason and message), or the session needs something it lacks (an EP
 * other than cpu and cuda, ORT's profiler). `message` says which.
 */
export class OrtBackendError extends Error {
  override readonly name = "OrtBackendError";
  readonly code = "backend_unavailable";
}

/** The decided backend: the addon when it is `ort-native`, and why it was chosen (for logs and /metrics). */
export type BackendChoice =
  | { backend: "ort-native"; addon: OrtNative; reason: string }
  | { backend: "onnxruntime-node"; reason: string };

/** What a session needs of its binding, besides its EP. */
export interface BackendNeeds {
  /** ORT's profiler is asked for (`profileFilePrefix`): the stock binding only. */
  profiling: boolean;
  /**
   * The model's LoRA op (`decoder.loraOp`, `LoraOp`): a `shrink-expand` graph's fused nodes run on
   * the ort-native addon only (`LORA_SHRINK_EXPAND`, `MATMUL_NBITS_LORA`). @default "gemm"
   */
  loraOp?: LoraOp;
}

/** Why a shrink-expand model cannot run without the addon (the errors add the ways out). */
const FUSED_LORA =
  "this model's LoRA nodes are ai.loracast LoraShrinkExpand or MatMulNBitsLora (loracast-model.json decoder.loraOp shrink-expand), which only the ort-native addon runs";

/**
 * Decides the backend for a session on `ep`: see `OrtBackend`. ORT's profiler (`needs.profiling`)
 * needs the stock binding; a `shrink-expand` model (`needs.loraOp`) needs the addon, on cpu too,
 * so `auto` takes it wherever it loads and fails where it cannot. `load` is `loadOrtNative`
 * (injected by tests). Returns `OrtBackendError` when `ort-native` is forced and cannot be used, or
 * the model needs the addon and the session cannot have it (the message names the fix); `auto`
 * never fails on a `gemm` model.
 */
export function chooseBackend(
  asked: OrtBackend,
  ep: ExecutionProvider,
  needs: BackendNeeds,
  load: () => Result<OrtNative, OrtNativeUnavailable> = loadOrtNative,
): Result<BackendChoice, OrtBackendError> {
  const fused = needs.loraOp === "shrink-expand";
  const rebuild = "; rebuild the model with --lora-op gemm to run it elsewhere";
  if (asked === "onnxruntime-node") {
    if (fused)
      return err(
        new OrtBackendError(
          `backend onnxruntime-node cannot run this model: ${FUSED_LORA}; use backend auto or ort-native${rebuild}`,
        ),
      );
    return ok({ backend: asked, reason: "asked for" });
  }
  const lacks =
    ep !== "cpu" && ep !== "cuda"
      ? `the addon runs on cpu and cuda only, not ${ep}`
      : needs.profiling
        ? "ORT's profiler (profileFilePrefix) runs on the stock binding only"
        : null;
  if (asked === "auto" && ep !== "cuda" && !fused)
    return ok({ backend: "onnxruntime-node", reason: `auto on ${ep}` });
  if (lacks !== null) {
    if (fused)
      return err(new OrtBackendError(`ort-native cannot be used: ${lacks}, and ${FUSED_LORA}${rebuild}`));
    if (asked === "auto") return ok({ backend: "onnxruntime-node", reason: lacks });
    return err(new OrtBackendError(`ort-native cannot be used: ${lacks}`));
  }
  const loaded = load();
  if (loaded.ok) {
    const why = fused && asked === "auto" && ep !== "cuda" ? ": the model's LoRA op is shrink-expand" : "";
    return ok({ backend: "ort-native", addon: loaded.value, reason: `${asked} on ${ep}${why}` });
  }
  const why = `ort-native ${loaded.error.reason}: ${loaded.error.message}`;
  if (fused)
    return err(new OrtBackendError(`ort-native cannot be used: ${why}, and ${FUSED_LORA}${rebuild}`));
  if (asked === "auto") return ok({ backend: "onnxruntime-node", reason: why });
  return err(new OrtBackendError(`ort-native cannot be used: ${why}`));
}

/**
 * What creating an addon session over a `shrink-expand` model (`loraOp`) threw, when that is ORT
 * refusing a fused op: an addon built before `LORA_SHRINK_EXPAND` or `MATMUL_NBITS_LORA`
 * ("ai.loracast:LoraShrinkExpand(-1) is not a registered function/op"). Returns the
 * `OrtBackendError` that says so and how to fix it, or null for anything else (the caller rethrows it).
 */
export function addonWithoutFusedLora(e: unknown, loraOp: LoraOp | undefined): OrtBackendError | null {
  if (loraOp !== "shrink-expand" || !(e instanceof OrtNativeError)) return null;
  const message = e.message;
  const op = [LORA_SHRINK_EXPAND, MATMUL_NBITS_LORA].find((o) => message.includes(`${o.domain}:${o.opType}`));
  if (op === undefined) return null;
  const { domain, opType } = op;
  return new OrtBackendError(
    `the ort-native addon does not run ${domain} ${opType}, which this model's LoRA nodes are: it was built before the op; rebuild it (npm run build:ort-native) or the model with --lora-op gemm (ORT: ${e.message})`,
  );
}

const NATIVE_TYPES: ReadonlySet<string> = new Set<NativeDType>([
  "float32",
  "float16",
  "int32",
  "int64",
  "uint8",
  "int8",
  "bool",
]);

/** `t` as the addon's host tensor (the same memory); throws a TypeError for a type it cannot move. */
function hostTensor(t: ort.Tensor): HostTensor {
  if (!NATIVE_TYPES.has(t.type)) throw new TypeError(`ort-native cannot take a ${t.type} tensor`);
  return { type: t.type as NativeDType, dims: t.dims, data: t.data as HostTensor["data"] };
}

/** The addon's host tensor as an onnxruntime-node tensor (the same memory). */
function ortTensor(t: HostTensor): ort.Tensor {
  return new ort.Tensor(t.type, t.data, t.dims);
}

/**
 * One addon session over the decoder graph, with its resident LoRA factors. `run` takes the step's
 * feeds (past caches as device or host tensors) and an adapter's packed feeds, and returns the
 * logits on the host and the presents in device memory.
 */
export class NativeDecoder implements Runner {
  readonly kv = "device";
  readonly factorsResident = true;
  private ran = 0;

  get steps(): number {
    return this.ran;
  }
  private readonly resident: ResidentFeeds<Record<string, DeviceTensor>>;
  /** Where each fetched output goes, the same every step: the logits to the host, presents to the device. */
  private readonly fetch: Readonly<Record<string, "host" | "device">>;

  /**
   * `factors`: the graph's LoRA inputs, uploaded once per feeds object; `logits` and `presents`:
   * the outputs fetched, to the host and to the device.
   */
  constructor(
    private readonly session: NativeSession,
    private readonly factors: readonly string[],
    private readonly logits: string,
    private readonly presents: readonly string[],
  ) {
    this.fetch = Object.fromEntries([[logits, "host"], ...presents.map((n) => [n, "device"])]);
    this.resident = new ResidentFeeds(
      async (feeds) => this.upload(feeds),
      (placed) => {
        for (const t of Object.values(placed)) t.release();
      },
    );
  }

  private upload(feeds: LoraFeeds): Record<string, DeviceTensor> {
    const placed: Record<string, DeviceTensor> = {};
    try {
      for (const name of this.factors) {
        const t = feeds[name];
        if (t === undefined) throw new Error(`LoRA feed ${name} missing`);
        placed[name] = this.session.upload(hostTensor(t));
      }
    } catch (e) {
      // A half-uploaded adapter is never used: free what it holds now.
      for (const t of Object.values(placed)) t.release();
      throw e;
    }
    return placed;
  }

  residentStats(): ResidentCounts {
    return this.resident.stats();
  }

  /**
   * Runs one step: `feeds` are every input but the LoRA factors, which come from `lora` (uploaded
   * on its first use). Returns the logits (host) and each present (device) by output name. Throws
   * the addon's `OrtNativeError` (ORT's own checks).
   */
  async run(feeds: StepFeeds, lora: LoraFeeds): Promise<RunnerOutput> {
    const factors = this.factors.length === 0 ? {} : await this.resident.place(lora);
    const bound: Record<string, HostTensor | DeviceTensor> = { ...factors };
    for (const [name, t] of Object.entries(feeds))
      bound[name] = t instanceof DeviceTensor ? t : hostTensor(t);
    const out = await this.session.run(bound, this.fetch);
    this.ran++;
    const logits = out[this.logits];
    if (logits === undefined || logits instanceof DeviceTensor)
      throw new Error(`session output ${this.logits} missing from the host`);
    const outputs: Record<string, DeviceTensor> = {};
    for (const name of this.presents) {
      const t = out[name];
      if (!(t instanceof DeviceTensor)) throw new Error(`session output ${name} missing from the device`);
      outputs[name] = t;
    }
    return { logits: logits.data as Float32Array, outputs };
  }

  async toHost(tensors: readonly KvTensor[]): Promise<KvTensor[]> {
    return tensors.map((t) => (t instanceof DeviceTensor ? ortTensor(t.download()) : t));
  }

  endProfiling(): void {
    // `chooseBackend` never picks the addon for a profiled session: nothing to end.
  }

  /** Frees the session; device tensors still referenced keep its allocator until released. */
  async release(): Promise<void> {
    this.session.release();
  }
}
