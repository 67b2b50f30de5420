/**
 * Copies of a run's trainable state (LoRA factors and AdamW's moments), and the check that finds a
 * non-finite parameter: what the run loop needs to undo a step that went non-finite.
 */
import type { AdamW } from "@loracast/shared/optim";
import type { LoraParams } from "@loracast/shared/training";

/** The parameters and the optimizer state at one moment, as copies. */
export interface Snapshot {
  params: Map<string, Float32Array>;
  step: number;
  moments: Map<string, { m: Float32Array; v: Float32Array }>;
}

/** Copies of the parameters and the optimizer state, to undo a step that went non-finite. */
export function snapshot(params: LoraParams, optimizer: AdamW): Snapshot {
  const { state } = optimizer;
  return {
    params: copyParams(params.named()),
    step: state.step,
    moments: new Map([...state.moments].map(([k, mv]) => [k, { m: mv.m.slice(), v: mv.v.slice() }])),
  };
}

/** Puts `s` back into `params` and `optimizer` (`s` is taken over, not copied). */
export function restore(params: LoraParams, optimizer: AdamW, s: Snapshot): void {
  params.assign(s.params);
  optimizer.state.step = s.step;
  optimizer.state.moments.clear();
  for (const [k, mv] of s.moments) optimizer.state.moments.set(k, mv);
}

/** The first parameter holding a NaN or ±Inf, as `<PEFT key> element <i> is <value>`, or null. */
export function firstNonFiniteParam(params: ReadonlyMap<string, Float32Array>): string | null {
  for (const [key, p] of params) {
    for (let i = 0; i < p.length; i++) {
      const x = p[i] as number;
      if (!Number.isFinite(x)) return `${key} element ${i} is ${x}`;
    }
  }
  return null;
}

/** Copies of every parameter tensor, by PEFT key. */
export function copyParams(params: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  return new Map([...params].map(([k, v]) => [k, Float32Array.from(v)]));
}
