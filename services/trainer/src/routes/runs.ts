import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { errorResponse, TrainerError } from "../errors.ts";
import type { RunManager, RunStreamEvent } from "../runs/run-manager.ts";
import type { TrainerEnv } from "./types.ts";

/** Training runs: create, list, inspect, cancel, and follow their events over SSE. */
export function runRoutes(runs: RunManager | null): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();
  const manager = (): RunManager => {
    if (runs === null) {
      throw new TrainerError(
        "conflict",
        "this trainer has no base model (set TRAINER_MODEL_DIR) and cannot train",
      );
    }
    return runs;
  };

  app.post("/v1/runs", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return errorResponse(c, "invalid_config", "the body must be a JSON run config");
    }
    return c.json(await manager().create(body), 201);
  });
  app.get("/v1/runs", (c) => c.json({ runs: manager().list() }));
  app.get("/v1/runs/:id", (c) => c.json(manager().get(c.req.param("id"))));
  app.post("/v1/runs/:id/cancel", (c) => c.json(manager().cancel(c.req.param("id"))));
  app.get("/v1/runs/:id/events", (c) => {
    const id = c.req.param("id");
    const m = manager();
    m.get(id);
    const after = Number(c.req.header("last-event-id") ?? 0) || 0;
    return streamSSE(c, async (stream) => {
      const queue: RunStreamEvent[] = [];
      let wake: (() => void) | null = null;
      const unsubscribe = m.subscribe(id, after, (e) => {
        queue.push(e);
        wake?.();
      });
      let closed = false;
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      try {
        while (!closed) {
          const e = queue.shift();
          if (e === undefined) {
            // Every run's history ends with a status event, so this wait always ends.
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = null;
            continue;
          }
          await stream.writeSSE({ id: String(e.seq), event: e.type, data: JSON.stringify(e) });
          if (e.type === "status") break;
        }
      } finally {
        unsubscribe();
      }
    });
  });
  return app;
}
