/**
 * Conformance cases for the request contract's edges: chat message fields, what a malformed union
 * field's error says, and vLLM's continuous usage in streams.
 */
import assert from "node:assert/strict";
import type OpenAI from "openai";
import type { Case } from "./context.ts";

export const CONTRACT_CASES: Case[] = [
  {
    title:
      "message fields: name and tool_call_id reach the template, tool calls and non-text parts are refused by path",
    covers: ["messages"],
    async run(ctx) {
      const call = [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }];
      for (const [messages, param] of [
        [
          [
            { role: "user", content: "hi" },
            { role: "assistant", content: "x", tool_calls: call },
          ],
          "messages.1.tool_calls",
        ],
        [
          [
            { role: "user", content: "hi" },
            { role: "assistant", content: null, tool_calls: call },
          ],
          "messages.1.tool_calls",
        ],
        [
          [{ role: "user", content: [{ type: "image_url", image_url: { url: "http://x/y.png" } }] }],
          "messages.0.content.0.type",
        ],
      ] as const) {
        const r = await ctx.post("chat/completions", { model: ctx.model, messages, max_tokens: 1 });
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.deepEqual([r.body.error.code, r.body.error.param], ["unsupported_parameter", param]);
      }
      const r = await ctx.post("chat/completions", {
        model: ctx.model,
        messages: [
          { role: "user", content: "hi", name: "ann", tool_calls: null },
          { role: "assistant", content: null, tool_calls: [] },
          { role: "tool", content: "42", tool_call_id: "c1" },
        ],
        max_tokens: 1,
        return_token_ids: true,
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const prompt = new TextDecoder().decode(Uint8Array.from(r.body.prompt_token_ids as number[]));
      assert.equal(prompt, "<|user name=ann|>\nhi\n<|assistant|>\n\n<|tool id=c1|>\n42\n<|assistant|>\n");
    },
  },
  {
    title: "a malformed union field says what it accepts and the bound",
    covers: ["prompt", "stop"],
    async run(ctx) {
      for (const [path, body, param, message] of [
        [
          "completions",
          { prompt: Array.from({ length: 65 }, () => "a") },
          "prompt",
          /list of at most 64 strings/,
        ],
        ["completions", { prompt: [] }, "prompt", /must be a string, a list of at most 64 strings/],
        ["completions", { prompt: "a", stop: 1 }, "stop", /a list of at most 16 strings/],
        [
          "chat/completions",
          { messages: [{ role: "user", content: 1 }] },
          "messages.0.content",
          /at most 1024/,
        ],
      ] as const) {
        const r = await ctx.post(path, { model: ctx.model, max_tokens: 1, ...body });
        assert.equal(r.status, 400);
        assert.equal(r.body.error.param, param);
        assert.match(r.body.error.message, message);
      }
    },
  },
  {
    title:
      "stream_options.continuous_usage_stats puts each choice's usage so far on every chunk (vLLM); alone it is refused",
    covers: ["stream_options"],
    async run(ctx) {
      const stream = await ctx.client.completions.create({
        model: ctx.model,
        prompt: "ab",
        n: 2,
        max_tokens: 3,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true, continuous_usage_stats: true },
      } as unknown as OpenAI.CompletionCreateParamsStreaming);
      const chunks: OpenAI.Completion[] = [];
      for await (const c of stream) chunks.push(c);
      const total = chunks.pop();
      assert.deepEqual(total?.usage, { prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });
      const seen = new Map<number, number>();
      for (const c of chunks) {
        const ch = c.choices[0] as OpenAI.CompletionChoice;
        seen.set(ch.index, (seen.get(ch.index) ?? 0) + (ch.text === "" && ch.finish_reason !== null ? 0 : 1));
        assert.equal(c.usage?.prompt_tokens, 2);
        assert.equal(c.usage?.completion_tokens, Math.min(seen.get(ch.index) ?? 0, 3), JSON.stringify(c));
        assert.equal(c.usage?.total_tokens, 2 + (c.usage?.completion_tokens ?? 0));
      }
      const alone = await ctx.post("completions", {
        model: ctx.model,
        prompt: "ab",
        max_tokens: 1,
        stream: true,
        stream_options: { continuous_usage_stats: true },
      });
      assert.equal(alone.status, 400);
      assert.equal(alone.body.error.param, "stream_options.continuous_usage_stats");
    },
  },
];
