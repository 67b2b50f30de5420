/** OpenAI request bodies for /v1/completions and /v1/chat/completions, with the vLLM extensions RL clients use. */
import { z } from "zod";

const stop = z.union([z.string(), z.array(z.string()).max(16)]).optional();

const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).default(1),
  top_p: z.number().gt(0).max(1).default(1),
  /** vLLM extension; 0 or -1 disables. */
  top_k: z.number().int().min(-1).default(0),
  /** vLLM extension. */
  min_p: z.number().min(0).max(1).default(0),
  n: z.number().int().min(1).max(64).default(1),
  seed: z.number().int().optional(),
  stop,
  /** vLLM extension: extra token ids that end a choice. */
  stop_token_ids: z.array(z.number().int().nonnegative()).optional(),
  /** vLLM extension: keep generating past EOS. */
  ignore_eos: z.boolean().default(false),
  /** vLLM extension: include prompt and completion token ids in the response. */
  return_token_ids: z.boolean().default(false),
  stream: z.boolean().default(false),
  stream_options: z.object({ include_usage: z.boolean().optional() }).optional(),
  user: z.string().optional(),
};

export const completionRequestSchema = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.number().int().nonnegative()).min(1)]),
  /** Completions API: how many top alternatives to return per token (0-20). */
  logprobs: z.number().int().min(0).max(20).nullable().optional(),
  echo: z.literal(false).optional(),
});

export const chatRequestSchema = z.object({
  ...sampling,
  messages: z
    .array(
      z.object({
        role: z.enum(["system", "user", "assistant", "developer", "tool"]),
        content: z.union([
          z.string(),
          z
            .array(z.object({ type: z.literal("text"), text: z.string() }))
            .transform((parts) => parts.map((p) => p.text).join("")),
        ]),
      }),
    )
    .min(1),
  max_completion_tokens: z.number().int().positive().optional(),
  logprobs: z.boolean().default(false),
  top_logprobs: z.number().int().min(0).max(20).optional(),
  add_generation_prompt: z.boolean().default(true),
});

export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type SamplingFields = Pick<
  CompletionRequest,
  | "temperature"
  | "top_p"
  | "top_k"
  | "min_p"
  | "n"
  | "seed"
  | "stop"
  | "stop_token_ids"
  | "ignore_eos"
  | "max_tokens"
>;
