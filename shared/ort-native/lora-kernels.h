// The tiling of lora-kernels.cu and the grids its launches use (lora-cuda.cc; the CPU emulation,
// emulation/lora-kernel-main.cc, too). Part of the PTX's source hash (lora-ptx.ts).
#pragma once

// How the kernels are declared: CUDA entry points with C names (lora-cuda.cc looks them up by name in
// the PTX). The CPU emulation defines it first, as plain functions it can include more than once.
#ifndef LORA_KERNEL
#define LORA_KERNEL extern "C" __global__
#endif

// Threads per block of every kernel.
#define LORA_THREADS 256
// Rows of x (and h, z) per row tile; lora_fused takes at most this many rows.
#define LORA_ROWS 8
// Ranks of h the expand holds in shared memory at a time: R above it loops over chunks.
#define LORA_RANKS 64
// CUDA's limit on grid y (the kernels loop over row tiles past it).
#define LORA_MAX_GRID_Y 65535
// Bytes at the start of lora_fused's workspace that hold its grid barrier (two unsigned words:
// arrivals, generation; zero before the first launch, and left zero by every launch). h follows.
#define LORA_BARRIER_BYTES 128

static inline unsigned loraRowGrid(long long m) {
  const long long rowTiles = (m + LORA_ROWS - 1) / LORA_ROWS;
  return (unsigned)(rowTiles < LORA_MAX_GRID_Y ? rowTiles : LORA_MAX_GRID_Y);
}

// lora_shrink's grid for h [m, r] (m, r > 0): x = one block per rank (r ≤ 2^30), y = row tiles.
static inline void loraShrinkGrid(long long m, long long r, unsigned* gridX, unsigned* gridY) {
  *gridX = (unsigned)r;
  *gridY = loraRowGrid(m);
}

// lora_expand's grid for z [m, n] (m, n > 0): x = column tiles of LORA_THREADS columns, y = row tiles.
static inline void loraExpandGrid(long long m, long long n, unsigned* gridX, unsigned* gridY) {
  *gridX = (unsigned)((n + LORA_THREADS - 1) / LORA_THREADS);
  *gridY = loraRowGrid(m);
}

// lora_fused's grid (1-D) for r ranks and n columns (r, n > 0): a block per rank for the shrink or a
// block per LORA_THREADS columns for the expand, whichever is more, capped at `resident`, the blocks
// the device runs at once (its grid barrier needs every block resident; the kernel's loops cover
// ranks and columns past the grid).
static inline unsigned loraFusedGrid(long long r, long long n, unsigned resident) {
  const long long columnTiles = (n + LORA_THREADS - 1) / LORA_THREADS;
  const long long wanted = r > columnTiles ? r : columnTiles;
  return (unsigned)(wanted < (long long)resident ? wanted : (long long)resident);
}

// lora_nbits' grid for z [m, n] (m, n > 0) in the split form: x = column groups of LORA_THREADS / 32
// columns (a warp per column), y = row tiles.
static inline void loraNbitsGrid(long long m, long long n, unsigned* gridX, unsigned* gridY) {
  const long long groups = (n + LORA_THREADS / 32 - 1) / (LORA_THREADS / 32);
  *gridX = (unsigned)(groups < 0x7fffffffLL ? groups : 0x7fffffffLL);
  *gridY = loraRowGrid(m);
}

// lora_nbits' grid (1-D) in the fused form for r ranks and n columns (r, n > 0): a block per column
// group or per rank, whichever is more, capped at `resident` (every block resident for the grid
// barrier; the kernel's loops cover columns and ranks past the grid).
static inline unsigned loraNbitsFusedGrid(long long r, long long n, unsigned resident) {
  const long long groups = (n + LORA_THREADS / 32 - 1) / (LORA_THREADS / 32);
  const long long wanted = r > groups ? r : groups;
  return (unsigned)(wanted < (long long)resident ? wanted : (long long)resident);
}

// lora_dequant's grid for a weight of `bytes` bytes (> 0): a thread per byte, capped (the kernel
// strides past the grid).
static inline unsigned loraDequantGrid(long long bytes) {
  const long long blocks = (bytes + LORA_THREADS - 1) / LORA_THREADS;
  return (unsigned)(blocks < 65535 * 16 ? blocks : 65535 * 16);
}
