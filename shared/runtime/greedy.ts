import type { DecoderSession } from "./decoder-session.ts";
import { argmaxRow, logProbAt } from "./logits.ts";
import type { LoraFeeds } from "./lora-feeds.ts";

/**
 * Greedy decoding of one unpadded prompt with the KV cache: one prefill, then one step per token.
 * The reference path for conformance; serving goes through the batched scheduler.
 */
export async function greedyDecode(
  session: DecoderSession,
  lora: LoraFeeds,
  prompt: readonly number[],
  maxTokens: number,
): Promise<number[]> {
  const vocab = session.manifest.dims.vocabSize;
  const out: number[] = [];
  let step = await session.step(
    {
      batch: 1,
      seq: prompt.length,
      inputIds: BigInt64Array.from(prompt.map(BigInt)),
      attentionMask: new BigInt64Array(prompt.length).fill(1n),
      positionIds: BigInt64Array.from(prompt.map((_, i) => BigInt(i))),
      logitsPositions: BigInt64Array.of(BigInt(prompt.length - 1)),
      logitsCount: 1,
      past: null,
    },
    lora,
  );
  for (let i = 0; i < maxTokens; i++) {
    const next = argmaxRow(step.logits, 0, vocab);
    out.push(next);
    if (i === maxTokens - 1) break;
    const total = step.present.length + 1;
    const past = step.present;
    step = await session.step(
      {
        batch: 1,
        seq: 1,
        inputIds: BigInt64Array.of(BigInt(next)),
        attentionMask: new BigInt64Array(total).fill(1n),
        positionIds: BigInt64Array.of(BigInt(total - 1)),
        logitsPositions: BigInt64Array.of(0n),
        logitsCount: 1,
        past,
      },
      lora,
    );
    session.free(past);
  }
  session.free(step.present);
  return out;
}

/** log p(tokens[i + 1] | tokens[..i]) along one unpadded sequence, in one forward pass. */
export async function sequenceLogprobs(
  session: DecoderSession,
  lora: LoraFeeds,
  tokens: readonly number[],
): Promise<number[]> {
  const n = tokens.length;
  if (n < 2) return [];
  const vocab = session.manifest.dims.vocabSize;
  const { logits, present } = await session.step(
    {
      batch: 1,
      seq: n,
      inputIds: BigInt64Array.from(tokens.map(BigInt)),
      attentionMask: new BigInt64Array(n).fill(1n),
      positionIds: BigInt64Array.from(tokens.map((_, i) => BigInt(i))),
      logitsPositions: BigInt64Array.from({ length: n - 1 }, (_, i) => BigInt(i)),
      logitsCount: n - 1,
      past: null,
    },
    lora,
  );
  session.free(present);
  return tokens.slice(1).map((t, i) => logProbAt(logits, i, vocab, t));
}
