import type { TextTokenizer } from "./types.ts";

/**
 * Turns a growing token sequence into text deltas for streaming. A token may end inside a UTF-8
 * character; such a tail decodes to U+FFFD and is held back until the next token completes it.
 */
export class IncrementalDecoder {
  private readonly ids: number[] = [];
  private emitted = 0;

  constructor(private readonly tokenizer: TextTokenizer) {}

  /** All text so far, completed characters only. */
  text = "";

  push(id: number): string {
    this.ids.push(id);
    const full = this.tokenizer.decode(this.ids);
    const stable = full.endsWith("\uFFFD") ? full.slice(0, full.lastIndexOf("\uFFFD")) : full;
    if (stable.length <= this.emitted) return "";
    const delta = stable.slice(this.emitted);
    this.emitted = stable.length;
    this.text = stable;
    return delta;
  }

  /** Whatever is left at the end, replacement characters included. */
  flush(): string {
    const full = this.tokenizer.decode(this.ids);
    const delta = full.slice(this.emitted);
    this.emitted = full.length;
    this.text = full;
    return delta;
  }
}
