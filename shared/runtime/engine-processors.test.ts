/**
 * The engine's logits processors and prompt logprobs on llama-tiny, against references computed
 * here from full forward passes (no cache, no batching) with the formulas written out again.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loadTinyModel, prefillStep, type TinyModel } from "@loracast/dev-support/tiny-model";
import * as ort from "onnxruntime-node";
import { createRng } from "../random/index.ts";
import {
  argmaxRow,
  type DecoderSession,
  Engine,
  type GenerationRequest,
  GREEDY,
  greedyDecode,
  type LoraFeeds,
  NonFiniteLogitsError,
  sequenceLogprobs,
} from "./index.ts";

// Both attentions: the GroupQueryAttention graph pads rows on the other side (gqa-step.ts).
for (const attention of ["ops", "gqa"] as const) {
  describe(`engine logits processors and prompt logprobs on llama-tiny (${attention} attention)`, () => {
    let model: TinyModel;
    let session: DecoderSession;
    let lora: LoraFeeds;
    let vocab: number;
    const prompt = [5, 9, 200, 17, 3, 44, 8, 90];

    before(async () => {
      model = await loadTinyModel(attention);
      ({ session, lora } = model);
      vocab = session.manifest.dims.vocabSize;
    });
    after(() => model.dispose());

    const request = (extra: Partial<GenerationRequest> = {}): GenerationRequest => ({
      prompt,
      adapter: { key: "lora", feeds: lora },
      sampling: GREEDY,
      maxTokens: 12,
      stopTokens: new Set(),
      logprobs: null,
      rng: createRng(0),
      ...extra,
    });
    const tokens = async (engine: Engine, extra: Partial<GenerationRequest>) =>
      (await engine.generate(request(extra))).tokens.map((t) => t.token);

    /** The next-token logits after `ids`, from one pass over the whole sequence. */
    const lastLogits = async (ids: readonly number[]): Promise<Float32Array> => {
      const out = await session.step(prefillStep(ids), lora);
      return out.logits.slice();
    };

    /** Greedy decoding where `edit` changes each step's logits, given the tokens generated so far. */
    const reference = async (n: number, edit: (row: Float32Array, out: number[]) => void) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const row = await lastLogits([...prompt, ...out]);
        edit(row, out);
        out.push(argmaxRow(row, 0, vocab));
      }
      return out;
    };

    it("without processors, or with neutral ones, every token and logprob is bit-identical", async () => {
      const engine = new Engine(session);
      const sampled = { temperature: 1.2, topK: 0, topP: 0.95, minP: 0 };
      for (const sampling of [GREEDY, sampled]) {
        const run = (extra: object) =>
          engine.generate(request({ sampling: { ...sampling, ...extra }, logprobs: 3, rng: createRng(11) }));
        const plain = await run({});
        // Explicit neutral values make no processors; a zero bias does, and must change nothing.
        const neutral = await run({ presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1 });
        const zeroBias = await run({ logitBias: new Map([[7, 0]]) });
        assert.deepEqual(neutral, plain);
        assert.deepEqual(zeroBias, plain);
      }
      const greedy = await engine.generate(request());
      assert.deepEqual(
        greedy.tokens.map((t) => t.token),
        await greedyDecode(session, lora, prompt, 12),
      );
      assert.equal(greedy.promptTokens, undefined, "no prompt logprobs unless asked");
    });

    it("a -100 bias bans tokens and +100 forces one, greedy and sampled", async () => {
      const engine = new Engine(session);
      const hot = { temperature: 1, topK: 0, topP: 1, minP: 0 };
      const greedy = await tokens(engine, {});
      const sampled = await tokens(engine, { sampling: hot, rng: createRng(3) });
      for (const [sampling, before] of [
        [GREEDY, greedy],
        [hot, sampled],
      ] as const) {
        const ban = new Map([...new Set(before)].map((t) => [t, -100]));
        const banned = await tokens(engine, { sampling: { ...sampling, logitBias: ban }, rng: createRng(3) });
        assert.equal(banned.length, 12);
        assert.ok(
          banned.every((t) => !ban.has(t)),
          `banned tokens ${[...ban.keys()]} appear in ${banned}`,
        );
        const forced = await tokens(engine, {
          sampling: { ...sampling, logitBias: new Map([[77, 100]]) },
          rng: createRng(3),
        });
        assert.deepEqual(forced, Array(12).fill(77));
      }
    });

    it("frequency and presence penalties change a greedy repetition as OpenAI's formula does", async () => {
      const engine = new Engine(session);
      const plain = await tokens(engine, {});
      assert.ok(new Set(plain).size < plain.length, `the greedy output repeats a token: ${plain}`);
      const penalised = await tokens(engine, {
        sampling: { ...GREEDY, frequencyPenalty: 1.5, presencePenalty: 0.5 },
      });
      const expected = await reference(12, (row, out) => {
        const c = new Map<number, number>();
        for (const t of out) c.set(t, (c.get(t) ?? 0) + 1);
        for (const [t, n] of c) row[t] = (row[t] ?? 0) - n * 1.5 - 0.5;
      });
      assert.deepEqual(penalised, expected);
      assert.notDeepEqual(penalised, plain);
      assert.ok(new Set(penalised).size > new Set(plain).size, `${penalised} repeats less than ${plain}`);
    });

    it("repetition_penalty divides or multiplies the logits of prompt and output tokens (CTRL, vLLM)", async () => {
      const engine = new Engine(session);
      const penalised = await tokens(engine, { sampling: { ...GREEDY, repetitionPenalty: 1.8 } });
      const expected = await reference(12, (row, out) => {
        for (const t of new Set([...prompt, ...out])) {
          const v = row[t] ?? 0;
          row[t] = v > 0 ? v / 1.8 : v * 1.8;
        }
      });
      assert.deepEqual(penalised, expected);
      assert.notDeepEqual(penalised, await tokens(engine, {}));
    });

    it("min_tokens keeps stop tokens and shouldStop from ending the sequence early; max_tokens still wins", async () => {
      const engine = new Engine(session);
      const stop = (await tokens(engine, {}))[0] as number;
      const early = await engine.generate(request({ stopTokens: new Set([stop]) }));
      assert.deepEqual([early.finishReason, early.tokens.length], ["stop", 1]);

      const late = await engine.generate(
        request({ stopTokens: new Set([stop]), minTokens: 4, maxTokens: 30 }),
      );
      const got = late.tokens.map((t) => t.token);
      const expected = await reference(30, (row, out) => {
        if (out.length < 4) row[stop] = Number.NEGATIVE_INFINITY;
      });
      assert.equal(late.finishReason, "stop");
      assert.deepEqual(got, expected.slice(0, expected.indexOf(stop, 4) + 1));
      assert.ok(got.length > 4 && !got.slice(0, 4).includes(stop), `${got}`);

      const strings = await engine.generate(request({ shouldStop: () => true, minTokens: 3 }));
      assert.equal(strings.finishReason, "stop");
      assert.equal(strings.tokens.length, 4, "a stop string counts once more than min_tokens tokens exist");
      const capped = await engine.generate(request({ shouldStop: () => true, minTokens: 8, maxTokens: 5 }));
      assert.deepEqual([capped.finishReason, capped.tokens.length], ["length", 5]);
    });

    it("prompt logprobs are log_softmax of a full forward pass at every position, only for those who ask", async () => {
      const engine = new Engine(session);
      const short = [40, 2, 133];
      const [a, b, c] = await Promise.all([
        engine.generate(request({ promptLogprobs: 3, maxTokens: 4 })),
        engine.generate(request({ prompt: short, promptLogprobs: 0, maxTokens: 4 })),
        engine.generate(request({ prompt: short, maxTokens: 4 })),
      ]);
      assert.equal(engine.stats.prefills, 2, "the scored prompts are prefilled apart from the others");
      assert.equal(c.promptTokens, undefined);
      for (const [ids, r, top] of [
        [prompt, a, 3],
        [short, b, 0],
      ] as const) {
        const got = r.promptTokens ?? [];
        assert.deepEqual(
          got.map((t) => t.token),
          ids,
        );
        assert.deepEqual(got[0], { token: ids[0], logprob: null, top: [] });
        const want = await sequenceLogprobs(session, lora, ids);
        got.slice(1).forEach((t, i) => {
          assert.ok(Math.abs((t.logprob ?? 0) - (want[i] ?? 0)) < 1e-5, `position ${i + 1}`);
          assert.equal(t.top.length, top);
          const best = t.top[0];
          if (best !== undefined) assert.ok(best.logprob >= (t.logprob ?? 0));
        });
        assert.deepEqual(
          r.tokens.map((t) => t.token),
          await greedyDecode(session, lora, ids, 4),
        );
      }
      // The top alternatives are those of the full pass, best first.
      const row = await lastLogits(prompt.slice(0, 4));
      const order = [...row.keys()].sort((x, y) => (row[y] ?? 0) - (row[x] ?? 0)).slice(0, 3);
      assert.deepEqual(
        a.promptTokens?.[4]?.top.map((t) => t.token),
        order,
      );
      assert.deepEqual(c.tokens, (await engine.generate(request({ prompt: short, maxTokens: 4 }))).tokens);
    });

    it("rejects processor parameters the engine cannot apply, naming the field", async () => {
      const engine = new Engine(session);
      await assert.rejects(
        engine.generate(request({ sampling: { ...GREEDY, logitBias: new Map([[vocab, -100]]) } })),
        (e: Error) => e instanceof RangeError && /^logitBias: token id 256/.test(e.message),
      );
      await assert.rejects(
        engine.generate(request({ promptLogprobs: -1 })),
        (e: Error) => e instanceof RangeError && /^promptLogprobs/.test(e.message),
      );
      assert.equal(engine.load, 0);
    });

    it("a non-finite prompt row fails the request at that prompt token, not with a NaN logprob", async () => {
      // B factors scaled past float32: every logit of every position overflows.
      const huge: LoraFeeds = Object.fromEntries(
        Object.entries(lora).map(([name, t]) => [
          name,
          name.endsWith("lora_B.weight") && t.size > 0
            ? new ort.Tensor(
                "float32",
                (t.data as Float32Array).map((v) => v * 1e30),
                t.dims,
              )
            : t,
        ]),
      );
      const engine = new Engine(session);
      const run = (promptLogprobs: number | null) =>
        engine.generate(request({ adapter: { key: "huge", feeds: huge }, promptLogprobs }));
      await assert.rejects(
        run(1),
        (e: Error) => e instanceof NonFiniteLogitsError && e.where === "prompt" && e.step === 1,
      );
      await assert.rejects(
        run(null),
        (e: Error) => e instanceof NonFiniteLogitsError && e.where === "generated" && e.step === 0,
      );
    });
  });
}
