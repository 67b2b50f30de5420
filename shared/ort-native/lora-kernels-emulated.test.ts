import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

// lora-kernels.cu's kernels, unchanged, on a CPU emulation of CUDA's threads, barriers and warp
// shuffles (emulation/cuda-shim.h): no GPU runs here, so this is what checks the kernel's indexing,
// tiling, rank chunks and grid-stride row loop before a GPU host does (test/bench/gpu/lora-op-check.ts).
// Each case prints the largest error over the terms' magnitude against a double reference and
// fails above 1e-5; a missed row tile leaves NaN, a dropped rank chunk ~3e-2.
const gpp = spawnSync("g++", ["--version"]);
const skip = gpp.status === 0 ? false : "g++ is not on PATH (Debian: apt-get install g++)";

// [M, K, R, N, grid x, grid y]: both load paths (float4: K and R multiples of 4; scalar otherwise),
// R = 0, R above the 64-rank chunk (80, 132), several column and row tiles (M > 8), and grids
// smaller than the tiles (the kernel's loops over row and column tiles past the grid: what long
// prefills and M above 8 · 65535 take).
type Case = [number, number, number, number, number?, number?];
const SPLIT_CASES: Case[] = [
  [0, 896, 16, 1152],
  [1, 896, 0, 1152],
  [8, 896, 48, 1152],
  [8, 37, 80, 33],
  [1, 1219, 16, 5],
  [9, 64, 132, 700],
  [17, 40, 12, 30, 1, 1],
  [19, 36, 0, 1100, 1, 2],
  [12, 40, 72, 1100, 1, 1],
];
// lora_fused (one launch, decode-sized M; lora-op.cc's auto runs it for no rows since the H200 measured it slower, FUSED_MAX_ROWS):
// M = 1 and 8 at the Qwen2.5-0.5B modules' K, R, N (qkv, down), M around the threshold (15, 16,
// 17: a second, partial row tile), every row count the shrink is instantiated for (1, 2, 4, 8:
// M = 2, 3 and 12's second tile of 4), every warp split of the shrink (R = 48: a group per warp;
// 20: five warps busy; 16 and 12: two warps per group; 3: eight warps on one), R = 0, R above the
// 64-rank chunk (80: a partial chunk after a full one; 132), odd K and N (the scalar loads), and
// grids smaller than the tiles.
const FUSED_CASES: Case[] = [
  [1, 896, 48, 1152],
  [8, 896, 48, 1152],
  [1, 4864, 16, 300],
  [8, 4864, 16, 300],
  [15, 36, 12, 300],
  [16, 36, 12, 300],
  [17, 40, 12, 30],
  [3, 36, 0, 600],
  [2, 64, 20, 300],
  [3, 37, 80, 33],
  [9, 64, 132, 700],
  [15, 41, 3, 257, 1, 1],
  [12, 40, 72, 1100, 1, 1],
  [19, 36, 0, 1100, 1, 2],
];
const CASES: ["split" | "fused", Case][] = [
  ...SPLIT_CASES.map((c) => ["split", c] as ["split", Case]),
  ...FUSED_CASES.map((c) => ["fused", c] as ["fused", Case]),
];

describe("lora-kernels.cu on the CPU emulation", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "lora-kernel-"));
  const binary = join(dir, "lora-kernel");
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("compiles with the shim", () => {
    const main = join(import.meta.dirname, "emulation", "lora-kernel-main.cc");
    const built = spawnSync(
      "g++",
      ["-std=c++20", "-O1", "-pthread", "-Wall", "-Wextra", "-Wno-unknown-pragmas", main, "-o", binary],
      { encoding: "utf8" },
    );
    assert.equal(built.status, 0, built.stderr);
  });

  for (const [kernel, c] of CASES)
    it(`${kernel}: M=${c[0]} K=${c[1]} R=${c[2]} N=${c[3]}${c[4] ? `, grid ${c[4]}×${c[5]}` : ""}: within 1e-5 of float64`, () => {
      const run = spawnSync(binary, [kernel, ...c.map(String)], { encoding: "utf8", timeout: 120_000 });
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /worst=/);
    });
});
