/**
 * Stop strings over streamed text. The stop string itself is not part of the output (as OpenAI
 * does), and text that could still turn out to be the start of a stop string is held back.
 */
export class StopMatcher {
  private pending = "";
  private readonly hold: number;

  constructor(private readonly stops: readonly string[]) {
    this.hold = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /**
   * Text safe to emit now, and whether a stop string was seen (then the text ends before it).
   * Unarmed (vLLM's min_tokens not reached yet), stop strings are not looked for: everything is
   * emitted, and the search starts in the text that follows.
   */
  push(delta: string, armed = true): { emit: string; stopped: boolean } {
    this.pending += delta;
    if (!armed) return { emit: this.flush(), stopped: false };
    let cut = -1;
    for (const s of this.stops) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      const emit = this.pending.slice(0, cut);
      this.pending = "";
      return { emit, stopped: true };
    }
    const keep = Math.min(this.hold, this.pending.length);
    const emit = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { emit, stopped: false };
  }

  /** The held-back tail, once the sequence ended for another reason. */
  flush(): string {
    const rest = this.pending;
    this.pending = "";
    return rest;
  }
}
