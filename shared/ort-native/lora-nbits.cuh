// The CUDA kernel of ai.loracast.MatMulNBitsLora (nbits-op.h), part of lora-kernels.cu (included at
// its end, once per copy of the CPU emulation: no include guard): a base projection in ORT's
// MatMulNBits layout (4 bits) and its LoRA branch in one kernel,
//   z [m, n] = x · dequantize(q)ᵀ + (x · Aᵀ) · Bᵀ.
// Why: on the H200 a LoRA branch that is its own node costs 8–16 µs a decode step, more than an
// average kernel of the decoder (docs/benchmarks.md, session 18's floor); inside the projection's
// kernel the shrink and the barrier overlap the weight reads, and the expand is a short epilogue.
//
// Layout (com.microsoft.MatMulNBits, bits = 4; shared/model-builder/quantize.ts writes it): q
// [n, kBlocks, blockSize / 2] uint8, element t of a block in byte t / 2, low nibble first; scales
// float32 [n, kBlocks]; zero points uint8 [n, ⌈kBlocks / 2⌉] packed the same way, or null (8).
// A weight is (q − zero point) · scale, as MatMulNBits dequantizes. blockSize is a power of two
// ≥ 16, so every 32-bit word of q (8 weights) lies in one block.
//
// Work split: a warp per column of z (the block's warps take WARPS adjacent columns, the grid
// strides past them), its lanes over the column's words; each row's dot is reduced by shuffles and
// written to z; then the epilogue adds h · Bᵀ to the block's columns. h [m, r] is either given (the
// split form: lora_shrink ran before, into scratch) or made in this launch (fused, 1 ≤ m ≤ ROWS,
// a 1-D grid, every block resident): blocks take ranks as lora_shrink does (shrinkRank), arrive at
// the grid barrier, do their columns, then wait. Both forms run the same epilogue on the same z, so
// they give the same bits.

// The dot products of the tile's rows (at most TILE) with one column of the dequantized weight,
// written to z. Called by a whole warp (the shuffles); `lane` is its lane. Each row's sum runs in the
// same order whatever TILE is, so a row gets the same bits from either entry point.
template <int TILE>
__device__ __forceinline__ void nbitsColumn(const float* __restrict__ x, const unsigned char* __restrict__ q,
                                            const float* __restrict__ scales, const unsigned char* __restrict__ zp,
                                            float* __restrict__ z, long long row0, int rows, int k, int n,
                                            int kBlocks, int blockShift, long long col, int lane, int vec4x) {
  const int words = (kBlocks << blockShift) / 8;  // 32-bit words of the column's packed row
  const unsigned* qc = (const unsigned*)(q + col * (long long)(kBlocks << blockShift) / 2);
  const float* sc = scales + col * kBlocks;
  const unsigned char* zc = zp ? zp + col * (long long)((kBlocks + 1) / 2) : nullptr;
  float s[TILE];
#pragma unroll
  for (int i = 0; i < TILE; i++) s[i] = 0.f;
  for (int w = lane; w < words; w += 32) {
    const unsigned word = __ldg(qc + w);
    const int k0 = w * 8;
    const int block = k0 >> blockShift;
    const float scale = __ldg(sc + block);
    const int zero = zc ? (__ldg(zc + block / 2) >> ((block & 1) * 4)) & 15 : 8;
    float v[8];
#pragma unroll
    for (int t = 0; t < 8; t++) v[t] = (float)((int)((word >> (4 * t)) & 15u) - zero) * scale;
    if (vec4x && k0 + 8 <= k) {  // k % 4 == 0 and a 16-byte aligned x: every row float4-aligned
#pragma unroll
      for (int i = 0; i < TILE; i++)
        if (i < rows) {
          const float4* xr = (const float4*)(x + (row0 + i) * k + k0);
          const float4 u0 = __ldg(xr), u1 = __ldg(xr + 1);
          s[i] += (u0.x * v[0] + u0.y * v[1] + u0.z * v[2] + u0.w * v[3]) +
                  (u1.x * v[4] + u1.y * v[5] + u1.z * v[6] + u1.w * v[7]);
        }
    } else {
#pragma unroll
      for (int i = 0; i < TILE; i++)
        if (i < rows)
#pragma unroll
          for (int t = 0; t < 8; t++)
            if (k0 + t < k) s[i] += __ldg(x + (row0 + i) * k + k0 + t) * v[t];
    }
  }
  float mine = 0.f;
#pragma unroll
  for (int i = 0; i < TILE; i++) {
    if (i >= rows) break;  // uniform over the warp: every lane reaches the shuffles
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s[i] += __shfl_xor_sync(0xffffffffu, s[i], o);
    if (lane == i) mine = s[i];
  }
  if (lane < rows) z[(row0 + lane) * n + col] = mine;
}

// z[row0 + i][col] += h[row0 + i] · B[col] for the block's columns (those nbitsColumn wrote), a
// (column, row) pair per thread, RANKS ranks of h at a time through shared memory (each chunk's sum
// added to z in turn). h is read past L1 (__ldcg): in the fused form other blocks wrote it during
// this launch. Every thread of the block calls it (it synchronises the block).
__device__ __forceinline__ void nbitsEpilogue(const float* h, const float* __restrict__ b, float* z,
                                              long long row0, int rows, int n, int r, int vec4b,
                                              float (&hs)[ROWS][RANKS]) {
  for (int r0 = 0; r0 < r; r0 += RANKS) {
    const int rc = min(RANKS, r - r0);
    for (int e = threadIdx.x; e < ROWS * RANKS; e += THREADS) {
      const int i = e / RANKS, j = e % RANKS;
      hs[i][j] = i < rows && j < rc ? __ldcg(h + (row0 + i) * r + r0 + j) : 0.f;
    }
    __syncthreads();
    // Pair p: row p % ROWS of the block's column slot p / ROWS; slots are the block's columns in
    // increasing order, so the first slot past n ends the loop.
    for (long long p = threadIdx.x;; p += THREADS) {
      const int i = (int)(p % ROWS);
      const long long slot = p / ROWS;
      const long long col = ((slot / WARPS) * gridDim.x + blockIdx.x) * WARPS + slot % WARPS;
      if (col >= n) break;
      if (i >= rows) continue;
      const float* br = b + col * r + r0;
      float acc = 0.f;
      if (vec4b) {  // r % 4 == 0 and a 16-byte aligned B: every row float4-aligned
        for (int j = 0; j < rc; j += 4) {
          const float4 v = __ldg((const float4*)(br + j));
          acc = accumulate4(acc, hs[i][j], hs[i][j + 1], hs[i][j + 2], hs[i][j + 3], v.x, v.y, v.z, v.w);
        }
      } else {
        for (int j = 0; j < rc; j++) acc = accumulate1(acc, hs[i][j], __ldg(br + j));
      }
      float* out = z + (row0 + i) * n + col;
      *out = *out + acc;
    }
    __syncthreads();
  }
}

// z = x · dequantize(q)ᵀ (+ (x · Aᵀ) · Bᵀ when r > 0) in row tiles of TILE rows. Grid: x over
// column groups of WARPS, y over row tiles (lora-kernels.h: loraNbitsGrid). `fused` = 0: h [m, r]
// is given (or r = 0); `fused` = 1 (1 ≤ m ≤ TILE, r > 0, 1-D grid, every block resident: a
// cooperative launch): `work` is the stream's workspace, the barrier's words, then h at
// LORA_BARRIER_BYTES, made here.
template <int TILE>
__device__ __forceinline__ void nbitsRun(const float* __restrict__ x, const unsigned char* __restrict__ q,
                                         const float* __restrict__ scales, const unsigned char* __restrict__ zp,
                                         const float* __restrict__ a, const float* __restrict__ b, const float* h,
                                         unsigned* work, float* z, long long m, int k, int n, int r, int kBlocks,
                                         int blockShift, int fused, int vec4x, int vec4b) {
  __shared__ float partial[WARPS][ROWS];
  __shared__ float hs[ROWS][RANKS];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  unsigned seen = 0;
  if (fused) {
    float* made = (float*)((char*)work + LORA_BARRIER_BYTES);
    for (int j = blockIdx.x; j < r; j += gridDim.x) shrinkRank(x, a, made, 0, (int)m, k, r, j, vec4x, partial);
    seen = gridArrive(work);
    h = made;
  }
  const long long colStride = (long long)gridDim.x * WARPS;
  for (long long row0 = (long long)blockIdx.y * TILE; row0 < m; row0 += (long long)gridDim.y * TILE) {
    const int rows = (int)min((long long)TILE, m - row0);
    for (long long col = (long long)blockIdx.x * WARPS + warp; col < n; col += colStride)
      nbitsColumn<TILE>(x, q, scales, zp, z, row0, rows, k, n, kBlocks, blockShift, col, lane, vec4x);
    if (r == 0) continue;
    if (fused)
      gridWait(work, seen);
    else
      __syncthreads();  // the block's z stores, visible to the epilogue's threads
    nbitsEpilogue(h, b, z, row0, rows, n, r, vec4b, hs);
  }
}

// The entry points: row tiles of LORA_ROWS, and of one row (decode at batch 1). Their minimum
// blocks per multiprocessor cap the registers (128 and 64 a thread) so that 2 and 4 blocks of 256
// threads fit on each: a GEMV this small is bound by the latency of its loads, which more resident
// warps hide. ptxas (sm_90) spills 36 and 52 bytes a thread under those caps (the inlined shrink's
// unrolled loads), to L1; the H200's op check measured what these caps give (docs/benchmarks.md). Both take nbitsRun's
// parameters; lora-cuda.cc launches lora_nbits_row when m = 1.
#define NBITS_PARAMS                                                                                        \
  const float *__restrict__ x, const unsigned char *__restrict__ q, const float *__restrict__ scales,     \
      const unsigned char *__restrict__ zp, const float *__restrict__ a, const float *__restrict__ b,     \
      const float *h, unsigned *work, float *z, long long m, int k, int n, int r, int kBlocks, int blockShift, \
      int fused, int vec4x, int vec4b
LORA_KERNEL void __launch_bounds__(THREADS, 2) lora_nbits(NBITS_PARAMS) {
  nbitsRun<ROWS>(x, q, scales, zp, a, b, h, work, z, m, k, n, r, kBlocks, blockShift, fused, vec4x, vec4b);
}
LORA_KERNEL void __launch_bounds__(THREADS, 4) lora_nbits_row(NBITS_PARAMS) {
  nbitsRun<1>(x, q, scales, zp, a, b, h, work, z, m, k, n, r, kBlocks, blockShift, fused, vec4x, vec4b);
}
#undef NBITS_PARAMS

// w [n, k] = dequantize(q) in float32, for prefill-sized M (lora-cuda.cc then multiplies with
// cuBLAS, as ORT's MatMulNBits does from 2 rows on): a thread per byte of q (two weights), the grid
// striding past its size; padding past k is dropped.
LORA_KERNEL void __launch_bounds__(THREADS)
    lora_dequant(const unsigned char* __restrict__ q, const float* __restrict__ scales,
                 const unsigned char* __restrict__ zp, float* __restrict__ w, int n, int k, int kBlocks,
                 int blockShift) {
  const int half = (1 << blockShift) / 2;
  const long long rowBytes = (long long)kBlocks * half, total = rowBytes * n;
  for (long long e = (long long)blockIdx.x * THREADS + threadIdx.x; e < total; e += (long long)gridDim.x * THREADS) {
    const long long col = e / rowBytes;
    const int within = (int)(e % rowBytes), block = within / half;
    const int kk = (block << blockShift) + (within % half) * 2;
    const float scale = __ldg(scales + col * kBlocks + block);
    const int zero = zp ? (__ldg(zp + col * ((kBlocks + 1) / 2) + block / 2) >> ((block & 1) * 4)) & 15 : 8;
    const unsigned byte = __ldg(q + e);
    if (kk < k) w[col * k + kk] = (float)((int)(byte & 15u) - zero) * scale;
    if (kk + 1 < k) w[col * k + kk + 1] = (float)((int)(byte >> 4) - zero) * scale;
  }
}
