/**
 * A step as the GroupQueryAttention graphs take it. Callers describe steps with left-padded rows,
 * an `attention_mask` and `position_ids` (`StepInput`); GQA wants each row's tokens from column 0
 * and its length (`seqlens_k`), and derives positions from that length
 * (`shared/model-builder/attention-gqa.ts`). For the rows the engine makes (a left-padded prompt
 * with positions 0…n−1, then one token per step) the two say the same thing, which is checked:
 * anything else is a RangeError, never a silently different attention.
 */
import type { StepInput } from "./step-feeds.ts";

/** `StepInput`'s rows right-padded, and what GroupQueryAttention is told about them. */
export interface GqaStep {
  /** int64 [batch, seq]: each row's new tokens first, its padding after. */
  inputIds: BigInt64Array;
  /** int64 [batch, logitsCount]: the caller's positions, moved with their tokens. */
  logitsPositions: BigInt64Array;
  /** int32 [batch]: each row's keys after this step, minus one. */
  seqlensK: Int32Array;
  /** The step's key columns, `past + seq`: at least every row's keys after this step. */
  total: number;
  /** Each row's keys before this step: the cache column its first new key goes to. */
  pastRows: number[];
}

/**
 * Converts a left-padded step over a past of `pastLength` columns. Throws a RangeError when a row's
 * mask is not zeros then ones, a row has no token, a row with a past has padding among its new
 * tokens, a position is not the count of the row's tokens before it, or a batch of more than one
 * row has both a past and several new tokens (ORT's GroupQueryAttention refuses that).
 */
export function toGqaStep(input: StepInput, pastLength: number): GqaStep {
  const { batch, seq } = input;
  const total = pastLength + seq;
  if (pastLength > 0 && seq > 1 && batch > 1)
    throw new RangeError("GroupQueryAttention takes several new tokens over a past for one row only");
  const inputIds = new BigInt64Array(batch * seq);
  const logitsPositions = new BigInt64Array(input.logitsPositions.length);
  const seqlensK = new Int32Array(batch);
  const pastRows: number[] = [];
  const count = input.logitsCount;
  for (let b = 0; b < batch; b++) {
    const mask = input.attentionMask.subarray(b * total, (b + 1) * total);
    const pad = mask.indexOf(1n);
    if (pad < 0 || mask.subarray(pad).some((m) => m !== 1n) || mask.subarray(0, pad).some((m) => m !== 0n))
      throw new RangeError(`row ${b}: the attention mask must be zeros then ones (left padding)`);
    const valid = total - pad;
    const fresh = Math.min(seq, valid);
    const past = valid - fresh;
    if (pastLength > 0 && fresh < seq)
      throw new RangeError(`row ${b}: a row with a past must have no padding among its new tokens`);
    const shift = seq - fresh;
    for (let j = 0; j < fresh; j++) {
      const position = input.positionIds[b * seq + shift + j];
      if (position !== BigInt(past + j))
        throw new RangeError(`row ${b}: position ${position} where GroupQueryAttention puts ${past + j}`);
    }
    for (let j = 0; j < seq; j++) inputIds[b * seq + j] = input.inputIds[b * seq + ((j + shift) % seq)] ?? 0n;
    for (let k = 0; k < count; k++) {
      const p = Number(input.logitsPositions[b * count + k] ?? 0n);
      logitsPositions[b * count + k] = BigInt((p - shift + seq) % seq);
    }
    seqlensK[b] = valid - 1;
    pastRows.push(past);
  }
  return { inputIds, logitsPositions, seqlensK, total, pastRows };
}
