/**
 * TF32 on the trainer's CUDA sessions (`TRAINER_CUDA_TF32`): one setting for the training graph
 * and the rollout decoder, so production gradients are computed at the precision the conformance
 * checks run at (`test/conformance`, `--tf32 off` by default).
 */
import { err, ok, type Result } from "@loracast/shared/result";
import type { ExecutionProvider } from "@loracast/shared/runtime";
import { z } from "zod";

/** `TRAINER_CUDA_TF32`: `off` (the default: PyTorch's for float32 matmuls) or `on` (ORT's own default). */
export const cudaTf32Setting = z.enum(["off", "on"]).default("off");

/**
 * What `TRAINER_CUDA_TF32` means for this process: `tf32` is the label the start-up log and
 * `loracast_trainer_cuda_tf32_info` show (`not_applicable` off cuda); `decoder` goes into the rollout
 * decoder's options (`DecoderSessionOptions.cudaTf32`, cuda only: `DecoderSession.load` throws on
 * another EP); `overrideTf32Off` says to set `NVIDIA_TF32_OVERRIDE=0` for the process before the
 * first CUDA session loads cuBLAS, the only way onnxruntime-node's stock binding, which runs the
 * training graph, can turn TF32 off (`shared/runtime/session-options.ts`).
 */
export interface CudaPrecision {
  tf32: "off" | "on" | "not_applicable";
  decoder: { cudaTf32?: boolean };
  overrideTf32Off: boolean;
}

/**
 * Maps the setting to the sessions' options for the trainer's execution provider `ep`, given the
 * `NVIDIA_TF32_OVERRIDE` the process was started with (`override`). Returns an error message when
 * that variable contradicts the setting (`0` with `on`; any other value with `off`, which sets it
 * to 0 itself); off cuda neither is read.
 */
export function cudaPrecision(
  setting: "off" | "on",
  ep: ExecutionProvider,
  override: string | undefined,
): Result<CudaPrecision, string> {
  if (ep !== "cuda") return ok({ tf32: "not_applicable", decoder: {}, overrideTf32Off: false });
  if (setting === "on") {
    if (override === "0")
      return err(
        "TRAINER_CUDA_TF32=on, but NVIDIA_TF32_OVERRIDE=0 turns TF32 off for the process: unset one",
      );
    return ok({ tf32: "on", decoder: { cudaTf32: true }, overrideTf32Off: false });
  }
  if (override !== undefined && override !== "0")
    return err(
      `TRAINER_CUDA_TF32=off sets NVIDIA_TF32_OVERRIDE=0 for the process, but it is set to ${JSON.stringify(override.slice(0, 40))}: unset it`,
    );
  return ok({ tf32: "off", decoder: { cudaTf32: false }, overrideTf32Off: true });
}
