import type { TextTokenizer } from "./types.ts";

/**
 * Whether these bytes (the stream's last few) end inside a UTF-8 character that more bytes could
 * still complete. A decoder in streaming mode holds such a tail back; at the end it decodes to
 * U+FFFD. Three bytes decide it: no incomplete character is longer, and a lead byte starts a
 * sequence whatever came before it.
 */
function endsIncomplete(tail: readonly number[]): boolean {
  const bytes = Uint8Array.from(tail);
  return new TextDecoder().decode(bytes, { stream: true }).length < new TextDecoder().decode(bytes).length;
}

/**
 * Turns a growing token sequence into text deltas for streaming. A token may end inside a UTF-8
 * character; its U+FFFD is held back until the next token completes the character (or shows it
 * broken). A byte that can never be part of a character (a stray continuation byte, 0xFF) is
 * emitted as U+FFFD at once, as a streaming UTF-8 decoder does.
 */
export class IncrementalDecoder {
  private readonly ids: number[] = [];
  /** The last (up to) three bytes of the stream, to tell an unfinished character. */
  private tail: number[] = [];
  private emitted = 0;

  constructor(private readonly tokenizer: TextTokenizer) {}

  /** All text so far, completed characters only. */
  text = "";

  /**
   * Whether a token starting with `byte` would break the character held back so far, so that the
   * held bytes become one U+FFFD before the token's own character (a streaming UTF-8 decoder
   * emits one U+FFFD for an interrupted sequence and reprocesses the byte). False when nothing is
   * held back or when the byte continues the held character. Characters are counted as code
   * points, so a completed 4-byte character and its U+FFFD placeholder count the same.
   */
  breaksHeld(byte: number): boolean {
    if (!endsIncomplete(this.tail)) return false;
    const chars = (bytes: readonly number[]) =>
      Array.from(new TextDecoder().decode(Uint8Array.from(bytes))).length;
    return chars([...this.tail, byte]) > chars(this.tail);
  }

  push(id: number): string {
    this.ids.push(id);
    this.tail = [...this.tail, ...this.tokenizer.tokenBytes(id)].slice(-3);
    const full = this.tokenizer.decode(this.ids);
    const stable = endsIncomplete(this.tail) && full.endsWith("\uFFFD") ? full.slice(0, -1) : full;
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
