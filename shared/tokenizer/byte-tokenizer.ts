import { compileChatTemplate } from "./chat-template.ts";
import type { TextTokenizer } from "./types.ts";

/** The chat format of models built in tests, which have no tokenizer files. */
const BYTE_CHAT_TEMPLATE =
  "{% for m in messages %}<|{{ m.role }}{% if m.name %} name={{ m.name }}{% endif %}{% if m.tool_call_id %} id={{ m.tool_call_id }}{% endif %}|>\n{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/**
 * One token per UTF-8 byte, for models made in tests (vocab ≥ 256). The ids listed as special are
 * never produced by encoding ordinary text (they are ASCII control bytes) and are dropped when
 * decoding.
 */
export function byteTokenizer(options: {
  vocabSize: number;
  specialIds: readonly number[];
  stopTokenIds: readonly number[];
}): TextTokenizer {
  if (options.vocabSize < 256)
    throw new Error(`a byte tokenizer needs a vocabulary of at least 256, not ${options.vocabSize}`);
  const specials = new Set(options.specialIds);
  const chat = compileChatTemplate(BYTE_CHAT_TEMPLATE, {});
  const utf8 = new TextEncoder();
  const text = new TextDecoder("utf-8");
  const isByte = (id: number) => id < 256 && !specials.has(id);
  return {
    kind: "byte",
    encode: (s) => [...utf8.encode(s)],
    decode: (ids) => text.decode(Uint8Array.from(ids.filter(isByte))),
    tokenBytes: (id) => (isByte(id) ? Uint8Array.of(id) : new Uint8Array(0)),
    applyChatTemplate: chat,
    stopTokenIds: options.stopTokenIds,
  };
}
