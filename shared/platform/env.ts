import { z } from "zod";

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
