import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SampledToken } from "@loracast/shared/runtime";
import { byteTokenizer } from "@loracast/shared/tokenizer";
import { ChoiceText } from "./choice-text.ts";
import type { ChoiceDelta, ChoiceResult } from "./inference-service.ts";
import { ResponseBuilder, type ResponseContext } from "./response-builder.ts";

const tok = byteTokenizer({ vocabSize: 256, specialIds: [0, 1, 2], stopTokenIds: [2] });
const sampled = (token: number, i: number): SampledToken => ({
  token,
  logprob: -0.5 - i,
  top: [{ token: 0x61, logprob: -0.25 }],
});

const prompt = tok.encode("é✓ ");
const promptTokens = prompt.map((id, i) =>
  i === 0 ? { token: id, logprob: null, top: [] } : sampled(id, i),
);

/** One choice generated the way InferenceService.choice does it: deltas as tokens arrive, then the result. */
function generate(index: number, text: string): { deltas: ChoiceDelta[]; result: ChoiceResult } {
  const choice = new ChoiceText(tok, []);
  const deltas: ChoiceDelta[] = [];
  const tokens = tok.encode(text).map((id, i) => {
    const step = choice.push(sampled(id, i));
    deltas.push({ index, text: step.emit, tokens: [step.token] });
    return step.token;
  });
  choice.finish();
  return {
    deltas,
    result: {
      index,
      promptIndex: 0,
      text: choice.text,
      tokens,
      promptTokens,
      finishReason: "length",
    },
  };
}

type Json = Record<string, unknown>;

describe("ResponseBuilder", () => {
  const context: ResponseContext = {
    kind: "completion",
    id: "cmpl-1",
    created: 1,
    model: "m",
    systemFingerprint: "fp_0",
    prompts: [{ ids: prompt, text: "é✓ " }],
    logprobs: 1,
    echo: true,
    returnPromptLogprobs: false,
    returnTokenIds: true,
    includeUsage: true,
    continuousUsage: false,
    n: 2,
    tokenizer: tok,
  };
  const runs = [generate(0, "ab"), generate(1, "中x")];

  it("echoes the prompt before the text and the logprobs, offsets continuing past it", () => {
    const whole = new ResponseBuilder(context).whole(runs.map((r) => r.result));
    const ch = (whole.choices as Json[])[1] as Json;
    assert.equal(ch.text, "é✓ 中x");
    const lp = ch.logprobs as Json;
    assert.deepEqual(lp.text_offset, [0, 0, 1, 1, 1, 2, 3, 3, 3, 4]);
    assert.deepEqual((lp.token_logprobs as unknown[])[0], null, "the prompt's first token has no logprob");
    assert.deepEqual((lp.top_logprobs as unknown[])[0], null);
    assert.deepEqual(ch.token_ids, tok.encode("中x"), "token_ids are the generated tokens");
    assert.deepEqual(ch.prompt_token_ids, prompt);
  });

  it("streams echo (without logprobs, which params refuses to stream) in chunks that join to the whole response", () => {
    const streamed = { ...context, logprobs: null };
    const b = new ResponseBuilder(streamed);
    const chunks = [
      ...b.opening(),
      ...runs.flatMap((r) => r.deltas.map((d) => b.delta(d))),
      ...b.closing(runs.map((r) => r.result)),
    ];
    const whole = new ResponseBuilder(streamed).whole(runs.map((r) => r.result));
    const usageChunk = chunks.pop() as Json;
    assert.deepEqual(usageChunk.usage, whole.usage);
    for (const [index, expected] of (whole.choices as Json[]).entries()) {
      const mine = chunks.flatMap((c) => (c.choices as Json[]).filter((ch) => ch.index === index));
      assert.equal(mine.map((ch) => ch.text).join(""), expected.text);
      assert.equal(expected.logprobs, null);
      assert.ok(mine.every((ch) => ch.logprobs === null));
      assert.deepEqual(
        mine.flatMap((ch) => ch.token_ids as number[]),
        expected.token_ids,
      );
      assert.deepEqual(
        mine.filter((ch) => ch.prompt_token_ids !== undefined).map((ch) => ch.prompt_token_ids),
        [prompt],
        "prompt_token_ids once per choice",
      );
    }
  });

  it("with vLLM's continuous_usage_stats, puts each choice's usage so far on its chunks; the last chunk the total", () => {
    const b = new ResponseBuilder({ ...context, logprobs: null, continuousUsage: true });
    const opening = b.opening();
    const deltas = runs.flatMap((r) => r.deltas.map((d) => b.delta(d)));
    const closing = b.closing(runs.map((r) => r.result));
    const total = closing.pop() as Json;
    const p = prompt.length;
    const u = (c: Json) => c.usage as Json;
    assert.deepEqual(
      opening.map(u),
      [0, 1].map(() => ({ prompt_tokens: p, completion_tokens: 0, total_tokens: p })),
    );
    // "ab" is 2 tokens, "中x" 4: each chunk counts its own choice's tokens up to and with it.
    assert.deepEqual(
      deltas.map((c) => u(c).completion_tokens),
      [1, 2, 1, 2, 3, 4],
    );
    assert.ok(
      deltas.every(
        (c) => u(c).prompt_tokens === p && u(c).total_tokens === p + (u(c).completion_tokens as number),
      ),
    );
    assert.deepEqual(
      closing.map((c) => u(c).completion_tokens),
      [2, 4],
    );
    assert.deepEqual(total.usage, { prompt_tokens: p, completion_tokens: 6, total_tokens: p + 6 });
  });

  it("puts vLLM's prompt_logprobs per choice for completions and beside the choices for chat, whole and streamed", () => {
    const results = runs.map((r) => r.result);
    const completion = { ...context, returnPromptLogprobs: true };
    const whole = new ResponseBuilder(completion).whole(results);
    // The first prompt token has nothing before it; the second is 0xA9 ("é"'s last byte), not in the top-1 ("a").
    const expected = [
      null,
      {
        [String(prompt[1])]: { logprob: -1.5, rank: null, decoded_token: "\\xa9" },
        "97": { logprob: -0.25, rank: 1, decoded_token: "a" },
      },
    ];
    for (const ch of whole.choices as Json[])
      assert.deepEqual((ch.prompt_logprobs as unknown[]).slice(0, 2), expected);
    const closing = new ResponseBuilder(completion).closing(results);
    assert.deepEqual(
      closing.slice(0, 2).map((c) => ((c.choices as Json[])[0] as Json).prompt_logprobs),
      (whole.choices as Json[]).map((ch) => ch.prompt_logprobs),
    );
    const chat: ResponseContext = { ...completion, kind: "chat", echo: false, n: 2 };
    const chatWhole = new ResponseBuilder(chat).whole(results);
    assert.deepEqual(chatWhole.prompt_logprobs, (whole.choices as Json[])[0]?.prompt_logprobs);
    const chatClosing = new ResponseBuilder(chat).closing(results);
    assert.deepEqual(chatClosing[0]?.prompt_logprobs, chatWhole.prompt_logprobs);
    assert.equal(chatClosing[1]?.prompt_logprobs, undefined, "once per stream");
  });
});
