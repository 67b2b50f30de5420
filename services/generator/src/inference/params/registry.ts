/**
 * The one list of request parameters of POST /v1/completions and /v1/chat/completions: every
 * parameter of the `openai` package's `CompletionCreateParams` and `ChatCompletionCreateParams`,
 * and vLLM's documented extras (vllm/entrypoints/openai/protocol.py). Each is either implemented
 * (the zod schemas in schema.ts parse exactly these, a unit test checks it) or refused with 400
 * naming it, in OpenAI's error shape. A refused parameter is still accepted when it is `null` or
 * holds a value that asks for nothing (`tool_choice: "none"`). docs/api.md prints this table;
 * a unit test keeps the two equal. Keys found nowhere here are tolerated and dropped, as OpenAI
 * and vLLM do.
 */

/** The two generation endpoints. */
export type Endpoint = "completions" | "chat";

/** One request parameter on one or both endpoints. */
export interface ParamSpec {
  name: string;
  endpoints: readonly Endpoint[];
  /** Who defines it: the OpenAI API reference, or vLLM's extras. */
  source: "OpenAI" | "vLLM";
  status: "implemented" | "refused";
  /** What it does here (implemented), or why it is refused. */
  doc: string;
  /**
   * Refused parameters only: the values that ask for nothing and so are accepted (`null` always
   * is). `describe` is what docs/api.md prints.
   */
  noop?: { describe: string; accepts: (value: unknown) => boolean };
}

const BOTH: readonly Endpoint[] = ["completions", "chat"];
const COMPLETIONS: readonly Endpoint[] = ["completions"];
const CHAT: readonly Endpoint[] = ["chat"];

const is =
  (...values: unknown[]) =>
  (v: unknown) =>
    values.includes(v);
const emptyList = (v: unknown) => Array.isArray(v) && v.length === 0;
const emptyObject = (v: unknown) =>
  typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;

function implemented(name: string, endpoints: readonly Endpoint[], source: ParamSpec["source"], doc: string) {
  return { name, endpoints, source, status: "implemented", doc } as const satisfies ParamSpec;
}

function refused(
  name: string,
  endpoints: readonly Endpoint[],
  source: ParamSpec["source"],
  doc: string,
  noop?: ParamSpec["noop"],
): ParamSpec {
  return noop === undefined
    ? { name, endpoints, source, status: "refused", doc }
    : { name, endpoints, source, status: "refused", doc, noop };
}

/** Every known parameter, in the order docs/api.md lists them. */
export const PARAMETERS: readonly ParamSpec[] = [
  implemented(
    "model",
    BOTH,
    "OpenAI",
    "The base name, `<run>`, `<run>@<version>` or an alias; see /v1/models.",
  ),
  implemented(
    "prompt",
    COMPLETIONS,
    "OpenAI",
    "A string, a list of strings, a list of token ids, or a list of lists of token ids (at most 64 prompts). Choice `index` is `prompt_index * n + i`.",
  ),
  implemented(
    "messages",
    CHAT,
    "OpenAI",
    "Rendered with the model's chat template; text content parts are joined. At most 1024 messages; their fields are in the table below.",
  ),
  implemented(
    "max_tokens",
    BOTH,
    "OpenAI",
    "Most tokens generated per choice (1 or more); absent: the rest of the context. In chat, an alias of `max_completion_tokens` (both with different values: 400).",
  ),
  implemented("max_completion_tokens", CHAT, "OpenAI", "Most tokens generated per choice (1 or more)."),
  implemented("temperature", BOTH, "OpenAI", "0 to 2; 0 is greedy. Default 1."),
  implemented("top_p", BOTH, "OpenAI", "Nucleus sampling, (0, 1]. Default 1."),
  implemented("n", BOTH, "OpenAI", "Choices per prompt, 1 to 64."),
  implemented(
    "best_of",
    COMPLETIONS,
    "OpenAI",
    "Generates `best_of` candidates per prompt and returns the `n` with the highest cumulative logprob. At least `n`; `prompts × best_of` at most 256; refused with `stream` when greater than `n`. `usage.completion_tokens` counts the returned choices' tokens only, as vLLM (not the discarded candidates).",
  ),
  implemented(
    "best_of",
    CHAT,
    "vLLM",
    "As on completions: the `n` candidates of `best_of` with the highest cumulative logprob; `usage.completion_tokens` counts the returned choices only.",
  ),
  implemented(
    "seed",
    BOTH,
    "OpenAI",
    "Replays the same choices for the same request on the same adapter version. Absent: drawn from the server's seeded generator.",
  ),
  implemented(
    "stop",
    BOTH,
    "OpenAI",
    "A string or a list of at most 16 non-empty strings (at most 256 characters each); the text ends before the first match.",
  ),
  implemented("stream", BOTH, "OpenAI", "Server-sent events, ended by `data: [DONE]`."),
  implemented(
    "stream_options",
    BOTH,
    "OpenAI",
    "`include_usage: true` adds a last chunk with `usage`. vLLM's `continuous_usage_stats: true` (with `include_usage`) also puts on every chunk of one choice that choice's usage so far (its prompt's tokens, its tokens generated up to and with that chunk), as vLLM does. Only with `stream: true`, as OpenAI.",
  ),
  implemented(
    "logprobs",
    COMPLETIONS,
    "OpenAI",
    "0 to 20: the sampled token's logprob and this many top alternatives per token.",
  ),
  implemented("logprobs", CHAT, "OpenAI", "`true` returns `logprobs.content` per token."),
  implemented(
    "top_logprobs",
    CHAT,
    "OpenAI",
    "0 to 20 alternatives per token; more than 0 needs `logprobs: true` (400 otherwise, as OpenAI).",
  ),
  implemented(
    "echo",
    COMPLETIONS,
    "OpenAI",
    "Prepends the prompt to each choice's text; with `logprobs`, the prompt tokens come first in `logprobs` (the first with logprob null).",
  ),
  implemented(
    "logit_bias",
    BOTH,
    "OpenAI",
    "Token id → value in [-100, 100] added to that token's logit before sampling (-100 bans, 100 forces). At most 300 ids, each in the vocabulary.",
  ),
  implemented(
    "presence_penalty",
    BOTH,
    "OpenAI",
    "-2 to 2: subtracted once from the logit of every token already generated (OpenAI's formula; generated tokens only).",
  ),
  implemented(
    "frequency_penalty",
    BOTH,
    "OpenAI",
    "-2 to 2: subtracted from each token's logit once per time it was generated.",
  ),
  implemented(
    "user",
    BOTH,
    "OpenAI",
    "An end-user identifier (at most 256 characters): accepted, and neither logged nor stored.",
  ),
  implemented(
    "safety_identifier",
    CHAT,
    "OpenAI",
    "As `user`: accepted (at most 256 characters), neither logged nor stored.",
  ),
  implemented("top_k", BOTH, "vLLM", "Keeps the k most likely tokens; 0 or -1 disables."),
  implemented(
    "min_p",
    BOTH,
    "vLLM",
    "Drops tokens less likely than `min_p` × the most likely one; 0 disables.",
  ),
  implemented(
    "repetition_penalty",
    BOTH,
    "vLLM",
    "> 0 (1 disables), CTRL-style over prompt and generated tokens: a positive logit is divided by it, a negative one multiplied.",
  ),
  implemented(
    "min_tokens",
    BOTH,
    "vLLM",
    "Stop tokens and stop strings cannot end a choice before this many tokens; at most `max_tokens`.",
  ),
  implemented("stop_token_ids", BOTH, "vLLM", "At most 64 token ids that end a choice, besides EOS."),
  implemented("ignore_eos", BOTH, "vLLM", "Keeps generating past EOS."),
  implemented(
    "return_token_ids",
    BOTH,
    "vLLM",
    "Adds the prompt's and each choice's token ids to the response.",
  ),
  implemented(
    "prompt_logprobs",
    BOTH,
    "vLLM",
    "0 to 20: the logprob of each prompt token and this many alternatives (the first token's is null). Not with `stream`.",
  ),
  implemented(
    "add_generation_prompt",
    CHAT,
    "vLLM",
    "Whether the chat template adds the assistant header. Default true.",
  ),

  // Refused: known, not supported.
  refused("suffix", COMPLETIONS, "OpenAI", "Insertion (text after the completion) is not supported.", {
    describe: '`""`',
    accepts: is(""),
  }),
  refused("tools", CHAT, "OpenAI", "Tool calling is not supported.", {
    describe: "`[]`",
    accepts: emptyList,
  }),
  refused("tool_choice", CHAT, "OpenAI", "Tool calling is not supported.", {
    describe: '`"none"`',
    accepts: is("none"),
  }),
  refused("parallel_tool_calls", CHAT, "OpenAI", "Tool calling is not supported.", {
    describe: "a boolean (there are no tools to call)",
    accepts: (v) => typeof v === "boolean",
  }),
  refused("functions", CHAT, "OpenAI", "Function calling (deprecated) is not supported.", {
    describe: "`[]`",
    accepts: emptyList,
  }),
  refused("function_call", CHAT, "OpenAI", "Function calling (deprecated) is not supported.", {
    describe: '`"none"`',
    accepts: is("none"),
  }),
  refused(
    "response_format",
    BOTH,
    "OpenAI",
    "Structured outputs (JSON mode, JSON schema) are not supported.",
    {
      describe: '`{"type": "text"}`',
      accepts: (v) => typeof v === "object" && v !== null && (v as { type?: unknown }).type === "text",
    },
  ),
  refused("audio", CHAT, "OpenAI", "Audio output is not supported."),
  refused("modalities", CHAT, "OpenAI", "Only text output is supported.", {
    describe: '`["text"]`',
    accepts: (v) => Array.isArray(v) && v.length === 1 && v[0] === "text",
  }),
  refused("prediction", CHAT, "OpenAI", "Predicted outputs are not supported."),
  refused("reasoning_effort", CHAT, "OpenAI", "The served models do not reason."),
  refused("verbosity", CHAT, "OpenAI", "The served models do not reason; verbosity is not supported."),
  refused("web_search_options", CHAT, "OpenAI", "Web search is not supported."),
  refused("store", CHAT, "OpenAI", "Completions are not stored.", {
    describe: "`false`",
    accepts: is(false),
  }),
  refused("metadata", CHAT, "OpenAI", "Metadata tags stored completions, and completions are not stored.", {
    describe: "`{}`",
    accepts: emptyObject,
  }),
  refused("moderation", CHAT, "OpenAI", "Moderation is not supported."),
  refused("service_tier", CHAT, "OpenAI", "There is one tier.", {
    describe: '`"auto"`, `"default"`',
    accepts: is("auto", "default"),
  }),
  refused("prompt_cache_key", CHAT, "OpenAI", "There is no prompt cache to route to."),
  refused("prompt_cache_retention", CHAT, "OpenAI", "There is no prompt cache."),
  refused("prompt_cache_options", CHAT, "OpenAI", "There is no prompt cache."),
  refused("echo", CHAT, "vLLM", "vLLM's chat echo (prefilling the last message) is not supported.", {
    describe: "`false`",
    accepts: is(false),
  }),
  refused("use_beam_search", BOTH, "vLLM", "Beam search is not supported.", {
    describe: "`false`",
    accepts: is(false),
  }),
  refused("length_penalty", BOTH, "vLLM", "Applies to beam search only, which is not supported.", {
    describe: "`1`",
    accepts: is(1),
  }),
  refused("include_stop_str_in_output", BOTH, "vLLM", "Stop strings are always cut from the text.", {
    describe: "`false`",
    accepts: is(false),
  }),
  refused("skip_special_tokens", BOTH, "vLLM", "Special tokens are always skipped in the text.", {
    describe: "`true`",
    accepts: is(true),
  }),
  refused("spaces_between_special_tokens", BOTH, "vLLM", "Not configurable.", {
    describe: "`true`",
    accepts: is(true),
  }),
  refused(
    "truncate_prompt_tokens",
    BOTH,
    "vLLM",
    "Prompts are never truncated; a prompt too long is refused.",
  ),
  refused("allowed_token_ids", BOTH, "vLLM", "Not supported; `logit_bias` bans tokens."),
  refused("bad_words", BOTH, "vLLM", "Not supported; `logit_bias` bans tokens.", {
    describe: "`[]`",
    accepts: emptyList,
  }),
  refused("add_special_tokens", BOTH, "vLLM", "Not configurable: the tokenizer's defaults apply."),
  refused("continue_final_message", CHAT, "vLLM", "Not supported.", {
    describe: "`false`",
    accepts: is(false),
  }),
  refused("chat_template", CHAT, "vLLM", "Only the model's own chat template is used."),
  refused("chat_template_kwargs", CHAT, "vLLM", "Only the model's own chat template is used."),
  refused("documents", CHAT, "vLLM", "Only the model's own chat template is used."),
  refused("guided_json", BOTH, "vLLM", "Guided decoding is not supported."),
  refused("guided_regex", BOTH, "vLLM", "Guided decoding is not supported."),
  refused("guided_choice", BOTH, "vLLM", "Guided decoding is not supported."),
  refused("guided_grammar", BOTH, "vLLM", "Guided decoding is not supported."),
  refused("guided_decoding_backend", BOTH, "vLLM", "Guided decoding is not supported."),
  refused("guided_whitespace_pattern", BOTH, "vLLM", "Guided decoding is not supported."),
  refused("structural_tag", CHAT, "vLLM", "Guided decoding is not supported."),
  refused("logits_processors", BOTH, "vLLM", "Custom logits processors are not supported."),
  refused("return_tokens_as_token_ids", BOTH, "vLLM", "Not supported; `return_token_ids` gives the ids."),
  refused("priority", BOTH, "vLLM", "Requests are served in arrival order.", {
    describe: "`0`",
    accepts: is(0),
  }),
  refused("request_id", BOTH, "vLLM", "Response ids are always generated by the server."),
  refused("cache_salt", BOTH, "vLLM", "There is no prefix cache."),
  refused("kv_transfer_params", BOTH, "vLLM", "Disaggregated serving is not supported."),
  refused("vllm_xargs", BOTH, "vLLM", "Not supported."),
  refused("mm_processor_kwargs", BOTH, "vLLM", "The served models are text-only."),
  refused("prompt_embeds", COMPLETIONS, "vLLM", "Prompts are text or token ids."),
];

/** The registry's entries for one endpoint. */
export function parametersOf(endpoint: Endpoint): ParamSpec[] {
  return PARAMETERS.filter((p) => p.endpoints.includes(endpoint));
}
