/** What each conformance case gets: the official client, raw JSON requests, and greedy references. */
import type { CompletionChoice } from "@loracast/shared/generator-api";
import type OpenAI from "openai";

/** A raw JSON answer: the status and the parsed body. */
export interface Raw {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: raw JSON bodies are read field by field and asserted on
  body: any;
}

export interface Ctx {
  client: OpenAI;
  model: string;
  /** POST /v1/<path> with a JSON body, as clients other than the official one send it. */
  post(path: "completions" | "chat/completions", body: Record<string, unknown>): Promise<Raw>;
  /** A completions request through the official client, vLLM extras passed through; its choices, parsed. */
  complete(
    body: Record<string, unknown>,
  ): Promise<{ choices: CompletionChoice[]; usage: OpenAI.CompletionUsage }>;
  /** Everything the generator has logged so far, one JSON line per entry. */
  logs(): string;
  /** The greedy token ids for a prompt (`max` tokens, EOS ignored). */
  greedy(prompt: string | number[], max: number): Promise<number[]>;
}

/** One row of the table: which registry parameters it exercises, and the check. */
export interface Case {
  title: string;
  /** `name` or `name@endpoint` (then only that endpoint's entry). */
  covers: string[];
  run(ctx: Ctx): Promise<void>;
}
