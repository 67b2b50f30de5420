/** One chat message as the chat template sees it (OpenAI's fields; vLLM passes them by name). */
export interface ChatMessage {
  role: string;
  content: string;
  /** OpenAI's participant name. */
  name?: string;
  /** The tool call a `tool` message answers. */
  tool_call_id?: string;
}

/** Text ↔ token ids for one model, plus its chat template. */
export interface TextTokenizer {
  readonly kind: "huggingface" | "byte";
  encode(text: string): number[];
  /** Special tokens (BOS/EOS/pad) are left out of the text. */
  decode(ids: readonly number[]): string;
  /**
   * The UTF-8 bytes one token adds to decoded text, which may be part of a character (a byte
   * token, a byte-level BPE piece). Empty for special tokens, which `decode` leaves out.
   */
  tokenBytes(id: number): Uint8Array;
  /** The prompt text for a conversation, through the model's chat template. */
  applyChatTemplate(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string;
  /** Token ids that end a generation. */
  readonly stopTokenIds: readonly number[];
}
