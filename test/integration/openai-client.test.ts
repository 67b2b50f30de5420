/**
 * The official `openai` client, unchanged, against a real generator serving llama-tiny: it lists
 * models, creates completions and chat completions streamed and not, with n > 1 and logprobs, and
 * its stream helper rebuilds from the chunks the same chat completion the server returns whole.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Service } from "@loracast/dev-support/supervisor";
import OpenAI from "openai";
import { type Stack, startServingStack } from "../helpers/stack.ts";

const MODEL = "llama-tiny";

describe("the official openai client", () => {
  let stack: Stack;
  let g: Service;
  let client: OpenAI;

  before(async () => {
    ({ stack, generator: g } = await startServingStack());
    client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(() => stack?.stop());

  it("lists the models", async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes(MODEL), ids.join(", "));
  });

  it("creates completions with n > 1 and logprobs, whole and streamed with the usage chunk", async () => {
    const request = { model: MODEL, prompt: "héllo ✓", max_tokens: 12, n: 2, logprobs: 2, seed: 7 };
    const whole = await client.completions.create(request);
    assert.equal(whole.object, "text_completion");
    assert.match(whole.system_fingerprint ?? "", /^fp_[0-9a-f]{16}$/);
    assert.equal(whole.choices.length, 2);
    for (const ch of whole.choices) {
      const lp = ch.logprobs;
      assert.ok(lp?.tokens && lp.token_logprobs && lp.top_logprobs && lp.text_offset);
      assert.equal(lp.tokens.length, 12);
      assert.equal(lp.text_offset[0], 0);
      for (const top of lp.top_logprobs) assert.ok(Object.keys(top).length <= 3);
    }
    assert.equal(whole.usage?.completion_tokens, 24, "both choices' tokens");

    const stream = await client.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const texts = ["", ""];
    const offsets: number[][] = [[], []];
    let usage: OpenAI.CompletionUsage | null | undefined;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      ids.add(chunk.id);
      assert.equal(chunk.system_fingerprint, whole.system_fingerprint);
      if (chunk.choices.length === 0) usage = chunk.usage;
      else assert.equal(chunk.usage, null);
      for (const ch of chunk.choices) {
        texts[ch.index] += ch.text;
        offsets[ch.index]?.push(...(ch.logprobs?.text_offset ?? []));
      }
    }
    assert.equal(ids.size, 1, "every chunk has the stream's id");
    assert.deepEqual(
      texts,
      whole.choices.map((c) => c.text),
    );
    assert.deepEqual(
      offsets,
      whole.choices.map((c) => c.logprobs?.text_offset),
    );
    assert.deepEqual(usage, whole.usage);
  });

  it("creates chat completions with n > 1 and logprobs; the stream helper rebuilds the same completion", async () => {
    const request = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "count: 一二三" }],
      max_completion_tokens: 10,
      n: 2,
      logprobs: true,
      top_logprobs: 2,
      seed: 11,
    };
    const whole = await client.chat.completions.create(request);
    assert.equal(whole.object, "chat.completion");
    assert.match(whole.system_fingerprint ?? "", /^fp_[0-9a-f]{16}$/);
    for (const ch of whole.choices) {
      assert.equal(ch.message.refusal, null);
      assert.equal(ch.logprobs?.refusal, null);
      const content = ch.logprobs?.content ?? [];
      assert.ok(content.length > 0);
      for (const e of content) {
        assert.ok(Array.isArray(e.bytes) && e.top_logprobs.length <= 2);
        for (const b of e.bytes ?? []) assert.ok(Number.isInteger(b) && b >= 0 && b < 256);
      }
    }

    const runner = client.chat.completions.stream({ ...request, stream_options: { include_usage: true } });
    const final = await runner.finalChatCompletion();
    assert.equal(final.system_fingerprint, whole.system_fingerprint);
    assert.deepEqual(final.usage, whole.usage);
    assert.deepEqual(
      final.choices.map((c) => [c.message.content, c.message.refusal, c.finish_reason, c.logprobs?.content]),
      whole.choices.map((c) => [c.message.content, c.message.refusal, c.finish_reason, c.logprobs?.content]),
    );
  });
});
