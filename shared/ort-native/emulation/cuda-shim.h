// Just enough of CUDA's execution model on the CPU to run lora-kernels.cu's kernel unchanged, for
// lora-kernels-emulated.test.ts (there is no GPU where CI runs): one std::thread per CUDA thread of
// a block, __syncthreads as a barrier of the block's threads, __shfl_xor_sync as an exchange
// between a warp's 32 threads behind two barriers, __shared__ as function statics (blocks run one
// at a time). It checks indexing, tiling and synchronisation, not speed or the memory model.
#pragma once
#include <algorithm>
#include <barrier>
#include <thread>
#include <vector>

struct float4 {
  float x, y, z, w;
};
struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};
thread_local Dim3 threadIdx, blockIdx;
Dim3 gridDim;

struct WarpExchange {
  std::barrier<>* barrier;
  float values[32];
};
std::barrier<>* blockBarrier = nullptr;
WarpExchange* warpExchanges = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(threads)

inline void __syncthreads() { blockBarrier->arrive_and_wait(); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
inline float __shfl_xor_sync(unsigned, float value, int mask) {
  const unsigned lane = threadIdx.x % 32;
  WarpExchange& w = warpExchanges[threadIdx.x / 32];
  w.barrier->arrive_and_wait();  // every lane has read the previous exchange
  w.values[lane] = value;
  w.barrier->arrive_and_wait();
  return w.values[lane ^ mask];
}
using std::min;

// Runs `kernel` over a grid of `grid` blocks of `threads` threads, one block after another.
template <class Kernel>
void launch(Dim3 grid, unsigned threads, Kernel kernel) {
  gridDim = grid;
  for (unsigned by = 0; by < grid.y; by++)
    for (unsigned bx = 0; bx < grid.x; bx++) {
      std::barrier<> block(threads);
      blockBarrier = &block;
      std::vector<WarpExchange> warps(threads / 32);
      std::vector<std::barrier<>*> owned;
      for (auto& w : warps) owned.push_back(w.barrier = new std::barrier<>(32));
      warpExchanges = warps.data();
      std::vector<std::thread> pool;
      for (unsigned t = 0; t < threads; t++)
        pool.emplace_back([&, t] {
          threadIdx = {t, 0, 0};
          blockIdx = {bx, by, 0};
          kernel();
        });
      for (auto& t : pool) t.join();
      for (auto* b : owned) delete b;
    }
}
