import { runName } from "@loracast/shared/manifest";
import type { Fleet } from "@loracast/shared/trainer-api";
import { Hono } from "hono";
import { TrainerError } from "../errors.ts";
import { type FleetDeps, readFleet } from "../fleet/index.ts";
import type { TrainerEnv } from "./types.ts";

/**
 * `GET /v1/fleet[?run=<run>]`: every generator the trainer notifies, with the adapter state its own
 * `GET /v1/adapters` reports (`shared/trainer-api`, `fleetSchema`). Needs the token: it names the
 * generators' internal URLs, as the subscriptions do. `run` that is no run name is a 400.
 */
export function fleetRoutes(d: FleetDeps): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();
  app.get("/v1/fleet", async (c) => {
    const given = c.req.query("run");
    let run: string | null = null;
    if (given !== undefined) {
      const parsed = runName.safeParse(given);
      if (!parsed.success) throw new TrainerError("bad_request", `run: ${parsed.error.issues[0]?.message}`);
      run = parsed.data;
    }
    const body: Fleet = await readFleet(d, run);
    return c.json(body);
  });
  return app;
}
