/**
 * How close each execution provider must come, per dtype. The CPU's tolerances hold wherever the
 * EP computes in fp32 (the CPU EP, WebGPU's fp32 shaders, the CUDA EP with TF32 off): those differ
 * from PyTorch only in reduction order, which the CPU tolerance already covers against PyTorch's
 * own kernels. The one EP setting that does not compute in fp32 is the CUDA EP's TF32 (ORT's
 * `use_tf32`, on by default): cuBLAS then rounds both operands of every MatMul/Gemm to a 10-bit
 * mantissa (unit roundoff u = 2^-11) and accumulates in fp32, so each product carries a relative
 * error up to 2u; the TF32 tolerance is 4u (2u per operand rounding, doubled for what the layers
 * compound) relative to the largest reference logit, and 4u relative for gradients.
 */
import type { ExecutionProvider } from "@loracast/shared/runtime";

/** fp32 logits and logprobs against PyTorch, absolute (the CPU's). */
export const FP32_TOLERANCE = 2e-4;
/** A quantized graph against the fp32 graph of its dequantized weights, absolute (the CPU's). */
const QUANT_TOLERANCE = 1e-3;
/** ‖g − g_ref‖ / ‖g_ref‖ per LoRA tensor (the CPU's). */
const GRADIENT_TOLERANCE = 1e-4;
/** 4 × TF32's unit roundoff 2^-11. */
const TF32_RELATIVE = 4 * 2 ** -11;

/** The tolerances one conformance run is held to, and why (printed in the report). */
export interface Tolerances {
  /** fp32 logits and logprobs vs PyTorch, absolute. */
  fp32: number;
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
 * given the reference's largest absolute logit `maxLogit`.
 */
export function tolerancesFor(ep: ExecutionProvider, tf32: boolean, maxLogit: number): Tolerances {
  if (ep !== "cuda" || !tf32) {
    return {
      fp32: FP32_TOLERANCE,
      quant: QUANT_TOLERANCE,
      gradient: GRADIENT_TOLERANCE,
      quantGradient: QUANT_TOLERANCE,
      why: `the CPU's: ${ep}${ep === "cuda" ? " with TF32 off" : ""} computes in fp32`,
    };
  }
  const scaled = Number((TF32_RELATIVE * maxLogit).toPrecision(3));
  return {
    fp32: Math.max(FP32_TOLERANCE, scaled),
    quant: Math.max(QUANT_TOLERANCE, scaled),
    gradient: Math.max(GRADIENT_TOLERANCE, TF32_RELATIVE),
    quantGradient: Math.max(QUANT_TOLERANCE, TF32_RELATIVE),
    why: `cuda with TF32: 4·2^-11 × max |reference logit| ${maxLogit.toPrecision(3)} (logits), 4·2^-11 relative (gradients)`,
  };
}
