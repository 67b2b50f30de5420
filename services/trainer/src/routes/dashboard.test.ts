import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dashboardRoutes } from "./dashboard.ts";

const app = dashboardRoutes();
const get = (path: string) => app.request(path);

describe("dashboard routes", () => {
  it("redirects / to /dashboard", async () => {
    const res = await get("/");
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), "/dashboard");
  });

  it("serves the page with a same-origin-only CSP, and every asset it names", async () => {
    const res = await get("/dashboard");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self';/);
    assert.match(csp, /connect-src 'self';/);
    const html = await res.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    // Nothing from another origin: only the trainer's own paths (and the empty data: favicon).
    for (const ref of refs) assert.ok(ref.startsWith("/dashboard/assets/") || ref === "data:,", ref);
    const pending = refs.filter((r) => r.startsWith("/"));
    const seen = new Set<string>();
    while (pending.length > 0) {
      const path = pending.pop() as string;
      if (seen.has(path)) continue;
      seen.add(path);
      const asset = await get(path);
      assert.equal(asset.status, 200, path);
      assert.equal(asset.headers.get("x-content-type-options"), "nosniff");
      const body = await asset.text();
      if (path.endsWith(".js")) {
        assert.match(asset.headers.get("content-type") ?? "", /^text\/javascript/, path);
        // The page's modules import each other by relative path: each import is a served asset too.
        for (const m of body.matchAll(/from "\.\/([\w.-]+\.js)"/g)) pending.push(`/dashboard/assets/${m[1]}`);
      } else {
        assert.match(asset.headers.get("content-type") ?? "", /^text\/css/, path);
      }
    }
    assert.ok(
      seen.has("/dashboard/assets/uplot.js") && seen.has("/dashboard/assets/fleet.js"),
      [...seen].join(),
    );
    assert.match(await (await get("/dashboard/assets/uplot.js")).text(), /uPlot/);
  });

  it("answers 404 for any other asset name, traversal included", async () => {
    for (const name of ["nope.js", "..%2Fapp.ts", "%2E%2E%2Fdashboard.ts", "index.html", "constructor"]) {
      const res = await get(`/dashboard/assets/${name}`);
      assert.equal(res.status, 404, name);
    }
  });
});
