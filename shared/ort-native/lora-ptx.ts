/**
 * The PTX of `lora-kernels.cu` (the CUDA kernels of the addon's `ai.loracast.LoraShrinkExpand`,
 * `lora-cuda.cc`): compiled where nvcc exists (`npm run build:lora-ptx`) and committed as
 * `lora-kernels.ptx`, whose first line is the sha256 of the sources it came from (`lora-kernels.cu`,
 * the tiling header it includes, `lora-kernels.h`, and `lora-nbits.cuh`), so that a test can tell a stale PTX without
 * nvcc. `build.ts` embeds the PTX in the addon; the CUDA driver compiles it
 * for the GPU at run time.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { err, ok, type Result } from "../result/index.ts";

/** The kernel's CUDA source. */
const LORA_KERNELS_CU = join(import.meta.dirname, "lora-kernels.cu");
/** The tiling header it includes (lora-cuda.cc includes it too). */
const LORA_KERNELS_H = join(import.meta.dirname, "lora-kernels.h");
/** The MatMulNBitsLora kernel it includes. */
const LORA_NBITS_CUH = join(import.meta.dirname, "lora-nbits.cuh");
/** Its committed PTX. */
export const LORA_KERNELS_PTX = join(import.meta.dirname, "lora-kernels.ptx");
/**
 * The virtual architecture the PTX targets: compute_75 (Turing), the oldest CUDA 13 compiles for;
 * the driver JIT-compiles it for the GPU at hand (sm_90 on the H200).
 */
const ARCH = "compute_75";

/** The PTX's first line for the sources as they are now: the sha256 of the `.cu`, the `.h`, then the `.cuh`, hex. */
function loraPtxHeader(): string {
  const hash = createHash("sha256")
    .update(readFileSync(LORA_KERNELS_CU))
    .update(readFileSync(LORA_KERNELS_H))
    .update(readFileSync(LORA_NBITS_CUH));
  return `// lora-kernels.cu + lora-kernels.h + lora-nbits.cuh sha256 ${hash.digest("hex")}`;
}

/**
 * `lora-kernels.ptx` if it was compiled from the current sources (its first line is
 * `loraPtxHeader`), else what is stale and what to run.
 */
export function checkLoraPtx(): Result<string, string> {
  const want = loraPtxHeader();
  const ptx = readFileSync(LORA_KERNELS_PTX, "utf8");
  const got = ptx.slice(0, ptx.indexOf("\n"));
  if (got !== want)
    return err(
      `lora-kernels.ptx is stale: its first line is '${got}', the sources need '${want}' (npm run build:lora-ptx where nvcc is)`,
    );
  return ok(ptx);
}

/**
 * Compiles `lora-kernels.cu` with `nvcc` (`nvcc -ptx -arch=compute_75`) and writes
 * `lora-kernels.ptx` with its header line; returns the PTX's path or nvcc's output.
 */
export function buildLoraPtx(nvcc: string): Result<string, string> {
  const tmp = mkdtempSync(join(tmpdir(), "lora-ptx-"));
  try {
    const out = join(tmp, "lora-kernels.ptx");
    const r = spawnSync(nvcc, ["-ptx", `-arch=${ARCH}`, LORA_KERNELS_CU, "-o", out], { encoding: "utf8" });
    if (r.status !== 0) return err(`${nvcc}: ${r.error?.message ?? ""}${r.stdout ?? ""}${r.stderr ?? ""}`);
    writeFileSync(LORA_KERNELS_PTX, `${loraPtxHeader()}\n${readFileSync(out, "utf8")}`);
    return ok(LORA_KERNELS_PTX);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
