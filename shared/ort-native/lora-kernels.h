// The tiling of lora-kernels.cu, shared by the kernel and its launch in lora-op.cc (C preprocessor
// only: nvcc and g++ both read it). Part of the PTX's source hash (lora-ptx.ts).
#pragma once

// Threads per block: one column of z each, so also the columns per block (grid x).
#define LORA_THREADS 512
// Rows of x (and z) per block (grid y, then a grid-stride loop past CUDA's 65535 limit).
#define LORA_ROWS 8
// Ranks of h per shared-memory chunk: R above it loops over chunks.
#define LORA_RANKS 64
