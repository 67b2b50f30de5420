import {
  type AdapterList,
  type ModelCard,
  type ModelList,
  REFUSED_VERSION_ROWS,
} from "@loracast/shared/generator-api";
import { formatVersionRef } from "@loracast/shared/manifest";
import type { RefusalLog } from "@loracast/shared/store";
import { Hono } from "hono";
import { type AliasRegistry, aliasSource } from "../aliases/index.ts";
import { errorResponse } from "../errors.ts";
import { modelNotFound } from "../inference/model-ref.ts";
import type { AdapterManager, VersionRecord } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/**
 * Adapter state as operators and tests see it (`adapterListSchema`, in the shared version states,
 * with the store records refused lately), and the vLLM-style model list and retrieve (OpenAI's
 * `models.retrieve`, `modelListSchema`), which name servable models only: the base, runs, aliases
 * and loaded versions.
 */
export function adapterRoutes(
  manager: AdapterManager,
  aliases: AliasRegistry,
  baseName: string,
  /** When this generator started, epoch milliseconds (`startedAt`; the models' `created`, in seconds). */
  startedAt: number,
  /** The base's context length (vLLM's `max_model_len`); null without an engine. */
  maxModelLen: number | null,
  /** The store records this generator refused (the adapter store's). */
  refusals: RefusalLog,
): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  const created = Math.floor(startedAt / 1000);

  app.get("/v1/adapters", (c) => {
    const { listed, omitted } = boundRefusedVersions(manager.cache.all());
    const body: AdapterList = {
      startedAt,
      active: manager.activeVersions(),
      data: listed.map((r) => ({
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
      refusedVersionsOmitted: omitted,
      refused: refusals.list(),
    };
    return c.json(body);
  });

  /** vLLM's ModelCards: the base, each run (its serving version), aliases, loaded versions. */
  const models = (): ModelCard[] => {
    const base: ModelCard = {
      id: baseName,
      object: "model",
      created,
      owned_by: "loracast",
      root: baseName,
      parent: null,
      max_model_len: maxModelLen,
    };
    // Servable versions only: a revoked one is never listed, even where the operator serves it.
    const adapters = manager.cache
      .all()
      .filter((r) => r.adapter !== null && r.state !== "revoked")
      .map(
        (r): ModelCard => ({
          id: formatVersionRef(r.run, r.version),
          object: "model",
          created: Math.floor(r.announcedAt / 1000),
          owned_by: "loracast",
          root: r.manifestKey,
          parent: baseName,
          state: r.state,
          sha256: r.sha256,
        }),
      );
    // `<run>` names what a request for it runs on: the active version, or the rollback's target
    // while it is pulled in to replace an active version that a rollback revoked.
    // A run published after an alias took its name is reached through the alias (resolve looks
    // aliases up first), so only the alias is listed under that id.
    const runs = Object.keys(manager.activeVersions()).flatMap((run): ModelCard[] => {
      const version = manager.servingVersion(run);
      if (version === null || aliases.get(run) !== undefined) return [];
      return [
        {
          id: run,
          object: "model",
          created,
          owned_by: "loracast",
          root: formatVersionRef(run, version),
          parent: baseName,
          state: "active",
          sha256: manager.cache.get(run, version)?.sha256 ?? null,
        },
      ];
    });
    // Aliases as vLLM lists LoRA modules (`root` = what was loaded, `parent` = the base). One whose
    // version a rollback revoked is not listed (requests through it get 410); a `<run>@<version>`
    // loaded under its own name is listed once, as that version.
    const aliasCards = aliases.list().flatMap((a): ModelCard[] => {
      const t = a.target;
      if (t.kind === "store" && (t.record.state === "revoked" || a.name === aliasSource(t))) return [];
      return [
        {
          id: a.name,
          object: "model",
          created: Math.floor(a.loadedAt / 1000),
          owned_by: "loracast",
          root: aliasSource(t),
          parent: baseName,
          state: t.kind === "store" ? t.record.state : "active",
          sha256: t.kind === "store" ? t.record.sha256 : t.adapter.sha256,
        },
      ];
    });
    return [base, ...runs, ...aliasCards, ...adapters];
  };

  app.get("/v1/models", (c) => {
    const body: ModelList = { object: "list", data: models() };
    return c.json(body);
  });

  // OpenAI's models.retrieve; ids may hold `/` (aliases such as `org/policy`), sent URL-encoded.
  app.get("/v1/models/:id{.+}", (c) => {
    const id = c.req.param("id");
    const card = models().find((m) => m.id === id);
    if (card === undefined) {
      const e = modelNotFound(id);
      return errorResponse(c, e.code, e.message, e.param);
    }
    return c.json(card);
  });

  return app;
}

/**
 * The records `GET /v1/adapters` lists: all but the versions failed for a refused manifest past the
 * newest `REFUSED_VERSION_ROWS` of each run (a bucket writer can forge any number of them), with
 * how many were left out per run.
 */
function boundRefusedVersions(records: VersionRecord[]): {
  listed: VersionRecord[];
  omitted: Record<string, number>;
} {
  const refused = (r: VersionRecord) => r.state === "failed" && r.manifestRefused;
  const shown = new Map<string, number>();
  const omitted: Record<string, number> = {};
  const keep = new Set<VersionRecord>();
  for (const r of records.filter(refused).sort((a, b) => b.version - a.version)) {
    const n = shown.get(r.run) ?? 0;
    if (n < REFUSED_VERSION_ROWS) keep.add(r);
    else omitted[r.run] = (omitted[r.run] ?? 0) + 1;
    shown.set(r.run, n + 1);
  }
  return { listed: records.filter((r) => !refused(r) || keep.has(r)), omitted };
}
