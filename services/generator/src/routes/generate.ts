/**
 * POST /v1/completions and /v1/chat/completions in OpenAI shapes, streamed over SSE on request.
 * Every response (and every stream) names the adapter that produced it in `model` (the alias, when
 * the request named one, as vLLM answers with the lora name) and in the x-loracast-adapter-run /
 * -version / -sha256 headers (the real run, version and sha256 behind an alias).
 */

import { randomUUID } from "node:crypto";
import type { GeneratorErrorBody } from "@loracast/shared/generator-api";
import { type Clock, startSseHeartbeat } from "@loracast/shared/platform";
import { NonFiniteLogitsError } from "@loracast/shared/runtime";
import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { type ApiError, errorResponse } from "../errors.ts";
import { systemFingerprint } from "../inference/format.ts";
import type { ChoiceDelta, InferenceService, Plan } from "../inference/inference-service.ts";
import type { ResolvedModel } from "../inference/model-resolver.ts";
import {
  type ChatRequest,
  type Endpoint,
  parseRequest,
  type SamplingFields,
} from "../inference/params/index.ts";
import { type Kind, ResponseBuilder } from "../inference/response-builder.ts";
import type { GeneratorEnv } from "./types.ts";

interface Prepared {
  model: ResolvedModel;
  plan: Plan;
  stream: boolean;
  includeUsage: boolean;
  /** vLLM `stream_options.continuous_usage_stats` (with include_usage). */
  continuousUsage: boolean;
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

/**
 * `POST /v1/completions` and `POST /v1/chat/completions` (OpenAI shapes, JSON or SSE with `stream`);
 * 503 `engine_unavailable` when the generator runs without a model (`service` null). A stream
 * sends an SSE comment (`: ping`) every `heartbeatMs` milliseconds, which clients ignore.
 */
export function generateRoutes(
  service: InferenceService | null,
  clock: Clock,
  heartbeatMs: number,
): Hono<GeneratorEnv> {
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
    c.header("x-loracast-adapter-run", p.model.run ?? "none");
    const builder = new ResponseBuilder({
      kind,
      id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID()}`,
      created: Math.floor(clock.now() / 1000),
      model: p.model.name,
      systemFingerprint: systemFingerprint(service.baseFingerprint, p.model.sha256),
      prompts: p.plan.prompts,
      logprobs: p.plan.logprobs,
      echo: p.plan.echo,
      returnPromptLogprobs: p.plan.returnPromptLogprobs,
      returnTokenIds: p.returnTokenIds,
      includeUsage: p.stream && p.includeUsage,
      continuousUsage: p.stream && p.includeUsage && p.continuousUsage,
      n: p.plan.n,
      tokenizer: service.tokenizer,
    });
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, c.req.raw.signal]);

    if (!p.stream) {
      try {
        return c.json(builder.whole(await service.run(p.model, p.plan, signal)));
      } catch (e) {
        if (e instanceof NonFiniteLogitsError) return errorResponse(c, "adapter_failed", e.message, "model");
        throw e;
      } finally {
        p.model.release();
      }
    }
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => controller.abort());
      const stopHeartbeat = startSseHeartbeat(stream, heartbeatMs);
      let chain = Promise.resolve();
      const send = (data: unknown) => {
        chain = chain.then(() => stream.writeSSE({ data: JSON.stringify(data) }));
      };
      for (const chunk of builder.opening()) send(chunk);
      try {
        const choices = await service.run(p.model, p.plan, signal, (d: ChoiceDelta) =>
          send(builder.delta(d)),
        );
        for (const chunk of builder.closing(choices)) send(chunk);
        chain = chain.then(() => stream.writeSSE({ data: "[DONE]" }));
        await chain;
      } catch (e) {
        if (!(e instanceof NonFiniteLogitsError)) throw e;
        // The 200 is already sent: the error goes in the stream, as vLLM reports mid-stream
        // failures, and no [DONE] follows.
        const requestId = (c.get("requestId") as string | undefined) ?? null;
        const error: GeneratorErrorBody["error"] = {
          code: "adapter_failed",
          message: e.message,
          type: "invalid_request_error",
          param: "model",
          requestId,
        };
        await chain;
        await stream.writeSSE({ data: JSON.stringify({ error }) });
      } finally {
        stopHeartbeat();
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
      continuousUsage: fields.stream_options?.continuous_usage_stats === true,
      returnTokenIds: fields.return_token_ids,
    },
  };
}
