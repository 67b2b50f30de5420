// The CUDA kernels of ai.loracast.LoraShrinkExpand, launched by lora-cuda.cc: z = y + (x · Aᵀ) · Bᵀ
// on ORT's compute stream, either in two launches, what vLLM's punica kernels call "shrink" (h = x · Aᵀ,
// into a scratch buffer of the op's) and "expand" (z = y + h · Bᵀ), or, for decode-sized M, in one
// (lora_fused: the shrink, a grid-wide barrier, then the expand). Compiled to PTX
// (`npm run build:lora-ptx`, nvcc -ptx -arch=compute_75) and committed as lora-kernels.ptx; the
// addon loads it through the driver API at run time (no CUDA toolkit at install). Editing this file
// or lora-kernels.h makes lora-op.test.ts fail until the PTX is regenerated.
//
// Shapes (row-major float32): x [m, k], a [r, k], h [m, r], b [n, r], y and z [m, n]. Grids as
// lora-kernels.h sets them; every loop over row, rank and column tiles strides past the grid, so
// any shape fits any grid. Sums run in a fixed order, and every z element is computed by the same
// arithmetic in either form (shrinkRank, expandColumn): CUDA graph replays, plain runs, and the
// split and fused forms give identical bits, so a row's result does not depend on how many rows
// share the launch.
//
// Why lora_fused has a grid barrier: on the H200 the two launches cost ~4.5 µs each per branch,
// mostly launch latency, and two earlier one-launch kernels, where every block recomputed the h of
// its rows, lost to them from 8 rows on (the redundant shrink re-reads all of A per block). Here
// the shrink is done once, spread over the grid as in lora_shrink, and the blocks meet at a
// barrier in global memory before the expand; the expand's loads of B and y, which do not depend on
// h, are issued before the shrink so that their latency overlaps it.

#include "lora-kernels.h"

#define THREADS LORA_THREADS
#define WARPS (THREADS / 32)
#define ROWS LORA_ROWS
#define RANKS LORA_RANKS

// acc + h0·v0 + h1·v1 + h2·v2 + h3·v3, and acc + h·v: the expand's one expression in every form.
__device__ __forceinline__ float accumulate4(float acc, float h0, float h1, float h2, float h3, float v0, float v1,
                                             float v2, float v3) {
  return acc + (h0 * v0 + h1 * v1 + h2 * v2 + h3 * v3);
}
__device__ __forceinline__ float accumulate1(float acc, float h, float v) { return acc + h * v; }

// h[row0 + i][j] = x[row0 + i] · a[j] for the tile's rows: the block's threads split k (float4
// loads of a's row, read once, against every row of the tile), then a shuffle and shared-memory
// reduction in warp order. Every thread of the block calls it (it synchronises the block).
__device__ __forceinline__ void shrinkRank(const float* __restrict__ x, const float* __restrict__ a,
                                           float* __restrict__ h, long long row0, int rows, int k, int r, int j,
                                           int vec4, float (&partial)[WARPS][ROWS]) {
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
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

// z[row0 + i][col] for the tile's rows and one chunk of ranks (r0 … r0 + rc − 1, held in hs):
// acc starts from `base` (y for the first chunk, z after) and takes the chunk's ranks in order.
// `br` is b's row for col, offset to r0.
__device__ __forceinline__ void expandColumn(const float (&hs)[ROWS][RANKS], const float* __restrict__ br,
                                             const float* base, float* z, long long row0, int rows, int n, int col,
                                             int rc, int vec4) {
  // What the chunk adds to, loaded first so that its latency overlaps b's.
  float acc[ROWS];
#pragma unroll
  for (int i = 0; i < ROWS; i++) acc[i] = i < rows ? base[(row0 + i) * n + col] : 0.f;
  if (vec4) {  // r % 4 == 0 and a 16-byte aligned base: every row of b is float4-aligned
    for (int j = 0; j < rc; j += 4) {
      const float4 v = __ldg((const float4*)(br + j));
#pragma unroll
      for (int i = 0; i < ROWS; i++)
        acc[i] = accumulate4(acc[i], hs[i][j], hs[i][j + 1], hs[i][j + 2], hs[i][j + 3], v.x, v.y, v.z, v.w);
    }
  } else {
    for (int j = 0; j < rc; j++) {
      const float v = __ldg(br + j);
#pragma unroll
      for (int i = 0; i < ROWS; i++) acc[i] = accumulate1(acc[i], hs[i][j], v);
    }
  }
#pragma unroll
  for (int i = 0; i < ROWS; i++)
    if (i < rows) z[(row0 + i) * n + col] = acc[i];
}

// h = x · Aᵀ: block (rank, row tile).
LORA_KERNEL void __launch_bounds__(THREADS)
    lora_shrink(const float* __restrict__ x, const float* __restrict__ a, float* __restrict__ h, long long m, int k,
                int r, int vec4) {
  __shared__ float partial[WARPS][ROWS];
  for (long long row0 = (long long)blockIdx.y * ROWS; row0 < m; row0 += (long long)gridDim.y * ROWS) {
    const int rows = (int)min((long long)ROWS, m - row0);
    for (int j = blockIdx.x; j < r; j += gridDim.x) shrinkRank(x, a, h, row0, rows, k, r, j, vec4, partial);
  }
}

// z = y + h · Bᵀ: block (column tile, row tile), a column per thread; the tile's h goes through
// shared memory RANKS ranks at a time. r = 0 copies y.
LORA_KERNEL void __launch_bounds__(THREADS)
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
      for (int col = blockIdx.x * THREADS + threadIdx.x; col < n; col += colStride)
        expandColumn(hs, b + (long long)col * r + r0, r0 == 0 ? y : z, z, row0, rows, n, col, rc, vec4);
      __syncthreads();
    }
  }
}

#ifdef __CUDACC__
// The barrier's memory operations at GPU scope, as PTX's memory model names them (PTX ISA,
// "Memory Consistency Model": release and acquire patterns): each carries its own ordering, so the
// barrier needs no separate fence (membar.gl). The CPU emulation defines them with std::atomic_ref.
__device__ __forceinline__ unsigned atomicAddAcqRel(unsigned* p, unsigned v) {
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}
__device__ __forceinline__ unsigned loadAcquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ unsigned loadRelaxed(const unsigned* p) {
  unsigned v;
  asm volatile("ld.relaxed.gpu.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void storeRelaxed(unsigned* p, unsigned v) {
  asm volatile("st.relaxed.gpu.u32 [%0], %1;" : : "l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void storeRelease(unsigned* p, unsigned v) {
  asm volatile("st.release.gpu.u32 [%0], %1;" : : "l"(p), "r"(v) : "memory");
}
#endif

// A grid barrier in two halves, so that a block can work between arriving and waiting (lora_nbits
// does its GEMV there). Stores before gridArrive are visible after gridWait to loads that bypass L1
// (__ldcg). `words` [0] counts arrivals, [1] is the generation. Each block's thread 0 reads the
// generation, then arrives with an acquire-release add (releasing the block's stores, which
// __syncthreads ordered before it); the last to arrive has thereby acquired every block's, zeroes
// the count for the next launch and publishes the next generation with a release store, which the
// others poll with acquire loads. The generation can only change once every block has arrived, this
// one included, so the value read first (gridArrive's result, meaningful in thread 0) is the one to
// wait past. Needs every block resident at once: lora-cuda.cc launches the kernels that use it as
// cooperative kernels, which the driver refuses when they cannot be.
__device__ __forceinline__ unsigned gridArrive(unsigned* words) {
  __syncthreads();
  unsigned seen = 0;
  if (threadIdx.x == 0) {
    seen = loadRelaxed(words + 1);
    if (atomicAddAcqRel(words, 1u) == gridDim.x - 1) {
      storeRelaxed(words, 0u);
      storeRelease(words + 1, seen + 1);
    }
  }
  return seen;
}
__device__ __forceinline__ void gridWait(const unsigned* words, unsigned seen) {
  if (threadIdx.x == 0)
    while (loadAcquire(words + 1) == seen) __nanosleep(20);
  __syncthreads();
}
__device__ __forceinline__ void gridBarrier(unsigned* words) { gridWait(words, gridArrive(words)); }

// z = y + (x · Aᵀ) · Bᵀ in one launch for 1 ≤ m ≤ ROWS and r > 0, 1-D grid (loraFusedGrid), every
// block resident. `work` is lora-cuda.cc's workspace for the stream: the barrier's words, then h at
// LORA_BARRIER_BYTES. Blocks take ranks as lora_shrink does, meet at the barrier, then take columns
// as lora_expand does; before the shrink each thread loads y and b's first chunk of ranks for its
// first column (registers; the chunk of at most RANKS ranks unrolled).
LORA_KERNEL void __launch_bounds__(THREADS)
    lora_fused(const float* __restrict__ x, const float* __restrict__ a, const float* __restrict__ b,
               const float* __restrict__ y, float* __restrict__ z, unsigned* work, int m, int k, int r, int n,
               int vec4x, int vec4b) {
  __shared__ float partial[WARPS][ROWS];
  __shared__ float hs[ROWS][RANKS];
  float* h = (float*)((char*)work + LORA_BARRIER_BYTES);
  const int rows = m;
  const int col0 = blockIdx.x * THREADS + threadIdx.x;
  const int colStride = gridDim.x * THREADS;
  const int rc0 = min(RANKS, r);
  float yv[ROWS], bv[RANKS];
#pragma unroll
  for (int i = 0; i < ROWS; i++) yv[i] = 0.f;
#pragma unroll
  for (int j = 0; j < RANKS; j++) bv[j] = 0.f;
  if (col0 < n) {
#pragma unroll
    for (int i = 0; i < ROWS; i++)
      if (i < rows) yv[i] = __ldg(y + (long long)i * n + col0);
    const float* br = b + (long long)col0 * r;
    if (vec4b) {
#pragma unroll
      for (int j = 0; j < RANKS; j += 4)
        if (j < rc0) {
          const float4 v = __ldg((const float4*)(br + j));
          bv[j] = v.x;
          bv[j + 1] = v.y;
          bv[j + 2] = v.z;
          bv[j + 3] = v.w;
        }
    } else {
#pragma unroll
      for (int j = 0; j < RANKS; j++)
        if (j < rc0) bv[j] = __ldg(br + j);
    }
  }
  for (int j = blockIdx.x; j < r; j += gridDim.x) shrinkRank(x, a, h, 0, rows, k, r, j, vec4x, partial);
  gridBarrier(work);
  for (int r0 = 0; r0 < r; r0 += RANKS) {
    const int rc = min(RANKS, r - r0);
    for (int e = threadIdx.x; e < ROWS * RANKS; e += THREADS) {
      const int i = e / RANKS, j = e % RANKS;
      hs[i][j] = i < rows && j < rc ? __ldcg(h + (long long)i * r + r0 + j) : 0.f;
    }
    __syncthreads();
    for (int col = col0; col < n; col += colStride) {
      if (r0 > 0 || col != col0) {
        expandColumn(hs, b + (long long)col * r + r0, r0 == 0 ? y : z, z, 0, rows, n, col, rc, vec4b);
        continue;
      }
      // The first chunk of the first column, from the registers loaded before the shrink.
      float acc[ROWS];
#pragma unroll
      for (int i = 0; i < ROWS; i++) acc[i] = yv[i];
      if (vec4b) {
#pragma unroll
        for (int j = 0; j < RANKS; j += 4)
          if (j < rc)
#pragma unroll
            for (int i = 0; i < ROWS; i++)
              acc[i] = accumulate4(acc[i], hs[i][j], hs[i][j + 1], hs[i][j + 2], hs[i][j + 3], bv[j], bv[j + 1],
                                   bv[j + 2], bv[j + 3]);
      } else {
#pragma unroll
        for (int j = 0; j < RANKS; j++)
          if (j < rc)
#pragma unroll
            for (int i = 0; i < ROWS; i++) acc[i] = accumulate1(acc[i], hs[i][j], bv[j]);
      }
#pragma unroll
      for (int i = 0; i < ROWS; i++)
        if (i < rows) z[(long long)i * n + col] = acc[i];
    }
    __syncthreads();
  }
}

#include "lora-nbits.cuh"
