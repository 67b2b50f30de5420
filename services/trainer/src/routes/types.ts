/** Hono context variables the trainer's middleware sets. */
export type TrainerEnv = { Variables: { requestId: string } };
