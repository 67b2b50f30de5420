/**
 * Conformance cases for prompts, choices and what responses carry (n, best_of, echo, logprobs, token ids, streaming, user).
 */
import assert from "node:assert/strict";
import type { CompletionChoice } from "@loracast/shared/generator-api";
import type { Case } from "./context.ts";
import { sum, tokenIds } from "./helpers.ts";

export const SHAPE_CASES: Case[] = [
  {
    title: "model names what answers; an unknown model is a 404 naming `model`",
    covers: ["model"],
    async run(ctx) {
      const r = await ctx.client.completions.create({ model: ctx.model, prompt: "ab", max_tokens: 1 });
      assert.equal(r.model, ctx.model);
      // One wording for an unknown model, OpenAI's, on completions, chat and models.retrieve.
      const message = "The model `no-such-model` does not exist or you do not have access to it.";
      for (const bad of [
        await ctx.post("completions", { model: "no-such-model", prompt: "ab", max_tokens: 1 }),
        await ctx.post("chat/completions", {
          model: "no-such-model",
          messages: [{ role: "user", content: "hi" }],
        }),
      ]) {
        assert.equal(bad.status, 404);
        assert.deepEqual(
          [bad.body.error.code, bad.body.error.param, bad.body.error.message],
          ["model_not_found", "model", message],
        );
      }
      await assert.rejects(ctx.client.models.retrieve("no-such-model"), (e: unknown) => {
        assert.ok(e instanceof Error && "status" in e && e.status === 404);
        assert.deepEqual(
          ["code", "param"].map((k) => (e as unknown as Record<string, unknown>)[k]),
          ["model_not_found", "model"],
        );
        assert.match(e.message, /The model `no-such-model` does not exist or you do not have access to it\./);
        return true;
      });
    },
  },
  {
    title: "prompt: a string, strings, token ids and lists of token ids; index = prompt × n + i",
    covers: ["prompt", "n"],
    async run(ctx) {
      const [a, b] = [await ctx.greedy("ab", 4), await ctx.greedy("xyz", 4)];
      const shapes: unknown[] = [
        ["ab", "xyz"],
        [
          [97, 98],
          [120, 121, 122],
        ],
      ];
      for (const prompt of shapes) {
        const r = await ctx.complete({
          prompt,
          n: 2,
          max_tokens: 4,
          temperature: 0,
          ignore_eos: true,
          return_token_ids: true,
        });
        assert.deepEqual(
          r.choices.map((c) => c.index),
          [0, 1, 2, 3],
        );
        assert.deepEqual(
          r.choices.map((c) => c.token_ids),
          [a, a, b, b],
          JSON.stringify(prompt),
        );
        assert.equal(r.usage.prompt_tokens, 5, "each prompt counted once");
        assert.equal(r.usage.completion_tokens, 16);
      }
      assert.deepEqual(await tokenIds(ctx, { prompt: [97, 98], max_tokens: 4 }), a);
    },
  },
  {
    title: "messages go through the chat template; add_generation_prompt adds the assistant header",
    covers: ["messages", "add_generation_prompt", "max_completion_tokens", "max_tokens@chat"],
    async run(ctx) {
      const messages = [{ role: "user" as const, content: "hi" }];
      const on = await ctx.client.chat.completions.create({
        model: ctx.model,
        messages,
        max_completion_tokens: 3,
        temperature: 0,
        ...({ ignore_eos: true } as object),
      });
      assert.equal(on.usage?.completion_tokens, 3);
      assert.equal(on.usage?.prompt_tokens, "<|user|>\nhi\n<|assistant|>\n".length);
      assert.equal(typeof on.choices[0]?.message.content, "string");
      const off = await ctx.post("chat/completions", {
        model: ctx.model,
        messages,
        max_tokens: 2,
        add_generation_prompt: false,
        ignore_eos: true,
      });
      assert.equal(off.status, 200);
      assert.equal(off.body.usage.prompt_tokens, "<|user|>\nhi\n".length);
      assert.equal(off.body.usage.completion_tokens, 2);
    },
  },
  {
    title:
      "n returns n sampled choices; best_of returns the n candidates with the highest cumulative logprob",
    covers: ["best_of@completions", "best_of@chat", "n"],
    async run(ctx) {
      const body = { prompt: "ab", max_tokens: 8, temperature: 1.2, seed: 11, ignore_eos: true, logprobs: 0 };
      const all = await ctx.complete({ ...body, n: 4 });
      assert.equal(all.choices.length, 4);
      const ranked = [...all.choices].sort(
        (x, y) => sum(y.logprobs?.token_logprobs ?? []) - sum(x.logprobs?.token_logprobs ?? []),
      );
      const best = await ctx.complete({ ...body, n: 2, best_of: 4 });
      assert.deepEqual(
        best.choices.map((c) => c.text),
        ranked.slice(0, 2).map((c) => c.text),
      );
      assert.deepEqual(
        best.choices.map((c) => c.index),
        [0, 1],
      );
      const chat = await ctx.post("chat/completions", {
        model: ctx.model,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
        temperature: 1,
        n: 1,
        best_of: 3,
      });
      assert.equal(chat.status, 200);
      assert.equal(chat.body.choices.length, 1);
      const fewer = await ctx.post("completions", { model: ctx.model, prompt: "ab", n: 3, best_of: 2 });
      assert.equal(fewer.body.error.param, "best_of");
      const streamed = await ctx.post("completions", {
        model: ctx.model,
        prompt: "ab",
        best_of: 2,
        stream: true,
      });
      assert.equal(streamed.body.error.param, "best_of");
    },
  },
  {
    title: "echo prepends the prompt; with logprobs the prompt tokens come first",
    covers: ["echo@completions", "logprobs@completions"],
    async run(ctx) {
      const plain = await ctx.complete({ prompt: "ab", max_tokens: 3, temperature: 0, ignore_eos: true });
      const echoed = await ctx.complete({
        prompt: "ab",
        max_tokens: 3,
        temperature: 0,
        ignore_eos: true,
        echo: true,
        logprobs: 1,
      });
      const c = echoed.choices[0] as CompletionChoice;
      assert.equal(c.text, `ab${plain.choices[0]?.text}`);
      assert.equal(c.logprobs?.tokens.length, 2 + 3);
      assert.equal(c.logprobs?.token_logprobs[0], null, "nothing precedes the first prompt token");
      for (const lp of c.logprobs?.token_logprobs.slice(1) ?? [])
        assert.ok(typeof lp === "number" && lp <= 0);
      assert.deepEqual(c.logprobs?.tokens.slice(0, 2), ["a", "b"]);
      const streamBody = {
        model: ctx.model,
        prompt: "ab",
        max_tokens: 3,
        temperature: 0,
        echo: true,
        ...({ ignore_eos: true } as object),
      };
      let streamed = "";
      for await (const chunk of await ctx.client.completions.create({ ...streamBody, stream: true }))
        streamed += chunk.choices.map((x) => x.text).join("");
      assert.equal(streamed, c.text, "a stream echoes the prompt once, first");
      const refused = await ctx.post("completions", { ...streamBody, logprobs: 1, stream: true });
      assert.equal(refused.body.error?.param, "echo");
    },
  },
  {
    title: "prompt_logprobs scores each prompt token (the first has none)",
    covers: ["prompt_logprobs"],
    async run(ctx) {
      const r = await ctx.complete({ prompt: "abc", max_tokens: 1, prompt_logprobs: 2 });
      const pl = r.choices[0]?.prompt_logprobs ?? [];
      assert.equal(pl.length, 3);
      assert.equal(pl[0], null);
      assert.ok(pl[1] !== null && "98" in (pl[1] ?? {}), JSON.stringify(pl[1]));
      const chat = await ctx.post("chat/completions", {
        model: ctx.model,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 1,
        prompt_logprobs: 0,
      });
      assert.equal(chat.body.prompt_logprobs?.length, chat.body.usage.prompt_tokens);
    },
  },
  {
    title: "logprobs in chat, top_logprobs alternatives, and top_logprobs without logprobs refused",
    covers: ["logprobs@chat", "top_logprobs"],
    async run(ctx) {
      const messages = [{ role: "user" as const, content: "hi" }];
      const r = await ctx.client.chat.completions.create({
        model: ctx.model,
        messages,
        max_tokens: 3,
        temperature: 0,
        logprobs: true,
        top_logprobs: 2,
        ...({ ignore_eos: true } as object),
      });
      const content = r.choices[0]?.logprobs?.content ?? [];
      assert.equal(content.length, 3);
      for (const t of content) assert.equal(t.top_logprobs.length, 2);
      const refused = await ctx.post("chat/completions", { model: ctx.model, messages, top_logprobs: 2 });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error.param, "top_logprobs");
    },
  },
  {
    title: "return_token_ids gives the prompt's and the choice's ids",
    covers: ["return_token_ids"],
    async run(ctx) {
      const r = await ctx.complete({
        prompt: "ab",
        max_tokens: 3,
        temperature: 0,
        ignore_eos: true,
        return_token_ids: true,
      });
      assert.deepEqual(r.choices[0]?.prompt_token_ids, [97, 98]);
      assert.equal(r.choices[0]?.token_ids?.length, 3);
    },
  },
  {
    title:
      "stream gives the non-streamed text; stream_options.include_usage adds a usage chunk; stream_options needs stream",
    covers: ["stream", "stream_options"],
    async run(ctx) {
      const body = {
        model: ctx.model,
        prompt: "ab",
        max_tokens: 6,
        temperature: 0,
        ...({ ignore_eos: true } as object),
      };
      const whole = await ctx.client.completions.create(body);
      let text = "";
      let usage: unknown = null;
      for await (const chunk of await ctx.client.completions.create({
        ...body,
        stream: true,
        stream_options: { include_usage: true },
      })) {
        text += chunk.choices.map((c) => c.text).join("");
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, whole.choices[0]?.text);
      assert.deepEqual(usage, whole.usage);
      const refused = await ctx.post("completions", {
        model: ctx.model,
        prompt: "ab",
        stream_options: { include_usage: true },
      });
      assert.equal(refused.body.error.param, "stream_options");
    },
  },
  {
    title: "user and safety_identifier are accepted and appear in no log",
    covers: ["user", "safety_identifier"],
    async run(ctx) {
      const r = await ctx.client.chat.completions.create({
        model: ctx.model,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 1,
        user: "user-7f3e",
        safety_identifier: "sid-7f3e",
      });
      assert.equal(r.choices.length, 1);
      const c = await ctx.client.completions.create({
        model: ctx.model,
        prompt: "ab",
        max_tokens: 1,
        user: "user-7f3e",
      });
      assert.equal(c.choices.length, 1);
      assert.doesNotMatch(ctx.logs(), /user-7f3e|sid-7f3e/);
    },
  },
];
