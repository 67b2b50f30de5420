/**
 * One choice's text as its tokens arrive: the incremental detokenizer holds back a partial UTF-8
 * character, the stop matcher holds back what could still begin a stop string, and every token
 * gets its `text_offset` the moment it arrives, so a stream and a whole response agree.
 */
import type { SampledToken } from "@loracast/shared/runtime";
import { IncrementalDecoder, type TextTokenizer } from "@loracast/shared/tokenizer";
import { StopMatcher } from "./stop-matcher.ts";

/**
 * A sampled token with its place in the choice's text. `offset` counts Unicode code points (what
 * Python's `len` counts, as in vLLM) of the complete characters decoded before this token: the
 * index of the character this token's first byte belongs to. The bytes of one multi-byte
 * character, split over several tokens, all get that character's index; a token whose first byte
 * breaks a held-back partial character starts after that character's U+FFFD. Tokens of a stop string
 * (which the text leaves out) get offsets at or past the end of the text.
 */
export interface GeneratedToken extends SampledToken {
  offset: number;
}

/** What one step adds: the text now final (possibly empty) and the token that came in. */
export interface TextStep {
  emit: string;
  token: GeneratedToken;
  /** A stop string has been seen; the text ends before it and nothing more is emitted. */
  stopped: boolean;
}

/** Code points in a string (surrogate pairs count once). */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

/** The text of one choice, token by token (one per choice; see the module comment). */
export class ChoiceText {
  private readonly decoder: IncrementalDecoder;
  private readonly matcher: StopMatcher;
  /** Code points of the complete characters decoded so far, stop strings included. */
  private decoded = 0;
  private stopped = false;
  /** The text emitted so far. */
  text = "";

  constructor(
    private readonly tokenizer: TextTokenizer,
    stops: readonly string[],
  ) {
    this.decoder = new IncrementalDecoder(tokenizer);
    this.matcher = new StopMatcher(stops);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Adds a sampled token; after a stop string it still gets its offset but emits nothing.
   * Unarmed (vLLM's min_tokens not reached yet), stop strings are not looked for.
   */
  push(t: SampledToken, armed = true): TextStep {
    const first = this.tokenizer.tokenBytes(t.token)[0];
    const broken = first !== undefined && this.decoder.breaksHeld(first);
    const token: GeneratedToken = { ...t, offset: this.decoded + (broken ? 1 : 0) };
    const delta = this.decoder.push(t.token);
    this.decoded += codePoints(delta);
    if (this.stopped) return { emit: "", token, stopped: true };
    const out = this.matcher.push(delta, armed);
    this.stopped = out.stopped;
    this.text += out.emit;
    return { emit: out.emit, token, stopped: out.stopped };
  }

  /** At the end of the sequence: what the decoder and the stop matcher still hold ("" after a stop). */
  finish(): string {
    if (this.stopped) return "";
    const tail = this.matcher.push(this.decoder.flush()).emit + this.matcher.flush();
    this.text += tail;
    return tail;
  }
}

/**
 * A prompt as `echo` returns it: its text and each token with its offset in that text (and the
 * prompt logprobs the engine computed, when asked: the first token has none, as in OpenAI).
 */
export function promptText(
  tokenizer: TextTokenizer,
  tokens: readonly SampledToken[],
): { text: string; tokens: GeneratedToken[] } {
  const text = new ChoiceText(tokenizer, []);
  const out = tokens.map((t) => text.push(t).token);
  text.finish();
  return { text: text.text, tokens: out };
}
