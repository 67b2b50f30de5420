import { z } from "zod";
import { LOG_LEVELS } from "./logger.ts";

/** An environment variable holding a comma-separated list; blanks are dropped. */
export const commaList = z
  .string()
  .default("")
  .transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== ""),
  );

/** A boolean environment variable: `true`/`1` or `false`/`0`. */
export const envBool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

/** `LOG_LEVEL`: debug, info, warn or error (lines below it are dropped); info when unset. */
export const logLevel = z.enum(LOG_LEVELS).default("info");
