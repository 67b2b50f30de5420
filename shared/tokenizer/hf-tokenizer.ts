import { Tokenizer } from "@huggingface/tokenizers";
import { compileChatTemplate } from "./chat-template.ts";
import { hfTokenBytes } from "./token-bytes.ts";
import type { TextTokenizer } from "./types.ts";

type Json = Record<string, unknown>;

function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as Json).content === "string")
    return (v as Json).content as string;
  return undefined;
}

/** A HF `tokenizer.json` tokenizer with the chat template from `tokenizer_config.json` or `chat_template.jinja`. */
export function hfTokenizer(options: {
  tokenizerJson: Json;
  tokenizerConfig: Json;
  chatTemplate: string | null;
  stopTokenIds: readonly number[];
}): TextTokenizer {
  const tok = new Tokenizer(options.tokenizerJson, options.tokenizerConfig);
  const source =
    options.chatTemplate ??
    (typeof options.tokenizerConfig.chat_template === "string"
      ? options.tokenizerConfig.chat_template
      : null);
  const bos = tokenText(options.tokenizerConfig.bos_token);
  const eos = tokenText(options.tokenizerConfig.eos_token);
  const chat = source === null ? null : compileChatTemplate(source, { bos_token: bos, eos_token: eos });
  const stop = new Set(options.stopTokenIds);
  if (eos !== undefined) {
    const id = tok.encode(eos, { add_special_tokens: false }).ids;
    if (id.length === 1 && id[0] !== undefined) stop.add(id[0]);
  }
  const decode = (ids: readonly number[]) => tok.decode([...ids], { skip_special_tokens: true });
  return {
    kind: "huggingface",
    // Chat templates already insert BOS where the model wants it.
    encode: (s) => tok.encode(s, { add_special_tokens: false }).ids,
    decode,
    tokenBytes: hfTokenBytes(
      options.tokenizerJson,
      (id) => tok.id_to_token(id),
      (id) => decode([id]),
    ),
    applyChatTemplate: (messages, addGenerationPrompt) => {
      if (chat === null) throw new Error("this tokenizer has no chat template; use /v1/completions");
      return chat(messages, addGenerationPrompt);
    },
    stopTokenIds: [...stop],
  };
}
