/**
 * Turns a HF checkpoint into model artifacts (design §2): `model.onnx`, its external data, and
 * `loracast-model.json` with the module map and the fingerprint. Weights stream from the checkpoint
 * into the data file one tensor at a time.
 */
import { createHash } from "node:crypto";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildModelSpec, type ModelConfigError } from "../model-spec/index.ts";
import { encodeModel, GraphBuilder } from "../onnx/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import type { Architecture } from "./architecture.ts";
import { CheckpointError, openCheckpoint } from "./checkpoint.ts";
import { buildDecoderGraph } from "./decoder-graph.ts";
import { DATA_FILE, MODEL_FILE, MODEL_MANIFEST, type ModelManifest } from "./model-manifest.ts";
import { type BaseQuant, WeightPlan } from "./weights.ts";

export interface BuildOptions {
  checkpointDir: string;
  outDir: string;
  quant: BaseQuant;
}

const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "chat_template.jinja",
];

export async function buildArtifacts(
  options: BuildOptions,
): Promise<Result<ModelManifest, CheckpointError | ModelConfigError>> {
  const opened = await openCheckpoint(options.checkpointDir);
  if (!opened.ok) return opened;
  const ckpt = opened.value;
  try {
    const { arch } = ckpt;
    const g = new GraphBuilder("loracast-decoder");
    const plan = new WeightPlan(g, options.quant, DATA_FILE);
    buildDecoderGraph(g, arch, plan);

    for (const job of plan.jobs) {
      if (!ckpt.has(job.source)) return err(new CheckpointError(`checkpoint has no tensor ${job.source}`));
      const shape = ckpt.entry(job.source).shape;
      if (shape.join() !== job.dims.join()) {
        return err(
          new CheckpointError(
            `tensor ${job.source} has shape [${shape}], expected [${job.dims}] from config.json`,
          ),
        );
      }
    }

    await mkdir(options.outDir, { recursive: true });
    const model = encodeModel({
      graph: g.build(),
      opsets: { "": 21, "com.microsoft": 1 },
      producer: "loracast",
    });
    const hash = createHash("sha256").update(model);
    const tmpData = join(options.outDir, `${DATA_FILE}.partial`);
    const out = await open(tmpData, "w");
    try {
      let at = 0;
      for (const job of plan.jobs) {
        if (job.offset > at) {
          const pad = new Uint8Array(job.offset - at);
          hash.update(pad);
          await out.write(pad);
          at = job.offset;
        }
        for (const part of job.produce(await ckpt.readFloat32(job.source))) {
          hash.update(part);
          await out.write(part);
          at += part.byteLength;
        }
        if (at !== job.offset + job.length)
          throw new Error(`weight job ${job.source} wrote ${at - job.offset} of ${job.length} bytes`);
      }
    } finally {
      await out.close();
    }
    await rename(tmpData, join(options.outDir, DATA_FILE));
    await writeFile(join(options.outDir, MODEL_FILE), model);

    for (const file of TOKENIZER_FILES) {
      const text = await readFile(join(options.checkpointDir, file)).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return null;
        throw e;
      });
      if (text !== null) await writeFile(join(options.outDir, file), text);
    }
    const manifest = modelManifest(arch, options.quant, `sha256:${hash.digest("hex")}`);
    await writeFile(join(options.outDir, MODEL_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    return ok(manifest);
  } catch (e) {
    await rm(join(options.outDir, `${DATA_FILE}.partial`), { force: true });
    if (e instanceof CheckpointError) return err(e);
    throw e;
  } finally {
    await ckpt.close();
  }
}

function modelManifest(arch: Architecture, quant: BaseQuant, fingerprint: string): ModelManifest {
  const spec = buildModelSpec(arch.dims);
  return {
    schema: "loracast-model/1",
    fingerprint,
    architecture: arch.dims.modelType,
    dims: arch.dims,
    quant:
      quant.kind === "fp32"
        ? { kind: "fp32" }
        : {
            kind: quant.emulate ? "fp32-dequantized" : `int${quant.bits}`,
            bits: quant.bits,
            blockSize: quant.blockSize,
            accuracyLevel: quant.accuracyLevel ?? 0,
          },
    rope: { type: arch.rope.type, theta: arch.rope.theta },
    rmsNormEps: arch.rmsNormEps,
    maxPositions: arch.maxPositions,
    bosTokenId: arch.bosTokenId,
    eosTokenIds: arch.eosTokenIds,
    files: { model: MODEL_FILE, data: DATA_FILE },
    modules: [...spec.modules.values()].map((m) => ({
      name: m.name,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
    })),
  };
}
