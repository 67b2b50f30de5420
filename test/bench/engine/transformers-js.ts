/**
 * The peer: transformers.js (same onnxruntime-node) on the same int4 base, exported by our builder
 * with its input/output naming (`--format transformers.js`), generating greedily through its own
 * `generate` with its own KV-cache handling.
 */
import { basename, dirname } from "node:path";
import { AutoModelForCausalLM, env, type PreTrainedModel, Tensor } from "@huggingface/transformers";
import type { transformersJsDtype } from "@loracast/shared/model-builder";
import type { ExecutionProvider } from "@loracast/shared/runtime";
import { PROMPT_LEN, prompt, type TimedGeneration } from "./ours.ts";

export interface Peer {
  generation: TimedGeneration;
  greedy(n: number): Promise<number[]>;
  release(): Promise<void>;
}

export async function loadTransformersJs(
  dir: string,
  dtype: ReturnType<typeof transformersJsDtype>,
  device: ExecutionProvider,
): Promise<Peer> {
  env.allowRemoteModels = false;
  env.localModelPath = `${dirname(dir)}/`;
  const model = (await AutoModelForCausalLM.from_pretrained(basename(dir), {
    dtype,
    device,
  })) as PreTrainedModel;
  const inputs = (batch: number) => ({
    input_ids: new Tensor(
      "int64",
      BigInt64Array.from({ length: batch * PROMPT_LEN }, (_, k) =>
        BigInt(prompt(Math.floor(k / PROMPT_LEN))[k % PROMPT_LEN] ?? 0),
      ),
      [batch, PROMPT_LEN],
    ),
    attention_mask: new Tensor("int64", new BigInt64Array(batch * PROMPT_LEN).fill(1n), [batch, PROMPT_LEN]),
  });
  const run = (batch: number, tokens: number, onToken: () => void = () => {}) =>
    model.generate({
      ...inputs(batch),
      max_new_tokens: tokens,
      min_new_tokens: tokens,
      do_sample: false,
      // generate() calls put() once with the prompt, then once per generated step.
      streamer: { put: onToken, end: () => {} } as never,
    });
  return {
    generation: async (batch, tokens) => {
      const t0 = performance.now();
      const puts: number[] = [];
      await run(batch, tokens, () => puts.push(performance.now() - t0));
      return { firstToken: puts[1] ?? Number.NaN, end: performance.now() - t0 };
    },
    greedy: async (n) => {
      const out = (await run(1, n)) as Tensor;
      return (out.tolist() as bigint[][])[0]?.slice(PROMPT_LEN).map(Number) ?? [];
    },
    release: () => model.dispose().then(() => undefined),
  };
}
