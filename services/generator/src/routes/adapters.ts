import { Hono } from "hono";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/** Adapter state as operators and tests see it, and the vLLM-style model list. */
export function adapterRoutes(
  manager: AdapterManager,
  baseName: string,
  created: number,
): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();

  app.get("/v1/adapters", (c) =>
    c.json({
      active: manager.activeVersions(),
      data: manager.cache.all().map((r) => ({
        run: r.run,
        version: r.version,
        state: r.state,
        sha256: r.sha256,
        manifestSha256: r.manifestSha256,
        bytes: r.bytes,
        reason: r.reason,
        trigger: r.trigger,
        announcedAt: r.announcedAt,
        activatedAt: r.activatedAt,
        pinned: r.pins > 0,
      })),
    }),
  );

  app.get("/v1/models", (c) => {
    const base = {
      id: baseName,
      object: "model",
      created,
      owned_by: "loracast",
      root: baseName,
      parent: null,
    };
    const adapters = manager.cache
      .all()
      .filter((r) => r.adapter !== null)
      .map((r) => ({
        id: `${r.run}@${r.version}`,
        object: "model",
        created: Math.floor(r.announcedAt / 1000),
        owned_by: "loracast",
        root: r.manifestKey,
        parent: baseName,
        state: r.state,
        sha256: r.sha256,
      }));
    const aliases = Object.entries(manager.activeVersions()).map(([run, a]) => ({
      id: run,
      object: "model",
      created,
      owned_by: "loracast",
      root: `${run}@${a.version}`,
      parent: baseName,
      state: "active",
      sha256: a.sha256,
    }));
    return c.json({ object: "list", data: [base, ...aliases, ...adapters] });
  });

  return app;
}
