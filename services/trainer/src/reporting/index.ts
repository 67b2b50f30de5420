/**
 * Run metrics outside the SSE stream, where RL people read them: TensorBoard event files and OTLP,
 * with TRL's scalar names where the quantity is TRL's (scalars.ts holds the one mapping).
 */

export { OtlpReporter } from "./otlp.ts";
export { SCALAR_NAMES, scalarNamesTable } from "./scalars.ts";
export { TensorBoardReporter } from "./tensorboard.ts";
