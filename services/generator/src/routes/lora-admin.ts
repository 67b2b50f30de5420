/**
 * vLLM-compatible POST /v1/load_lora_adapter and /v1/unload_lora_adapter. `lora_name` (or
 * `lora_path`) is `<run>@<version>`: loading pulls and verifies that version from the store and pins
 * it in the cache until it is unloaded. A revoked version is refused (410 `adapter_revoked`) unless
 * the operator allows it; a pin taken before the rollback holds the weights until it is unloaded.
 */
import { Hono } from "hono";
import { z } from "zod";
import { errorResponse } from "../errors.ts";
import { ensureVersion, parseVersionRef } from "../inference/model-ref.ts";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

const bodySchema = z.object({ lora_name: z.string().min(1), lora_path: z.string().optional() });

export function loraAdminRoutes(manager: AdapterManager): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  const pinned = new Map<string, () => void>();

  const body = async (c: { req: { json(): Promise<unknown> } }) => {
    const parsed = bodySchema.safeParse(await c.req.json().catch(() => null));
    return parsed.success ? parsed.data : null;
  };

  app.post("/v1/load_lora_adapter", async (c) => {
    const b = await body(c);
    if (b === null) return errorResponse(c, "bad_request", "body must be {lora_name, lora_path?}");
    const ref = b.lora_path ?? b.lora_name;
    const parsed = parseVersionRef(ref);
    if (parsed === null)
      return errorResponse(c, "bad_request", `${ref}: expected <run>@<version>`, "lora_name");
    // Checked before "already loaded": a version revoked since it was loaded is refused like any other.
    const r = await ensureVersion(manager, parsed, "lora_name");
    if (!r.ok) return errorResponse(c, r.error.code, r.error.message, r.error.param ?? null);
    if (pinned.has(b.lora_name)) return c.text(`Success: LoRA adapter '${b.lora_name}' is already loaded.`);
    pinned.set(b.lora_name, manager.pin(r.value));
    return c.text(`Success: LoRA adapter '${b.lora_name}' added successfully.`);
  });

  app.post("/v1/unload_lora_adapter", async (c) => {
    const b = await body(c);
    if (b === null) return errorResponse(c, "bad_request", "body must be {lora_name}");
    const release = pinned.get(b.lora_name);
    if (release === undefined)
      return errorResponse(c, "model_not_found", `${b.lora_name} was not loaded`, "lora_name");
    pinned.delete(b.lora_name);
    release();
    return c.text(`Success: LoRA adapter '${b.lora_name}' removed successfully.`);
  });
  return app;
}
