import { runName } from "@loracast/shared/manifest";
import { type RunVersions, rollbackRequestSchema } from "@loracast/shared/trainer-api";
import { Hono } from "hono";
import { errorResponse } from "../http-errors.ts";
import type { Publisher } from "../publisher.ts";
import { receiveAdapterUpload, type UploadSpool } from "./adapter-upload.ts";
import type { TrainerEnv } from "./types.ts";

/** Publishing adapters trained elsewhere, listing versions, rolling back. */
export function adapterRoutes(publisher: Publisher, uploads: UploadSpool): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();

  app.post("/v1/runs/:run/adapters", async (c) => {
    const run = runName.safeParse(c.req.param("run"));
    if (!run.success) return errorResponse(c, "bad_request", `run: ${run.error.issues[0]?.message}`);
    const receiveStart = performance.now();
    const upload = await receiveAdapterUpload(c.req.raw, uploads);
    if (!upload.ok) {
      // A refused upload leaves its unread rest on the connection: it cannot carry another request.
      // (The rest of one refused for its header is read and dropped, so the connection stays.)
      if (upload.error.code === "payload_too_large") c.header("connection", "close");
      return errorResponse(c, upload.error.code, upload.error.message);
    }
    const { config, weights } = upload.value;
    const r = await publisher.publish(run.data, config, weights, {
      receiveMs: performance.now() - receiveStart,
    });
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
    const body = rollbackRequestSchema.safeParse(await c.req.json().catch(() => null));
    if (!body.success) return errorResponse(c, "bad_request", 'body must be {"version": <positive integer>}');
    const r = await publisher.rollback(run.data, body.data.version);
    if (!r.ok) return errorResponse(c, r.error.code, r.error.message);
    return c.json(r.value);
  });

  return app;
}
