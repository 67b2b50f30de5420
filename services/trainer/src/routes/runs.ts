import { redactSecrets } from "@loracast/shared/egress";
import { startSseHeartbeat } from "@loracast/shared/platform";
import type { RunList } from "@loracast/shared/trainer-api";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { TrainerError } from "../errors.ts";
import { errorResponse } from "../http-errors.ts";
import type { RunManager } from "../runs/run-manager.ts";
import type { TrainerEnv } from "./types.ts";

/**
 * Training runs: create, list, inspect, cancel, and follow their events over SSE. Every body that
 * carries a run (its config, its error) or an event is redacted: configs keep credentials in
 * reward and generator URLs, which the API never shows. An event stream sends an SSE comment
 * (`: ping`) every `heartbeatMs` milliseconds (TRAINER_SSE_HEARTBEAT_S), so that a quiet run is not
 * cut by an idle-body timeout on the way.
 */
export function runRoutes(runs: RunManager | null, heartbeatMs: number): Hono<TrainerEnv> {
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
    return c.json(redactSecrets(await manager().create(body)), 201);
  });
  app.get("/v1/runs", (c) => {
    const body: RunList = { runs: manager().list() };
    return c.json(redactSecrets(body));
  });
  app.get("/v1/runs/:id", (c) => c.json(redactSecrets(manager().get(c.req.param("id")))));
  app.post("/v1/runs/:id/cancel", (c) => c.json(redactSecrets(manager().cancel(c.req.param("id")))));
  app.get("/v1/runs/:id/events", (c) => {
    const id = c.req.param("id");
    const m = manager();
    m.get(id);
    // EventSource sends the id of the last event it saw when it reconnects.
    const lastEventId = c.req.header("last-event-id")?.trim() ?? "";
    if (lastEventId !== "" && !/^\d{1,15}$/.test(lastEventId)) {
      return errorResponse(c, "bad_request", "Last-Event-ID: must be an event id (a non-negative integer)");
    }
    const after = Number(lastEventId);
    return streamSSE(c, async (stream) => {
      const closed = new AbortController();
      stream.onAbort(() => closed.abort());
      const stopHeartbeat = startSseHeartbeat(stream, heartbeatMs);
      try {
        for await (const e of m.events(id, after, closed.signal)) {
          await stream.writeSSE({ id: String(e.seq), event: e.type, data: JSON.stringify(redactSecrets(e)) });
        }
      } finally {
        stopHeartbeat();
      }
    });
  });
  return app;
}
