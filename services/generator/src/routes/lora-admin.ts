/**
 * vLLM's adapter admin API: POST /v1/load_lora_adapter `{lora_name, lora_path}` serves an adapter
 * under the name `lora_name` (an alias, usable as `model` and listed in /v1/models); loading a loaded
 * name with another path replaces it in place, atomically (requests already running keep the version
 * they pinned). POST /v1/unload_lora_adapter `{lora_name}` removes the alias and releases its pin.
 * Answers are vLLM's plain-text success strings; errors use the generator's envelope. Both need the
 * admin token when one is configured, and are disabled on non-loopback binds without one.
 */
import { loadLoraRequestSchema, unloadLoraRequestSchema } from "@loracast/shared/generator-api";
import { formatVersionRef, parseVersionRef, RUN_NAME } from "@loracast/shared/manifest";
import type { Clock, Logger } from "@loracast/shared/platform";
import { err, ok, type Result } from "@loracast/shared/result";
import { type Context, Hono } from "hono";
import type { z } from "zod";

import {
  type AliasRegistry,
  type AliasTarget,
  aliasSource,
  decideAdmin,
  type LocalAdapterDeps,
  type LoraSource,
  loadLocalAdapter,
  parseLoraPath,
  type SetRefusal,
  type StoreLocation,
  sameTarget,
} from "../aliases/index.ts";
import { type ApiError, errorResponse } from "../errors.ts";
import { ensureErrorToApi, ensureVersion, noActiveVersion } from "../inference/model-ref.ts";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/** What the admin routes read and change: the lifecycle, the aliases, and the operator's settings. */
export interface LoraAdminDeps {
  manager: AdapterManager;
  aliases: AliasRegistry;
  baseName: string;
  store: StoreLocation;
  local: LocalAdapterDeps;
  /** GENERATOR_ADMIN_TOKEN; undefined when unset. */
  adminToken: string | undefined;
  /** GENERATOR_HOST, to allow a token-less admin API on loopback binds only. */
  host: string;
  clock: Clock;
  log: Logger;
}

const fail = (c: Context, e: ApiError): Response => errorResponse(c, e.code, e.message, e.param ?? null);

async function body<S extends z.ZodType>(c: Context, schema: S): Promise<Result<z.infer<S>, ApiError>> {
  const raw = await c.req.json().catch(() => undefined);
  if (raw === undefined) return err({ code: "bad_request", message: "the body is not valid JSON" });
  const parsed = schema.safeParse(raw);
  if (parsed.success) return ok(parsed.data);
  const issue = parsed.error.issues[0];
  const param = issue?.path.join(".") ?? "";
  if (param === "") return err({ code: "bad_request", message: "the body must be a JSON object" });
  return err({ code: "bad_request", message: `${param}: ${issue?.message ?? "invalid"}`, param });
}

/** The two admin routes, behind the admin policy (`decideAdmin`). */
export function loraAdminRoutes(d: LoraAdminDeps): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();

  app.use("/v1/load_lora_adapter", admin(d));
  app.use("/v1/unload_lora_adapter", admin(d));

  app.post("/v1/load_lora_adapter", async (c) => {
    const b = await body(c, loadLoraRequestSchema);
    if (!b.ok) return fail(c, b.error);
    const name = b.value.lora_name;
    // Without lora_path the name is the path too (`<run>@<version>`, the form of earlier releases).
    const pathParam = b.value.lora_path == null ? "lora_name" : "lora_path";
    const path = b.value.lora_path ?? name;
    if (name === d.baseName)
      return fail(c, badName(`The lora adapter name '${name}' conflicts with a served base model.`));
    const source = parseLoraPath(path, d.store);
    if (!source.ok) return fail(c, { code: "bad_request", message: source.error.message, param: pathParam });
    const target = await resolveSource(d, source.value, pathParam);
    if (!target.ok) return fail(c, target.error);
    const refusal = nameRefusal(d, name, target.value);
    if (refusal !== null) return fail(c, refusal);
    const existing = d.aliases.get(name);
    if (existing !== undefined && sameTarget(existing.target, target.value))
      return c.text(`The lora adapter '${name}' has already been loaded.`);
    if (existing !== undefined && b.value.load_inplace === false) {
      return fail(
        c,
        badName(
          `The lora adapter '${name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`,
        ),
      );
    }
    const set = d.aliases.set(name, target.value, d.clock.now());
    if (!set.ok) {
      const refused = setRefusal(set.error, pathParam);
      // The log line keeps its fields (`kind`, then the numbers); the message is the answer's.
      const { code, message: _answered, ...numbers } = set.error;
      d.log.warn("lora alias refused", { name, source: aliasSource(target.value), kind: code, ...numbers });
      // The weights pulled for it are no one's now: evictable, and dropped if over the bound.
      d.manager.cache.trim();
      return fail(c, refused);
    }
    d.log.info(set.value.replaced ? "lora alias replaced" : "lora alias loaded", {
      name,
      source: aliasSource(target.value),
      previous: existing === undefined ? null : aliasSource(existing.target),
    });
    return c.text(`Success: LoRA adapter '${name}' added successfully.`);
  });

  app.post("/v1/unload_lora_adapter", async (c) => {
    const b = await body(c, unloadLoraRequestSchema);
    if (!b.ok) return fail(c, b.error);
    const name = b.value.lora_name;
    if (!d.aliases.remove(name))
      return errorResponse(c, "model_not_found", `The lora adapter '${name}' cannot be found.`, "lora_name");
    d.log.info("lora alias unloaded", { name });
    return c.text(`Success: LoRA adapter '${name}' removed successfully.`);
  });
  return app;
}

function admin(d: LoraAdminDeps) {
  return async (c: Context<GeneratorEnv>, next: () => Promise<void>): Promise<Response | undefined> => {
    const decision = decideAdmin(d.adminToken, d.host, c.req.header("authorization"));
    if (decision.allowed) {
      await next();
      return undefined;
    }
    return errorResponse(c, decision.status === 401 ? "unauthorized" : "forbidden", decision.message);
  };
}

const badName = (message: string): ApiError => ({ code: "bad_request", message, param: "lora_name" });

/** A refused `AliasRegistry.set` as the API answers it. */
function setRefusal(refusal: SetRefusal, param: string): ApiError {
  if (refusal.code === "full") return badName(refusal.message);
  return { code: "adapter_cache_full", message: refusal.message, param };
}

/** Pulls and verifies what `lora_path` names; errors name `param`. */
async function resolveSource(
  d: LoraAdminDeps,
  source: LoraSource,
  param: string,
): Promise<Result<AliasTarget, ApiError>> {
  if (source.kind === "local") {
    const local = await loadLocalAdapter(source.path, d.local);
    return local.ok ? ok({ kind: "local", adapter: local.value }) : local;
  }
  if (source.kind === "version") {
    const r = await ensureVersion(d.manager, source, param);
    return r.ok ? ok({ kind: "store", record: r.value }) : r;
  }
  const current = await d.manager.current(source.run);
  if (current === null)
    return err(
      noActiveVersion(
        d.manager,
        source.run,
        `No adapter found: run ${source.run} has no active version on this generator`,
        param,
      ),
    );
  if (!current.ok) return err(ensureErrorToApi(current.error, source.run, param));
  return ok({ kind: "store", record: current.value });
}

/**
 * Names that would make `model` ambiguous are refused: a run this generator knows (`model: "<run>"`
 * already means its active version), and any `<run>@<version>` other than the version it serves.
 */
function nameRefusal(d: LoraAdminDeps, name: string, target: AliasTarget): ApiError | null {
  if (name.includes("@")) {
    const ref = parseVersionRef(name);
    if (
      ref === null ||
      target.kind !== "store" ||
      aliasSource(target) !== formatVersionRef(ref.run, ref.version)
    )
      return badName(
        `'${name}': a name with @ must be the <run>@<version> it serves; choose a name without @ for an alias`,
      );
    return null;
  }
  const isRun =
    RUN_NAME.test(name) &&
    (d.manager.activeRecord(name) !== undefined || d.manager.cache.all().some((r) => r.run === name));
  if (isRun)
    return badName(
      `'${name}' is a run on this generator (model "${name}" serves its active version); choose another lora_name`,
    );
  return null;
}
