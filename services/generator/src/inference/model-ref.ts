import { formatVersionRef } from "@loracast/shared/manifest";
import { err, ok, type Result } from "@loracast/shared/result";
import type { ApiError } from "../errors.ts";
import type { AdapterManager, EnsureError, VersionRecord } from "../lifecycle/index.ts";

/**
 * The 404 for a model name this server does not serve, in OpenAI's words (clients and users match
 * on them), for completions, chat and models.retrieve alike: code `model_not_found`, param `model`.
 */
export function modelNotFound(model: string): ApiError {
  return {
    code: "model_not_found",
    message: `The model \`${model}\` does not exist or you do not have access to it.`,
    param: "model",
  };
}

/**
 * Why `<run>` cannot be served when it has no active version here: `adapter_held` (503) while the
 * run is held (the store may hide a revocation: the store's fault, so a server error a client may
 * retry, as vLLM and OpenAI answer 503 for what the server cannot serve now); else `model_not_found`
 * (404) with `message`. The error names `param`.
 */
export function noActiveVersion(
  manager: AdapterManager,
  run: string,
  message: string,
  param: string,
): ApiError {
  const held = manager.held(run);
  if (held !== null) return { code: "adapter_held", message: `${run}: ${held}`, param };
  return { code: "model_not_found", message, param };
}

/**
 * Why a named version cannot be served, as the API says it: `adapter_failed` (422) for a version that
 * failed verification, `adapter_revoked` (410) for one a rollback revoked (the message names the
 * rollback), `adapter_held` (503) while its run is held, `model_not_found` (404) for one the store
 * does not have (yet).
 */
export function ensureErrorToApi(e: EnsureError, name: string, param: string): ApiError {
  if (e.kind === "revoked") return { code: "adapter_revoked", message: e.message, param };
  if (e.kind === "held") return { code: "adapter_held", message: `${name}: ${e.message}`, param };
  return {
    code: e.kind === "failed" ? "adapter_failed" : "model_not_found",
    message: `${name}: ${e.message}`,
    param,
  };
}

/** Pulls and verifies an exact version if it is not held yet (see `AdapterManager.ensure`). */
export async function ensureVersion(
  manager: AdapterManager,
  ref: { run: string; version: number },
  param: string,
): Promise<Result<VersionRecord, ApiError>> {
  const r = await manager.ensure(ref.run, ref.version);
  return r.ok ? ok(r.value) : err(ensureErrorToApi(r.error, formatVersionRef(ref.run, ref.version), param));
}
