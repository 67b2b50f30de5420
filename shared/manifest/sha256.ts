import { z } from "zod";

/** A sha256 digest as the manifests and APIs write it: 64 lowercase hex digits. */
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be a lowercase hex sha256");
