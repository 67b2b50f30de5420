/**
 * Gradients do not depend on the micro-batch: GRPO and RLOO on the demo model through the real
 * training graph, the step's samples in one pass, in passes of 3 and one at a time. Only the order
 * of float32 sums differs (and each pass pads to its own longest sequence), so the accumulated
 * gradients agree to float32 rounding.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildDemoModel } from "@loracast/dev-support/models";
import { parseLoraConfig } from "@loracast/shared/peft";
import { createRng } from "@loracast/shared/random";
import { LoraParams, TrainingSession } from "@loracast/shared/training";
import type { StepSample } from "./algorithm.ts";
import { algorithmConfigSchema, algorithmFor } from "./index.ts";

const work = mkdtempSync(join(tmpdir(), "loracast-micro-batch-"));
let session: TrainingSession;

before(async () => {
  const dir = await buildDemoModel({ checkpointDir: join(work, "base"), modelDir: join(work, "model") }, 3);
  const loaded = await TrainingSession.load(dir);
  assert.ok(loaded.ok);
  session = loaded.value;
});
after(async () => {
  await session.release();
  rmSync(work, { recursive: true, force: true });
});

/** Two prompts × four completions of different lengths, rewards and sampler log-probabilities. */
function samples(): StepSample[] {
  const rng = createRng(9);
  return Array.from({ length: 8 }, (_, i) => {
    const completion = Array.from({ length: 2 + ((i * 3) % 5) }, () => 40 + Math.floor(rng.next() * 50));
    return {
      prompt: i < 4 ? [5, 6, 7] : [8, 9],
      completion,
      samplerLogprobs: completion.map(() => -3 - rng.next()),
      reward: rng.next(),
    };
  });
}

async function gradients(name: "grpo" | "rloo", microBatch: number): Promise<Map<string, Float32Array>> {
  const lora = parseLoraConfig({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: "all-linear" });
  assert.ok(lora.ok);
  const params = LoraParams.init(session.spec, lora.value, createRng(1));
  // B ≠ 0, so that every factor's gradient is non-zero.
  const rng = createRng(2);
  for (const m of params.modules) for (let i = 0; i < m.b.length; i++) m.b[i] = (rng.next() - 0.5) * 0.1;
  const config = algorithmConfigSchema.parse(
    name === "grpo" ? { name, numGenerations: 4, beta: 0.04 } : { name, k: 4 },
  );
  const g = await algorithmFor(config).gradients(
    {
      session,
      params,
      microBatch,
      sampling: { temperature: 1, maxTokens: 8 },
      now: () => 0,
      optimize: () => undefined,
    },
    samples(),
  );
  return g.grads;
}

describe("micro-batch size", () => {
  for (const name of ["grpo", "rloo"] as const) {
    it(`${name}: the same gradients in one pass, passes of 3 and of 1 (float32 rounding)`, async () => {
      const whole = await gradients(name, 8);
      for (const micro of [3, 1]) {
        const split = await gradients(name, micro);
        assert.equal(split.size, whole.size);
        for (const [key, w] of whole) {
          const s = split.get(key) as Float32Array;
          const scale = w.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
          assert.ok(scale > 0, `${key}: zero gradient`);
          let worst = 0;
          for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs((w[i] ?? 0) - (s[i] ?? 0)));
          // Within 8 units in the last place of float32 (2^-23 ≈ 1.2e-7) of the tensor's largest element.
          assert.ok(worst <= 1e-6 * scale, `${key}, micro-batch ${micro}: ${worst} against ${scale}`);
        }
      }
    });
  }
});
