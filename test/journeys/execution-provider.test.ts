/**
 * `*_EXECUTION_PROVIDER=cuda` where the CUDA provider cannot load (issue 20, the `cuda` setting): on
 * a machine without ORT's CUDA provider libraries (every dev and CI machine: only the CUDA images
 * install them, infra/images/execution-provider.sh), the generator and the trainer, started on a
 * real model directory, exit 2 at once with one error line that names the variable, the provider and
 * what it needs: no stack trace, no listening server. Skipped where the provider library is present.
 * Likewise `*_ORT_BACKEND=ort-native` where loracast's ORT addon is not built (on any machine), and
 * `GENERATOR_BASE_GRAPH=on` on a model directory built before base graphs, and a model built with
 * `--lora-op shrink-expand` (whose LoRA nodes only the addon runs) on the stock binding, or on `auto`
 * where the addon is not built.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fixture, ROOT } from "@loracast/dev-support/fixtures";
import { buildArtifacts } from "@loracast/shared/model-builder";
import { Signer } from "@loracast/shared/signing";
import { captureLines } from "../helpers/output-lines.ts";
import { s3Env } from "../helpers/s3.ts";
import { SECRET, TOKEN } from "../helpers/stack.ts";

/** Where ORT loads the CUDA provider from: beside onnxruntime-node's libonnxruntime.so.1. */
const cudaProvider = join(
  dirname(createRequire(import.meta.url).resolve("onnxruntime-node/package.json")),
  "bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so",
);
const work = mkdtempSync(join(tmpdir(), "loracast-ep-"));
const modelDir = join(work, "model");

/**
 * Starts `kind` on the built model with the CUDA provider, or with `env` instead of that setting;
 * resolves with its exit code and output.
 */
async function start(
  kind: "trainer" | "generator",
  env: Record<string, string> = { [`${kind.toUpperCase()}_EXECUTION_PROVIDER`]: "cuda" },
): Promise<{ code: number | null; lines: string[] }> {
  const own = {
    trainer: {
      TRAINER_PORT: "0",
      TRAINER_DATA_DIR: mkdtempSync(join(work, "trainer-")),
      TRAINER_API_TOKEN: TOKEN,
      WEBHOOK_SECRET: SECRET,
      TRAINER_MODEL_DIR: modelDir,
    },
    generator: {
      GENERATOR_PORT: "0",
      GENERATOR_MODEL_DIR: modelDir,
      WEBHOOK_SECRETS: SECRET,
      MANIFEST_PUBLIC_KEYS: Signer.generate().publicKey,
    },
  }[kind];
  const proc = spawn(process.execPath, ["--import", "tsx", `services/${kind}/src/main.ts`], {
    cwd: ROOT,
    // A store nobody listens on: the model loads (and fails) before the store is probed.
    env: { PATH: process.env.PATH ?? "", TMPDIR: work, ...s3Env("http://127.0.0.1:9"), ...own, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { lines } = captureLines(proc, kind);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  const [code] = await once(proc, "exit");
  clearTimeout(timer);
  return { code: code as number | null, lines };
}

/** The one error line of a start that failed: exit 2, no stack trace, not ready. */
function theErrorLine(r: { code: number | null; lines: string[] }): { variable?: string; error?: string } {
  const all = r.lines.join("\n");
  assert.equal(r.code, 2, all);
  assert.deepEqual(
    r.lines.filter((l) => /^\s+at /.test(l)),
    [],
    `stack trace in the output:\n${all}`,
  );
  const errors = r.lines
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { level: string; variable?: string; error?: string })
    .filter((l) => l.level === "error");
  assert.equal(errors.length, 1, all);
  assert.ok(!r.lines.some((l) => l.includes('"msg":"ready"')), all);
  return errors[0] ?? {};
}

before(async () => {
  const built = await buildArtifacts({
    checkpointDir: join(fixture("llama-tiny"), "base"),
    outDir: modelDir,
    quant: { kind: "fp32" },
  });
  if (!built.ok) throw built.error;
});
after(() => rmSync(work, { recursive: true, force: true }));

describe("an ORT backend that cannot load", () => {
  for (const kind of ["generator", "trainer"] as const) {
    const variable = `${kind.toUpperCase()}_ORT_BACKEND`;
    it(`${kind} with ${variable}=ort-native and no addon: exit 2, one error line naming it and why`, async () => {
      const line = theErrorLine(
        await start(kind, { [variable]: "ort-native", LORACAST_ORT_NATIVE_ADDON: join(work, "none.node") }),
      );
      assert.equal(line.variable, variable);
      assert.match(
        line.error ?? "",
        /^ort-native cannot be used: ort-native not-built: .*none\.node does not exist/,
      );
    });
  }
});

describe("a shrink-expand model without the ort-native addon", () => {
  const fusedDir = join(work, "model-shrink-expand");
  before(async () => {
    const built = await buildArtifacts({
      checkpointDir: join(fixture("llama-tiny"), "base"),
      outDir: fusedDir,
      quant: { kind: "fp32" },
      loraOp: "shrink-expand",
    });
    if (!built.ok) throw built.error;
  });
  for (const kind of ["generator", "trainer"] as const) {
    const variable = `${kind.toUpperCase()}_ORT_BACKEND`;
    const dir = { [`${kind.toUpperCase()}_MODEL_DIR`]: fusedDir };
    it(`${kind} with ${variable}=onnxruntime-node: exit 2, one error line naming it and the fix`, async () => {
      const line = theErrorLine(await start(kind, { ...dir, [variable]: "onnxruntime-node" }));
      assert.equal(line.variable, variable);
      assert.match(
        line.error ?? "",
        /^backend onnxruntime-node cannot run this model: .*decoder\.loraOp shrink-expand.*use backend auto or ort-native; rebuild the model with --lora-op gemm/,
      );
    });
  }
  it(`generator with GENERATOR_ORT_BACKEND=auto and no addon: exit 2, saying the model needs it`, async () => {
    const line = theErrorLine(
      await start("generator", {
        GENERATOR_MODEL_DIR: fusedDir,
        LORACAST_ORT_NATIVE_ADDON: join(work, "none.node"),
      }),
    );
    assert.equal(line.variable, "GENERATOR_ORT_BACKEND");
    assert.match(
      line.error ?? "",
      /^ort-native cannot be used: .*none\.node does not exist.*, and this model's LoRA nodes are ai\.loracast/,
    );
  });
});

describe("a base graph asked for and missing", () => {
  it("generator with GENERATOR_BASE_GRAPH=on on a model built before base graphs: exit 2, naming it", async () => {
    const old = join(work, "model-before-base-graphs");
    cpSync(modelDir, old, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(old, "loracast-model.json"), "utf8"));
    delete manifest.files.base;
    delete manifest.files.baseAppend;
    writeFileSync(join(old, "loracast-model.json"), JSON.stringify(manifest));
    const line = theErrorLine(
      await start("generator", { GENERATOR_MODEL_DIR: old, GENERATOR_BASE_GRAPH: "on" }),
    );
    assert.equal(line.variable, "GENERATOR_BASE_GRAPH");
    assert.match(line.error ?? "", /^baseGraph on: the model has no files\.baseAppend .*rebuild the model/);
  });
});

describe("an execution provider that cannot load", {
  skip: existsSync(cudaProvider) && "CUDA provider present",
}, () => {
  for (const [kind, variable] of [
    ["generator", "GENERATOR_EXECUTION_PROVIDER"],
    ["trainer", "TRAINER_EXECUTION_PROVIDER"],
  ] as const) {
    it(`${kind} with ${variable}=cuda: exit 2, one error line naming it and what CUDA needs`, async () => {
      const line = theErrorLine(await start(kind));
      assert.equal(line.variable, variable);
      assert.match(line.error ?? "", /^execution provider cuda cannot be used: .*Failed to load/);
      assert.match(line.error ?? "", /CUDA 13 provider.*linux-x64-gpu@0\.4\.9.*libcublas\.so\.13/);
    });
  }
});

describe("WebGPU on a host without a GPU", {
  // WebGPU finds an adapter through a GPU's device node (Vulkan); without one it cannot load.
  skip: (existsSync("/dev/dri") || existsSync("/dev/nvidia0")) && "a GPU device node is present",
}, () => {
  for (const [kind, variable] of [
    ["generator", "GENERATOR_EXECUTION_PROVIDER"],
    ["trainer", "TRAINER_EXECUTION_PROVIDER"],
  ] as const) {
    it(`${kind} with ${variable}=webgpu: exit 2, one error line naming it, no stack trace`, async () => {
      const r = await start(kind, { [variable]: "webgpu" });
      // Dawn logs its Vulkan failure natively ("at operator() (…/BackendVk.cpp:…)"): not ours, and no
      // JavaScript frame; theErrorLine checks everything else.
      const line = theErrorLine({ ...r, lines: r.lines.filter((l) => !/^\s+at .*\.cpp:\d+\)$/.test(l)) });
      assert.equal(line.variable, variable);
      assert.match(line.error ?? "", /^execution provider webgpu cannot be used: .*WebGPU adapter/);
    });
  }
});
