/**
 * OpenAI/vLLM request conformance against a real generator (llama-tiny, byte tokenizer): every
 * parameter of the registry (services/generator/src/inference/params) is sent at least once, with
 * the official `openai` client or as raw JSON the way other clients send it, and either shows its
 * effect or is refused with 400 naming it in OpenAI's error shape.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Service } from "@loracast/dev-support/supervisor";
import { completionSchema } from "@loracast/shared/generator-api";
import OpenAI from "openai";
import { PARAMETERS } from "../../services/generator/src/inference/params/index.ts";
import { type Stack, startServingStack } from "../helpers/stack.ts";
import type { Ctx, Raw } from "./openai-conformance/context.ts";
import { CONTRACT_CASES } from "./openai-conformance/contract-cases.ts";
import { SAMPLING_CASES } from "./openai-conformance/sampling-cases.ts";
import { SHAPE_CASES } from "./openai-conformance/shape-cases.ts";

const MODEL = "llama-tiny";
const HI = [{ role: "user", content: "hi" }];

/** A value each refused parameter could carry that asks for something (default: a string). */
const ASKING: Record<string, unknown> = {
  tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }],
  tool_choice: "auto",
  functions: [{ name: "get_weather" }],
  function_call: "auto",
  response_format: { type: "json_object" },
  modalities: ["text", "audio"],
  audio: { voice: "alloy", format: "wav" },
  store: true,
  metadata: { trace: "1" },
  service_tier: "flex",
  echo: true,
  use_beam_search: true,
  length_penalty: 2,
  include_stop_str_in_output: true,
  skip_special_tokens: false,
  spaces_between_special_tokens: false,
  truncate_prompt_tokens: 4,
  allowed_token_ids: [97],
  bad_words: ["x"],
  add_special_tokens: true,
  continue_final_message: true,
  priority: 1,
  parallel_tool_calls: "sometimes",
  logits_processors: ["x.y"],
  return_tokens_as_token_ids: true,
  chat_template_kwargs: { enable_thinking: true },
  kv_transfer_params: { a: 1 },
  vllm_xargs: { a: 1 },
  mm_processor_kwargs: { a: 1 },
  guided_choice: ["a", "b"],
  documents: [{ title: "t", text: "x" }],
  prompt_embeds: "AAAA",
  prediction: { type: "content", content: "x" },
  web_search_options: {},
  moderation: { model: "x" },
  prompt_cache_options: { a: 1 },
};

describe("OpenAI and vLLM request conformance (table-driven, official client)", () => {
  let stack: Stack;
  let g: Service;
  let ctx: Ctx;
  const covered = new Set<string>();

  before(async () => {
    ({ stack, generator: g } = await startServingStack());
    const client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
    const post = async (path: string, body: Record<string, unknown>): Promise<Raw> => {
      const res = await fetch(`${g.url}/v1/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return {
        status: res.status,
        body: res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text,
      };
    };
    const complete: Ctx["complete"] = async (body) => {
      const r = await client.completions.create({
        model: MODEL,
        ...body,
      } as unknown as OpenAI.CompletionCreateParamsNonStreaming);
      return { choices: completionSchema.parse(r).choices, usage: r.usage as OpenAI.CompletionUsage };
    };
    ctx = {
      client,
      model: MODEL,
      post,
      complete,
      logs: () => g.logs.map((l) => JSON.stringify(l)).join("\n"),
      greedy: async (prompt, max) => {
        const r = await complete({
          prompt,
          max_tokens: max,
          temperature: 0,
          ignore_eos: true,
          return_token_ids: true,
        });
        return r.choices[0]?.token_ids ?? [];
      },
    };
  });
  after(() => stack?.stop());

  for (const c of [...SHAPE_CASES, ...CONTRACT_CASES, ...SAMPLING_CASES]) {
    it(c.title, async () => {
      await c.run(ctx);
      for (const name of c.covers) covered.add(name);
    });
  }

  it("refuses each known-but-unsupported parameter with 400 naming it; null and values asking nothing pass", async () => {
    for (const p of PARAMETERS.filter((x) => x.status === "refused")) {
      for (const e of p.endpoints) {
        const path = e === "chat" ? "chat/completions" : "completions";
        const base =
          e === "chat"
            ? { model: MODEL, messages: HI, max_tokens: 1 }
            : { model: MODEL, prompt: "ab", max_tokens: 1 };
        const r = await ctx.post(path, { ...base, [p.name]: ASKING[p.name] ?? "x" });
        assert.equal(r.status, 400, `${e} ${p.name}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(
          { param: r.body.error.param, type: r.body.error.type, code: r.body.error.code },
          { param: p.name, type: "invalid_request_error", code: "unsupported_parameter" },
        );
        assert.match(r.body.error.message, new RegExp(p.name));
        assert.equal((await ctx.post(path, { ...base, [p.name]: null })).status, 200, `${e} ${p.name}: null`);
        covered.add(`${p.name}@${e}`);
      }
    }
    const client = ctx.client;
    await assert.rejects(
      client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "hi" }],
        tools: [{ type: "function", function: { name: "f" } }],
      }),
      (e: unknown) =>
        e instanceof OpenAI.BadRequestError && e.param === "tools" && e.code === "unsupported_parameter",
    );
    const none = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 1,
      tool_choice: "none",
      response_format: { type: "text" },
    });
    assert.equal(none.choices.length, 1);
  });

  it("takes requests as other clients send them: nulls everywhere, extra keys, stream_options, max_completion_tokens", async () => {
    // Every optional parameter null: the case openai-null-params-400's requests, and all the rest.
    for (const e of ["completions", "chat"] as const) {
      const nulls = Object.fromEntries(
        PARAMETERS.filter(
          (p) => p.endpoints.includes(e) && !["model", "prompt", "messages"].includes(p.name),
        ).map((p) => [p.name, null]),
      );
      const base = e === "chat" ? { model: MODEL, messages: HI } : { model: MODEL, prompt: "ab" };
      const r = await ctx.post(e === "chat" ? "chat/completions" : "completions", {
        ...base,
        ...nulls,
        max_tokens: 2,
      });
      assert.equal(r.status, 200, `${e}: ${JSON.stringify(r.body)}`);
    }
    // LangChain-style chat body: defaults spelled out, empty logit_bias, user "".
    const lc = await ctx.post("chat/completions", {
      model: MODEL,
      messages: HI,
      max_tokens: 4,
      stop: null,
      temperature: 0.2,
      top_p: 1.0,
      n: 1,
      user: "",
      frequency_penalty: 0.0,
      presence_penalty: 0.0,
      logit_bias: {},
      stream: false,
      seed: null,
      stream_options: null,
    });
    assert.equal(lc.status, 200, JSON.stringify(lc.body));
    // Unknown keys (a newer OpenAI parameter, a proxy's tag) are tolerated.
    const extra = await ctx.post("completions", {
      model: MODEL,
      prompt: "ab",
      max_tokens: 1,
      some_new_param: { x: 1 },
      x_trace: "t",
    });
    assert.equal(extra.status, 200);
    // max_completion_tokens as o-series clients send it, with max_tokens null.
    const mct = await ctx.post("chat/completions", {
      model: MODEL,
      messages: HI,
      max_completion_tokens: 3,
      max_tokens: null,
      ignore_eos: true,
    });
    assert.equal(mct.body.usage.completion_tokens, 3);
    // A raw streamed request with stream_options, read as SSE.
    const res = await fetch(`${g.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        messages: HI,
        max_tokens: 2,
        stream: true,
        stream_options: { include_usage: true },
        ignore_eos: true,
      }),
    });
    const events = (await res.text())
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => l.slice(6));
    assert.equal(events.at(-1), "[DONE]");
    assert.equal(JSON.parse(events.at(-2) as string).usage.completion_tokens, 2);
  });

  it("every parameter of the registry was sent at least once", () => {
    const missing = PARAMETERS.flatMap((p) =>
      p.endpoints
        .filter((e) => !covered.has(p.name) && !covered.has(`${p.name}@${e}`))
        .map((e) => `${p.name}@${e}`),
    );
    assert.deepEqual(missing, [], "parameters no case sent");
  });
});
