// lora-kernels.cu's kernels on the CPU (cuda-shim.h), for lora-kernels-emulated.test.ts:
//   lora-kernel split|fused M K R N [GRID_X GRID_Y]
// runs lora_shrink then lora_expand (split) or lora_fused (fused) on seeded random operands with
// the grids lora-cuda.cc launches (lora-kernels.h), or those capped at GRID_X × GRID_Y (the
// kernels' loops past the grid), and prints the largest |z − reference| over the terms' magnitude
// sum (the reference in double). lora_fused's grid is at most COPIES blocks, all running at once
// (its grid barrier), and its z must equal the split form's bit for bit (the kernels' promise that
// a row's result does not depend on the form). Exits 0 when the error is at most 1e-5 (and, for
// fused, the bits match), 1 otherwise.
#define LORA_KERNEL inline
#include "cuda-shim.h"
#include "../lora-kernels.h"

// The kernels once per resident block of lora_fused: each copy has its own __shared__ statics.
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
using copy0::lora_expand;
using copy0::lora_shrink;

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

int main(int argc, char** argv) {
  const bool fused = argc > 1 && std::string(argv[1]) == "fused";
  if (argc < 6 || (!fused && std::string(argv[1]) != "split")) {
    std::fprintf(stderr, "usage: lora-kernel split|fused M K R N [GRID_X GRID_Y]\n");
    return 2;
  }
  argv++;
  argc--;
  const long long m = std::atoll(argv[1]);
  const int k = std::atoi(argv[2]), r = std::atoi(argv[3]), n = std::atoi(argv[4]);
  std::mt19937 engine(19);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  auto random = [&](size_t count) {
    std::vector<float> v(count);
    for (auto& e : v) e = uniform(engine);
    return v;
  };
  const auto x = random(m * k), a = random(size_t(r) * k), b = random(size_t(n) * r), y = random(m * n);
  std::vector<float> z(m * n, NAN), h(m * r, NAN);
  auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const int shrinkVec4 = k % 4 == 0 && aligned(x.data()) && aligned(a.data());
  const int expandVec4 = r % 4 == 0 && aligned(b.data());
  // The grids lora-cuda.cc launches, or the ones given (smaller than the tiles: the kernels' loops
  // past the grid).
  Dim3 shrinkGrid{0, 0, 1}, expandGrid{0, 0, 1};
  if (m > 0 && r > 0) loraShrinkGrid(m, r, &shrinkGrid.x, &shrinkGrid.y);
  if (m > 0 && n > 0) loraExpandGrid(m, n, &expandGrid.x, &expandGrid.y);
  if (argc > 6) {
    shrinkGrid = {std::min(shrinkGrid.x, unsigned(std::atoi(argv[5]))), std::min(shrinkGrid.y, unsigned(std::atoi(argv[6]))), 1};
    expandGrid = {std::min(expandGrid.x, unsigned(std::atoi(argv[5]))), std::min(expandGrid.y, unsigned(std::atoi(argv[6]))), 1};
  }
  if (fused && !(m >= 1 && m <= LORA_ROWS && r > 0 && n > 0)) {
    std::fprintf(stderr, "lora_fused takes 1 <= M <= %d and R, N > 0\n", LORA_ROWS);
    return 2;
  }
  const unsigned resident = argc > 6 ? std::min(COPIES, std::atoi(argv[5])) : COPIES;
  const unsigned fusedGrid = fused ? loraFusedGrid(r, n, resident) : 0;
  if (m > 0 && r > 0)
    launch(shrinkGrid, LORA_THREADS, [&] { lora_shrink(x.data(), a.data(), h.data(), m, k, r, shrinkVec4); });
  if (m > 0 && n > 0)
    launch(expandGrid, LORA_THREADS,
           [&] { lora_expand(r > 0 ? h.data() : nullptr, b.data(), y.data(), z.data(), m, r, n, expandVec4); });
  bool identical = true;
  if (fused) {
    const std::vector<float> split = z;
    std::fill(z.begin(), z.end(), NAN);
    // The workspace: the barrier's words (zero), then h.
    std::vector<unsigned> work(LORA_BARRIER_BYTES / 4 + m * r, 0u);
    void (*copies[COPIES])(const float*, const float*, const float*, const float*, float*, unsigned*, int, int, int,
                           int, int, int) = {copy0::lora_fused, copy1::lora_fused, copy2::lora_fused, copy3::lora_fused};
    for (int launchIndex = 0; launchIndex < 2; launchIndex++)  // the second reuses the barrier as left
      launchResident(fusedGrid, LORA_THREADS, [&](unsigned bx) {
        copies[bx](x.data(), a.data(), b.data(), y.data(), z.data(), work.data(), int(m), k, r, n, shrinkVec4,
                   expandVec4);
      });
    identical = std::memcmp(split.data(), z.data(), z.size() * sizeof(float)) == 0 && work[0] == 0 && work[1] == 2;
  }
  double worst = 0;
  for (long long i = 0; i < m; i++)
    for (int c = 0; c < n; c++) {
      double sum = y[i * n + c], magnitude = std::fabs(sum);
      for (int j = 0; j < r; j++) {
        double h = 0, habs = 0;
        for (int q = 0; q < k; q++) {
          const double t = double(x[i * k + q]) * a[size_t(j) * k + q];
          h += t;
          habs += std::fabs(t);
        }
        sum += h * b[size_t(c) * r + j];
        magnitude += habs * std::fabs(b[size_t(c) * r + j]);
      }
      const double error = std::fabs(z[i * n + c] - sum) / (magnitude > 0 ? magnitude : 1e-30);
      if (std::isnan(error) || error > worst) worst = std::isnan(worst) ? worst : error;  // NaN (z unwritten) sticks
    }
  if (fused)
    std::printf("fused M=%lld K=%d R=%d N=%d vec4=%d/%d grid %u: worst=%.3g, bits of split %s\n", m, k, r, n, shrinkVec4,
                expandVec4, fusedGrid, worst, identical ? "identical" : "DIFFERENT");
  else
    std::printf("split M=%lld K=%d R=%d N=%d vec4=%d/%d shrink grid %ux%u, expand grid %ux%u: worst=%.3g\n", m, k, r,
                n, shrinkVec4, expandVec4, shrinkGrid.x, shrinkGrid.y, expandGrid.x, expandGrid.y, worst);
  return worst <= 1e-5 && identical ? 0 : 1;
}
