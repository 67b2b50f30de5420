// The CUDA kernel of ai.loracast.LoraShrinkExpand (lora-op.cc): z = y + (x · Aᵀ) · Bᵀ in one launch,
// what vLLM's punica kernels call "shrink" (x · Aᵀ) and "expand" (· Bᵀ, added to the base output).
// Compiled to PTX (`npm run build:lora-ptx`, nvcc -ptx -arch=compute_75) and committed as
// lora-kernels.ptx; the addon loads it through the driver API at run time (no CUDA toolkit at install).
// Editing this file makes lora-op.test.ts fail until the PTX is regenerated.
//
// Shapes (row-major float32): x [m, k], a [r, k], b [n, r], y and z [m, n].
// Grid (lora-kernels.h): y over row tiles of ROWS rows, x over column tiles of THREADS columns (one
// column per thread); both loop past the grid, so any m and n fit whatever grid the launch picks.
// Each block computes its row tile's h = x · Aᵀ, RANKS ranks at a time, into shared memory, then
// each thread adds Σ_j h[row][j] · b[col][j] for its columns; the first rank chunk adds y, later
// ones add to z. A block recomputes h for its rows, so the launch trades grid x (parallelism over
// columns, what decode's few rows need) against that redundancy (prefill's many row tiles fill the
// GPU with grid x = 1). The shrink gives each warp whole ranks, all the tile's rows at once: one load
// of a row of A serves every row of x, and a shuffle reduction over k ends each; 16 warps, so that
// r = 16 (one packed module at rank 16) is one rank per warp. Sums run in a fixed order: CUDA graph
// replays and plain runs give identical bits.

#include "lora-kernels.h"

#define THREADS LORA_THREADS
#define WARPS (THREADS / 32)
#define ROWS LORA_ROWS
#define RANKS LORA_RANKS

extern "C" __global__ void __launch_bounds__(THREADS)
    lora_shrink_expand(const float* __restrict__ x, const float* __restrict__ a, const float* __restrict__ b,
                       const float* __restrict__ y, float* __restrict__ z, long long m, int k, int r, int n,
                       int vec4) {
  __shared__ float h[ROWS][RANKS];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  // vec4: k % 4 == 0, r % 4 == 0 and 16-byte aligned bases, so every row of x, A and B is too.
  const float4* x4 = (const float4*)x;
  const float4* a4 = (const float4*)a;
  const int colStride = gridDim.x * THREADS;
  for (long long row0 = (long long)blockIdx.y * ROWS; row0 < m; row0 += (long long)gridDim.y * ROWS) {
    const int rows = (int)min((long long)ROWS, m - row0);
    if (r == 0)
      for (int col = blockIdx.x * THREADS + threadIdx.x; col < n; col += colStride)
        for (int i = 0; i < rows; i++) z[(row0 + i) * n + col] = y[(row0 + i) * n + col];
    for (int r0 = 0; r0 < r; r0 += RANKS) {
      const int rc = min(RANKS, r - r0);
      // Shrink: h[i][j] = x[row0 + i] · a[r0 + j] for every row i of the tile, rank j per warp (the
      // loop bounds are uniform per warp, so every lane reaches the shuffles).
      for (int j = warp; j < rc; j += WARPS) {
        float s[ROWS];
#pragma unroll
        for (int i = 0; i < ROWS; i++) s[i] = 0.f;
        if (vec4) {
          const int k4 = k / 4;
          const float4* ar = a4 + (long long)(r0 + j) * k4;
          const float4* xr = x4 + row0 * k4;
#pragma unroll 4
          for (int q = lane; q < k4; q += 32) {
            const float4 v = __ldg(ar + q);
#pragma unroll
            for (int i = 0; i < ROWS; i++)
              if (i < rows) {
                const float4 u = xr[(long long)i * k4 + q];
                s[i] += u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
              }
          }
        } else {
          const float* ar = a + (long long)(r0 + j) * k;
          const float* xr = x + row0 * k;
#pragma unroll 4
          for (int q = lane; q < k; q += 32) {
            const float v = __ldg(ar + q);
#pragma unroll
            for (int i = 0; i < ROWS; i++)
              if (i < rows) s[i] += xr[(long long)i * k + q] * v;
          }
        }
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
          if (i >= rows) break;
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) s[i] += __shfl_xor_sync(0xffffffffu, s[i], o);
          if (lane == 0) h[i][j] = s[i];
        }
      }
      __syncthreads();
      // Expand: each of this thread's columns, its row of b against the chunk's h for every row of
      // the tile (rows past `rows` accumulate unused values: the unrolled loop keeps acc in
      // registers); only this thread reads and writes its z entries, so the chunks need no sync.
      for (int col = blockIdx.x * THREADS + threadIdx.x; col < n; col += colStride) {
        const float* br = b + (long long)col * r + r0;
        float acc[ROWS];
#pragma unroll
        for (int i = 0; i < ROWS; i++) acc[i] = 0.f;
        if (vec4) {
          for (int j = 0; j < rc; j += 4) {
            const float4 v = __ldg((const float4*)(br + j));
#pragma unroll
            for (int i = 0; i < ROWS; i++)
              acc[i] += h[i][j] * v.x + h[i][j + 1] * v.y + h[i][j + 2] * v.z + h[i][j + 3] * v.w;
          }
        } else {
          for (int j = 0; j < rc; j++) {
            const float v = __ldg(br + j);
#pragma unroll
            for (int i = 0; i < ROWS; i++) acc[i] += h[i][j] * v;
          }
        }
        const float* base = r0 == 0 ? y : z;
#pragma unroll
        for (int i = 0; i < ROWS; i++)
          if (i < rows) z[(row0 + i) * n + col] = base[(row0 + i) * n + col] + acc[i];
      }
      __syncthreads();
    }
  }
}
