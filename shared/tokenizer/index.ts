/** Tokenizers: HF `tokenizer.json` via @huggingface/tokenizers, a byte-level one for test models, chat templates via @huggingface/jinja. */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { byteTokenizer } from "./byte-tokenizer.ts";
import { hfTokenizer } from "./hf-tokenizer.ts";
import type { TextTokenizer } from "./types.ts";

export { byteTokenizer } from "./byte-tokenizer.ts";
export { IncrementalDecoder } from "./detokenizer.ts";
export type { TextTokenizer } from "./types.ts";

async function readOptional(path: string): Promise<string | null> {
  return readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return null;
    throw e;
  });
}

/** The tokenizer of a model directory: its `tokenizer.json` when present, else bytes. */
export async function loadTokenizer(
  dir: string,
  model: { vocabSize: number; bosTokenId: number | null; eosTokenIds: readonly number[] },
): Promise<TextTokenizer> {
  const json = await readOptional(join(dir, "tokenizer.json"));
  if (json === null) {
    const specials = [0, ...(model.bosTokenId === null ? [] : [model.bosTokenId]), ...model.eosTokenIds];
    return byteTokenizer({
      vocabSize: model.vocabSize,
      specialIds: specials,
      stopTokenIds: model.eosTokenIds,
    });
  }
  const config = await readOptional(join(dir, "tokenizer_config.json"));
  return hfTokenizer({
    tokenizerJson: JSON.parse(json) as Record<string, unknown>,
    tokenizerConfig: config === null ? {} : (JSON.parse(config) as Record<string, unknown>),
    chatTemplate: await readOptional(join(dir, "chat_template.jinja")),
    stopTokenIds: model.eosTokenIds,
  });
}
