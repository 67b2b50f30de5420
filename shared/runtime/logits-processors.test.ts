import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRng } from "../random/index.ts";
import {
  GREEDY,
  invalidProcessorParams,
  LogitsProcessors,
  type SamplingParams,
  type StopConditions,
  sampleToken,
} from "./index.ts";

const params = (p: Partial<SamplingParams>): SamplingParams => ({ ...GREEDY, ...p });
const NO_STOP: StopConditions = { minTokens: 0, stopTokens: new Set() };

/** Processors that must exist for these params; `generated` tokens are recorded first. */
const processors = (
  p: Partial<SamplingParams>,
  prompt: number[] = [],
  generated: number[] = [],
  stop: StopConditions = NO_STOP,
): LogitsProcessors => {
  const made = LogitsProcessors.create(params(p), prompt, stop);
  assert.ok(made !== null, "processors expected");
  for (const t of generated) made.record(t);
  return made;
};

// Values exactly representable in float32, so the hand-computed results compare exactly.
const row = () => Float32Array.from([1, 2, -1, 3, 0.5]);

describe("logits processors", () => {
  it("neutral or absent parameters make no processors at all", () => {
    const neutral: Partial<SamplingParams> = {
      logitBias: new Map(),
      presencePenalty: 0,
      frequencyPenalty: 0,
      repetitionPenalty: 1,
    };
    assert.equal(LogitsProcessors.create(GREEDY, [1, 2], NO_STOP), null);
    assert.equal(LogitsProcessors.create(params(neutral), [1, 2], NO_STOP), null);
  });

  it("logit_bias adds each bias to its token's logit", () => {
    const out = processors({
      logitBias: new Map([
        [0, 2.5],
        [3, -1],
      ]),
    }).apply(row());
    assert.deepEqual([...out], [3.5, 2, -1, 2, 0.5]);
  });

  it("repetition_penalty divides positive and multiplies non-positive logits of prompt and output tokens", () => {
    // Prompt tokens 0 and 2, then token 3 generated: 1/2, -1*2, 3/2; tokens 1 and 4 unseen.
    const out = processors({ repetitionPenalty: 2 }, [0, 2, 2], [3]).apply(row());
    assert.deepEqual([...out], [0.5, 2, -2, 1.5, 0.5]);
    // A penalty below 1 rewards repetition the other way round.
    const reward = processors({ repetitionPenalty: 0.5 }, [0, 2]).apply(row());
    assert.deepEqual([...reward], [2, 2, -0.5, 3, 0.5]);
  });

  it("frequency and presence penalties follow OpenAI: c[j]·frequency + (c[j] > 0)·presence, output only", () => {
    // Prompt token 4 does not count; token 1 generated twice, token 3 once.
    const out = processors({ frequencyPenalty: 0.5, presencePenalty: 0.25 }, [4, 4], [1, 3, 1]).apply(row());
    // 2 - (2·0.5 + 0.25) = 0.75; 3 - (0.5 + 0.25) = 2.25.
    assert.deepEqual([...out], [1, 0.75, -1, 2.25, 0.5]);
    const negative = processors({ frequencyPenalty: -1 }, [], [0, 0, 0]).apply(row());
    assert.deepEqual([...negative], [4, 2, -1, 3, 0.5]);
  });

  it("runs bias, then repetition, then frequency and presence, then the temperature (vLLM's order)", () => {
    // Token 0: logit 1, bias -3, seen in the prompt: (1 - 3)·2 = -4 (penalty first would give -2.5).
    // Token 3: logit 3, generated once: 3/2 - 1 - 0.25 = 0.25 (frequency first would give 0.875).
    const p: Partial<SamplingParams> = {
      logitBias: new Map([[0, -3]]),
      repetitionPenalty: 2,
      frequencyPenalty: 1,
      presencePenalty: 0.25,
      temperature: 0.5,
    };
    const out = processors(p, [0], [3]).apply(row());
    assert.deepEqual([...out], [-4, 2, -1, 0.25, 0.5]);
    // The returned logprob is log_softmax(processed / T) before truncation.
    const z = [-4, 2, -1, 0.25, 0.5].map((v) => v / 0.5);
    const lse = Math.log(z.reduce((a, v) => a + Math.exp(v), 0));
    const s = sampleToken(out, params({ ...p, topK: 1 }), createRng(1), 2);
    assert.equal(s.token, 1);
    assert.ok(Math.abs((s.logprob ?? 0) - ((z[1] ?? 0) - lse)) < 1e-12);
    assert.deepEqual(
      s.top.map((t) => t.token),
      [1, 4],
    );
  });

  it("counts the output incrementally: each recorded token adds one frequency penalty", () => {
    const p = processors({ frequencyPenalty: 1 });
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      seen.push(p.apply(row())[3] ?? 0);
      p.record(3);
    }
    assert.deepEqual(seen, [3, 2, 1, 0]);
  });

  it("a -100 bias bans a token and +100 forces it, greedy and sampled", () => {
    const rng = createRng(5);
    const banned = processors({ logitBias: new Map([[3, -100]]) }).apply(row());
    const forced = processors({ logitBias: new Map([[2, 100]]) }).apply(row());
    assert.equal(sampleToken(banned, GREEDY, rng, null).token, 1);
    assert.equal(sampleToken(forced, GREEDY, rng, null).token, 2);
    const hot = params({ temperature: 1.5 });
    for (let i = 0; i < 2000; i++) {
      assert.notEqual(sampleToken(banned, hot, rng, null).token, 3);
      assert.equal(sampleToken(forced, hot, rng, null).token, 2);
    }
  });

  it("min_tokens masks the stop tokens until that many are generated, then leaves the row alone", () => {
    const p = processors({}, [], [], { minTokens: 2, stopTokens: new Set([3, 1, 999]) });
    const input = row();
    const masked = p.apply(input);
    assert.deepEqual([...masked], [1, Number.NEGATIVE_INFINITY, -1, Number.NEGATIVE_INFINITY, 0.5]);
    assert.deepEqual([...input], [1, 2, -1, 3, 0.5], "the input row is not modified");
    assert.equal(sampleToken(masked, GREEDY, createRng(1), 1).token, 0);
    p.record(0);
    assert.notEqual(p.apply(input), input);
    p.record(0);
    assert.equal(p.apply(input), input, "no copy once min_tokens is reached");
  });

  it("refuses ids outside the vocabulary, non-finite values and a repetition penalty ≤ 0, naming the field", () => {
    const check = (p: Partial<SamplingParams>, minTokens = 0) =>
      invalidProcessorParams(params(p), minTokens, 5);
    assert.equal(check({ logitBias: new Map([[4, -100]]), repetitionPenalty: 1.3 }, 3), null);
    assert.match(check({ logitBias: new Map([[5, 1]]) }) ?? "", /^logitBias: token id 5/);
    assert.match(check({ logitBias: new Map([[-1, 1]]) }) ?? "", /^logitBias/);
    assert.match(check({ logitBias: new Map([[1, Number.NaN]]) }) ?? "", /^logitBias/);
    assert.match(check({ repetitionPenalty: 0 }) ?? "", /^repetitionPenalty/);
    assert.match(check({ frequencyPenalty: Number.POSITIVE_INFINITY }) ?? "", /^frequencyPenalty/);
    assert.match(check({ presencePenalty: Number.NaN }) ?? "", /^presencePenalty/);
    assert.match(check({}, 1.5) ?? "", /^minTokens/);
  });
});
