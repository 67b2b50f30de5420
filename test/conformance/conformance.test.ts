/**
 * The conformance harness as a user runs it (a separate process per fixture), on every fixture in
 * the handbook's peft-reference folder and on ours, plus one deliberately wrong adapter config to
 * show that a mismatch fails.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture, ROOT, referenceFixtures } from "@loracast/dev-support/fixtures";
import { ortNativeSkip } from "@loracast/dev-support/ort-native";
import { FP32_TOLERANCE, tolerancesFor } from "./tolerances.ts";

function conformance(
  dir: string,
  ...args: string[]
): { status: number | null; report: Record<string, unknown> } {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", join(ROOT, "test/conformance/main.ts"), dir, ...args],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return { status: r.status, report: JSON.parse(last) as Record<string, unknown> };
  } catch {
    throw new Error(`no JSON report (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
}

describe("conformance against PyTorch + PEFT references", () => {
  const dirs = referenceFixtures();
  it("finds the handbook's fixtures", () => {
    assert.ok(
      dirs.some((d) => d.endsWith("llama-tiny")) && dirs.some((d) => d.endsWith("qwen2-tiny")),
      dirs.join(),
    );
  });
  for (const dir of dirs) {
    for (const quant of ["fp32", "int8", "int4"]) {
      it(`${dir.split("/").slice(-2).join("/")} at ${quant}`, () => {
        const { status, report } = conformance(dir, "--quant", quant);
        assert.equal(report.pass, true, JSON.stringify(report));
        assert.equal(status, 0);
        assert.equal(report.backend, "onnxruntime-node", "auto on the CPU");
        assert.equal(report.loraForm, "gemm", "auto on the CPU");
        if (quant === "fp32") {
          assert.equal(report.greedyMatch, true);
          assert.ok((report.logitsLoraMaxAbs as number) <= 2e-4);
          const gradients = report.gradients as { tensors: number; maxRelError: number };
          assert.ok(gradients.tensors > 0 && gradients.maxRelError <= 1e-4, JSON.stringify(gradients));
        }
      });
    }
  }

  // The GroupQueryAttention decoder (the GPU's graph) at fp32 and int4: against PyTorch at real
  // tokens, and against the ops decoder of the same weights (`vsOpsAttention`); with a float32
  // cache, and with the float16 cache of the CUDA build (its tolerances: tolerances.ts).
  for (const dir of dirs) {
    for (const [quant, dtype] of [
      ["fp32", "float32"],
      ["int4", "float32"],
      ["fp32", "float16"],
      ["int4", "float16"],
    ] as const) {
      const half = dtype === "float16";
      it(`${dir.split("/").slice(-2).join("/")} at ${quant}, GroupQueryAttention, ${dtype} KV cache`, () => {
        const { status, report } = conformance(
          dir,
          ...["--quant", quant, "--attention", "gqa", "--kv-cache-dtype", dtype],
        );
        const config = JSON.parse(readFileSync(join(dir, "base", "config.json"), "utf8"));
        const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
        if (headDim % 16 !== 0) {
          // GQA's rotary needs a head size that is a multiple of 16: the build refuses, exit 2.
          assert.equal(status, 2);
          assert.match(String(report.error), /head_dim \d+ is not a multiple of 16/);
          return;
        }
        assert.equal(report.pass, true, JSON.stringify(report));
        assert.equal(status, 0);
        const vsOps = report.vsOpsAttention as { logitsLoraMaxAbs: number; greedyMatch: boolean };
        if (half) {
          // float16 attention moves logits by more than float32's 1e-5, within 4·2^-11 of the
          // largest logit, and keeps the training graph's (float32) tolerance.
          assert.equal(report.kvCacheDtype, "float16");
          assert.ok(vsOps.logitsLoraMaxAbs > 1e-5, "the cache is float16");
          assert.ok(vsOps.logitsLoraMaxAbs <= (report.tolerance as number), JSON.stringify(vsOps));
          if (quant === "fp32") assert.equal(report.trainingTolerance, FP32_TOLERANCE);
          return;
        }
        assert.ok(vsOps.greedyMatch && vsOps.logitsLoraMaxAbs <= 1e-5, JSON.stringify(vsOps));
        if (quant === "fp32") assert.equal(report.greedyMatch, true);
      });
    }
  }

  // The decoder on the ort-native addon (the CUDA path's binding) on the CPU EP: same tolerances.
  const nativeSkip = ortNativeSkip();
  for (const dir of dirs.filter((d) => d.endsWith("llama-tiny") || d.endsWith("qwen2-tiny"))) {
    for (const quant of ["fp32", "int4"]) {
      it(`${dir.split("/").slice(-2).join("/")} at ${quant} on ort-native`, { skip: nativeSkip }, () => {
        const { status, report } = conformance(dir, "--quant", quant, "--backend", "ort-native");
        assert.equal(report.pass, true, JSON.stringify(report));
        assert.equal(status, 0);
        assert.equal(report.backend, "ort-native");
        if (quant === "fp32") assert.equal(report.greedyMatch, true);
      });
    }
  }

  it("fails, exit 1, when the adapter's scaling is wrong", () => {
    const dir = mkdtempSync(join(tmpdir(), "loracast-bad-fixture-"));
    try {
      const src = fixture("llama-tiny");
      cpSync(src, dir, { recursive: true });
      const configPath = join(dir, "adapter", "adapter_config.json");
      const config = JSON.parse(readFileSync(configPath, "utf8")) as { lora_alpha: number };
      config.lora_alpha *= 1.01;
      writeFileSync(configPath, JSON.stringify(config));
      const { status, report } = conformance(dir);
      assert.equal(status, 1);
      assert.equal(report.pass, false);
      assert.ok((report.logitsLoraMaxAbs as number) > 2e-4, JSON.stringify(report));
      assert.ok((report.logitsBaseMaxAbs as number) <= 2e-4, "the base is unaffected");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The WebGPU build's LoRA form (`--lora-form auto` there; shared/model-builder/lora-forms.ts) at
  // the CPU's tolerances: the form changes the order of float32 sums, nothing else.
  for (const name of ["llama-tiny", "qwen2-tiny"] as const) {
    for (const quant of ["fp32", "int4"]) {
      it(`${name} at ${quant}, LoRA form splitk-t`, () => {
        const { status, report } = conformance(fixture(name), "--quant", quant, "--lora-form", "splitk-t");
        assert.equal(report.pass, true, JSON.stringify(report));
        assert.equal(status, 0);
        assert.equal(report.loraForm, "splitk-t");
      });
    }
  }

  it("names the provider, exit 2, when --ep cuda cannot load (no CUDA provider on this machine)", () => {
    const { status, report } = conformance(fixture("llama-tiny"), "--ep", "cuda");
    assert.equal(status, 2);
    assert.equal(report.pass, false);
    assert.match(String(report.error), /^execution provider cuda cannot be used: /);
  });

  it("refuses, exit 2, an unknown --ep, --backend or --lora-form, --tf32 off on another EP than cuda and shrink-expand on webgpu", () => {
    for (const args of [
      ["--ep", "tpu"],
      ["--ep", "cpu", "--tf32", "off"],
      ["--backend", "tensorrt"],
      ["--lora-form", "einsum"],
      // Before any build: the addon runs on cpu and cuda only.
      ["--lora-op", "shrink-expand", "--ep", "webgpu"],
    ]) {
      const r = spawnSync(
        process.execPath,
        ["--import", "tsx", join(ROOT, "test/conformance/main.ts"), fixture("llama-tiny"), ...args],
        { cwd: ROOT, encoding: "utf8" },
      );
      assert.equal(r.status, 2, args.join(" "));
      assert.match(r.stderr, /^error: --(ep|tf32|backend|lora-form|lora-op)/, r.stderr);
    }
  });
});

describe("tolerances per execution provider", () => {
  it("keeps the CPU's wherever the EP computes in fp32, and widens only for TF32 by its roundoff", () => {
    for (const [ep, tf32] of [
      ["cpu", true],
      ["webgpu", true],
      ["cuda", false],
    ] as const) {
      const t = tolerancesFor(ep, tf32, 40);
      assert.deepEqual(
        [t.fp32, t.quant, t.gradient, t.quantGradient],
        [FP32_TOLERANCE, 1e-3, 1e-4, 1e-3],
        ep,
      );
    }
    const tf32 = tolerancesFor("cuda", true, 40);
    // 4 · 2^-11 · 40
    assert.equal(tf32.fp32, 0.0781);
    assert.equal(tf32.gradient, 4 * 2 ** -11);
    assert.match(tf32.why, /TF32/);
    // Small logits: never tighter than the CPU's.
    assert.equal(tolerancesFor("cuda", true, 0.01).fp32, FP32_TOLERANCE);
  });

  it("widens the decoder's logits by float16's roundoff for a float16 KV cache, not the training graph's", () => {
    const half = tolerancesFor("cpu", false, 40, "float16");
    // 4 · 2^-11 · 40
    assert.deepEqual([half.fp32, half.quant, half.training], [0.0781, 0.0781, FP32_TOLERANCE]);
    assert.deepEqual([half.gradient, half.quantGradient], [1e-4, 1e-3]);
    assert.match(half.why, /float16 attention/);
    // On CUDA with TF32 both apply: 8 · 2^-11 · 40 for the decoder, 4 · 2^-11 · 40 for training.
    const both = tolerancesFor("cuda", true, 40, "float16");
    assert.deepEqual([both.fp32, both.training], [0.156, 0.0781]);
  });
});
