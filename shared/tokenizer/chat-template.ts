import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "./types.ts";

/** A compiled Jinja chat template, rendered as transformers' apply_chat_template does. */
export function compileChatTemplate(
  source: string,
  specials: { bos_token?: string; eos_token?: string },
): (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => string {
  const template = new Template(source);
  return (messages, addGenerationPrompt) =>
    template.render({
      // The whole message, as vLLM and transformers hand it to the template (name, tool_call_id…).
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: specials.bos_token ?? "",
      eos_token: specials.eos_token ?? "",
    });
}
