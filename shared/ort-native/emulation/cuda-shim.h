// Just enough of CUDA's execution model on the CPU to run lora-kernels.cu's kernels unchanged, for
// lora-kernels-emulated.test.ts (there is no GPU where CI runs): one std::thread per CUDA thread,
// __syncthreads as a barrier of the block's threads, __shfl_xor_sync as an exchange between a
// warp's 32 threads behind two barriers, __shared__ as function statics, the grid barrier's PTX
// memory operations as std::atomic_ref with the same orderings.
// `launch` runs the blocks one after another; `launchResident` runs them all at once, for a kernel
// with a grid-wide barrier, each block on its own copy of the kernel (its own statics: the includer
// compiles the kernels once per namespace, see lora-kernel-main.cc). It checks indexing, tiling and
// synchronisation, not speed or the memory model.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <functional>
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
thread_local std::barrier<>* blockBarrier = nullptr;
thread_local WarpExchange* warpExchanges = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

inline void __syncthreads() { blockBarrier->arrive_and_wait(); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
template <class T>
T __ldcg(const T* p) {
  return std::atomic_ref<T>(*const_cast<T*>(p)).load();
}
inline void __nanosleep(unsigned) { std::this_thread::yield(); }
// lora-kernels.cu's PTX memory operations (atom.add.acq_rel.gpu, ld.acquire.gpu, ...).
inline unsigned atomicAddAcqRel(unsigned* p, unsigned v) {
  return std::atomic_ref<unsigned>(*p).fetch_add(v, std::memory_order_acq_rel);
}
inline unsigned loadAcquire(const unsigned* p) {
  return std::atomic_ref<unsigned>(*const_cast<unsigned*>(p)).load(std::memory_order_acquire);
}
inline unsigned loadRelaxed(const unsigned* p) {
  return std::atomic_ref<unsigned>(*const_cast<unsigned*>(p)).load(std::memory_order_relaxed);
}
inline void storeRelaxed(unsigned* p, unsigned v) { std::atomic_ref<unsigned>(*p).store(v, std::memory_order_relaxed); }
inline void storeRelease(unsigned* p, unsigned v) { std::atomic_ref<unsigned>(*p).store(v, std::memory_order_release); }
inline float __shfl_xor_sync(unsigned, float value, int mask) {
  const unsigned lane = threadIdx.x % 32;
  WarpExchange& w = warpExchanges[threadIdx.x / 32];
  w.barrier->arrive_and_wait();  // every lane has read the previous exchange
  w.values[lane] = value;
  w.barrier->arrive_and_wait();
  return w.values[lane ^ mask];
}
using std::min;

// One block's barriers, made before its threads start.
struct BlockRun {
  std::barrier<> block;
  std::vector<WarpExchange> warps;
  std::vector<std::unique_ptr<std::barrier<>>> owned;
  explicit BlockRun(unsigned threads) : block(threads), warps(threads / 32) {
    for (auto& w : warps) {
      owned.push_back(std::make_unique<std::barrier<>>(32));
      w.barrier = owned.back().get();
    }
  }
};

// Starts `threads` threads of block (bx, by) running kernel(bx) into `pool`.
inline void startBlock(BlockRun& run, unsigned bx, unsigned by, unsigned threads,
                       const std::function<void(unsigned)>& kernel, std::vector<std::thread>& pool) {
  for (unsigned t = 0; t < threads; t++)
    pool.emplace_back([&run, &kernel, t, bx, by] {
      threadIdx = {t, 0, 0};
      blockIdx = {bx, by, 0};
      blockBarrier = &run.block;
      warpExchanges = run.warps.data();
      kernel(bx);
    });
}

// Runs `kernel` over a grid of `grid` blocks of `threads` threads, one block after another.
template <class Kernel>
void launch(Dim3 grid, unsigned threads, Kernel kernel) {
  gridDim = grid;
  const std::function<void(unsigned)> body = [&](unsigned) { kernel(); };
  for (unsigned by = 0; by < grid.y; by++)
    for (unsigned bx = 0; bx < grid.x; bx++) {
      BlockRun run(threads);
      std::vector<std::thread> pool;
      startBlock(run, bx, by, threads, body, pool);
      for (auto& t : pool) t.join();
    }
}

// Runs a 1-D grid of `blocks` blocks all at once; block bx calls kernel(bx).
inline void launchResident(unsigned blocks, unsigned threads, const std::function<void(unsigned)>& kernel) {
  gridDim = {blocks, 1, 1};
  std::vector<std::unique_ptr<BlockRun>> runs;
  for (unsigned bx = 0; bx < blocks; bx++) runs.push_back(std::make_unique<BlockRun>(threads));
  std::vector<std::thread> pool;
  for (unsigned bx = 0; bx < blocks; bx++) startBlock(*runs[bx], bx, 0, threads, kernel, pool);
  for (auto& t : pool) t.join();
}
