/**
 * Trainable LoRA factors for one base: float32 A `[r, in]` and B `[out, r]` per targeted module,
 * keyed by PEFT name. They become session feeds (B pre-scaled, as the graphs expect), take the
 * optimizer's in-place updates, and serialize as a PEFT adapter that generators load unchanged.
 */
import * as ort from "onnxruntime-node";
import { type ModelSpec, peftKey, type VerifiedAdapter } from "../model-spec/index.ts";
import { isTargeted, type LoraConfig, moduleLora } from "../peft/index.ts";
import type { Rng } from "../random/index.ts";
import { baseFeeds, type LoraFeeds } from "../runtime/index.ts";
import { encodeSafetensors, type TensorInput, toFloat32 } from "../safetensors/index.ts";

/**
 * One targeted module's trainable factors: float32 A `[rank, inFeatures]` and B `[outFeatures, rank]`,
 * row-major, and its PEFT scaling (alpha/r, or alpha/√r with rsLoRA).
 */
export interface LoraModuleParams {
  module: string;
  rank: number;
  scaling: number;
  inFeatures: number;
  outFeatures: number;
  a: Float32Array;
  b: Float32Array;
}

/**
 * The trainable LoRA factors of one base and LoRA config, keyed by PEFT name: PEFT's initialisation
 * (`init`) or an adapter's values (`fromAdapter`), feeds for the sessions, gradients with respect to
 * the unscaled factors, and serialization as PEFT's `adapter_model.safetensors`.
 */
export class LoraParams {
  private constructor(
    readonly spec: ModelSpec,
    readonly config: LoraConfig,
    readonly modules: readonly LoraModuleParams[],
  ) {}

  /**
   * PEFT's initialisation: A from kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in), and B zero, so
   * the adapter starts as the identity on the base.
   */
  static init(spec: ModelSpec, config: LoraConfig, rng: Rng): LoraParams {
    const modules: LoraModuleParams[] = [];
    for (const m of spec.modules.values()) {
      if (!isTargeted(config, m.name)) continue;
      const { rank, scaling } = moduleLora(config, m.name);
      const bound = 1 / Math.sqrt(m.inFeatures);
      // A loop, not Float32Array.from with a map function: V8 runs that through the iterator
      // protocol, seconds for the 4.4 M elements of a Qwen2.5-0.5B r=16 adapter's A factors.
      const a = new Float32Array(rank * m.inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = (rng.next() * 2 - 1) * bound;
      modules.push({
        module: m.name,
        rank,
        scaling,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        a,
        b: new Float32Array(m.outFeatures * rank),
      });
    }
    if (modules.length === 0) throw new RangeError("the LoRA config targets no module of this base");
    return new LoraParams(spec, config, modules);
  }

  /** Factors from a verified adapter (a checkpoint or a published version), as float32 copies. */
  static fromAdapter(spec: ModelSpec, config: LoraConfig, adapter: VerifiedAdapter): LoraParams {
    const modules = adapter.modules.map((m): LoraModuleParams => {
      const target = spec.modules.get(m.module);
      if (target === undefined) throw new RangeError(`module ${m.module} is not in the base`);
      return {
        module: m.module,
        rank: m.rank,
        scaling: m.scaling,
        inFeatures: target.inFeatures,
        outFeatures: target.outFeatures,
        // toFloat32 returns a fresh array: it is the copy.
        a: toFloat32(m.a.dtype, m.a.bytes),
        b: toFloat32(m.b.dtype, m.b.bytes),
      };
    });
    return new LoraParams(spec, config, modules);
  }

  /** The parameters by PEFT key, sharing memory with this object. */
  named(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const m of this.modules) {
      out.set(peftKey(m.module, "A"), m.a);
      out.set(peftKey(m.module, "B"), m.b);
    }
    return out;
  }

  /** Overwrites the factors with `values` (a checkpoint's), checking every key and length first. */
  assign(values: ReadonlyMap<string, Float32Array>): void {
    const own = this.named();
    if (values.size !== own.size) throw new RangeError(`${values.size} tensors for ${own.size} parameters`);
    for (const [key, p] of own) {
      const v = values.get(key);
      if (v === undefined || v.length !== p.length) {
        throw new RangeError(`${key}: ${v?.length ?? "missing"}, parameter has ${p.length}`);
      }
    }
    for (const [key, p] of own) p.set(values.get(key) as Float32Array);
  }

  get count(): number {
    return this.modules.reduce((n, m) => n + m.a.length + m.b.length, 0);
  }

  /**
   * Session feeds for the current values, copies that later updates leave alone: A as it is,
   * B·scaling, untargeted modules rank 0.
   */
  feeds(): LoraFeeds {
    const feeds: Record<string, ort.Tensor> = { ...baseFeeds(this.spec) };
    for (const m of this.modules) {
      // Plain copies and loops: Float32Array.from with a map function took 3.5 s per call for a
      // 35 MB adapter (V8's iterator path); this takes milliseconds (docs/benchmarks.md).
      const b = new Float32Array(m.b.length);
      for (let i = 0; i < b.length; i++) b[i] = (m.b[i] as number) * m.scaling;
      feeds[peftKey(m.module, "A")] = new ort.Tensor("float32", new Float32Array(m.a), [
        m.rank,
        m.inFeatures,
      ]);
      feeds[peftKey(m.module, "B")] = new ort.Tensor("float32", b, [m.outFeatures, m.rank]);
    }
    return Object.freeze(feeds);
  }

  /**
   * Gradients for the parameters from the graph's gradients for its feeds: A's as they are, B's
   * times the scaling (the graph saw scaling·B). Accumulates into `into` when given.
   */
  gradients(
    graph: ReadonlyMap<string, Float32Array>,
    into?: Map<string, Float32Array>,
  ): Map<string, Float32Array> {
    const out = into ?? new Map<string, Float32Array>();
    for (const m of this.modules) {
      for (const [which, scale] of [
        ["A", 1],
        ["B", m.scaling],
      ] as const) {
        const key = peftKey(m.module, which);
        const g = graph.get(key);
        const size = which === "A" ? m.a.length : m.b.length;
        if (g === undefined || g.length !== size) {
          throw new RangeError(`graph gradient for ${key}: ${g?.length ?? "none"}, expected ${size}`);
        }
        let acc = out.get(key);
        if (acc === undefined) {
          acc = new Float32Array(size);
          out.set(key, acc);
        }
        for (let i = 0; i < size; i++) acc[i] = (acc[i] ?? 0) + (g[i] ?? 0) * scale;
      }
    }
    return out;
  }

  /**
   * `adapter_model.safetensors` and `adapter_config.json` bytes, as PEFT writes them. `into`: a
   * buffer the weights are written into when it has their exact size (`encodeSafetensors`), such
   * as the previous call's weights once nothing reads them any more; or an allocator for them,
   * called with their size (`sharedBytes` of shared/store, for weights hashed on another thread).
   */
  toPeft(
    metadata: Record<string, string> = {},
    into?: Uint8Array | ((size: number) => Uint8Array),
  ): { configBytes: Uint8Array; weights: Uint8Array } {
    const tensors: Record<string, TensorInput> = {};
    for (const m of this.modules) {
      tensors[peftKey(m.module, "A")] = { dtype: "F32", shape: [m.rank, m.inFeatures], data: m.a };
      tensors[peftKey(m.module, "B")] = { dtype: "F32", shape: [m.outFeatures, m.rank], data: m.b };
    }
    return {
      configBytes: new TextEncoder().encode(`${JSON.stringify(this.config.raw, null, 2)}\n`),
      weights: encodeSafetensors(tensors, { format: "pt", ...metadata }, into),
    };
  }
}
