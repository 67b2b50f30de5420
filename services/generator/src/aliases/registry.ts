/**
 * Served names given by `load_lora_adapter` (vLLM's `lora_name`) and what each one serves now. An
 * alias holds a pin on its store version (or the verified weights of a local directory) until it is
 * unloaded or replaced; requests take their own pin when they resolve it, so replacing an alias never
 * changes the version under a request that is already running. What aliases hold counts against the
 * adapter cache's byte bound (CACHE_MAX_MB) as well as their number: pinned weights are never
 * evicted, so a load that would take them past the bound is refused instead.
 */
import { formatVersionRef } from "@loracast/shared/manifest";
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
  /** Size of its adapter_model.safetensors: what it counts against CACHE_MAX_MB, as a store version does. */
  bytes: number;
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
  return t.kind === "store" ? formatVersionRef(t.record.run, t.record.version) : t.adapter.path;
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

/**
 * Why `set` refused: `full`, too many names (`max`, GENERATOR_MAX_LORA_ALIASES); `bytes`, weights
 * that would take what no eviction frees past the byte bound (`needed`, `held` and `maxBytes` in
 * bytes). `message` is the sentence the admin API answers with.
 */
export type SetRefusal =
  | { code: "full"; message: string; max: number }
  | { code: "bytes"; message: string; needed: number; held: number; maxBytes: number };

/** The memory aliases hold their weights in: the adapter cache (`AdapterManager.pin`, `VersionCache`). */
export interface AliasMemory {
  /** Takes a hold on a store version, returning its release. */
  pin(record: VersionRecord): () => void;
  /** Counts a local adapter's bytes against the bound until the returned release is called. */
  hold(bytes: number): () => void;
  /** Bytes no eviction frees: active versions and `pinned`, each once (`VersionCache.versionBytesHeld`). */
  versionBytesHeld(pinned: Iterable<VersionRecord>): number;
  /** The byte bound, CACHE_MAX_MB in bytes. */
  readonly maxBytes: number;
}

/** The loaded aliases by name, each holding the pin of its store version until replaced or removed. */
export class AliasRegistry {
  private readonly entries = new Map<string, Held>();
  /** Loads refused so far, by why (/metrics). */
  readonly refusals = new Map<SetRefusal["code"], number>();

  /**
   * @param memory where aliases' weights are held and counted.
   * @param max most aliases held at once (GENERATOR_MAX_LORA_ALIASES).
   */
  constructor(
    private readonly memory: AliasMemory,
    readonly max: number,
  ) {}

  /**
   * Bytes that no eviction frees when the aliases are `targets`: the active versions, the aliases'
   * store versions (each once) and their local adapters.
   */
  private heldWith(targets: AliasTarget[]): number {
    const records: VersionRecord[] = [];
    let local = 0;
    for (const t of targets) {
      if (t.kind === "store") records.push(t.record);
      else local += t.adapter.bytes;
    }
    return this.memory.versionBytesHeld(records) + local;
  }

  /** Bytes that no eviction frees now (active versions and what aliases hold). */
  heldBytes(): number {
    return this.heldWith([...this.entries.values()].map((e) => e.target));
  }

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
   * name is unbound or its weights unheld. Refused when `name` is new and `max` aliases exist, and
   * when the change adds bytes and what no eviction frees would then exceed the byte bound (the
   * name keeps serving what it served).
   */
  set(name: string, target: AliasTarget, now: number): Result<{ replaced: boolean }, SetRefusal> {
    const previous = this.entries.get(name);
    if (previous === undefined && this.entries.size >= this.max)
      return this.refuse({
        code: "full",
        message: `${this.max} LoRA adapters are loaded, the most this generator holds (GENERATOR_MAX_LORA_ALIASES); unload one first`,
        max: this.max,
      });
    const others = [...this.entries.values()].filter((e) => e.name !== name).map((e) => e.target);
    const held = this.heldWith([...others, ...(previous === undefined ? [] : [previous.target])]);
    const after = this.heldWith([...others, target]);
    // A change that adds nothing is let through even past the bound (a publish may have taken the
    // active versions there): refusing it would free nothing.
    if (after > this.memory.maxBytes && after > held) {
      const [needed, maxBytes] = [after - held, this.memory.maxBytes];
      return this.refuse({
        code: "bytes",
        message:
          `The lora adapter '${name}' needs ${needed} more bytes of adapter memory, and the active versions and loaded ` +
          `LoRA adapters hold ${held} of the ${maxBytes} bytes CACHE_MAX_MB allows; ` +
          "unload an adapter first (POST /v1/unload_lora_adapter) or raise CACHE_MAX_MB",
        needed,
        held,
        maxBytes,
      });
    }
    const release =
      target.kind === "store" ? this.memory.pin(target.record) : this.memory.hold(target.adapter.bytes);
    this.entries.set(name, { name, target, loadedAt: now, release });
    previous?.release();
    return ok({ replaced: previous !== undefined });
  }

  private refuse(refusal: SetRefusal): Result<never, SetRefusal> {
    this.refusals.set(refusal.code, (this.refusals.get(refusal.code) ?? 0) + 1);
    return err(refusal);
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
