/** Policy losses as dLoss/dLogprob per token: GRPO (TRL's four aggregations), online DPO, SFT. */
export { dpoLoss } from "./dpo.ts";
export {
  fracRewardZeroStd,
  type GrpoInput,
  type GrpoSettings,
  groupAdvantages,
  grpoLoss,
} from "./grpo.ts";
export { sftLoss } from "./sft.ts";
export type { ScoredTokens } from "./tokens.ts";
