/**
 * The trainer's fleet view, `GET /v1/fleet[?run=<run>]`: what each generator it notifies (its webhook
 * targets: static and registered subscribers, every address of a `dns+` subscriber) reports of its
 * adapters, asked over the generator's public `GET /v1/adapters` (`shared/generator-api`) at the
 * time of the request.
 */
import { z } from "zod";
import { adapterListSchema, adapterRowSchema } from "../generator-api/index.ts";
import { runName } from "../manifest/index.ts";

/** At most this many generators are asked per request; the rest are counted in `omitted`. */
export const FLEET_MAX_GENERATORS = 64;

/** At most this many version rows per generator, the newest first; the rest are counted in `versionsOmitted`. */
export const FLEET_MAX_ROWS = 50;

/**
 * How a generator answered: `ok` (its listing parsed), `unreachable` (no connection, no answer in
 * time), `refused` (the egress policy refused its address), `invalid` (an HTTP error, a body past the
 * bound or one that is not a `/v1/adapters` listing).
 */
const fleetReachSchema = z.enum(["ok", "unreachable", "refused", "invalid"]);

/** One generator of the fleet, as its `GET /v1/adapters` described itself. */
const fleetGeneratorSchema = z.object({
  url: z
    .string()
    .describe("The generator's base URL (its webhook URL without /v1/webhooks/adapters), redacted"),
  subscriptions: z.array(z.string()).describe("Ids of the webhook subscriptions that name this generator"),
  reach: fleetReachSchema,
  error: z.string().nullable().describe("Why reach is not `ok`; null when it is"),
  ms: z.number().nonnegative().describe("Round trip of its GET /v1/adapters, in milliseconds"),
  startedAt: z
    .number()
    .nullable()
    .describe("When the generator started, epoch milliseconds (null unless reach is `ok` and it reports it)"),
  active: adapterListSchema.shape.active.describe("Each run's active version ({} unless reach is `ok`)"),
  versions: z
    .array(adapterRowSchema)
    .describe("Its version rows (of `run` when given), newest version first, at most FLEET_MAX_ROWS"),
  versionsOmitted: z.number().int().nonnegative(),
});
/** The shape {@link fleetGeneratorSchema} parses, as zod infers it. */
export type FleetGenerator = z.infer<typeof fleetGeneratorSchema>;

/** `GET /v1/fleet`: every generator the trainer notifies, in subscription order, with its adapter state. */
export const fleetSchema = z.object({
  run: runName.nullable().describe("The run the version rows are restricted to; null for every run"),
  checkedAt: z.iso.datetime(),
  generators: z.array(fleetGeneratorSchema),
  omitted: z.number().int().nonnegative().describe("Generators past FLEET_MAX_GENERATORS, not asked"),
});
/** The shape {@link fleetSchema} parses, as zod infers it. */
export type Fleet = z.infer<typeof fleetSchema>;
