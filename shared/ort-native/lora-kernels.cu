// The CUDA kernels of ai.loracast.LoraShrinkExpand (lora-op.cc): z = y + (x · Aᵀ) · Bᵀ on ORT's
// compute stream, either in two launches, what vLLM's punica kernels call "shrink" (h = x · Aᵀ,
// into a scratch buffer of the op's) and "expand" (z = y + h · Bᵀ), or, for decode-sized M, in one
// (lora_fused, each block computing the h it needs). Compiled to PTX (`npm run build:lora-ptx`,
// nvcc -ptx -arch=compute_75) and committed as lora-kernels.ptx; the addon loads it through the
// driver API at run time (no CUDA toolkit at install). Editing this file or lora-kernels.h makes
// lora-op.test.ts fail until the PTX is regenerated.
//
// Shapes (row-major float32): x [m, k], a [r, k], h [m, r], b [n, r], y and z [m, n]. Grids as
// lora-kernels.h sets them; every loop over row, rank and column tiles strides past the grid, so
// any shape fits any grid. Sums run in a fixed order: CUDA graph replays and plain runs give
// identical bits.
//
// A first one-launch kernel (every block recomputing its rows' h, a warp per (row, rank) dot
// product) measured slower than cuBLAS's two Gemms on the H200 (µs per branch under CUDA graph
// replay, M = 1 / 8: qkv 15 / 42 against 12 / 14, down 14 / 71 against 11 / 15): its shrink ran
// M · R dot products over K serially in a handful of blocks. The split kernels spread them over the
// grid, a block per rank; lora_fused instead puts all of a block's threads on them at once, each
// load of x feeding several ranks.

#include "lora-kernels.h"

#define THREADS LORA_THREADS
#define WARPS (THREADS / 32)
#define ROWS LORA_ROWS
#define RANKS LORA_RANKS
#define GROUP LORA_GROUP

// h[row][j] = x[row] · a[j]: block (j, row tile), its threads splitting k (float4 loads of a's row,
// read once, against every row of the tile), then a shuffle and shared-memory reduction.
extern "C" __global__ void __launch_bounds__(THREADS)
    lora_shrink(const float* __restrict__ x, const float* __restrict__ a, float* __restrict__ h, long long m, int k,
                int r, int vec4) {
  __shared__ float partial[WARPS][ROWS];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  for (long long row0 = (long long)blockIdx.y * ROWS; row0 < m; row0 += (long long)gridDim.y * ROWS) {
    const int rows = (int)min((long long)ROWS, m - row0);
    for (int j = blockIdx.x; j < r; j += gridDim.x) {
      float s[ROWS];
#pragma unroll
      for (int i = 0; i < ROWS; i++) s[i] = 0.f;
      if (vec4) {  // k % 4 == 0 and 16-byte aligned bases: every row is float4-aligned
        const int k4 = k / 4;
        const float4* ar = (const float4*)a + (long long)j * k4;
        const float4* xr = (const float4*)x + row0 * k4;
#pragma unroll 4
        for (int q = threadIdx.x; q < k4; q += THREADS) {
          const float4 v = __ldg(ar + q);
#pragma unroll
          for (int i = 0; i < ROWS; i++)
            if (i < rows) {
              const float4 u = __ldg(xr + (long long)i * k4 + q);
              s[i] += u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
            }
        }
      } else {
        const float* ar = a + (long long)j * k;
        const float* xr = x + row0 * k;
#pragma unroll 4
        for (int q = threadIdx.x; q < k; q += THREADS) {
          const float v = __ldg(ar + q);
#pragma unroll
          for (int i = 0; i < ROWS; i++)
            if (i < rows) s[i] += __ldg(xr + (long long)i * k + q) * v;
        }
      }
#pragma unroll
      for (int i = 0; i < ROWS; i++) {
        if (i >= rows) break;  // uniform over the block: every lane reaches the shuffles
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s[i] += __shfl_xor_sync(0xffffffffu, s[i], o);
        if (lane == 0) partial[warp][i] = s[i];
      }
      __syncthreads();
      if ((int)threadIdx.x < rows) {
        float sum = 0.f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) sum += partial[w][threadIdx.x];
        h[(row0 + threadIdx.x) * r + j] = sum;
      }
      __syncthreads();
    }
  }
}

// z[row][col] = y[row][col] + h[row] · b[col]: block (column tile, row tile), a column per thread;
// the tile's h goes through shared memory RANKS ranks at a time (the first chunk adds to y, later
// ones to z: only this thread reads and writes its z entries). r = 0 copies y.
extern "C" __global__ void __launch_bounds__(THREADS)
    lora_expand(const float* __restrict__ h, const float* __restrict__ b, const float* __restrict__ y,
                float* __restrict__ z, long long m, int r, int n, int vec4) {
  __shared__ float hs[ROWS][RANKS];
  const int colStride = gridDim.x * THREADS;
  for (long long row0 = (long long)blockIdx.y * ROWS; row0 < m; row0 += (long long)gridDim.y * ROWS) {
    const int rows = (int)min((long long)ROWS, m - row0);
    if (r == 0)
      for (int col = blockIdx.x * THREADS + threadIdx.x; col < n; col += colStride)
        for (int i = 0; i < rows; i++) z[(row0 + i) * n + col] = y[(row0 + i) * n + col];
    for (int r0 = 0; r0 < r; r0 += RANKS) {
      const int rc = min(RANKS, r - r0);
      for (int e = threadIdx.x; e < ROWS * RANKS; e += THREADS) {
        const int i = e / RANKS, j = e % RANKS;
        hs[i][j] = i < rows && j < rc ? h[(row0 + i) * r + r0 + j] : 0.f;
      }
      __syncthreads();
      for (int col = blockIdx.x * THREADS + threadIdx.x; col < n; col += colStride) {
        const float* br = b + (long long)col * r + r0;
        // What the chunk adds to, loaded first so that its latency overlaps b's.
        const float* base = r0 == 0 ? y : z;
        float acc[ROWS];
#pragma unroll
        for (int i = 0; i < ROWS; i++) acc[i] = i < rows ? base[(row0 + i) * n + col] : 0.f;
        if (vec4) {  // r % 4 == 0 and a 16-byte aligned base: every row of b is float4-aligned
          for (int j = 0; j < rc; j += 4) {
            const float4 v = __ldg((const float4*)(br + j));
#pragma unroll
            for (int i = 0; i < ROWS; i++)
              acc[i] += hs[i][j] * v.x + hs[i][j + 1] * v.y + hs[i][j + 2] * v.z + hs[i][j + 3] * v.w;
          }
        } else {
          for (int j = 0; j < rc; j++) {
            const float v = __ldg(br + j);
#pragma unroll
            for (int i = 0; i < ROWS; i++) acc[i] += hs[i][j] * v;
          }
        }
#pragma unroll
        for (int i = 0; i < ROWS; i++)
          if (i < rows) z[(row0 + i) * n + col] = acc[i];
      }
      __syncthreads();
    }
  }
}

// One thread's share of lora_fused's shrink: s[jj][i] += x[row0 + i] · a[first + jj] over the k
// indices start, start + stride, … (float4 units when vec4x), for the gr ≤ GROUP ranks and the
// rows < TR (rows ≤ TR: instantiated for 1, 2, 4 and ROWS rows, so that M = 1 spends no FMAs on
// absent rows).
template <int TR>
__device__ __forceinline__ void fusedShrinkSlice(const float* __restrict__ x, const float* __restrict__ a,
                                                 long long row0, int rows, int k, int first, int gr, int start,
                                                 int stride, int vec4x, float (&s)[GROUP][ROWS]) {
  if (vec4x) {  // k % 4 == 0 and 16-byte aligned bases: every row of x and A is float4-aligned
    const int k4 = k / 4;
    const float4* ar = (const float4*)a + (long long)first * k4;
    const float4* xr = (const float4*)x + row0 * k4;
#pragma unroll 2
    for (int q = start; q < k4; q += stride) {
      float4 u[TR];
#pragma unroll
      for (int i = 0; i < TR; i++) u[i] = i < rows ? __ldg(xr + (long long)i * k4 + q) : float4{0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int jj = 0; jj < GROUP; jj++)
        if (jj < gr) {
          const float4 v = __ldg(ar + (long long)jj * k4 + q);
#pragma unroll
          for (int i = 0; i < TR; i++) s[jj][i] += u[i].x * v.x + u[i].y * v.y + u[i].z * v.z + u[i].w * v.w;
        }
    }
  } else {
    const float* ar = a + (long long)first * k;
    const float* xr = x + row0 * k;
#pragma unroll 2
    for (int q = start; q < k; q += stride) {
      float u[TR];
#pragma unroll
      for (int i = 0; i < TR; i++) u[i] = i < rows ? __ldg(xr + (long long)i * k + q) : 0.f;
#pragma unroll
      for (int jj = 0; jj < GROUP; jj++)
        if (jj < gr) {
          const float v = __ldg(ar + (long long)jj * k + q);
#pragma unroll
          for (int i = 0; i < TR; i++) s[jj][i] += u[i] * v;
        }
    }
  }
}

// z = y + (x · Aᵀ) · Bᵀ in one launch, for decode-sized M (lora-op.cc picks it; the two kernels
// above take prefill): block (column tile, row tile). Each block computes its row tile's h itself,
// RANKS ranks at a time into shared memory, then expands its THREADS columns with that chunk;
// blocks repeat each other's shrink (at most a few hundred thousand MACs over an L2-resident A)
// to save the second launch and h's round trip through global memory. Shrink layout: a warp takes
// GROUP ranks at once (each x load feeds GROUP FMAs), its lanes splitting k; when a chunk has
// fewer rank groups than the block has warps, `split` warps share a group, each a strided share
// of k, and their sums meet in shared memory in warp order. Every sum has a fixed order.
extern "C" __global__ void __launch_bounds__(THREADS)
    lora_fused(const float* __restrict__ x, const float* __restrict__ a, const float* __restrict__ b,
               const float* __restrict__ y, float* __restrict__ z, long long m, int k, int r, int n, int vec4x,
               int vec4b) {
  __shared__ float hs[ROWS][RANKS];
  __shared__ float part[WARPS][GROUP][ROWS];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int colStride = gridDim.x * THREADS;
  for (long long row0 = (long long)blockIdx.y * ROWS; row0 < m; row0 += (long long)gridDim.y * ROWS) {
    const int rows = (int)min((long long)ROWS, m - row0);
    if (r == 0)
      for (int col = blockIdx.x * THREADS + threadIdx.x; col < n; col += colStride)
        for (int i = 0; i < rows; i++) z[(row0 + i) * n + col] = y[(row0 + i) * n + col];
    for (int r0 = 0; r0 < r; r0 += RANKS) {
      const int rc = min(RANKS, r - r0);
      const int groups = (rc + GROUP - 1) / GROUP;
      int split = 1;  // warps per rank group: a power of two, split · groups ≤ WARPS
      while (split * 2 * groups <= WARPS) split *= 2;
      const int slice = warp % split;
      for (int g = warp / split; g < groups && warp < split * groups; g += WARPS / split) {
        const int j0 = g * GROUP;  // the group's first rank in the chunk
        const int gr = min(GROUP, rc - j0);
        float s[GROUP][ROWS];
#pragma unroll
        for (int jj = 0; jj < GROUP; jj++)
#pragma unroll
          for (int i = 0; i < ROWS; i++) s[jj][i] = 0.f;
        if (rows == 1)
          fusedShrinkSlice<1>(x, a, row0, rows, k, r0 + j0, gr, slice * 32 + lane, split * 32, vec4x, s);
        else if (rows <= 2)
          fusedShrinkSlice<2>(x, a, row0, rows, k, r0 + j0, gr, slice * 32 + lane, split * 32, vec4x, s);
        else if (rows <= 4)
          fusedShrinkSlice<4>(x, a, row0, rows, k, r0 + j0, gr, slice * 32 + lane, split * 32, vec4x, s);
        else
          fusedShrinkSlice<ROWS>(x, a, row0, rows, k, r0 + j0, gr, slice * 32 + lane, split * 32, vec4x, s);
#pragma unroll
        for (int jj = 0; jj < GROUP; jj++) {
          if (jj >= gr) break;  // uniform over the warp: every lane reaches the shuffles
#pragma unroll
          for (int i = 0; i < ROWS; i++) {
            if (i >= rows) break;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s[jj][i] += __shfl_xor_sync(0xffffffffu, s[jj][i], o);
            if (lane == 0) {
              if (split == 1)
                hs[i][j0 + jj] = s[jj][i];
              else
                part[warp][jj][i] = s[jj][i];
            }
          }
        }
      }
      __syncthreads();
      if (split > 1) {  // one group per warp here: group g's sums are in warps g · split … g · split + split − 1
        for (int e = threadIdx.x; e < rows * rc; e += THREADS) {
          const int i = e / rc, j = e % rc, g = j / GROUP;
          float sum = 0.f;
          for (int p = 0; p < split; p++) sum += part[g * split + p][j % GROUP][i];
          hs[i][j] = sum;
        }
        __syncthreads();
      }
      for (int col = blockIdx.x * THREADS + threadIdx.x; col < n; col += colStride) {
        const float* br = b + (long long)col * r + r0;
        const float* base = r0 == 0 ? y : z;  // only this thread reads and writes its z entries
        float acc[ROWS];
#pragma unroll
        for (int i = 0; i < ROWS; i++) acc[i] = i < rows ? base[(row0 + i) * n + col] : 0.f;
        if (vec4b) {  // r % 4 == 0 and a 16-byte aligned base: every row of b is float4-aligned
#pragma unroll 4
          for (int j = 0; j < rc; j += 4) {
            const float4 v = __ldg((const float4*)(br + j));
#pragma unroll
            for (int i = 0; i < ROWS; i++)
              if (i < rows) acc[i] += hs[i][j] * v.x + hs[i][j + 1] * v.y + hs[i][j + 2] * v.z + hs[i][j + 3] * v.w;
          }
        } else {
          for (int j = 0; j < rc; j++) {
            const float v = __ldg(br + j);
#pragma unroll
            for (int i = 0; i < ROWS; i++)
              if (i < rows) acc[i] += hs[i][j] * v;
          }
        }
#pragma unroll
        for (int i = 0; i < ROWS; i++)
          if (i < rows) z[(row0 + i) * n + col] = acc[i];
      }
      __syncthreads();
    }
  }
}
