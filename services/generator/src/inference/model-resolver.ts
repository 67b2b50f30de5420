/**
 * What a request's `model` names, resolved to adapter weights and pinned for the request's life:
 * the base, an alias loaded through `load_lora_adapter`, `<run>` or `<run>@<version>`.
 */
import { formatVersionRef, parseVersionRef } from "@loracast/shared/manifest";
import { err, ok, type Result } from "@loracast/shared/result";
import type { LoraFeeds } from "@loracast/shared/runtime";
import type { AliasEntry, AliasRegistry } from "../aliases/index.ts";
import type { ApiError } from "../errors.ts";
import type { AdapterManager, VersionRecord } from "../lifecycle/index.ts";
import { ensureErrorToApi, ensureVersion, modelNotFound, noActiveVersion } from "./model-ref.ts";

/** The adapter a request runs on, pinned until `release()`. */
export interface ResolvedModel {
  /** What responses name: the base name, `<run>@<version>`, or the alias the request named (as vLLM). */
  name: string;
  /** The `load_lora_adapter` name the request used; null when it named the base, a run or a version. */
  alias: string | null;
  /** The run behind the adapter; null for the base and for a local directory. */
  run: string | null;
  version: number | null;
  sha256: string | null;
  key: string;
  feeds: LoraFeeds;
  release(): void;
}

/** What the resolver looks names up in. */
export interface ModelResolverDeps {
  manager: AdapterManager;
  /** Names loaded through `load_lora_adapter`; looked up before runs. */
  aliases: AliasRegistry;
  /** The base model's name (`GENERATOR_MODEL_NAME`). */
  baseName: string;
  /** The feeds that run the base without an adapter. */
  baseFeeds: LoraFeeds;
}

/**
 * Resolves `model` names; errors are `model_not_found` (404), `adapter_failed` (422),
 * `adapter_revoked` (410) or `adapter_held` (503).
 */
export class ModelResolver {
  constructor(private readonly d: ModelResolverDeps) {}

  /**
   * `<base>`, an alias (`load_lora_adapter`'s `lora_name`: the version or directory it serves now;
   * 410 `adapter_revoked` once a rollback revoked that version), `<run>` (its active version; the
   * rollback's target once a rollback revoked that) or `<run>@<version>` (pulled on demand; refused
   * with `adapter_revoked` if a rollback revoked it).
   */
  async resolve(model: string): Promise<Result<ResolvedModel, ApiError>> {
    if (model === this.d.baseName) {
      return ok({
        name: model,
        alias: null,
        run: null,
        version: null,
        sha256: null,
        key: "base",
        feeds: this.d.baseFeeds,
        release: () => {},
      });
    }
    const alias = this.d.aliases.get(model);
    if (alias !== undefined) return this.resolveAlias(alias);
    const ref = parseVersionRef(model);
    const manager = this.d.manager;
    let record: VersionRecord;
    if (ref === null) {
      const current = await manager.current(model);
      if (current === null) {
        // A run the store has versions of, none active here yet, says so; any other name gets OpenAI's 404.
        if (!manager.hasVersions(model)) return err(modelNotFound(model));
        return err(
          noActiveVersion(
            manager,
            model,
            `The model \`${model}\` is a run with no active adapter version on this generator yet.`,
            "model",
          ),
        );
      }
      if (!current.ok) return err(ensureErrorToApi(current.error, model, "model"));
      record = current.value;
    } else {
      const ensured = await ensureVersion(manager, ref, "model");
      if (!ensured.ok) return ensured;
      record = ensured.value;
    }
    return this.pinned(record, model, null, manager.pin(record));
  }

  /**
   * The alias's target as it is at this instant: its version is pinned for the request before any
   * await, so a `load_lora_adapter` that replaces the alias meanwhile cannot release it under us.
   */
  private async resolveAlias(alias: AliasEntry): Promise<Result<ResolvedModel, ApiError>> {
    const t = alias.target;
    if (t.kind === "local") {
      if (t.adapter.feeds === null)
        return err({ code: "model_not_found", message: `${alias.name} is not loaded`, param: "model" });
      return ok({
        name: alias.name,
        alias: alias.name,
        run: null,
        version: null,
        sha256: t.adapter.sha256,
        key: `local:${t.adapter.sha256}`,
        feeds: t.adapter.feeds,
        release: () => {},
      });
    }
    const release = this.d.manager.pin(t.record);
    // Refuses a version that a rollback revoked since the alias was loaded (unless the operator serves them).
    const ensured = await ensureVersion(this.d.manager, t.record, "model");
    if (!ensured.ok) {
      release();
      return ensured;
    }
    return this.pinned(t.record, alias.name, alias.name, release);
  }

  private pinned(
    record: VersionRecord,
    model: string,
    alias: string | null,
    release: () => void,
  ): Result<ResolvedModel, ApiError> {
    const feeds = record.adapter?.feeds;
    if (feeds == null) {
      release();
      return err({ code: "model_not_found", message: `${model} is not loaded`, param: "model" });
    }
    const key = formatVersionRef(record.run, record.version);
    return ok({
      name: alias ?? key,
      alias,
      run: record.run,
      version: record.version,
      sha256: record.sha256,
      key,
      feeds,
      release,
    });
  }
}
