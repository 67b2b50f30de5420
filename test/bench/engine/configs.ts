/** Model configs for the engine benchmark. */

/** Qwen2.5-0.5B's config.json, as published. */
export const QWEN25_05B = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  vocab_size: 151936,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  tie_word_embeddings: true,
  hidden_act: "silu",
  use_sliding_window: false,
  bos_token_id: 151643,
  eos_token_id: 151643,
};
