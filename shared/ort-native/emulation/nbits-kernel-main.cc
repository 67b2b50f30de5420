// lora_nbits (lora-nbits.cuh) on the CPU (cuda-shim.h), for lora-kernels-emulated.test.ts:
//   nbits-kernel M K R N BLOCK [GRID_X GRID_Y]
// quantizes a seeded random weight [N, K] to MatMulNBits' 4-bit layout in blocks of BLOCK (random
// codes, scales and zero points, the last block padded), then runs the split form (lora_shrink,
// then lora_nbits with h given) with the grids lora-cuda.cc launches, or those capped at
// GRID_X × GRID_Y, and, for 1 ≤ M ≤ 8 and R > 0, the fused form (one launch, at most COPIES blocks
// resident at once, twice: the second reuses the barrier's words as the first left them), each
// through lora_nbits_row when M = 1 (as lora-cuda.cc launches it), whose split bits must also equal
// lora_nbits'. Prints the largest |z − reference| over the terms' magnitude sum (the reference in
// double from the same codes) and whether every form's bits are the same; then runs lora_dequant
// (the prefill form's first launch) and checks every weight against the reference's, bit for bit.
// Exits 0 when the error is at most 1e-5, the bits match, the barrier's words are (0, 2) and the
// weights are exact; 1 otherwise; 2 on bad arguments.
#define LORA_KERNEL inline
#include "cuda-shim.h"
#include "../lora-kernels.h"

#define COPIES 4
namespace copy0 {
#include "../lora-kernels.cu"
}
namespace copy1 {
#include "../lora-kernels.cu"
}
namespace copy2 {
#include "../lora-kernels.cu"
}
namespace copy3 {
#include "../lora-kernels.cu"
}

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: nbits-kernel M K R N BLOCK [GRID_X GRID_Y]\n");
    return 2;
  }
  const long long m = std::atoll(argv[1]);
  const int k = std::atoi(argv[2]), r = std::atoi(argv[3]), n = std::atoi(argv[4]), block = std::atoi(argv[5]);
  int shift = 0;
  while ((1 << shift) < block) shift++;
  if (block < 16 || (1 << shift) != block || k < 1 || n < 1 || r < 0 || m < 0) {
    std::fprintf(stderr, "BLOCK must be a power of two >= 16, K and N >= 1\n");
    return 2;
  }
  const int kBlocks = (k + block - 1) / block, zpCols = (kBlocks + 1) / 2;
  std::mt19937 engine(23);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::uniform_int_distribution<int> code(0, 15);
  auto random = [&](size_t count) {
    std::vector<float> v(count);
    for (auto& e : v) e = uniform(engine);
    return v;
  };
  const auto x = random(m * k), a = random(size_t(r) * k), b = random(size_t(n) * r);
  std::vector<unsigned char> q(size_t(n) * kBlocks * block / 2), zp(size_t(n) * zpCols);
  for (auto& e : q) e = (unsigned char)(code(engine) | (code(engine) << 4));
  for (auto& e : zp) e = (unsigned char)(code(engine) | (code(engine) << 4));
  std::vector<float> scales(size_t(n) * kBlocks);
  for (auto& e : scales) e = 0.05f + 0.1f * std::fabs(uniform(engine));
  auto weight = [&](int col, int kk) {
    const int blk = kk / block, t = kk % block;
    const unsigned char byte = q[(size_t(col) * kBlocks + blk) * (block / 2) + t / 2];
    const int c = (byte >> ((t & 1) * 4)) & 15;
    const int zero = (zp[size_t(col) * zpCols + blk / 2] >> ((blk & 1) * 4)) & 15;
    return double((float)(c - zero) * scales[size_t(col) * kBlocks + blk]);
  };
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  int vec4x = k % 4 == 0 && aligned(x.data()) && aligned(a.data());
  int vec4b = r % 4 == 0 && aligned(b.data());
  std::vector<float> z(m * n, NAN), h(m * r, NAN);
  Dim3 shrinkGrid{0, 0, 1}, grid{0, 0, 1};
  if (m > 0 && r > 0) loraShrinkGrid(m, r, &shrinkGrid.x, &shrinkGrid.y);
  if (m > 0) loraNbitsGrid(m, n, &grid.x, &grid.y);
  if (argc > 7) {
    shrinkGrid = {std::min(shrinkGrid.x, unsigned(std::atoi(argv[6]))), std::min(shrinkGrid.y, unsigned(std::atoi(argv[7]))), 1};
    grid = {std::min(grid.x, unsigned(std::atoi(argv[6]))), std::min(grid.y, unsigned(std::atoi(argv[7]))), 1};
  }
  if (m > 0 && r > 0)
    launch(shrinkGrid, LORA_THREADS, [&] { copy0::lora_shrink(x.data(), a.data(), h.data(), m, k, r, vec4x); });
  if (m > 0)
    launch(grid, LORA_THREADS, [&] {
      copy0::lora_nbits(x.data(), q.data(), scales.data(), zp.data(), a.data(), b.data(), r > 0 ? h.data() : nullptr,
                        nullptr, z.data(), m, k, n, r, kBlocks, shift, 0, vec4x, vec4b);
    });
  bool identical = true;
  // lora-cuda.cc launches lora_nbits_row for M = 1: its bits must be lora_nbits' (each row's sums
  // run in the same order whatever the tile).
  const bool row = m == 1;
  if (row) {
    const std::vector<float> tiled = z;
    std::fill(z.begin(), z.end(), NAN);
    launch(grid, LORA_THREADS, [&] {
      copy0::lora_nbits_row(x.data(), q.data(), scales.data(), zp.data(), a.data(), b.data(),
                            r > 0 ? h.data() : nullptr, nullptr, z.data(), m, k, n, r, kBlocks, shift, 0, vec4x, vec4b);
    });
    identical = std::memcmp(tiled.data(), z.data(), z.size() * sizeof(float)) == 0;
  }
  const bool fused = m >= 1 && m <= LORA_ROWS && r > 0;
  unsigned fusedGrid = 0;
  if (fused) {
    const std::vector<float> split = z;
    std::fill(z.begin(), z.end(), NAN);
    std::vector<unsigned> work(LORA_BARRIER_BYTES / 4 + m * r, 0u);
    const unsigned resident = argc > 7 ? std::min(COPIES, std::atoi(argv[6])) : COPIES;
    fusedGrid = loraNbitsFusedGrid(r, n, resident);
    decltype(&copy0::lora_nbits) copies[COPIES] = {copy0::lora_nbits, copy1::lora_nbits, copy2::lora_nbits,
                                                   copy3::lora_nbits};
    decltype(&copy0::lora_nbits) rowCopies[COPIES] = {copy0::lora_nbits_row, copy1::lora_nbits_row,
                                                      copy2::lora_nbits_row, copy3::lora_nbits_row};
    if (row) std::memcpy(copies, rowCopies, sizeof copies);
    for (int launchIndex = 0; launchIndex < 2; launchIndex++)
      launchResident(fusedGrid, LORA_THREADS, [&](unsigned bx) {
        copies[bx](x.data(), q.data(), scales.data(), zp.data(), a.data(), b.data(), nullptr, work.data(), z.data(), m,
                   k, n, r, kBlocks, shift, 1, vec4x, vec4b);
      });
    identical = identical && std::memcmp(split.data(), z.data(), z.size() * sizeof(float)) == 0 && work[0] == 0 &&
                work[1] == 2;
  }
  // lora_dequant (the prefill form's first launch): every weight as the reference dequantizes it, bit
  // for bit, with a grid capped below the bytes when one is given (its loop past the grid).
  bool dequantized = true;
  {
    std::vector<float> w(size_t(n) * k, NAN);
    const long long bytes = (long long)n * kBlocks * block / 2;
    // At most 8 blocks here (each emulated block is 256 threads), so the kernel's loop past the grid
    // runs in most cases; lora-cuda.cc launches loraDequantGrid's, a thread per byte.
    Dim3 dequantGrid{std::min(loraDequantGrid(bytes), 8u), 1, 1};
    if (argc > 7) dequantGrid.x = std::min(dequantGrid.x, unsigned(std::atoi(argv[6])));
    launch(dequantGrid, LORA_THREADS,
           [&] { copy0::lora_dequant(q.data(), scales.data(), zp.data(), w.data(), n, k, kBlocks, shift); });
    for (int c = 0; c < n; c++)
      for (int kk = 0; kk < k; kk++) dequantized = dequantized && double(w[size_t(c) * k + kk]) == weight(c, kk);
  }
  double worst = 0;
  for (long long i = 0; i < m; i++)
    for (int c = 0; c < n; c++) {
      double sum = 0, magnitude = 0;
      for (int kk = 0; kk < k; kk++) {
        const double t = double(x[i * k + kk]) * weight(c, kk);
        sum += t;
        magnitude += std::fabs(t);
      }
      for (int j = 0; j < r; j++) {
        double hv = 0, habs = 0;
        for (int kk = 0; kk < k; kk++) {
          const double t = double(x[i * k + kk]) * a[size_t(j) * k + kk];
          hv += t;
          habs += std::fabs(t);
        }
        sum += hv * b[size_t(c) * r + j];
        magnitude += habs * std::fabs(b[size_t(c) * r + j]);
      }
      const double error = std::fabs(z[i * n + c] - sum) / (magnitude > 0 ? magnitude : 1e-30);
      if (std::isnan(error) || error > worst) worst = std::isnan(worst) ? worst : error;  // NaN (z unwritten) sticks
    }
  std::printf("nbits M=%lld K=%d R=%d N=%d block %d vec4=%d/%d grid %ux%u, fused grid %u: worst=%.3g%s, dequant %s\n",
              m, k, r, n, block, vec4x, vec4b, grid.x, grid.y, fusedGrid, worst,
              fused || row ? (identical ? ", bits of every form identical" : ", bits DIFFERENT") : "",
              dequantized ? "exact" : "WRONG");
  return worst <= 1e-5 && identical && dequantized ? 0 : 1;
}
