import type { VerifiedAdapter } from "@loracast/shared/model-spec";
import type { LoraFeeds } from "@loracast/shared/runtime";

/** Design §6: announced → downloading → verifying → staged → active → retired/evicted, or failed. */
export type AdapterState =
  | "announced"
  | "downloading"
  | "verifying"
  | "staged"
  | "active"
  | "retired"
  | "evicted"
  | "failed";

/** How the generator learned of a version. */
export type Trigger = "webhook" | "reconcile" | "on-demand" | "rollback";

/** A verified adapter held in memory, ready to be fed to the engine. */
export interface LoadedAdapter {
  /**
   * The raw adapter_model.safetensors bytes; `verified` holds zero-copy views into them. Once the
   * version is evicted the buffer may receive a later download, so nothing may keep views into it
   * beyond this record (the feeds are copies).
   */
  weights: Uint8Array;
  verified: VerifiedAdapter;
  config: Record<string, unknown>;
  /** Session feeds, built at staging so that activation is only a reference swap; null without an engine. */
  feeds: LoraFeeds | null;
}

export interface VersionRecord {
  run: string;
  version: number;
  state: AdapterState;
  manifestKey: string;
  /** sha256 of adapter_model.safetensors, once the manifest is read. */
  sha256: string | null;
  manifestSha256: string | null;
  bytes: number | null;
  reason: string | null;
  trigger: Trigger;
  announcedAt: number;
  activatedAt: number | null;
  /** Last time this version was activated or served; drives LRU eviction. */
  lastUsedAt: number;
  pins: number;
  adapter: LoadedAdapter | null;
  /** Where the last pull spent its time. */
  phases: { manifestMs: number; downloadMs: number; verifyMs: number } | null;
}
