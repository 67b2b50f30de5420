/**
 * A JSONL prompt set and the order a run visits it: a fresh seeded permutation per epoch, so the
 * prompts of step s follow from (seed, s) alone and a resumed run sees the same ones.
 */
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { createRng } from "@loracast/shared/random";
import { err, ok, type Result } from "@loracast/shared/result";
import { z } from "zod";
import { TrainerError } from "../errors.ts";
import { algorithmFor } from "./algorithms/index.ts";
import type { RunConfig } from "./config.ts";

/**
 * The largest dataset file a run reads, in bytes (256 MiB): the whole file is held as one string
 * while its lines are checked, and a request must not be able to make the trainer read without end
 * (`/dev/zero`).
 */
export const MAX_DATASET_BYTES = 256 * 1024 * 1024;

const rowSchema = z.object({
  prompt: z.string().min(1),
  answer: z.union([z.string(), z.number()]).optional(),
  completion: z.string().optional(),
});

/** One dataset line; `answer` as a string (a numeric answer is compared as a number). */
export interface Example {
  prompt: string;
  answer: string | null;
  completion: string | null;
}

/** What every line must carry for a run: its algorithm's and its reward functions' inputs. */
export interface DatasetNeeds {
  /** An algorithm without rollouts (SFT) trains on `completion`: a non-empty string on every line. */
  completion: boolean;
  /** `exact_match` compares with `answer` (any); `numeric_answer` needs a number (or numeric string). */
  answer: "any" | "numeric" | null;
}

/** The dataset fields a run config depends on; every line is checked for them before the run starts. */
export function datasetNeeds(config: RunConfig): DatasetNeeds {
  const types = new Set(config.rewards.map((r) => r.type));
  return {
    completion: !algorithmFor(config.algorithm).rollouts,
    answer: types.has("numeric_answer") ? "numeric" : types.has("exact_match") ? "any" : null,
  };
}

function missing(row: Example, needs: DatasetNeeds): string | null {
  if (needs.completion && !row.completion)
    return "completion: SFT needs a non-empty completion on every line";
  if (needs.answer !== null && row.answer === null) {
    return "answer: the run's exact_match or numeric_answer reward needs an answer on every line";
  }
  if (needs.answer === "numeric" && (row.answer?.trim() === "" || !Number.isFinite(Number(row.answer)))) {
    return `answer: numeric_answer needs a number, got ${JSON.stringify(row.answer)}`;
  }
  return null;
}

/**
 * Reads the JSONL dataset at `path` (absolute: the run's `dataset.path` as accepted,
 * `withAbsoluteDatasetPath`) and checks every line against `needs`. `given` is the path as the
 * config gave it, for messages. Fails with `invalid_config` naming `dataset.path`
 * and the line (1-based) at fault; a file it cannot read, or that is not a regular file (a FIFO,
 * a device, a directory) or is over `MAX_DATASET_BYTES`, is named as given and, when that was
 * relative, as resolved.
 */
export async function loadDataset(
  path: string,
  needs: DatasetNeeds,
  given: string,
): Promise<Result<Example[], TrainerError>> {
  const invalid = (message: string) => err(new TrainerError("invalid_config", `dataset.path: ${message}`));
  // The trainer's working directory need not be the config writer's (`npm -w` runs it in
  // services/trainer), so a relative path says where it was looked for.
  const where = isAbsolute(given) ? given : `${given} (relative to the trainer's working directory: ${path})`;
  let text: string;
  try {
    // Non-blocking open: a FIFO opens at once instead of holding the request (and a thread of
    // libuv's pool) until a writer comes; the checks below then refuse it.
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const info = await file.stat();
      if (!info.isFile()) return invalid(`${where} is not a regular file`);
      if (info.size > MAX_DATASET_BYTES)
        return invalid(
          `${where} is ${info.size} bytes, above the ${MAX_DATASET_BYTES}-byte bound on a dataset`,
        );
      text = await file.readFile("utf8");
    } finally {
      await file.close();
    }
  } catch (e) {
    return invalid(`cannot read ${where}: ${(e as Error).message}`);
  }
  const rows: Example[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return invalid(`line ${i + 1} is not JSON`);
    }
    const row = rowSchema.safeParse(json);
    if (!row.success) {
      const issue = row.error.issues[0];
      return invalid(`line ${i + 1}: ${issue?.path.join(".")}: ${issue?.message}`);
    }
    const example: Example = {
      prompt: row.data.prompt,
      answer: row.data.answer === undefined ? null : String(row.data.answer),
      completion: row.data.completion ?? null,
    };
    const problem = missing(example, needs);
    if (problem !== null) return invalid(`line ${i + 1}: ${problem}`);
    rows.push(example);
  }
  if (rows.length === 0) return invalid(`${path} has no examples`);
  return ok(rows);
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
