import { isModelType, MODEL_TYPES, type ModelType } from "../architectures/index.ts";
import { err, ok, type Result } from "../result/index.ts";

/** The dimensions of a Llama-family decoder that decide every LoRA shape. */
export interface DecoderDims {
  modelType: ModelType;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
}

/**
 * A HF `config.json` this code cannot serve: `field` names the key at fault (unsupported
 * `model_type`, a missing dimension, an inconsistent head count).
 */
export class ModelConfigError extends Error {
  override readonly name = "ModelConfigError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`config.json: ${field}: ${message}`);
  }
}

/** Reads the fields of a Hugging Face `config.json` that fix the module map. */
export function parseDecoderDims(input: unknown): Result<DecoderDims, ModelConfigError> {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return err(new ModelConfigError("(file)", "must be a JSON object"));
  }
  const c = input as Record<string, unknown>;
  const modelType = c.model_type;
  if (!isModelType(modelType)) {
    return err(
      new ModelConfigError(
        "model_type",
        `unsupported architecture ${JSON.stringify(modelType)}; supported: ${MODEL_TYPES.join(", ")}`,
      ),
    );
  }
  const int = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new ModelConfigError(field, `must be a positive integer, got ${JSON.stringify(c[field])}`);
    }
    return v;
  };
  try {
    const hiddenSize = int("hidden_size");
    const numHeads = int("num_attention_heads");
    const numKvHeads = int("num_key_value_heads", numHeads);
    if (numHeads % numKvHeads !== 0) {
      throw new ModelConfigError(
        "num_key_value_heads",
        `${numKvHeads} does not divide num_attention_heads ${numHeads}`,
      );
    }
    const headDim = c.head_dim == null ? hiddenSize / numHeads : int("head_dim");
    if (!Number.isInteger(headDim)) {
      throw new ModelConfigError(
        "head_dim",
        `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`,
      );
    }
    const tie = c.tie_word_embeddings ?? false;
    if (typeof tie !== "boolean") throw new ModelConfigError("tie_word_embeddings", "must be a boolean");
    return ok({
      modelType,
      hiddenSize,
      intermediateSize: int("intermediate_size"),
      numLayers: int("num_hidden_layers"),
      numHeads,
      numKvHeads,
      headDim,
      vocabSize: int("vocab_size"),
      tieWordEmbeddings: tie,
    });
  } catch (e) {
    if (e instanceof ModelConfigError) return err(e);
    throw e;
  }
}
