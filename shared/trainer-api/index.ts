/**
 * The trainer's wire contracts, one zod schema (and its inferred type) per request, response, event
 * and error body: the trainer's routes produce and validate with them; its clients (the local
 * stack's demo, tests, benches) parse with them. The run event stream is `shared/run-events`',
 * re-exported here so that a client needs one import.
 */

export {
  type RunMetrics,
  type RunStreamEvent,
  runStreamEventSchema,
} from "../run-events/index.ts";
export {
  TRAINER_ERROR_CODES,
  type TrainerErrorBody,
  type TrainerErrorCode,
  trainerErrorBodySchema,
} from "./errors.ts";
export {
  FLEET_MAX_GENERATORS,
  FLEET_MAX_ROWS,
  type Fleet,
  type FleetGenerator,
  fleetSchema,
} from "./fleet.ts";
export { type TrainerReadiness, trainerReadinessSchema } from "./readiness.ts";
export { type RunInfo, type RunList, runInfoSchema, runListSchema } from "./runs.ts";
export {
  type Subscription,
  type SubscriptionList,
  subscribeRequestSchema,
  subscriptionListSchema,
  subscriptionSchema,
} from "./subscriptions.ts";
export {
  type PublishResult,
  publishResultSchema,
  type RollbackResult,
  type RunVersion,
  type RunVersions,
  rollbackRequestSchema,
  rollbackResultSchema,
  runVersionsSchema,
} from "./versions.ts";
