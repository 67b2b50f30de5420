/**
 * POST /v1/completions and /v1/chat/completions in OpenAI shapes, streamed over SSE on request.
 * Every response (and every stream) names the adapter that produced it in `model` and in the
 * x-loracast-adapter-version / x-loracast-adapter-sha256 headers.
 */
import { randomUUID } from "node:crypto";
import type { Clock } from "@loracast/shared/platform";
import { NonFiniteLogitsError } from "@loracast/shared/runtime";
import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { type ApiError, errorResponse } from "../errors.ts";
import { chatLogprobs, completionLogprobs, promptLogprobs, usage } from "../inference/format.ts";
import type {
  ChoiceDelta,
  ChoiceResult,
  InferenceService,
  Plan,
  ResolvedModel,
} from "../inference/inference-service.ts";
import {
  type ChatRequest,
  type Endpoint,
  parseRequest,
  type SamplingFields,
} from "../inference/params/index.ts";
import type { GeneratorEnv } from "./types.ts";

type Kind = "completion" | "chat";

interface Prepared {
  model: ResolvedModel;
  plan: Plan;
  stream: boolean;
  includeUsage: boolean;
  returnTokenIds: boolean;
}

function fail(c: Context, e: ApiError): Response {
  return errorResponse(c, e.code, e.message, e.param ?? null);
}

/** The body as JSON, checked against the endpoint's request contract. */
async function parse<E extends Endpoint>(c: Context, endpoint: E) {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return {
      ok: false as const,
      error: { code: "bad_request" as const, message: "the body is not valid JSON" },
    };
  }
  return parseRequest(body, endpoint);
}

export function generateRoutes(service: InferenceService | null, clock: Clock): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();

  const handle = async (c: Context<GeneratorEnv>, kind: Kind): Promise<Response> => {
    if (service === null) {
      return errorResponse(
        c,
        "engine_unavailable",
        "this generator runs without a model engine (GENERATOR_MODEL_DIR is not set)",
      );
    }
    const prepared = await prepare(c, kind, service);
    if (!prepared.ok) return fail(c, prepared.error);
    const p = prepared.value;
    c.header("x-loracast-adapter-version", p.model.version === null ? "none" : String(p.model.version));
    c.header("x-loracast-adapter-sha256", p.model.sha256 ?? "none");
    const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID()}`;
    const created = Math.floor(clock.now() / 1000);
    const head = {
      id,
      object: kind === "chat" ? "chat.completion" : "text_completion",
      created,
      model: p.model.name,
    };
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, c.req.raw.signal]);

    if (!p.stream) {
      try {
        const choices = await service.run(p.model, p.plan, signal);
        // vLLM puts a chat request's prompt_logprobs beside `choices` (one prompt for them all).
        const chatPromptLogprobs =
          kind === "chat" && p.plan.returnPromptLogprobs
            ? { prompt_logprobs: promptLogprobs(choices[0]?.promptTokens ?? [], service.tokenizer) }
            : {};
        return c.json({
          ...head,
          choices: choices.map((ch) => formatChoice(kind, ch, p, service)),
          usage: totals(p, choices),
          ...chatPromptLogprobs,
        });
      } catch (e) {
        if (e instanceof NonFiniteLogitsError) return errorResponse(c, "adapter_failed", e.message, "model");
        throw e;
      } finally {
        p.model.release();
      }
    }
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => controller.abort());
      let chain = Promise.resolve();
      const send = (data: unknown) => {
        chain = chain.then(() => stream.writeSSE({ data: JSON.stringify(data) }));
      };
      const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
      if (kind === "chat") {
        for (let index = 0; index < p.plan.n; index++) {
          send({
            ...head,
            object,
            choices: [
              { index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
            ],
          });
        }
      }
      // echo (never with logprobs in a stream): each choice opens with its prompt's text.
      if (p.plan.echo) {
        p.plan.prompts.forEach((prompt, at) => {
          for (let i = 0; i < p.plan.n; i++)
            send({
              ...head,
              object,
              choices: [
                formatDelta(kind, { index: at * p.plan.n + i, text: prompt.text, tokens: [] }, p, service),
              ],
            });
        });
      }
      try {
        const choices = await service.run(p.model, p.plan, signal, (d: ChoiceDelta) => {
          send({ ...head, object, choices: [formatDelta(kind, d, p, service)] });
        });
        for (const ch of choices) {
          const done =
            kind === "chat"
              ? { index: ch.index, delta: {}, logprobs: null, finish_reason: ch.finishReason }
              : { index: ch.index, text: "", logprobs: null, finish_reason: ch.finishReason };
          send({ ...head, object, choices: [done] });
        }
        if (p.includeUsage) send({ ...head, object, choices: [], usage: totals(p, choices) });
        chain = chain.then(() => stream.writeSSE({ data: "[DONE]" }));
        await chain;
      } catch (e) {
        if (!(e instanceof NonFiniteLogitsError)) throw e;
        // The 200 is already sent: the error goes in the stream, as vLLM reports mid-stream
        // failures, and no [DONE] follows.
        const requestId = (c.get("requestId") as string | undefined) ?? null;
        const error = {
          code: "adapter_failed",
          message: e.message,
          type: "invalid_request_error",
          param: "model",
          requestId,
        };
        await chain;
        await stream.writeSSE({ data: JSON.stringify({ error }) });
      } finally {
        p.model.release();
      }
    });
  };

  app.post("/v1/completions", (c) => handle(c, "completion"));
  app.post("/v1/chat/completions", (c) => handle(c, "chat"));
  return app;
}

async function prepare(
  c: Context,
  kind: Kind,
  service: InferenceService,
): Promise<{ ok: true; value: Prepared } | { ok: false; error: ApiError }> {
  const tok = service.tokenizer;
  let prompts: { ids: number[]; text: string }[];
  let fields: SamplingFields & Pick<ChatRequest, "model" | "stream" | "stream_options" | "return_token_ids">;
  /** Top alternatives per token, or null when the request wants no logprobs. */
  let logprobs: number | null;
  let echo = false;
  if (kind === "completion") {
    const body = await parse(c, "completions");
    if (!body.ok) return body;
    fields = body.value;
    const p = body.value.prompt;
    // OpenAI's four prompt shapes: a string, strings, token ids, lists of token ids.
    const list: (string | number[])[] =
      typeof p === "string"
        ? [p]
        : p.every((x) => typeof x === "number")
          ? [p as number[]]
          : (p as (string | number[])[]);
    prompts = list.map((x) =>
      typeof x === "string" ? { ids: tok.encode(x), text: x } : { ids: x, text: tok.decode(x) },
    );
    logprobs = body.value.logprobs ?? null;
    echo = body.value.echo;
    if (echo && logprobs !== null && body.value.stream)
      return {
        ok: false,
        error: {
          code: "bad_request",
          message:
            "echo with logprobs is not available when streaming (the prompt's logprobs come at the end)",
          param: "echo",
        },
      };
  } else {
    const body = await parse(c, "chat");
    if (!body.ok) return body;
    fields = { ...body.value, max_tokens: body.value.max_completion_tokens ?? body.value.max_tokens };
    let text: string;
    try {
      text = tok.applyChatTemplate(body.value.messages, body.value.add_generation_prompt);
    } catch (e) {
      return {
        ok: false,
        error: { code: "bad_request", message: `chat template: ${(e as Error).message}`, param: "messages" },
      };
    }
    prompts = [{ ids: tok.encode(text), text }];
    logprobs = body.value.logprobs ? (body.value.top_logprobs ?? 0) : null;
  }
  const plan = service.plan(prompts, fields, logprobs, echo);
  if (!plan.ok) return plan;
  const model = await service.resolve(fields.model);
  if (!model.ok) return model;
  return {
    ok: true,
    value: {
      model: model.value,
      plan: plan.value,
      stream: fields.stream,
      includeUsage: fields.stream_options?.include_usage === true,
      returnTokenIds: fields.return_token_ids,
    },
  };
}

function formatChoice(kind: Kind, ch: ChoiceResult, p: Prepared, service: InferenceService) {
  const ids = p.returnTokenIds ? { token_ids: ch.tokens.map((t) => t.token) } : {};
  if (kind === "chat") {
    return {
      index: ch.index,
      message: { role: "assistant", content: ch.text },
      logprobs: p.plan.logprobs !== null ? chatLogprobs(ch.tokens, service.tokenizer) : null,
      finish_reason: ch.finishReason,
      ...ids,
    };
  }
  // echo: the prompt's tokens (the first without a logprob) come before the generated ones.
  const scored = p.plan.echo && ch.promptTokens !== null ? [...ch.promptTokens, ...ch.tokens] : ch.tokens;
  return {
    index: ch.index,
    text: (p.plan.echo ? (p.plan.prompts[ch.promptIndex]?.text ?? "") : "") + ch.text,
    logprobs: p.plan.logprobs !== null ? completionLogprobs(scored, service.tokenizer) : null,
    finish_reason: ch.finishReason,
    ...ids,
    ...(p.returnTokenIds ? { prompt_token_ids: p.plan.prompts[ch.promptIndex]?.ids } : {}),
    ...(p.plan.returnPromptLogprobs
      ? { prompt_logprobs: promptLogprobs(ch.promptTokens ?? [], service.tokenizer) }
      : {}),
  };
}

function formatDelta(kind: Kind, d: ChoiceDelta, p: Prepared, service: InferenceService) {
  const ids = p.returnTokenIds ? { token_ids: d.tokens.map((t) => t.token) } : {};
  if (kind === "chat") {
    return {
      index: d.index,
      delta: { content: d.text },
      logprobs: p.plan.logprobs !== null ? chatLogprobs(d.tokens, service.tokenizer) : null,
      finish_reason: null,
      ...ids,
    };
  }
  return {
    index: d.index,
    text: d.text,
    logprobs: p.plan.logprobs !== null ? completionLogprobs(d.tokens, service.tokenizer) : null,
    finish_reason: null,
    ...ids,
  };
}

function totals(p: Prepared, choices: ChoiceResult[]) {
  // OpenAI counts each prompt once, however many choices continue it.
  const u = usage(
    p.plan.prompts.reduce((a, prompt) => a + prompt.ids.length, 0),
    choices.reduce((a, ch) => a + ch.tokens.length, 0),
  );
  return p.returnTokenIds && p.plan.prompts.length === 1
    ? { ...u, prompt_token_ids: p.plan.prompts[0]?.ids }
    : u;
}
