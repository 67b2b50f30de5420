/**
 * The non-streamed `POST /v1/completions` and `POST /v1/chat/completions` answers, as far as
 * loracast's own clients read them (the trainer's `FleetRollouts`, the tests): OpenAI's shapes with
 * vLLM's `token_ids`/`prompt_token_ids` (`return_token_ids: true`). Unknown keys are kept out of the
 * parse, not refused, so OpenAI fields added later do not break a client.
 */
import { z } from "zod";

/**
 * Why a choice ended: loracast's generator says `stop` (a stop token or string) or `length`
 * (`max_tokens`), null only inside a stream; other OpenAI-compatible servers a trainer may sample
 * from add their own (vLLM's `abort`), so a client reads anything else as a stop.
 */
const finishReasonSchema = z.string().nullable();

/** OpenAI usage: the prompt counted once, completion tokens summed over choices. */
const usageSchema = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  total_tokens: z.number().int().nonnegative(),
});

/** Legacy completions `choices[].logprobs` (OpenAI, as vLLM fills it); one entry per token. */
const completionLogprobsSchema = z.object({
  tokens: z.array(z.string()),
  token_logprobs: z
    .array(z.number().nullable())
    .describe("Natural-log probability of each token; null for an echoed prompt's first token"),
  top_logprobs: z.array(z.record(z.string(), z.number()).nullable()),
  text_offset: z.array(z.number().int().nonnegative()).describe("Code points from the choice's text start"),
});

/**
 * vLLM's `prompt_logprobs` (asked for with `prompt_logprobs: k`): one entry per prompt token, null
 * for the first (nothing precedes it), else token id → the prompt token's and the top `k`
 * alternatives' log probabilities; `rank` is 1-based among the alternatives, null for a prompt token
 * outside them (the generator's `promptLogprobs` fills it).
 */
const promptLogprobsSchema = z.array(
  z
    .record(
      z.string(),
      z.object({
        logprob: z.number(),
        rank: z.number().int().positive().nullable(),
        decoded_token: z.string().describe("The token's text"),
      }),
    )
    .nullable(),
);

/** One choice of a completion. */
export const completionChoiceSchema = z.object({
  index: z.number().int().nonnegative(),
  text: z.string(),
  logprobs: completionLogprobsSchema.nullable(),
  finish_reason: finishReasonSchema,
  token_ids: z.array(z.number().int()).optional().describe("vLLM: the completion's token ids"),
  prompt_token_ids: z.array(z.number().int()).optional().describe("vLLM: the prompt's token ids"),
  prompt_logprobs: promptLogprobsSchema
    .optional()
    .describe("vLLM: each prompt token's logprob and top alternatives, when `prompt_logprobs` was asked"),
});
/** The shape {@link completionChoiceSchema} parses, as zod infers it. */
export type CompletionChoice = z.infer<typeof completionChoiceSchema>;

/** `POST /v1/completions`, not streamed; `model` is what served it (`<run>@<version>` when named so). */
export const completionSchema = z.object({
  id: z.string(),
  object: z.literal("text_completion"),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(completionChoiceSchema),
  usage: usageSchema,
});
/** The shape {@link completionSchema} parses, as zod infers it. */
export type Completion = z.infer<typeof completionSchema>;

/**
 * One choice of a streamed completion chunk (`stream: true`, one `text_completion` object per SSE
 * event): the fields of a whole choice, carrying this step's text and token ids only, with
 * `prompt_token_ids` in a choice's first chunk and `finish_reason` null until its last.
 */
export const completionChunkChoiceSchema = completionChoiceSchema.describe(
  "A streamed completion choice: this step's text and token ids; finish_reason null until its last chunk",
);
/**
 * The shape {@link completionChunkChoiceSchema} parses, as zod infers it.
 * Part of the wire contract for clients outside this repository; nothing inside imports it yet.
 * @public
 */
export type CompletionChunkChoice = z.infer<typeof completionChunkChoiceSchema>;

/** One choice of a chat completion. */
const chatChoiceSchema = z.object({
  index: z.number().int().nonnegative(),
  message: z.object({
    role: z.literal("assistant"),
    content: z.string(),
    refusal: z.string().nullable().optional(),
  }),
  finish_reason: finishReasonSchema,
  token_ids: z.array(z.number().int()).optional().describe("vLLM: the completion's token ids"),
});
/**
 * The shape {@link chatChoiceSchema} parses, as zod infers it.
 * Part of the wire contract for clients outside this repository; nothing inside imports it yet.
 * @public
 */
export type ChatChoice = z.infer<typeof chatChoiceSchema>;

/** `POST /v1/chat/completions`, not streamed. */
export const chatCompletionSchema = z.object({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(chatChoiceSchema),
  usage: usageSchema,
});
/**
 * The shape {@link chatCompletionSchema} parses, as zod infers it.
 * Part of the wire contract for clients outside this repository; nothing inside imports it yet.
 * @public
 */
export type ChatCompletion = z.infer<typeof chatCompletionSchema>;
