/**
 * The dashboard the trainer serves at `/dashboard`: a static page (plain ES modules, uPlot for the
 * charts) that reads the trainer's own API: runs, each run's events over SSE, versions and the fleet.
 */
export { DASHBOARD_ASSET_NAMES, DASHBOARD_HEADERS, dashboardAsset, dashboardPage } from "./assets.ts";
