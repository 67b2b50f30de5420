/** Policy losses as dLoss/dLogprob per token: GRPO (TRL's four aggregations), online DPO, SFT. */
export { type DpoInput, type DpoLossType, type DpoResult, dpoLoss } from "./dpo.ts";
export {
  type GrpoInput,
  type GrpoLossType,
  type GrpoResult,
  type GrpoSettings,
  groupAdvantages,
  grpoLoss,
  type ScaleRewards,
} from "./grpo.ts";
export { sftLoss } from "./sft.ts";
export { type LossResult, type ScoredTokens, tokensPerSequence } from "./tokens.ts";
