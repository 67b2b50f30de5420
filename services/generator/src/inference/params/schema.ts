/**
 * zod request schemas of /v1/completions and /v1/chat/completions: exactly the implemented
 * parameters of registry.ts (a unit test checks the two agree), each bounded. `null` is absent
 * for every parameter (OpenAI's and vLLM's reading), unknown keys are dropped, and the
 * cross-field rules OpenAI and vLLM enforce are issues on the parameter they name.
 */
import { z } from "zod";

/** Most prompts in one completions request. */
const MAX_PROMPTS = 64;
/** Most engine sequences one request may start: prompts × max(n, best_of). */
const MAX_SEQUENCES = 256;

const tokenIds = z.array(z.number().int().nonnegative()).min(1).max(65_536);
const text = z.string().max(1 << 20);
const probability = z.number().min(0).max(1);

/** Parameters both endpoints share, with their defaults. */
const common = {
  model: z.string().min(1).max(512),
  max_tokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).default(1),
  top_p: z.number().gt(0).max(1).default(1),
  n: z.number().int().min(1).max(64).default(1),
  best_of: z.number().int().min(1).max(64).optional(),
  seed: z.number().int().optional(),
  stop: z
    .union([z.string().max(256), z.array(z.string().max(256)).max(16)], {
      error: "must be a string or a list of at most 16 strings, each at most 256 characters",
    })
    .optional(),
  stream: z.boolean().default(false),
  stream_options: z
    .object({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() })
    .optional(),
  logit_bias: z
    .record(z.string().regex(/^\d{1,9}$/, "keys must be token ids"), z.number().min(-100).max(100))
    .refine((m) => Object.keys(m).length <= 300, "at most 300 token ids")
    .optional(),
  presence_penalty: z.number().min(-2).max(2).default(0),
  frequency_penalty: z.number().min(-2).max(2).default(0),
  user: z.string().max(256).optional(),
  top_k: z.number().int().min(-1).default(0),
  min_p: probability.default(0),
  repetition_penalty: z.number().gt(0).max(100).default(1),
  min_tokens: z.number().int().nonnegative().default(0),
  stop_token_ids: z.array(z.number().int().nonnegative()).max(64).optional(),
  ignore_eos: z.boolean().default(false),
  return_token_ids: z.boolean().default(false),
  prompt_logprobs: z.number().int().min(0).max(20).optional(),
};

/** Text content: a string, or text parts joined (other part types are refused before parsing). */
const content = z.union(
  [
    text,
    z
      .array(z.object({ type: z.literal("text"), text }))
      .max(1024)
      .transform((parts) => parts.map((p) => p.text).join("")),
  ],
  { error: 'must be a string or a list of at most 1024 {"type": "text", "text": …} parts' },
);

/**
 * One chat message: the implemented fields of message-fields.ts, null read as absent. Content may
 * be absent (or null) on an assistant message only, and is "" there, as OpenAI allows.
 */
const message = z
  .object({
    role: z.enum(["system", "user", "assistant", "developer", "tool"]),
    content: content.nullish(),
    name: z.string().max(256).nullish(),
    tool_call_id: z.string().max(256).nullish(),
  })
  .superRefine((m, ctx) => {
    if (m.content == null && m.role !== "assistant")
      ctx.addIssue({
        code: "custom",
        message: `is required on a ${m.role} message (only an assistant message may omit it)`,
        path: ["content"],
      });
  })
  .transform((m) => ({
    role: m.role,
    content: m.content ?? "",
    ...(m.name == null ? {} : { name: m.name }),
    ...(m.tool_call_id == null ? {} : { tool_call_id: m.tool_call_id }),
  }));

/** `null` is absent: top-level nulls are removed before parsing. */
function withoutNulls(body: unknown): unknown {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return body;
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null));
}

interface Shared {
  n: number;
  best_of?: number | undefined;
  stream: boolean;
  stream_options?: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | undefined;
  max_tokens?: number | undefined;
  min_tokens: number;
  prompt_logprobs?: number | undefined;
}

/** The rules between parameters, as OpenAI and vLLM state them. */
function crossChecks(
  v: Shared,
  ctx: z.RefinementCtx,
  maxTokens: number | undefined,
  maxTokensName: string,
): void {
  const issue = (param: string, message: string) => ctx.addIssue({ code: "custom", message, path: [param] });
  if (v.best_of !== undefined && v.best_of < v.n) issue("best_of", `must be at least n (${v.n})`);
  if (v.best_of !== undefined && v.best_of > v.n && v.stream)
    issue("best_of", "cannot be greater than n when streaming (the best are known only at the end)");
  if (v.stream_options !== undefined && !v.stream)
    issue("stream_options", "only allowed when stream is true");
  // vLLM reads continuous_usage_stats only with include_usage; alone it would be ignored, so it is refused.
  if (v.stream_options?.continuous_usage_stats === true && v.stream_options.include_usage !== true)
    issue("stream_options.continuous_usage_stats", "needs stream_options.include_usage: true");
  if (maxTokens !== undefined && v.min_tokens > maxTokens)
    issue("min_tokens", `must be at most ${maxTokensName} (${maxTokens})`);
  if (v.prompt_logprobs !== undefined && v.stream) issue("prompt_logprobs", "not available when streaming");
}

/** The parameters of POST /v1/completions, before the rules between them. */
export const completionFields = z.object({
  ...common,
  prompt: z.union(
    [text, z.array(text).min(1).max(MAX_PROMPTS), tokenIds, z.array(tokenIds).min(1).max(MAX_PROMPTS)],
    {
      error: (issue) =>
        `${issue.input === undefined ? "is required; it " : ""}must be a string, a list of at most ${MAX_PROMPTS} strings, a list of at most 65536 token ids, or a list of at most ${MAX_PROMPTS} lists of token ids (none empty)`,
    },
  ),
  logprobs: z.number().int().min(0).max(20).optional(),
  echo: z.boolean().default(false),
});

/** The parameters of POST /v1/chat/completions, before the rules between them. */
export const chatFields = z.object({
  ...common,
  messages: z.array(message).min(1).max(1024),
  max_completion_tokens: z.number().int().positive().optional(),
  logprobs: z.boolean().default(false),
  top_logprobs: z.number().int().min(0).max(20).optional(),
  safety_identifier: z.string().max(256).optional(),
  add_generation_prompt: z.boolean().default(true),
});

/** POST /v1/completions. */
export const completionRequestSchema = z.preprocess(
  withoutNulls,
  completionFields.superRefine((v, ctx) => {
    crossChecks(v, ctx, v.max_tokens, "max_tokens");
    const prompts =
      Array.isArray(v.prompt) && v.prompt.some((p) => typeof p !== "number") ? v.prompt.length : 1;
    if (prompts * Math.max(v.n, v.best_of ?? 1) > MAX_SEQUENCES)
      ctx.addIssue({
        code: "custom",
        message: `prompts × max(n, best_of) must be at most ${MAX_SEQUENCES}`,
        path: [v.best_of !== undefined ? "best_of" : "n"],
      });
  }),
);

/** POST /v1/chat/completions. */
export const chatRequestSchema = z.preprocess(
  withoutNulls,
  chatFields.superRefine((v, ctx) => {
    const issue = (param: string, message: string) =>
      ctx.addIssue({ code: "custom", message, path: [param] });
    if (
      v.max_tokens !== undefined &&
      v.max_completion_tokens !== undefined &&
      v.max_tokens !== v.max_completion_tokens
    )
      issue("max_tokens", "differs from max_completion_tokens; send one of them");
    const max = v.max_completion_tokens ?? v.max_tokens;
    crossChecks(v, ctx, max, v.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens");
    if ((v.top_logprobs ?? 0) > 0 && !v.logprobs)
      issue("top_logprobs", "logprobs must be true to use top_logprobs");
  }),
);

/** A parsed `/v1/completions` body (`completionRequestSchema`). */
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
/** A parsed `/v1/chat/completions` body (`chatRequestSchema`). */
export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** What plan() takes from either request: the sampling, stopping and length parameters. */
export type SamplingFields = Pick<
  CompletionRequest,
  | "temperature"
  | "top_p"
  | "top_k"
  | "min_p"
  | "n"
  | "best_of"
  | "seed"
  | "stop"
  | "stop_token_ids"
  | "ignore_eos"
  | "max_tokens"
  | "logit_bias"
  | "presence_penalty"
  | "frequency_penalty"
  | "repetition_penalty"
  | "min_tokens"
  | "prompt_logprobs"
>;
