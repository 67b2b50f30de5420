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
 *  - `matmul`: one `MatMul(x, Aᵀ)`, A stored transposed `[in, r]`: the same output-only tiling,
 *    with 8-row tiles for M ≤ 8;
 *  - `mulsum`: `Mul(x[tokens, 1, in], A[r, in])` then `ReduceSum` over `in`: an elementwise
 *    dispatch over tokens·r·in elements, then one workgroup per output reducing its row
 *    (`ReduceSharedProgram`, webgpu/reduction/reduction_ops.cc): tokens·r workgroups;
 *  - `splitk`: split-K in ONNX: x as `[tokens, s, 1, k]` (k = `SPLIT_K_CHUNK`, s = in/k) times
 *    A as `[s, k, r]` (A stored transposed, reshaped in the graph) is a batched `MatMul` of
 *    tokens·s small products, each its own workgroup(s), then `ReduceSum` over s;
 *  - `splitk-t`: the same split with x transposed to `[s, tokens, k]`: a batched `MatMul` of s
 *    products of `[tokens, k]` by `[k, r]` (tokens as rows), its `[s, tokens, r]` transposed to
 *    `[tokens, r, s]` and summed over s (innermost, so ORT's `ReduceSum` adds no transpose).
 * The second product, `y + h · Bᵀ` (`[tokens, r]` by `[r, out]`, out ≥ 896), has enough output
 * tiles to fill the GPU and stays one `Gemm` with `y` as C in every form.
 *
 * On the H200 (docs/benchmarks.md, session 17, `webgpu-lora-probe.ts`), 24 layers of Qwen2.5-0.5B's
 * pairs at rank 16 took 16.6 ms per step as `gemm`, 7.6 as `matmul`, 5.1 as `splitk` and 4.0 as
 * `mulsum`, against 3.95 with empty factors. But `mulsum` materializes `[tokens, r, in]`, 1.27 GB
 * for one `down_proj` pair in a 4096-token prefill, and `splitk`'s batch of tokens·s products
 * passes WebGPU's 65535 workgroups per dimension from 863 tokens on (s = 76): ORT then folds the
 * dispatch into the other dimensions (`NormalizeDispatchGroupSize`) while the packed MatMul shader
 * takes `global_id.z` as the batch (gemm_utils.cc), a case the probe's 1024-token rows check.
 * `splitk-t` keeps both small: its intermediates are `[s, tokens, r]`, its batch is s.
 */
import type { LoraForm } from "../model-format/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";

/**
 * The form a build for the execution provider `ep` (ORT's name) gets unless told otherwise:
 * `splitk-t` on `webgpu`, whose `Gemm`/`MatMul` kernels leave each A-side product to one or two
 * workgroups, the split-K form whose memory and dispatch stay bounded at any prefill length (the
 * file comment); `gemm` elsewhere: the CPU's and CUDA's GEMMs split a long K themselves, and on the
 * CPU the other forms are slower (`webgpu-lora-probe.ts --ep=cpu`).
 */
export function defaultLoraForm(ep: string): LoraForm {
  return ep === "webgpu" ? "splitk-t" : "gemm";
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
    case "splitk":
    case "splitk-t": {
      const k = inF % chunk === 0 ? chunk : inF;
      const s = inF / k;
      const a3 = g.op1("Reshape", [a, i64(s, k, -1)]);
      if (form === "splitk") {
        const parts = g.op1("Reshape", [x, i64(0, s, 1, k)]);
        return rows2d(
          g.op1("ReduceSum", [g.op1("MatMul", [parts, a3]), i64(1, 2)], { keepdims: attr.int(0) }),
        );
      }
      const parts = g.op1("Transpose", [g.op1("Reshape", [x, i64(0, s, k)])], { perm: attr.ints([1, 0, 2]) });
      const partial = g.op1("Transpose", [g.op1("MatMul", [parts, a3])], { perm: attr.ints([1, 2, 0]) });
      return rows2d(g.op1("ReduceSum", [partial, i64(-1)], { keepdims: attr.int(0) }));
    }
  }
}

/** `y + h · Bᵀ` for `h` `[tokens, r]` and `b` PEFT's `[out, r]`: one `Gemm` with `y` as C. */
export function loraUp(g: GraphBuilder, h: string, b: string, y: string): string {
  return g.op1("Gemm", [h, b, y], { transB: attr.int(1) });
}
