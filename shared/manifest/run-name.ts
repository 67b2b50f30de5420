import { z } from "zod";

/**
 * The one rule for run names, on every path that takes one (run configs, uploads, versions and
 * rollbacks on the trainer; webhooks, `model: "<run>@<version>"` and the admin API on generators):
 * they become store keys (`runs/<run>/…`) and model names, so only lowercase letters, digits and
 * dashes (no `/`, `.`, `@`, NUL), starting with a letter or digit, at most 63 (a DNS label).
 */
export const RUN_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** `RUN_NAME` as a zod schema; its message is the rule, for a 400 naming the field. */
export const runName = z
  .string()
  .regex(
    RUN_NAME,
    "run names are lowercase letters, digits and dashes, start with a letter or digit, at most 63",
  )
  .describe("Run name: lowercase letters, digits and dashes, starting with a letter or digit, at most 63");
