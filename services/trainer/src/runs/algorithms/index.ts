/** Training algorithms as records (algorithm.ts) and the registry run configs select them from. */
export type { GradientResult, StepSample } from "./algorithm.ts";
export {
  ALGORITHM_NAMES,
  type AlgorithmConfig,
  algorithmConfigSchema,
  algorithmFor,
  type RunAlgorithm,
} from "./registry.ts";
