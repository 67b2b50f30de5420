/**
 * The ops a decoder's LoRA pair is built from (issue 18: LoRA on the WebGPU EP). A pair adds
 * `(x · Aᵀ) · Bᵀ` to a projection's output `y`; its first product, `h = x · Aᵀ` (`x` `[tokens, in]`,
 * `h` `[tokens, r]`), reduces over a long `in` (896 or 4864 for Qwen2.5-0.5B) into only r = 16 to
 * 48 outputs per row, and ORT's WebGPU kernels parallelize a `Gemm` or `MatMul` over output tiles
 * only: `ApplyGemmPacked` (webgpu/math/gemm_packed.cc) and `CreateMatMulProgram`
 * (webgpu/math/matmul.cc) dispatch ceil(N/32) × ceil(M/32) (Gemm) or ceil(N/32) × ceil(M/8)
 * (MatMul, M ≤ 8) workgroups of 8×8 threads, each looping over the whole K; split-K exists there
 * for some Intel GPUs only (`SplitKConfig`). So an A-side product runs in 1 or 2 workgroups on a
 * GPU of 132 SMs, a constant time per node whatever the batch. The forms:
 *  - `gemm`: one `Gemm(x, A, transB=1)`, the graph as it was (CPU: one sgemm);
 *  - `matmul`: one `MatMul(x, Aᵀ)`, A stored transposed `[in, r]` (the same packed kernel; ORT
 *    versions with a GEMV path for M = 1 take it at batch 1);
 *  - `mulsum`: `Mul(x[tokens, 1, in], A[r, in])` then `ReduceSum` over `in`: an elementwise
 *    dispatch over tokens·r·in elements, then one workgroup per output reducing its row
 *    (`ReduceSharedProgram`, webgpu/reduction/reduction_ops.cc): tokens·r workgroups;
 *  - `splitk`: split-K in ONNX: x as `[tokens, s, 1, k]` (k = `SPLIT_K_CHUNK`, s = in/k) times
 *    A as `[s, k, r]` (A stored transposed, reshaped in the graph) is a batched `MatMul` of
 *    tokens·s small products, each its own workgroup(s), then `ReduceSum` over s.
 * The second product, `y + h · Bᵀ` (`[tokens, r]` by `[r, out]`, out ≥ 896), has enough output
 * tiles to fill the GPU and stays one `Gemm` with `y` as C in every form.
 */
import type { LoraForm } from "../model-format/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";

/**
 * The form a build for the execution provider `ep` (ORT's name) gets unless told otherwise:
 * `mulsum` on `webgpu`, whose `Gemm`/`MatMul` kernels leave each A-side product to one or two
 * workgroups (the file comment); `gemm` elsewhere: the CPU's and CUDA's GEMMs split a long K
 * themselves, and on the CPU `mulsum` is the slower one (`webgpu-lora-probe.ts --ep=cpu`).
 */
export function defaultLoraForm(ep: string): LoraForm {
  return ep === "webgpu" ? "mulsum" : "gemm";
}

/**
 * The split-K form's chunk of `in` per partial product: it must divide every projection's `in`
 * (Qwen2.5-0.5B: 896 = 14·64, 4864 = 76·64); `loraDown` falls back to one chunk otherwise.
 */
const SPLIT_K_CHUNK = 64;

/**
 * `h = x · Aᵀ` for `x` float32 `[tokens, inF]` and the factor input `a` in `loraALayout(form)`
 * (`model-format`): float32 `[tokens, r]`. `chunk` is the split-K chunk (`SPLIT_K_CHUNK` by default); a chunk that
 * does not divide `inF` makes it one chunk (a plain batched product).
 */
export function loraDown(
  g: GraphBuilder,
  form: LoraForm,
  x: string,
  a: string,
  inF: number,
  chunk = SPLIT_K_CHUNK,
): string {
  const i64 = (...v: number[]) => g.constant("int64", [v.length], v);
  // `[tokens, r]` again after the ReduceSum: ORT's CPU ReduceSum (1.30) returns an input with a
  // zero dimension unchanged, and a rank-0 pair (an untargeted module) has one. An alias elsewhere.
  const rows2d = (h: string) => g.op1("Reshape", [h, i64(0, -1)]);
  switch (form) {
    case "gemm":
      return g.op1("Gemm", [x, a], { transB: attr.int(1) });
    case "matmul":
      return g.op1("MatMul", [x, a]);
    case "mulsum": {
      const rows = g.op1("Reshape", [x, i64(0, 1, inF)]);
      return rows2d(g.op1("ReduceSum", [g.op1("Mul", [rows, a]), i64(-1)], { keepdims: attr.int(0) }));
    }
    case "splitk": {
      const k = inF % chunk === 0 ? chunk : inF;
      const s = inF / k;
      const parts = g.op1("Reshape", [x, i64(0, s, 1, k)]);
      const a3 = g.op1("Reshape", [a, i64(s, k, -1)]);
      return rows2d(g.op1("ReduceSum", [g.op1("MatMul", [parts, a3]), i64(1, 2)], { keepdims: attr.int(0) }));
    }
  }
}

/** `y + h · Bᵀ` for `h` `[tokens, r]` and `b` PEFT's `[out, r]`: one `Gemm` with `y` as C. */
export function loraUp(g: GraphBuilder, h: string, b: string, y: string): string {
  return g.op1("Gemm", [h, b, y], { transB: attr.int(1) });
}
