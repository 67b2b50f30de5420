import { LOG_LEVELS } from "@loracast/shared/platform";
import { z } from "zod";

/** The local stack's environment (`npm start`), parsed once at start by `main.ts`. */
export const envSchema = z.object({
  /** Where the stack keeps its data (S3 objects, trainer outbox); reused across starts. */
  LORACAST_DATA_DIR: z.string().default(".data"),
  /** First port; S3 takes it, the trainer the next, generators the ones after. */
  LORACAST_BASE_PORT: z.coerce.number().int().min(1024).max(65000).default(9000),
  /** Number of generators. */
  LORACAST_GENERATORS: z.coerce.number().int().min(1).max(16).default(2),
  /** Run the demo training run once everything is up. */
  LORACAST_DEMO: z.enum(["true", "false"]).default("true"),
  /** Steps of the demo run. */
  LORACAST_DEMO_STEPS: z.coerce.number().int().min(5).max(10_000).default(40),
  /** Bearer token for the trainer API. */
  TRAINER_API_TOKEN: z.string().min(16).default("local-dev-token-change-me"),
  /**
   * The stack's own log level, and the lowest level of the services' lines it shows in the
   * terminal: warnings and errors by default, so that the demo's output stays readable.
   */
  LOG_LEVEL: z.enum(LOG_LEVELS).default("warn"),
  /** Webhook secret shared by trainer and generators. */
  WEBHOOK_SECRET: z
    .string()
    .default(`whsec_${Buffer.from("loracast-local-dev-secret-32bytes").toString("base64")}`),
});
