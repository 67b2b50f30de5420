/**
 * The one table of supported decoder architectures: the HF `config.json` `model_type`s loracast
 * builds, serves and trains, the traits that differ between them, and the projections a LoRA may
 * target in each layer. Read by the config parser (`model-spec`), PEFT's `all-linear` (`peft`), the
 * graph builder and its manifest (`model-builder`). Adding a family starts here.
 */
import { z } from "zod";

/** The `model_type`s of the Llama family loracast implements (transformers' `modeling_<type>.py`). */
export const MODEL_TYPES = ["llama", "qwen2", "mistral"] as const;
/** One of `MODEL_TYPES`. */
export type ModelType = (typeof MODEL_TYPES)[number];
/** `MODEL_TYPES` as a zod enum (the model manifest's `architecture` and `dims.modelType`). */
export const modelTypeSchema = z.enum(MODEL_TYPES);

/** True when `value` is a supported `model_type`. */
export function isModelType(value: unknown): value is ModelType {
  return (MODEL_TYPES as readonly unknown[]).includes(value);
}

/** What differs between the families, as transformers implements each (`modeling_<type>.py`). */
export interface ArchitectureTraits {
  /** q/k/v projections always carry a bias (Qwen2), whatever the config says. */
  qkvBias: boolean;
  /** `attention_bias` (q/k/v/o) and `mlp_bias` (gate/up/down) in `config.json` add biases (Llama). */
  configBiases: boolean;
  /**
   * How `sliding_window` applies: `none` (ignored), `every_layer` (Mistral: every layer when set),
   * `when_enabled` (Qwen2: only with `use_sliding_window`, per `layer_types` or `max_window_layers`).
   */
  slidingWindow: "none" | "every_layer" | "when_enabled";
}

/** The traits of each supported family. */
export const ARCHITECTURES: Readonly<Record<ModelType, ArchitectureTraits>> = {
  llama: { qkvBias: false, configBiases: true, slidingWindow: "none" },
  qwen2: { qkvBias: true, configBiases: false, slidingWindow: "when_enabled" },
  mistral: { qkvBias: false, configBiases: false, slidingWindow: "every_layer" },
};

/** A width of the decoder: `hidden_size`, heads × head_dim (queries), KV heads × head_dim, `intermediate_size`. */
export type ProjectionWidth = "hidden" | "query" | "kv" | "intermediate";

/** One Linear of a decoder layer: its HF module path under `model.layers.<i>.`, and its in/out widths. */
export interface Projection {
  /** e.g. `self_attn.q_proj`. */
  module: string;
  /** The PEFT/HF short name, the last path segment: e.g. `q_proj`. */
  name: string;
  in: ProjectionWidth;
  out: ProjectionWidth;
}

/** The seven Linears of every layer of the supported families, in HF order (attention, then MLP). */
export const PROJECTIONS: readonly Projection[] = [
  { module: "self_attn.q_proj", name: "q_proj", in: "hidden", out: "query" },
  { module: "self_attn.k_proj", name: "k_proj", in: "hidden", out: "kv" },
  { module: "self_attn.v_proj", name: "v_proj", in: "hidden", out: "kv" },
  { module: "self_attn.o_proj", name: "o_proj", in: "query", out: "hidden" },
  { module: "mlp.gate_proj", name: "gate_proj", in: "hidden", out: "intermediate" },
  { module: "mlp.up_proj", name: "up_proj", in: "hidden", out: "intermediate" },
  { module: "mlp.down_proj", name: "down_proj", in: "intermediate", out: "hidden" },
];
