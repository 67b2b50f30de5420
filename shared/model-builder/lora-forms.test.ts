/**
 * The LoRA forms (`lora-forms.ts`, `BuildOptions.loraForm`): each form's decoder gives the `gemm`
 * decoder's logits with the fixtures' adapters, the manifest records the form, and the runtime
 * feeds `lora_A` in the form's layout.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { decodeFixedTokens } from "@loracast/dev-support/tiny-model";
import * as ort from "onnxruntime-node";
import { type LoraForm, loraALayout, loraFormSchema, readModelManifest } from "../model-format/index.ts";
import { peftKey, verifyAdapterFiles } from "../model-spec/index.ts";
import { countGraphNodes } from "../onnx/index.ts";
import { adapterFeeds, baseFeeds, DecoderSession, type LoraFeeds } from "../runtime/index.ts";
import { buildArtifacts, countDecodeStepNodes, parseArchitecture } from "./index.ts";

const FORMS = loraFormSchema.options;
const PROMPT = [5, 9, 200, 17, 3, 44, 8, 90, 31];

for (const name of ["llama-tiny", "qwen2-tiny"] as const) {
  describe(`LoRA forms on ${name}`, () => {
    const work = mkdtempSync(join(tmpdir(), `loracast-lora-forms-${name}-`));
    const sessions = new Map<LoraForm, DecoderSession>();
    let lora: LoraFeeds = {};
    before(async () => {
      for (const loraForm of FORMS) {
        const built = await buildArtifacts({
          checkpointDir: join(fixture(name), "base"),
          outDir: join(work, loraForm),
          quant: { kind: "fp32" },
          loraForm,
        });
        assert.ok(built.ok);
        const loaded = await DecoderSession.load(join(work, loraForm));
        assert.ok(loaded.ok, loaded.ok ? "" : loaded.error.message);
        sessions.set(loraForm, loaded.value);
      }
      const spec = (sessions.get("gemm") as DecoderSession).spec;
      const checked = verifyAdapterFiles(
        spec,
        await readFile(join(fixture(name), "adapter", "adapter_config.json"), "utf8"),
        await readFile(join(fixture(name), "adapter", "adapter_model.safetensors")),
      );
      assert.ok(checked.ok);
      lora = adapterFeeds(spec, checked.value.verified);
    });
    after(async () => {
      for (const s of sessions.values()) await s.release();
      rmSync(work, { recursive: true, force: true });
    });
    const session = (f: LoraForm) => sessions.get(f) as DecoderSession;

    /** Every form's logits against the gemm form's for `feeds`, prefill and 3 decode steps. */
    const agree = async (feeds: () => LoraFeeds) => {
      const reference = await decodeFixedTokens(session("gemm"), feeds(), PROMPT, 3);
      const scale = Math.max(...reference.flatMap((l) => [...l].map(Math.abs)));
      for (const form of FORMS.filter((f) => f !== "gemm")) {
        const logits = await decodeFixedTokens(session(form), feeds(), PROMPT, 3);
        assert.equal(logits.length, reference.length);
        let worst = 0;
        logits.forEach((step, s) => {
          const ref = reference[s] as Float32Array;
          assert.equal(step.length, ref.length);
          for (let i = 0; i < ref.length; i++)
            worst = Math.max(worst, Math.abs((step[i] ?? Number.NaN) - (ref[i] ?? 0)) || 0);
          assert.ok(step.every(Number.isFinite), `${form}: non-finite logits`);
        });
        assert.ok(
          worst <= 1e-5 * scale,
          `${form}: logits differ from gemm's by ${worst} (max |logit| ${scale})`,
        );
      }
    };

    it("every form gives the gemm form's logits (prefill and decode steps) within float32 rounding", async () => {
      await agree(() => lora);
    });

    it("and with the base's rank-0 factors (every pair empty)", async () => {
      await agree(() => baseFeeds(session("gemm").spec));
    });

    it("the adapter moves the logits in every form (the LoRA branch is live)", async () => {
      const spec = session("gemm").spec;
      // The same adapter with every B zeroed: the branch adds nothing.
      const zero: Record<string, ort.Tensor> = { ...lora };
      for (const m of spec.modules.values()) {
        const b = lora[peftKey(m.name, "B")];
        if (b !== undefined)
          zero[peftKey(m.name, "B")] = new ort.Tensor("float32", new Float32Array(b.size), b.dims);
      }
      for (const form of FORMS) {
        const [withLora] = await decodeFixedTokens(session(form), lora, PROMPT, 0);
        const [without] = await decodeFixedTokens(session(form), Object.freeze(zero), PROMPT, 0);
        const moved = Math.max(...[...(withLora ?? [])].map((v, i) => Math.abs(v - (without?.[i] ?? v))));
        assert.ok(moved > 1e-3, `${form}: the adapter moved the logits by ${moved}`);
      }
    });

    it("the manifest records the form (none for gemm), and the graphs take lora_A in its layout", async () => {
      for (const form of FORMS) {
        const read = await readModelManifest(join(work, form));
        assert.ok(read.ok);
        assert.equal(read.value.manifest.decoder.loraForm, form === "gemm" ? undefined : form);
        const s = session(form);
        const a = s.prepare(lora)[peftKey("model.layers.0.self_attn.qkv_proj", "A")];
        const inF = s.manifest.dims.hiddenSize;
        const columns = loraALayout(form) === "columns";
        assert.equal(columns ? a?.dims[0] : a?.dims[1], inF, `${form}: A is [${a?.dims}]`);
      }
    });

    it("counts each form's decode step nodes as the built files have them", () => {
      const arch = parseArchitecture(
        JSON.parse(readFileSync(join(fixture(name), "base", "config.json"), "utf8")),
      );
      assert.ok(arch.ok);
      const pairs = 4 * arch.value.dims.numLayers;
      const perPair: Record<LoraForm, number> = { gemm: 2, matmul: 2, mulsum: 5, splitk: 6, "splitk-t": 8 };
      for (const form of FORMS) {
        const c = countDecodeStepNodes(arch.value, { kind: "fp32" }, "fused", { loraForm: form });
        assert.equal(c.lora, perPair[form] * pairs, `${form}: ${c.lora} LoRA nodes`);
        const file = countGraphNodes(new Uint8Array(readFileSync(join(work, form, "model.onnx"))));
        assert.equal(
          [...file.byOp.values()].reduce((a, b) => a + b, 0),
          c.total,
        );
      }
    });
  });
}

describe("a LoRA form other than gemm", () => {
  it("is refused for graphs without LoRA inputs (transformers.js format)", async () => {
    const work = mkdtempSync(join(tmpdir(), "loracast-lora-forms-refused-"));
    try {
      await assert.rejects(
        buildArtifacts({
          checkpointDir: join(fixture("llama-tiny"), "base"),
          outDir: work,
          quant: { kind: "fp32" },
          format: "transformers.js",
          loraForm: "mulsum",
        }),
        /LoRA form mulsum is for graphs with LoRA inputs/,
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
