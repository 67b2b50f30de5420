import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

// lora-kernels.cu's kernels, unchanged, on a CPU emulation of CUDA's threads, barriers, atomics and
// warp shuffles (emulation/cuda-shim.h): no GPU runs here, so this is what checks the kernel's indexing,
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
// lora_fused (one launch for M ≤ 8, a grid barrier between its shrink and expand; the emulation
// runs at most 4 blocks at once, so every case also walks the kernel's loops over ranks and columns
// past the grid, and checks z bit for bit against the split form's and the barrier's words left
// ready for the next launch, after two launches): M = 1 and 8 at the Qwen2.5-0.5B modules' K, R, N
// (qkv; down's K), M = 3 and 5, R above the 64-rank chunk (80: a partial chunk after a full one;
// 132: three), odd K (x's scalar loads), R = 3 (b's scalar loads), and grids of 1 and 2 blocks
// (the last number caps the blocks; lora_fused's grid is 1-D).
const FUSED_CASES: Case[] = [
  [1, 896, 48, 1152],
  [8, 896, 48, 1152],
  [8, 4864, 16, 300],
  [3, 37, 80, 33],
  [8, 64, 132, 700],
  [2, 41, 3, 257, 1, 1],
  [5, 36, 12, 1100, 2, 1],
  [1, 40, 72, 1100],
];
// lora_nbits (ai.loracast.MatMulNBitsLora: the 4-bit base projection and the LoRA branch in one
// kernel), [M, K, R, N, block size, grid x, grid y]: each case runs the split form (h given) and,
// for 1 ≤ M ≤ 8 and R > 0, the fused form (its own shrink and a grid barrier), whose bits must
// equal the split form's; at M = 1 through lora_nbits_row too (one-row tiles), whose bits must
// equal lora_nbits'. Qwen2.5-0.5B's qkv and down shapes at M = 1 and 8, R = 0 (the base
// alone), odd K (the last quant block padded; x's scalar loads), block sizes 16 and 64, R above the
// 64-rank chunk, M past one row tile, and grids capped below the column groups and row tiles.
type NbitsCase = [number, number, number, number, number, number?, number?];
const NBITS_CASES: NbitsCase[] = [
  // Qwen2.5-0.5B's shapes with the grid capped at 16 and 8 blocks: each emulated block is 256
  // threads, and the full grids (144 and 38 blocks) took ~30 s a case on CI's 2 cores.
  [1, 896, 48, 1152, 32, 16, 1],
  [8, 896, 48, 260, 32, 16, 1],
  [8, 4864, 16, 300, 32, 8, 1],
  [1, 896, 0, 100, 32],
  [3, 37, 80, 33, 16],
  [2, 41, 3, 257, 16, 1, 1],
  [1, 41, 3, 257, 16, 1, 1],
  [12, 40, 72, 100, 32, 1, 1],
  [17, 70, 12, 30, 64, 2, 2],
];
const CASES: ["split" | "fused", Case][] = [
  ...SPLIT_CASES.map((c) => ["split", c] as ["split", Case]),
  ...FUSED_CASES.map((c) => ["fused", c] as ["fused", Case]),
];

describe("lora-kernels.cu on the CPU emulation", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "lora-kernel-"));
  const binary = join(dir, "lora-kernel");
  const nbitsBinary = join(dir, "nbits-kernel");
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

  it("compiles lora_nbits' emulation with the shim", () => {
    const main = join(import.meta.dirname, "emulation", "nbits-kernel-main.cc");
    const built = spawnSync(
      "g++",
      ["-std=c++20", "-O1", "-pthread", "-Wall", "-Wextra", "-Wno-unknown-pragmas", main, "-o", nbitsBinary],
      { encoding: "utf8" },
    );
    assert.equal(built.status, 0, built.stderr);
  });

  for (const c of NBITS_CASES)
    it(`nbits: M=${c[0]} K=${c[1]} R=${c[2]} N=${c[3]} block ${c[4]}${c[5] ? `, grid ${c[5]}×${c[6]}` : ""}: within 1e-5 of float64${c[0] >= 1 && c[0] <= 8 && c[2] > 0 ? ", fused bits = split bits" : ""}${c[0] === 1 ? ", one-row tile's bits = the 8-row tile's" : ""}`, () => {
      const run = spawnSync(nbitsBinary, c.map(String), { encoding: "utf8", timeout: 120_000 });
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /worst=/);
    });

  for (const [kernel, c] of CASES)
    it(`${kernel}: M=${c[0]} K=${c[1]} R=${c[2]} N=${c[3]}${c[4] ? `, grid ${c[4]}×${c[5]}` : ""}: within 1e-5 of float64${kernel === "fused" ? ", the split form's bits" : ""}`, () => {
      const run = spawnSync(binary, [kernel, ...c.map(String)], { encoding: "utf8", timeout: 120_000 });
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /worst=/);
    });
});
