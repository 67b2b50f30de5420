/**
 * Rotary embedding frequencies exactly as transformers computes them: float32 arithmetic step by
 * step (hence the Math.fround calls), so the graph's angles match PyTorch's to the last bit where
 * the operations allow.
 */
import { ModelConfigError } from "../model-spec/index.ts";
import { err, ok, type Result } from "../result/index.ts";

/**
 * RoPE as transformers' `modeling_rope_utils.py` computes it for `rope_type` default, linear and
 * llama3: the inverse frequencies and the attention scaling.
 */
export interface RopeSpec {
  type: "default" | "linear" | "llama3";
  theta: number;
  /** One inverse frequency per rotated pair: length headDim / 2. */
  invFreq: Float32Array;
  /** Multiplies cos and sin (1 for the supported types). */
  attentionScaling: number;
}

const f = Math.fround;

function num(params: Record<string, unknown>, field: string, where: string): number {
  const v = params[field];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ModelConfigError(`${where}.${field}`, `must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Reads RoPE settings from `rope_parameters` (transformers v5) or `rope_theta` + `rope_scaling` (v4). */
export function parseRope(c: Record<string, unknown>, headDim: number): Result<RopeSpec, ModelConfigError> {
  try {
    const v5 = c.rope_parameters;
    const where = v5 != null ? "rope_parameters" : "rope_scaling";
    const params = (v5 ?? c.rope_scaling ?? {}) as Record<string, unknown>;
    if (typeof params !== "object" || Array.isArray(params))
      throw new ModelConfigError(where, "must be an object or null");
    const theta = params.rope_theta ?? c.rope_theta ?? 10000;
    if (typeof theta !== "number" || !(theta > 0))
      throw new ModelConfigError("rope_theta", "must be a positive number");
    const partial = c.partial_rotary_factor ?? params.partial_rotary_factor ?? 1;
    if (partial !== 1)
      throw new ModelConfigError(
        "partial_rotary_factor",
        `${JSON.stringify(partial)} is not supported; only 1`,
      );
    const type = params.rope_type ?? params.type ?? "default";

    const half = headDim / 2;
    const inv = new Float32Array(half);
    for (let j = 0; j < half; j++) inv[j] = f(1 / f(theta ** f((2 * j) / headDim)));

    switch (type) {
      case "default":
        return ok({ type: "default", theta, invFreq: inv, attentionScaling: 1 });
      case "linear": {
        const factor = num(params, "factor", where);
        for (let j = 0; j < half; j++) inv[j] = f((inv[j] ?? 0) / factor);
        return ok({ type: "linear", theta, invFreq: inv, attentionScaling: 1 });
      }
      case "llama3":
        return ok({ type: "llama3", theta, invFreq: llama3(inv, params, where, c), attentionScaling: 1 });
      default:
        throw new ModelConfigError(
          `${where}.rope_type`,
          `${JSON.stringify(type)} is not supported; supported: default, linear, llama3`,
        );
    }
  } catch (e) {
    if (e instanceof ModelConfigError) return err(e);
    throw e;
  }
}

function llama3(
  inv: Float32Array,
  params: Record<string, unknown>,
  where: string,
  c: Record<string, unknown>,
): Float32Array {
  const factor = num(params, "factor", where);
  const low = num(params, "low_freq_factor", where);
  const high = num(params, "high_freq_factor", where);
  const oldCtx =
    typeof params.original_max_position_embeddings === "number"
      ? params.original_max_position_embeddings
      : num(c, "max_position_embeddings", "config");
  if (high === low)
    throw new ModelConfigError(`${where}.high_freq_factor`, "must differ from low_freq_factor");
  const lowWl = oldCtx / low;
  const highWl = oldCtx / high;
  const out = new Float32Array(inv.length);
  for (let j = 0; j < inv.length; j++) {
    const base = inv[j] ?? 0;
    const wl = f((2 * Math.PI) / base);
    let v = wl > lowWl ? f(base / factor) : base;
    const smooth = f((oldCtx / wl - low) / (high - low));
    const medium = !(wl < highWl) && !(wl > lowWl);
    if (medium) v = f(f(((1 - smooth) * v) / factor) + f(smooth * v));
    out[j] = v;
  }
  return out;
}
