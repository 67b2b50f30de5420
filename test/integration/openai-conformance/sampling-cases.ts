/**
 * Conformance cases for the sampling, length and stopping parameters: each with a check of its effect.
 */
import assert from "node:assert/strict";
import type { Case } from "./context.ts";
import { EOS, maxCount, stopAt, tokenIds } from "./helpers.ts";

export const SAMPLING_CASES: Case[] = [
  {
    title: "max_tokens bounds the choice; temperature 0 is greedy whatever the seed",
    covers: ["max_tokens@completions", "temperature", "ignore_eos"],
    async run(ctx) {
      const r = await ctx.complete({
        prompt: "ab",
        max_tokens: 7,
        temperature: 0,
        seed: 1,
        ignore_eos: true,
      });
      assert.equal(r.usage.completion_tokens, 7);
      assert.equal(r.choices[0]?.finish_reason, "length");
      const other = await ctx.complete({
        prompt: "ab",
        max_tokens: 7,
        temperature: 0,
        seed: 2,
        ignore_eos: true,
      });
      assert.equal(other.choices[0]?.text, r.choices[0]?.text);
    },
  },
  {
    title: "seed replays a sampled request; another seed samples differently",
    covers: ["seed"],
    async run(ctx) {
      const body = {
        prompt: "ab",
        max_tokens: 16,
        temperature: 1.5,
        ignore_eos: true,
        return_token_ids: true,
      };
      const one = await tokenIds(ctx, { ...body, seed: 7 });
      assert.deepEqual(await tokenIds(ctx, { ...body, seed: 7 }), one);
      assert.notDeepEqual(await tokenIds(ctx, { ...body, seed: 8 }), one);
    },
  },
  {
    title: "top_p, top_k and min_p at their tightest sample the greedy token",
    covers: ["top_p", "top_k", "min_p"],
    async run(ctx) {
      const greedy = await ctx.greedy("ab", 10);
      for (const extra of [{ top_p: 1e-9 }, { top_k: 1 }, { min_p: 1 }]) {
        const ids = await tokenIds(ctx, {
          prompt: "ab",
          max_tokens: 10,
          temperature: 1.5,
          seed: 3,
          ...extra,
        });
        assert.deepEqual(ids, greedy, JSON.stringify(extra));
      }
      assert.notDeepEqual(
        await tokenIds(ctx, { prompt: "ab", max_tokens: 10, temperature: 1.5, seed: 3 }),
        greedy,
      );
    },
  },
  {
    title: "stop as a string and as a list ends the text before the first match",
    covers: ["stop"],
    async run(ctx) {
      const ids = await ctx.greedy("ab", 24);
      const { at, stop } = stopAt(ids);
      const whole =
        (await ctx.complete({ prompt: "ab", max_tokens: 24, temperature: 0, ignore_eos: true })).choices[0]
          ?.text ?? "";
      const expected = whole.slice(0, whole.indexOf(stop));
      for (const s of [stop, ["\u0000never", stop]]) {
        const r = await ctx.complete({
          prompt: "ab",
          max_tokens: 24,
          temperature: 0,
          ignore_eos: true,
          stop: s,
        });
        assert.equal(r.choices[0]?.text, expected, JSON.stringify(s));
        assert.equal(r.choices[0]?.finish_reason, "stop");
        assert.ok((r.usage.completion_tokens ?? 0) <= at + 1);
      }
    },
  },
  {
    title: "stop_token_ids ends a choice; min_tokens keeps stop tokens and stop strings from ending it early",
    covers: ["stop_token_ids", "min_tokens"],
    async run(ctx) {
      const ids = await ctx.greedy("ab", 12);
      const first = ids[0] as number;
      const stopped = await tokenIds(ctx, { prompt: "ab", max_tokens: 12, stop_token_ids: [first] });
      assert.deepEqual(stopped, [first]);
      const held = await ctx.complete({
        prompt: "ab",
        max_tokens: 12,
        temperature: 0,
        ignore_eos: true,
        return_token_ids: true,
        stop_token_ids: [first],
        min_tokens: 5,
      });
      assert.ok((held.choices[0]?.token_ids?.length ?? 0) >= 5, JSON.stringify(held.choices[0]));
      const { at, stop } = stopAt(ids);
      const late = await ctx.complete({
        prompt: "ab",
        max_tokens: 12,
        temperature: 0,
        ignore_eos: true,
        stop,
        min_tokens: at + 2,
      });
      assert.ok(
        (late.usage.completion_tokens ?? 0) >= at + 2,
        "a stop string before min_tokens does not end the choice",
      );
    },
  },
  {
    title: "logit_bias -100 bans the greedy tokens; +100 forces one",
    covers: ["logit_bias"],
    async run(ctx) {
      const greedy = await ctx.greedy("ab", 6);
      const banned = Object.fromEntries(greedy.map((id) => [String(id), -100]));
      const ids = await tokenIds(ctx, { prompt: "ab", max_tokens: 6, logit_bias: banned });
      for (const id of ids) assert.ok(!greedy.includes(id), `banned token ${id} generated: ${ids}`);
      assert.deepEqual(
        await tokenIds(ctx, { prompt: "ab", max_tokens: 6, logit_bias: { "120": 100 } }),
        [120, 120, 120, 120, 120, 120],
      );
      const chat = await ctx.client.chat.completions.create({
        model: ctx.model,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 3,
        temperature: 0,
        logit_bias: { "121": 100 },
        ...({ ignore_eos: true } as object),
      });
      assert.equal(chat.choices[0]?.message.content, "yyy");
      const bad = await ctx.post("completions", { model: ctx.model, prompt: "ab", logit_bias: { "256": 1 } });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.param, "logit_bias.256");
    },
  },
  {
    title: "EOS ends a choice unless ignore_eos",
    covers: ["ignore_eos"],
    async run(ctx) {
      const forced = {
        prompt: "ab",
        max_tokens: 5,
        temperature: 0,
        return_token_ids: true,
        logit_bias: { [EOS]: 100 },
      };
      const ended = await ctx.complete(forced);
      assert.equal(ended.choices[0]?.finish_reason, "stop");
      assert.deepEqual(ended.choices[0]?.token_ids, [EOS]);
      const kept = await ctx.complete({ ...forced, ignore_eos: true });
      assert.equal(kept.choices[0]?.finish_reason, "length");
      assert.equal(kept.usage.completion_tokens, 5);
    },
  },
  {
    title: "presence, frequency and repetition penalties change a greedy repetition",
    covers: ["presence_penalty", "frequency_penalty", "repetition_penalty"],
    async run(ctx) {
      const greedy = await ctx.greedy("ab", 40);
      assert.ok(maxCount(greedy) > 1, "the greedy text repeats a token");
      for (const extra of [{ presence_penalty: 2 }, { frequency_penalty: 2 }, { repetition_penalty: 10 }]) {
        const ids = await tokenIds(ctx, { prompt: "ab", max_tokens: 40, ...extra });
        assert.notDeepEqual(ids, greedy, JSON.stringify(extra));
        assert.ok(maxCount(ids) < maxCount(greedy), `${JSON.stringify(extra)}: ${ids}`);
      }
      const encouraged = await tokenIds(ctx, { prompt: "ab", max_tokens: 40, frequency_penalty: -2 });
      assert.ok(maxCount(encouraged) >= maxCount(greedy));
    },
  },
];
