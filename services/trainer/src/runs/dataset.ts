/**
 * A JSONL prompt set and the order a run visits it: a fresh seeded permutation per epoch, so the
 * prompts of step s follow from (seed, s) alone and a resumed run sees the same ones.
 */
import { readFile } from "node:fs/promises";
import { createRng } from "@loracast/shared/random";
import { z } from "zod";
import { TrainerError } from "../errors.ts";

const rowSchema = z.object({
  prompt: z.string().min(1),
  answer: z.union([z.string(), z.number()]).optional(),
  completion: z.string().optional(),
});

export interface Example {
  prompt: string;
  answer: string | null;
  completion: string | null;
}

export async function loadDataset(path: string): Promise<Example[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new TrainerError("invalid_config", `dataset.path: cannot read ${path}: ${(e as Error).message}`);
  }
  const rows: Example[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new TrainerError("invalid_config", `dataset.path: line ${i + 1} is not JSON`);
    }
    const row = rowSchema.safeParse(json);
    if (!row.success) {
      const issue = row.error.issues[0];
      throw new TrainerError(
        "invalid_config",
        `dataset.path: line ${i + 1}: ${issue?.path.join(".")}: ${issue?.message}`,
      );
    }
    rows.push({
      prompt: row.data.prompt,
      answer: row.data.answer === undefined ? null : String(row.data.answer),
      completion: row.data.completion ?? null,
    });
  }
  if (rows.length === 0) throw new TrainerError("invalid_config", `dataset.path: ${path} has no examples`);
  return rows;
}

/** The examples of step `step` (0-based): `count` consecutive draws from the epoch permutations. */
export function examplesForStep(
  data: readonly Example[],
  seed: number,
  step: number,
  count: number,
): Example[] {
  const out: Example[] = [];
  const perms = new Map<number, number[]>();
  for (let i = step * count; i < (step + 1) * count; i++) {
    const epoch = Math.floor(i / data.length);
    let perm = perms.get(epoch);
    if (perm === undefined) {
      const rng = createRng(seed * 7919 + epoch);
      perm = data.map((_, j) => j);
      for (let j = perm.length - 1; j > 0; j--) {
        const k = rng.int(j + 1);
        [perm[j], perm[k]] = [perm[k] as number, perm[j] as number];
      }
      perms.set(epoch, perm);
    }
    out.push(data[perm[i % data.length] as number] as Example);
  }
  return out;
}
