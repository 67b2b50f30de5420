/**
 * Served names given by `load_lora_adapter` (vLLM's `lora_name`) and what each one serves now. An
 * alias holds a pin on its store version (or the verified weights of a local directory) until it is
 * unloaded or replaced; requests take their own pin when they resolve it, so replacing an alias never
 * changes the version under a request that is already running.
 */
import { err, ok, type Result } from "@loracast/shared/result";
import type { LoraFeeds } from "@loracast/shared/runtime";
import type { VersionRecord } from "../lifecycle/index.ts";

/** A PEFT directory from the operator's allowlist, verified like a store adapter and held in memory. */
export interface LocalAdapter {
  /** Real path of the directory (symlinks resolved). */
  path: string;
  /** sha256 of its adapter_model.safetensors, lowercase hex. */
  sha256: string;
  /** Engine feeds built from the verified weights; null on a generator without an engine. */
  feeds: LoraFeeds | null;
}

/** What an alias serves: a store version (pinned by the alias) or a local directory. */
export type AliasTarget = { kind: "store"; record: VersionRecord } | { kind: "local"; adapter: LocalAdapter };

/** One loaded alias. */
export interface AliasEntry {
  name: string;
  target: AliasTarget;
  /** When it was loaded (or last replaced), ms since the epoch. */
  loadedAt: number;
}

/** `<run>@<version>` of a store target, or the real path of a local one: vLLM's ModelCard `root`. */
export function aliasSource(t: AliasTarget): string {
  return t.kind === "store" ? `${t.record.run}@${t.record.version}` : t.adapter.path;
}

/** True when both name the same adapter (same store version, or same local path and weights). */
export function sameTarget(a: AliasTarget, b: AliasTarget): boolean {
  if (a.kind === "store" && b.kind === "store") return a.record === b.record;
  if (a.kind === "local" && b.kind === "local")
    return a.adapter.path === b.adapter.path && a.adapter.sha256 === b.adapter.sha256;
  return false;
}

interface Held extends AliasEntry {
  release(): void;
}

/** Why `set` refused. */
export type SetRefusal = { kind: "full"; max: number };

/** The loaded aliases by name, each holding the pin of its store version until replaced or removed. */
export class AliasRegistry {
  private readonly entries = new Map<string, Held>();

  /**
   * @param pin takes a hold on a store version and returns its release (`AdapterManager.pin`).
   * @param max most aliases held at once (each pins a version in memory).
   */
  constructor(
    private readonly pin: (record: VersionRecord) => () => void,
    readonly max: number,
  ) {}

  /** The alias `name` as it is now; undefined when none is loaded under that name. */
  get(name: string): AliasEntry | undefined {
    return this.entries.get(name);
  }

  /** Every loaded alias, in the order its name was first loaded. */
  list(): AliasEntry[] {
    return [...this.entries.values()];
  }

  /**
   * Points `name` at `target`, replacing what it named in one synchronous step: the new version is
   * pinned before the map changes, the old pin released after, so there is no moment where the
   * name is unbound or its weights unheld. Refused when `name` is new and `max` aliases exist.
   */
  set(name: string, target: AliasTarget, now: number): Result<{ replaced: boolean }, SetRefusal> {
    const previous = this.entries.get(name);
    if (previous === undefined && this.entries.size >= this.max) return err({ kind: "full", max: this.max });
    const release = target.kind === "store" ? this.pin(target.record) : () => {};
    this.entries.set(name, { name, target, loadedAt: now, release });
    previous?.release();
    return ok({ replaced: previous !== undefined });
  }

  /** Removes `name` and releases its pin; false when no such alias is loaded. */
  remove(name: string): boolean {
    const held = this.entries.get(name);
    if (held === undefined) return false;
    this.entries.delete(name);
    held.release();
    return true;
  }
}
