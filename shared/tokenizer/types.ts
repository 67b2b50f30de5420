export interface ChatMessage {
  role: string;
  content: string;
}

/** Text ↔ token ids for one model, plus its chat template. */
export interface TextTokenizer {
  readonly kind: "huggingface" | "byte";
  encode(text: string): number[];
  /** Special tokens (BOS/EOS/pad) are left out of the text. */
  decode(ids: readonly number[]): string;
  /** The prompt text for a conversation, through the model's chat template. */
  applyChatTemplate(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string;
  /** Token ids that end a generation. */
  readonly stopTokenIds: readonly number[];
}
