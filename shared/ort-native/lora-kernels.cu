// The CUDA kernel of ai.loracast.LoraShrinkExpand (lora-op.cc): z = y + (x · Aᵀ) · Bᵀ in one launch,
// what vLLM's punica kernels call "shrink" (x · Aᵀ) and "expand" (· Bᵀ, added to the base output).
// Compiled to PTX (`npm run build:lora-ptx`, nvcc -ptx -arch=compute_75) and committed as
// lora-kernels.ptx; the addon loads it through the driver API at run time (no CUDA toolkit at install).
// Editing this file makes lora-op.test.ts fail until the PTX is regenerated.
//
// Shapes (row-major float32): x [m, k], a [r, k], b [n, r], y and z [m, n].
// Grid: x over column tiles of THREADS columns (one column per thread), y over row tiles of ROWS
// rows (a grid-stride loop past gridDim.y, so any m fits). Each block computes its rows' h = x · Aᵀ
// for RANKS ranks at a time into shared memory (one warp per (row, rank) pair, a shuffle reduction
// over k), then each thread adds Σ_j h[row][j] · b[col][j] into its rows' accumulators; r above
// RANKS loops over chunks. Every block recomputes h for its rows: at decode (m ≤ 64) that is a few
// hundred thousand multiply-adds per block, cheaper than a second launch and a scratch buffer.

#define THREADS 256
#define WARPS (THREADS / 32)
#define ROWS 8
#define RANKS 64

extern "C" __global__ void __launch_bounds__(THREADS)
    lora_shrink_expand(const float* __restrict__ x, const float* __restrict__ a, const float* __restrict__ b,
                       const float* __restrict__ y, float* __restrict__ z, long long m, int k, int r, int n,
                       int vec4) {
  __shared__ float h[ROWS][RANKS];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int col = blockIdx.x * THREADS + threadIdx.x;
  for (long long row0 = (long long)blockIdx.y * ROWS; row0 < m; row0 += (long long)gridDim.y * ROWS) {
    const int rows = (int)min((long long)ROWS, m - row0);
    float acc[ROWS];
#pragma unroll
    for (int i = 0; i < ROWS; i++) acc[i] = 0.f;
    for (int r0 = 0; r0 < r; r0 += RANKS) {
      const int rc = min(RANKS, r - r0);
      // Shrink: h[i][j] = x[row0 + i] · a[r0 + j]. The loop bound is uniform per warp, so every
      // lane reaches the shuffles.
      for (int p = warp; p < rows * rc; p += WARPS) {
        const int i = p / rc;
        const int j = p % rc;
        const float* xr = x + (row0 + i) * k;
        const float* ar = a + (long long)(r0 + j) * k;
        float s = 0.f;
        if (vec4) {  // k % 4 == 0 and 16-byte aligned bases: every row is float4-aligned
          const float4* x4 = (const float4*)xr;
          const float4* a4 = (const float4*)ar;
#pragma unroll 4
          for (int q = lane; q < k / 4; q += 32) {
            const float4 u = x4[q];
            const float4 v = __ldg(a4 + q);
            s += u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
          }
        } else {
#pragma unroll 4
          for (int q = lane; q < k; q += 32) s += xr[q] * __ldg(ar + q);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) h[i][j] = s;
      }
      __syncthreads();
      // Expand: this thread's column of b against the chunk's h, for each of the block's rows (rows
      // past `rows` accumulate unused values: the unrolled loop keeps acc in registers).
      if (col < n) {
        const float* br = b + (long long)col * r + r0;
        for (int j = 0; j < rc; j++) {
          const float bj = __ldg(br + j);
#pragma unroll
          for (int i = 0; i < ROWS; i++) acc[i] += h[i][j] * bj;
        }
      }
      __syncthreads();
    }
    if (col < n) {
#pragma unroll
      for (int i = 0; i < ROWS; i++)
        if (i < rows) z[(row0 + i) * n + col] = y[(row0 + i) * n + col] + acc[i];
    }
  }
}
