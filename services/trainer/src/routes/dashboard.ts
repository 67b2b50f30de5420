import { Hono } from "hono";
import { DASHBOARD_HEADERS, dashboardAsset, dashboardPage } from "../dashboard/index.ts";
import { errorResponse } from "../http-errors.ts";
import type { TrainerEnv } from "./types.ts";

/**
 * The dashboard: `GET /` redirects to `GET /dashboard` (the page), whose scripts and styles are
 * `GET /dashboard/assets/:name`. All public: the page holds no data; it asks for the bearer token
 * and sends it with the API calls that need it.
 */
export function dashboardRoutes(): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();
  app.get("/", (c) => c.redirect("/dashboard", 302));
  app.get("/dashboard", async (c) => {
    const { body, type } = await dashboardPage();
    return c.body(new Uint8Array(body), 200, { ...DASHBOARD_HEADERS, "content-type": type });
  });
  app.get("/dashboard/assets/:name", async (c) => {
    const asset = dashboardAsset(c.req.param("name"));
    if (asset === null) return errorResponse(c, "not_found", `no dashboard asset ${c.req.param("name")}`);
    const { body, type } = await asset;
    return c.body(new Uint8Array(body), 200, { ...DASHBOARD_HEADERS, "content-type": type });
  });
  return app;
}
