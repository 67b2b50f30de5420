import type { AdapterList } from "@loracast/shared/manifest";
import { Hono } from "hono";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/**
 * Adapter state as operators and tests see it (the shared `adapterListSchema`, in the shared version
 * states), and the vLLM-style model list, which names servable versions only.
 */
export function adapterRoutes(
  manager: AdapterManager,
  baseName: string,
  created: number,
): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();

  app.get("/v1/adapters", (c) => {
    const body: AdapterList = {
      active: manager.activeVersions(),
      data: manager.cache.all().map((r) => ({
        run: r.run,
        version: r.version,
        state: r.state,
        pulling: r.pulling,
        loaded: r.adapter !== null,
        sha256: r.sha256,
        manifestSha256: r.manifestSha256,
        bytes: r.bytes,
        reason: r.reason,
        trigger: r.trigger,
        announcedAt: r.announcedAt,
        activatedAt: r.activatedAt,
        pinned: r.pins > 0,
      })),
    };
    return c.json(body);
  });

  app.get("/v1/models", (c) => {
    const base = {
      id: baseName,
      object: "model",
      created,
      owned_by: "loracast",
      root: baseName,
      parent: null,
    };
    // Servable versions only: a revoked one is never listed, even where the operator serves it.
    const adapters = manager.cache
      .all()
      .filter((r) => r.adapter !== null && r.state !== "revoked")
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
    // `<run>` names what a request for it runs on: the active version, or the rollback's target
    // while it is pulled in to replace an active version that a rollback revoked.
    const aliases = Object.keys(manager.activeVersions()).flatMap((run) => {
      const version = manager.servingVersion(run);
      if (version === null) return [];
      return [
        {
          id: run,
          object: "model",
          created,
          owned_by: "loracast",
          root: `${run}@${version}`,
          parent: baseName,
          state: "active",
          sha256: manager.cache.get(run, version)?.sha256 ?? null,
        },
      ];
    });
    return c.json({ object: "list", data: [base, ...aliases, ...adapters] });
  });

  return app;
}
