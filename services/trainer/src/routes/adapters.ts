import { type RunVersions, runName } from "@loracast/shared/manifest";
import { Hono } from "hono";
import { z } from "zod";
import { errorResponse } from "../errors.ts";
import type { Publisher } from "../publisher.ts";
import type { TrainerEnv } from "./types.ts";

const rollbackBody = z.object({ version: z.number().int().positive() });
const FIELDS = ["adapter_config.json", "adapter_model.safetensors"] as const;

/** Publishing adapters trained elsewhere, listing versions, rolling back. */
export function adapterRoutes(publisher: Publisher): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();

  app.post("/v1/runs/:run/adapters", async (c) => {
    const run = runName.safeParse(c.req.param("run"));
    if (!run.success) return errorResponse(c, "bad_request", `run: ${run.error.issues[0]?.message}`);
    let form: Record<string, unknown>;
    try {
      form = await c.req.parseBody();
    } catch (e) {
      return errorResponse(c, "bad_request", `expected multipart/form-data: ${(e as Error).message}`);
    }
    const parts: Uint8Array[] = [];
    for (const field of FIELDS) {
      const f = form[field];
      if (!(f instanceof File))
        return errorResponse(c, "bad_request", `multipart field "${field}" (a file) is required`);
      parts.push(new Uint8Array(await f.arrayBuffer()));
    }
    const [config, weights] = parts as [Uint8Array, Uint8Array];
    const r = await publisher.publish(run.data, config, weights);
    if (!r.ok) return errorResponse(c, r.error.code, r.error.message);
    return c.json(r.value, 201);
  });

  app.get("/v1/runs/:run/versions", async (c) => {
    const run = runName.safeParse(c.req.param("run"));
    if (!run.success) return errorResponse(c, "bad_request", `run: ${run.error.issues[0]?.message}`);
    const body: RunVersions = { run: run.data, ...(await publisher.versions(run.data)) };
    return c.json(body);
  });

  app.post("/v1/runs/:run/rollback", async (c) => {
    const run = runName.safeParse(c.req.param("run"));
    if (!run.success) return errorResponse(c, "bad_request", `run: ${run.error.issues[0]?.message}`);
    const body = rollbackBody.safeParse(await c.req.json().catch(() => null));
    if (!body.success) return errorResponse(c, "bad_request", 'body must be {"version": <positive integer>}');
    const r = await publisher.rollback(run.data, body.data.version);
    if (!r.ok) return errorResponse(c, r.error.code, r.error.message);
    return c.json(r.value);
  });

  return app;
}
