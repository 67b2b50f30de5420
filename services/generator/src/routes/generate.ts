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
import type { z } from "zod";
import { type ApiError, errorResponse } from "../errors.ts";
import { systemFingerprint } from "../inference/format.ts";
import type { ChoiceDelta, InferenceService, Plan, ResolvedModel } from "../inference/inference-service.ts";
import { chatRequestSchema, completionRequestSchema } from "../inference/openai-schema.ts";
import { type Kind, ResponseBuilder } from "../inference/response-builder.ts";
import type { GeneratorEnv } from "./types.ts";

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

async function parse<S extends z.ZodType>(
  c: Context,
  schema: S,
): Promise<{ ok: true; value: z.infer<S> } | { ok: false; error: ApiError }> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return { ok: false, error: { code: "bad_request", message: "the body is not valid JSON" } };
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  const param = issue?.path.join(".") ?? "";
  return {
    ok: false,
    error: { code: "bad_request", message: `${param}: ${issue?.message ?? "invalid"}`, param },
  };
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
    const builder = new ResponseBuilder({
      kind,
      id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID()}`,
      created: Math.floor(clock.now() / 1000),
      model: p.model.name,
      systemFingerprint: systemFingerprint(service.baseFingerprint, p.model.sha256),
      promptIds: p.plan.promptIds,
      logprobs: p.plan.logprobs,
      returnTokenIds: p.returnTokenIds,
      includeUsage: p.stream && p.includeUsage,
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
  let promptIds: number[];
  let fields: z.infer<typeof completionRequestSchema> | z.infer<typeof chatRequestSchema>;
  /** Top alternatives per token, or null when the request wants no logprobs. */
  let logprobs: number | null;
  if (kind === "completion") {
    const body = await parse(c, completionRequestSchema);
    if (!body.ok) return body;
    fields = body.value;
    promptIds =
      typeof body.value.prompt === "string" ? service.tokenizer.encode(body.value.prompt) : body.value.prompt;
    logprobs = body.value.logprobs ?? null;
  } else {
    const body = await parse(c, chatRequestSchema);
    if (!body.ok) return body;
    fields = { ...body.value, max_tokens: body.value.max_completion_tokens ?? body.value.max_tokens };
    let text: string;
    try {
      text = service.tokenizer.applyChatTemplate(body.value.messages, body.value.add_generation_prompt);
    } catch (e) {
      return {
        ok: false,
        error: { code: "bad_request", message: `chat template: ${(e as Error).message}`, param: "messages" },
      };
    }
    promptIds = service.tokenizer.encode(text);
    logprobs = body.value.logprobs ? (body.value.top_logprobs ?? 0) : null;
  }
  const plan = service.plan(promptIds, fields, logprobs);
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
