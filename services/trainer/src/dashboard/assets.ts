import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";

/** One file the dashboard serves: where it is on disk and its media type. */
interface Asset {
  path: string;
  type: string;
}

const HERE = join(import.meta.dirname, "static");
const require = createRequire(import.meta.url);
const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/**
 * Every file under `/dashboard/assets/`, by name: the page's own modules and stylesheet, and uPlot's
 * shipped browser build (its IIFE, which defines the global `uPlot`, and its stylesheet) resolved
 * from node_modules, so nothing is built at install or run time and nothing comes from a CDN.
 * Names outside this table are 404s, so no request path reaches the file system.
 */
const ASSETS: Record<string, Asset> = {
  "dashboard.css": { path: join(HERE, "dashboard.css"), type: CSS },
  "dashboard.js": { path: join(HERE, "dashboard.js"), type: JS },
  "charts.js": { path: join(HERE, "charts.js"), type: JS },
  "fleet.js": { path: join(HERE, "fleet.js"), type: JS },
  "latency.js": { path: join(HERE, "latency.js"), type: JS },
  "run-history.js": { path: join(HERE, "run-history.js"), type: JS },
  "uplot.js": { path: require.resolve("uplot/dist/uPlot.iife.min.js"), type: JS },
  "uplot.css": { path: require.resolve("uplot/dist/uPlot.min.css"), type: CSS },
};

/** The names `GET /dashboard/assets/:name` serves (the OpenAPI document lists them). */
export const DASHBOARD_ASSET_NAMES: readonly string[] = Object.keys(ASSETS);

/** The page itself (`GET /dashboard`). */
const PAGE: Asset = { path: join(HERE, "index.html"), type: "text/html; charset=utf-8" };

const cache = new Map<string, Buffer>();

async function load(asset: Asset): Promise<{ body: Buffer; type: string }> {
  let body = cache.get(asset.path);
  if (body === undefined) {
    body = await readFile(asset.path);
    cache.set(asset.path, body);
  }
  return { body, type: asset.type };
}

/** The dashboard page's bytes and media type (read once, then kept in memory). */
export function dashboardPage(): Promise<{ body: Buffer; type: string }> {
  return load(PAGE);
}

/** An asset's bytes and media type by its name under `/dashboard/assets/`, or null for an unknown name. */
export function dashboardAsset(name: string): Promise<{ body: Buffer; type: string }> | null {
  const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  return asset === undefined ? null : load(asset);
}

/**
 * Headers of every dashboard response: the page may load scripts, styles and data from the trainer's
 * own origin only (CSP), is never framed, never sends a Referer, and its types are not sniffed.
 * uPlot sizes its elements through the CSSOM (`el.style.x = …`), which `style-src 'self'` allows.
 */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};
