// The tiling of lora-kernels.cu and the grid its launch uses (lora-op.cc; the CPU emulation,
// emulation/lora-kernel-main.cc, too). Part of the PTX's source hash (lora-ptx.ts).
#pragma once

// Threads per block: one column of z each at a time, so the columns of a column tile.
#define LORA_THREADS 512
// Rows of x (and z) per row tile.
#define LORA_ROWS 8
// Ranks of h per shared-memory chunk: R above it loops over chunks.
#define LORA_RANKS 64
// About how many blocks the grid aims for when there are many row tiles (several waves over the
// H200's 132 SMs at one 512-thread block each).
#define LORA_TARGET_BLOCKS 512

// The grid for z [m, n] (m, n > 0): y = row tiles, capped at CUDA's 65535 (the kernel loops past
// it); x = column tiles, as many as fit in LORA_TARGET_BLOCKS over the row tiles but at least one.
// Decode (m ≤ 64: at most 8 row tiles) gets every column tile; long prefills get x = 1, where each
// block computes its row tile's h once for all columns.
static inline void loraGrid(long long m, long long n, unsigned* gridX, unsigned* gridY) {
  const long long rowTiles = (m + LORA_ROWS - 1) / LORA_ROWS;
  const long long colTiles = (n + LORA_THREADS - 1) / LORA_THREADS;
  long long x = (LORA_TARGET_BLOCKS + rowTiles - 1) / rowTiles;
  if (x > colTiles) x = colTiles;
  if (x < 1) x = 1;
  *gridX = (unsigned)x;
  *gridY = (unsigned)(rowTiles < 65535 ? rowTiles : 65535);
}
