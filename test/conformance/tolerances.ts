/**
 * How close each execution provider must come, per dtype. The CPU's tolerances hold wherever the
 * EP computes in fp32 (the CPU EP, WebGPU's fp32 shaders, the CUDA EP with TF32 off): those differ
 * from PyTorch only in reduction order, which the CPU tolerance already covers against PyTorch's
 * own kernels. The one EP setting that does not compute in fp32 is the CUDA EP's TF32 (ORT's
 * `use_tf32`, on by default): cuBLAS then rounds both operands of every MatMul/Gemm to a 10-bit
 * mantissa (unit roundoff u = 2^-11) and accumulates in fp32, so each product carries a relative
 * error up to 2u; the TF32 tolerance is 4u (2u per operand rounding, doubled for what the layers
 * compound) relative to the largest reference logit, and 4u relative for gradients.
 *
 * A float16 KV cache (`build-model --attention gqa --kv-cache-dtype float16`, the CUDA build) makes
 * GroupQueryAttention compute in IEEE binary16, whose unit roundoff is also u = 2^-11 (10 stored
 * mantissa bits). Per layer, q, k and v are rounded to float16 once each (k and v are then cached
 * as they are), the rotary tables once, and the attention output once more before the Cast back:
 * relative errors up to u on each, which the o_proj, the residual stream and the final norm carry
 * to the logits without growth on these fixtures. So the decoder's logits get the same bound as
 * TF32's: 4u relative to the largest reference logit, added to TF32's where both apply. Measured on
 * the CPU EP (onnxruntime-node 1.30.0, whose CPU GroupQueryAttention takes float16), the GQA float16
 * decoder against PyTorch (fp32) and against the float32 ops decoder of the same weights:
 * llama-tiny 1.86e-3 (max |logit| 2.94: bound 5.74e-3), qwen2-tiny 3.09e-3 (max 3.57: bound
 * 6.97e-3), int4 against the ops decoder 2.11e-3 and 2.90e-3; i.e. 1.3u to 1.8u of the largest
 * logit. The training graph has no KV cache and stays float32: its log-probabilities and gradients
 * keep the tolerances above. A greedy sequence may then leave the reference's at a near tie: it
 * passes when, at the first token where they part, the two tokens' logits are within the logits
 * tolerance (`agreement.ts`, `greedyAgreement`).
 */
import type { KvCacheDtype } from "@loracast/shared/model-format";
import type { ExecutionProvider } from "@loracast/shared/runtime";

/** fp32 logits and logprobs against PyTorch, absolute (the CPU's). */
export const FP32_TOLERANCE = 2e-4;
/** A quantized graph against the fp32 graph of its dequantized weights, absolute (the CPU's). */
const QUANT_TOLERANCE = 1e-3;
/** ‖g − g_ref‖ / ‖g_ref‖ per LoRA tensor (the CPU's). */
const GRADIENT_TOLERANCE = 1e-4;
/** 4 × TF32's unit roundoff 2^-11. */
const TF32_RELATIVE = 4 * 2 ** -11;
/** 4 × binary16's unit roundoff 2^-11: the float16 attention's share of the logits' error. */
const FP16_ATTENTION_RELATIVE = 4 * 2 ** -11;

/** The tolerances one conformance run is held to, and why (printed in the report). */
export interface Tolerances {
  /** fp32 logits and logprobs vs PyTorch, absolute (the decoder's, float16 attention included). */
  fp32: number;
  /** The training graph's log-probabilities vs PyTorch, absolute: it has no KV cache, so no fp16 part. */
  training: number;
  /** Quantized vs dequantized-fp32 logits, absolute. */
  quant: number;
  /** Gradients vs PyTorch, relative L2 per tensor. */
  gradient: number;
  /** Quantized vs dequantized-fp32 gradients, relative L2 per tensor. */
  quantGradient: number;
  why: string;
}

/**
 * The tolerances for `ep` (`tf32`: whether the CUDA EP's MatMul/Gemm use TF32; ignored elsewhere)
 * and a decoder whose KV cache is `kvCacheDtype`, given the reference's largest absolute logit
 * `maxLogit`. Never tighter than the CPU's.
 */
export function tolerancesFor(
  ep: ExecutionProvider,
  tf32: boolean,
  maxLogit: number,
  kvCacheDtype: KvCacheDtype = "float32",
): Tolerances {
  const usesTf32 = ep === "cuda" && tf32;
  const half = kvCacheDtype === "float16";
  const scaled = (relative: number) => Number((relative * maxLogit).toPrecision(3));
  const trainingRelative = usesTf32 ? TF32_RELATIVE : 0;
  const decoderRelative = trainingRelative + (half ? FP16_ATTENTION_RELATIVE : 0);
  const why = [
    usesTf32
      ? "cuda with TF32: 4·2^-11 relative (gradients)"
      : `the CPU's: ${ep}${ep === "cuda" ? " with TF32 off" : ""} computes in fp32`,
    ...(decoderRelative > 0
      ? [
          `logits ${[usesTf32 ? "4·2^-11 (TF32)" : "", half ? "4·2^-11 (float16 attention)" : ""].filter((x) => x !== "").join(" + ")} × max |reference logit| ${maxLogit.toPrecision(3)}`,
        ]
      : []),
  ].join("; ");
  return {
    fp32: Math.max(FP32_TOLERANCE, scaled(decoderRelative)),
    training: Math.max(FP32_TOLERANCE, scaled(trainingRelative)),
    quant: Math.max(QUANT_TOLERANCE, scaled(decoderRelative)),
    gradient: usesTf32 ? Math.max(GRADIENT_TOLERANCE, TF32_RELATIVE) : GRADIENT_TOLERANCE,
    quantGradient: usesTf32 ? Math.max(QUANT_TOLERANCE, TF32_RELATIVE) : QUANT_TOLERANCE,
    why,
  };
}
