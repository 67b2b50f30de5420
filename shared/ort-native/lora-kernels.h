// The tiling of lora-kernels.cu and the grids its launches use (lora-op.cc; the CPU emulation,
// emulation/lora-kernel-main.cc, too). Part of the PTX's source hash (lora-ptx.ts).
#pragma once

// Threads per block of either kernel.
#define LORA_THREADS 256
// Rows of x (and h, z) per row tile.
#define LORA_ROWS 8
// Ranks of h the expand holds in shared memory at a time: R above it loops over chunks.
#define LORA_RANKS 64
// Ranks a warp of lora_fused's shrink accumulates at once (each load of x feeds this many FMAs).
#define LORA_GROUP 4
// CUDA's limit on grid y (the kernels loop over row tiles past it).
#define LORA_MAX_GRID_Y 65535

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

// lora_fused's grid for z [m, n] (m, n > 0): lora_expand's (each block computes its row tile's h).
static inline void loraFusedGrid(long long m, long long n, unsigned* gridX, unsigned* gridY) {
  loraExpandGrid(m, n, gridX, gridY);
}
