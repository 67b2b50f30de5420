/**
 * Everything the graph builder needs from a HF `config.json` beyond the module map: norms, RoPE,
 * biases and attention windows. Anything we do not implement is refused here, naming the field,
 * rather than silently producing a model with different numerics.
 */
import { ARCHITECTURES, type ArchitectureTraits } from "../architectures/index.ts";
import { type DecoderDims, ModelConfigError, parseDecoderDims } from "../model-spec/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { parseRope, type RopeSpec } from "./rope.ts";

/**
 * What the graph builder reads from a HF `config.json`: the decoder dims, the RMSNorm ε, RoPE,
 * which projections carry biases, per-layer sliding windows, the context length and the BOS/EOS ids.
 */
export interface Architecture {
  dims: DecoderDims;
  rmsNormEps: number;
  rope: RopeSpec;
  /** Bias on q/k/v (Qwen2; Llama with `attention_bias`). */
  qkvBias: boolean;
  /** Bias on o_proj (Llama with `attention_bias`). */
  oBias: boolean;
  /** Bias on gate/up/down (Llama with `mlp_bias`). */
  mlpBias: boolean;
  /** Per layer: the sliding attention window in tokens, or null for full attention. */
  slidingWindow: (number | null)[];
  maxPositions: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

function tokenIds(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

/**
 * Reads and checks a HF `config.json` (llama, qwen2, mistral) as transformers' `modeling_llama.py`
 * and `modeling_qwen2.py` interpret it. An `err` names the field it cannot serve (another activation,
 * partial rotary, an unsupported RoPE type or layer type).
 */
export function parseArchitecture(input: unknown): Result<Architecture, ModelConfigError> {
  const dims = parseDecoderDims(input);
  if (!dims.ok) return dims;
  const c = input as Record<string, unknown>;
  try {
    const act = c.hidden_act ?? c.hidden_activation ?? "silu";
    if (act !== "silu")
      throw new ModelConfigError("hidden_act", `${JSON.stringify(act)} is not supported; only silu`);
    const eps = c.rms_norm_eps ?? 1e-6;
    if (typeof eps !== "number" || !(eps > 0))
      throw new ModelConfigError("rms_norm_eps", "must be a positive number");
    const maxPositions = c.max_position_embeddings ?? 4096;
    if (typeof maxPositions !== "number" || !Number.isSafeInteger(maxPositions) || maxPositions <= 0) {
      throw new ModelConfigError("max_position_embeddings", "must be a positive integer");
    }
    const rope = parseRope(c, dims.value.headDim);
    if (!rope.ok) return rope;

    const flag = (field: string): boolean => {
      const v = c[field] ?? false;
      if (typeof v !== "boolean") throw new ModelConfigError(field, "must be a boolean");
      return v;
    };
    const traits = ARCHITECTURES[dims.value.modelType];
    const attentionBias = traits.configBiases ? flag("attention_bias") : false;
    return ok({
      dims: dims.value,
      rmsNormEps: eps,
      rope: rope.value,
      qkvBias: traits.qkvBias || attentionBias,
      oBias: attentionBias,
      mlpBias: traits.configBiases ? flag("mlp_bias") : false,
      slidingWindow: slidingWindows(c, dims.value.numLayers, traits.slidingWindow),
      maxPositions,
      bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
      eosTokenIds: tokenIds(c.eos_token_id),
    });
  } catch (e) {
    if (e instanceof ModelConfigError) return err(e);
    throw e;
  }
}

/**
 * Per layer, the sliding window in tokens or null: Mistral applies `sliding_window` to every layer;
 * Qwen2 only when enabled, per `layer_types` (or from `max_window_layers` on); Llama never.
 */
function slidingWindows(
  c: Record<string, unknown>,
  layers: number,
  rule: ArchitectureTraits["slidingWindow"],
): (number | null)[] {
  const window = c.sliding_window;
  if (window != null && (typeof window !== "number" || !Number.isSafeInteger(window) || window <= 0)) {
    throw new ModelConfigError("sliding_window", "must be a positive integer or null");
  }
  const all = (w: number | null) => Array.from({ length: layers }, () => w);
  if (rule === "every_layer") return all((window as number | null | undefined) ?? null);
  if (rule !== "when_enabled" || c.use_sliding_window !== true || window == null) return all(null);
  const types = c.layer_types;
  if (Array.isArray(types)) {
    if (types.length !== layers)
      throw new ModelConfigError("layer_types", `has ${types.length} entries for ${layers} layers`);
    return types.map((t, i) => {
      if (t === "sliding_attention") return window as number;
      if (t === "full_attention") return null;
      throw new ModelConfigError(`layer_types[${i}]`, `unknown layer type ${JSON.stringify(t)}`);
    });
  }
  const maxWindowLayers = typeof c.max_window_layers === "number" ? c.max_window_layers : layers;
  return Array.from({ length: layers }, (_, i) => (i >= maxWindowLayers ? (window as number) : null));
}
