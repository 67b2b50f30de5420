import type { AdapterRow } from "@loracast/shared/generator-api";
import type { RollbackRecord, VersionState } from "@loracast/shared/manifest";
import type { ModelSpec, VerifiedAdapter } from "@loracast/shared/model-spec";
import type { Clock, Logger } from "@loracast/shared/platform";
import type { LoraFeeds } from "@loracast/shared/runtime";
import type { AdapterStore } from "@loracast/shared/store";
import type { RevokedCounts } from "./revoked-requests.ts";
import type { CacheBounds } from "./version-cache.ts";

export type { VersionState };

/** How the generator learned of a version. */
export type Trigger = AdapterRow["trigger"];

/** The part of a pull under way; the version's state stays what it was until the pull ends. */
export type PullPhase = NonNullable<AdapterRow["pulling"]>;

/** A verified adapter held in memory, ready to be fed to the engine. */
export interface LoadedAdapter {
  /**
   * The raw adapter_model.safetensors bytes. Once the version is evicted the buffer may receive a
   * later download, so nothing may keep views into it beyond this record (the feeds are copies).
   */
  weights: Uint8Array;
  /** Session feeds, built at staging so that activation is only a reference swap; null without an engine. */
  feeds: LoraFeeds | null;
}

/** Everything this generator knows of one version of a run, as `GET /v1/adapters` lists it, and its weights. */
export interface VersionRecord {
  run: string;
  version: number;
  /** One of the shared version states (`@loracast/shared/manifest`); eviction does not change it. */
  state: VersionState;
  pulling: PullPhase | null;
  manifestKey: string;
  /** sha256 of adapter_model.safetensors, once the manifest is read. */
  sha256: string | null;
  manifestSha256: string | null;
  bytes: number | null;
  /** Why it failed, which rollback revoked it, or why the last pull broke off. */
  reason: string | null;
  /**
   * True when its manifest was refused (signature, malformed, misplaced, too large): such a
   * refusal costs a small read or two and no download, so reconcile does not count it against its
   * per-pass budget, and a bucket full of forged or copied manifests cannot hold a generator off
   * the newest genuine one.
   */
  manifestRefused: boolean;
  /**
   * The manifest bytes refused last (their sha256) and why, while the version is failed for it. A
   * retry reads the manifest raw first: the same bytes are refused again without being verified,
   * logged or counted, and retried later still (`deferRefused`); only changed bytes are judged anew.
   */
  refusal: { sha256: string; reason: string } | null;
  /** Consecutive `store` failures, and when reconcile or a request may pull it again (epoch ms). */
  retry: { failures: number; at: number } | null;
  trigger: Trigger;
  announcedAt: number;
  /**
   * When the trainer published it: its manifest's `createdAt` (the trainer's wall clock, epoch ms),
   * once the manifest is read; null before.
   */
  publishedAt: number | null;
  activatedAt: number | null;
  /** Last time this version was activated or served; drives LRU eviction. */
  lastUsedAt: number;
  pins: number;
  /** The weights; null until pulled, and again once evicted or failed. */
  adapter: LoadedAdapter | null;
  /** Where the last pull spent its time. */
  phases: { manifestMs: number; downloadMs: number; verifyMs: number } | null;
}

/** Why a version named exactly (`<run>@<version>`) cannot be served; the routes map `kind` to an HTTP code. */
export type EnsureError =
  /** Verification failed on this generator: permanent for that immutable version. */
  | { kind: "failed"; message: string }
  /** A rollback record revoked it, and this generator does not serve revoked versions. */
  | { kind: "revoked"; message: string; rollback: RollbackRecord }
  /** Not in the store (yet), or the store could not be read. */
  | { kind: "unavailable"; message: string }
  /** The run is held (`HeadWatch.held`): its store may hide a revocation, so nothing of it is pulled. */
  | { kind: "held"; message: string };

/** The lifecycle's counters, as `/metrics` reports them (`routes/ops.ts`). */
export interface ManagerStats {
  /** Activations, rollbacks included (`loracast_adapter_activations_total`). */
  activations: number;
  /** Versions failed here (`loracast_adapter_failures_total`): verification, a store fault, or withdrawn. */
  failures: number;
  /** Webhook events that announced other manifest bytes than the store holds (refused; the version is untouched). */
  badEvents: number;
  /** Reconcile passes started (`loracast_reconciles_total`). */
  reconciles: number;
  /** Reconcile passes that could not read the store (`loracast_reconcile_errors_total`). */
  reconcileErrors: number;
  /** Requests (and `load_lora_adapter` calls) that named a revoked version, by run and outcome. */
  revokedRequests: RevokedCounts;
}

/** What the adapter manager (and its pull pipeline) works with. */
export interface ManagerDeps {
  store: AdapterStore;
  spec: ModelSpec;
  clock: Clock;
  log: Logger;
  bounds: CacheBounds;
  maxRank: number;
  /** Runs to follow; null follows every run in the store. */
  runs: readonly string[] | null;
  /**
   * Base fingerprints a manifest may name besides `spec.fingerprint` (the module map's `spec-sha256:`):
   * the artifacts' `sha256:` digest, which trainers stamped before they stamped the module map's.
   */
  alsoAccept?: readonly string[];
  /** Turns a verified adapter into engine feeds at staging; absent when the generator has no engine. */
  prepare?: (adapter: VerifiedAdapter) => LoraFeeds;
  /**
   * Scores a manifest's probe with the staged feeds (next-token log-probabilities along each row),
   * so a version whose numbers differ from the trainer's beyond `probeTolerance` never activates.
   */
  probe?: { score: (feeds: LoraFeeds, tokens: readonly number[]) => Promise<number[]>; tolerance: number };
  /**
   * Serve a revoked version when a request names it exactly (`GENERATOR_SERVE_REVOKED`). It is still
   * never activated and never listed in /v1/models; `<run>` still means the rollback's target.
   */
  serveRevoked?: boolean;
  /**
   * Called at each activation (rollbacks included) with the seconds from the version's publish (its
   * manifest's `createdAt`, the trainer's clock) to now on this generator's clock: the
   * publish → active latency, skewed by the difference between the two clocks.
   */
  onActivated?: (publishToActiveSeconds: number) => void;
}
