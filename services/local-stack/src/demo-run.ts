/**
 * Which run the demo shows. The trainer trains one run at a time and resumes, when it starts, every
 * run that was running when it stopped; so after a Ctrl-C mid-demo the demo's own run is running again
 * before the demo asks for a new one. The demo then follows that run to its end instead of asking for
 * another (which the trainer would refuse with 409).
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Service } from "@loracast/dev-support/supervisor";
import { runListSchema, trainerErrorBodySchema } from "@loracast/shared/trainer-api";

/** An expected failure of the demo (the trainer refused it, or its run failed): one line for the user. */
export class DemoError extends Error {
  override readonly name = "DemoError";
}

/** The demo's runs are named `digits-<n>`; the next fresh one takes the next free n. */
const DEMO_RUN = /^digits-(\d+)$/;

/** What the demo shows: its own run, continued or new, or nothing while someone else's run trains. */
export type DemoRun =
  | { kind: "continued"; run: string; steps: number }
  | { kind: "created"; run: string; steps: number }
  | { kind: "busy"; run: string };

/**
 * What the demo run needs: the trainer (and its API token), the data dir where the demo keeps its
 * run name across starts, the number of steps, and the stack's stop signal.
 */
export interface DemoRunOptions {
  trainer: Service;
  token: string;
  dataDir: string;
  steps: number;
  signal: AbortSignal;
}

async function trainerJson(o: DemoRunOptions, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${o.trainer.url}${path}`, {
    ...init,
    signal: o.signal,
    headers: { authorization: `Bearer ${o.token}`, "content-type": "application/json" },
  });
}

/** The trainer's error envelope's message, or the body as text. */
async function refusal(res: Response): Promise<string> {
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's page, say): the text itself is the best message there is.
  }
  const body = trainerErrorBodySchema.safeParse(json);
  return `HTTP ${res.status}: ${body.success ? body.data.error.message : text}`;
}

/** Writes the demo's prompts unless the file already holds them (a resumed run may be reading it). */
async function writeDataset(dataDir: string): Promise<string> {
  const path = join(dataDir, "demo-prompts.jsonl");
  const text = Array.from({ length: 64 }, (_, i) => JSON.stringify({ prompt: `q${i * 37}:` })).join("\n");
  if ((await readFile(path, "utf8").catch(() => null)) === text) return path;
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
  return path;
}

/** Continues the demo's unfinished run, or starts `digits-<n+1>`, or reports the run that holds the trainer. */
export async function chooseDemoRun(o: DemoRunOptions): Promise<DemoRun> {
  const listed = await trainerJson(o, "/v1/runs");
  if (!listed.ok) throw new DemoError(`the trainer did not list its runs: ${await refusal(listed)}`);
  const { runs } = runListSchema.parse(await listed.json());
  const running = runs.find((r) => r.status === "running");
  if (running !== undefined) {
    return DEMO_RUN.test(running.run)
      ? { kind: "continued", run: running.run, steps: running.steps }
      : { kind: "busy", run: running.run };
  }
  const taken = runs.map((r) => Number(DEMO_RUN.exec(r.run)?.[1] ?? 0));
  const run = `digits-${Math.max(0, ...taken) + 1}`;
  const dataset = await writeDataset(o.dataDir);
  const config = {
    run,
    seed: 1,
    algorithm: { name: "grpo", numGenerations: 8, lossType: "dapo" },
    dataset: { path: dataset },
    rewards: [{ type: "regex", pattern: "[0-9]", mode: "fraction" }],
    lora: { r: 8, alpha: 16 },
    optimizer: { lr: 0.02 },
    steps: o.steps,
    promptsPerStep: 4,
    microBatch: 32,
    sampling: { temperature: 1, maxTokens: 16 },
    publishEvery: 2,
    checkpointEvery: 10,
    reportTo: ["tensorboard"],
  };
  const res = await trainerJson(o, "/v1/runs", { method: "POST", body: JSON.stringify(config) });
  if (res.status !== 201) throw new DemoError(`the trainer refused run ${run}: ${await refusal(res)}`);
  return { kind: "created", run, steps: o.steps };
}
