/** Hono context variables the generator's middleware sets. */
export type GeneratorEnv = { Variables: { requestId: string } };
