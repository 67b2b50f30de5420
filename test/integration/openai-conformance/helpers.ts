/** Small helpers the conformance cases share: token-id requests, sums, repetition counts, stop strings. */
import assert from "node:assert/strict";
import type { CompletionChoice } from "@loracast/shared/generator-api";
import type { Ctx } from "./context.ts";

/** llama-tiny's EOS token id. */
export const EOS = 2;
const ascii = (id: number) => id >= 0x20 && id < 0x7f;
/** The sum of logprobs, nulls as 0. */
export const sum = (xs: readonly (number | null)[]) => xs.reduce<number>((a, x) => a + (x ?? 0), 0);
/** How often the most repeated token occurs. */
export const maxCount = (ids: number[]) =>
  Math.max(...[...new Set(ids)].map((t) => ids.filter((x) => x === t).length));

/** The first printable ASCII token of `ids` at position ≥ 2 that does not occur before: a stop string. */
export function stopAt(ids: number[]): { at: number; stop: string } {
  const at = ids.findIndex((id, i) => i >= 2 && ascii(id) && !ids.slice(0, i).includes(id));
  assert.ok(at > 0, `the greedy text has a fresh ASCII character: ${ids}`);
  return { at, stop: String.fromCharCode(ids[at] as number) };
}

/** Token ids of the first choice of a greedy, EOS-ignoring completions request (overridable by `body`). */
export async function tokenIds(ctx: Ctx, body: Record<string, unknown>): Promise<number[]> {
  const r = await ctx.complete({ temperature: 0, ignore_eos: true, return_token_ids: true, ...body });
  return (r.choices[0] as CompletionChoice).token_ids as number[];
}
