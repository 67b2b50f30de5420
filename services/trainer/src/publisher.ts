import {
  type AdapterEvent,
  currentVersion,
  isRevoked,
  type RollbackRecord,
  revocationMessage,
  revokedBy,
  runName,
  type VersionManifest,
  weightsFile,
} from "@loracast/shared/manifest";
import type { ModelSpec } from "@loracast/shared/model-spec";
import type { Clock, Logger } from "@loracast/shared/platform";
import { err, ok, type Result } from "@loracast/shared/result";
import { type AdapterStore, MAX_VERSION, manifestKey, type StoredManifest } from "@loracast/shared/store";
import type { PublishResult, RollbackResult, RunVersion, RunVersions } from "@loracast/shared/trainer-api";
import type { Outbox } from "@loracast/shared/webhooks";
import { TrainerError } from "./errors.ts";
import type { RunLedger } from "./ledger/index.ts";
import { validateAdapter, weightsHash } from "./publish-checks.ts";
import type { SubscriptionRegistry } from "./subscriptions.ts";

export type { PublishResult };

/** What a training run adds to the manifest (shared/manifest): the probe and the step's training record. */
export type PublishExtras = Pick<VersionManifest, "probe" | "training">;

/** Options of `Publisher.publish`. */
export interface PublishOptions {
  /** The manifest's probe and training record (none by default); a promise is awaited only once the version is numbered (the blobs may still be going up). */
  extras?: PublishExtras | Promise<PublishExtras>;
  /** The upload route's time to read the request, in milliseconds (logged as phase `receive`). */
  receiveMs?: number;
  /** The caller's phases before this call, in milliseconds by name (the run loop's encode and hash), logged first. */
  phasesMs?: Readonly<Record<string, number>>;
  /**
   * The weights' sha256 (lowercase hex) where the caller computed it from these very bytes (the
   * run loop does, to adopt versions an earlier attempt published): not computed again. A promise
   * (the run loop's hash on a worker thread, shared/store `sha256Concurrent`) is awaited only once
   * the files are validated, so the two run at once; the time the upload then still waits for it
   * is logged as phase `hashWait`. The caller must not change the weights until the publish returns.
   */
  weightsSha256?: string | Promise<string>;
}

/** What the publisher writes to and tells: the store, the webhook outbox and its subscribers, the ledger. */
export interface PublisherDeps {
  store: AdapterStore;
  outbox: Outbox;
  subscriptions: SubscriptionRegistry;
  clock: Clock;
  log: Logger;
  instance: string;
  /** When set, adapters must fit this base to be published. */
  spec: ModelSpec | null;
  /** The trainer's record of what it signed: every head it signs and rollback it writes go through it. */
  ledger: RunLedger;
  /** Sees each successful publish's phases, in milliseconds by name (the trainer's metrics). */
  onPublished?: (phasesMs: Readonly<Record<string, number>>) => void;
}

/** A run as the store holds it: see `storeState`. */
interface StoreState {
  current: number | null;
  versions: number[];
  rollbacks: RollbackRecord[];
  manifests: Result<StoredManifest, string>[];
}

/**
 * The publish path: validate the PEFT files, upload blobs that are not in the store yet, write the
 * next immutable manifest, and queue a webhook per subscriber. Publishes to one run are serialised
 * in-process, which is what keeps version numbers unique on servers without conditional writes.
 */
export class Publisher {
  private readonly runLocks = new Map<string, Promise<unknown>>();

  constructor(private readonly d: PublisherDeps) {}

  /** Records rewritten from the ledger so far, by kind (`loracast_store_records_repaired_total`). */
  get recordsRepaired(): Readonly<Record<"rollback" | "head", number>> {
    return this.d.ledger.repaired;
  }

  /**
   * Publishes `configBytes` + `weights` as the run's next version: validates them, uploads both
   * blobs (overlapping the repair and numbering reads, which they do not depend on, and the
   * signature envelopes of the manifest and the head), writes the signed manifest with
   * `options.extras` (awaited once numbered, so a caller's probe runs during the upload) once the
   * blobs are up, then the head, and queues the webhooks. Logs `published` with each phase's
   * milliseconds (`phasesMs`). `invalid_adapter` for files that fail validation, `conflict` past
   * the last version.
   */
  publish(
    run: string,
    configBytes: Uint8Array,
    weights: Uint8Array,
    options: PublishOptions = {},
  ): Promise<Result<PublishResult, TrainerError>> {
    // Where a publish spends its time, logged with it (`phasesMs`), as generators log their pulls;
    // `receiveMs` is the upload route's time to read the request.
    const { receiveMs } = options;
    const phasesMs: Record<string, number> = {
      ...options.phasesMs,
      ...(receiveMs === undefined ? {} : { receive: Math.round(receiveMs) }),
    };
    let lapStart = performance.now();
    const lap = (phase: string): void => {
      const now = performance.now();
      phasesMs[phase] = Math.round(now - lapStart);
      lapStart = now;
    };
    // The files are checked off this thread where they live in shared memory (the run loop's), so
    // the caller's thread is free meanwhile; nothing is uploaded before they pass.
    const validated = validateAdapter(this.d.spec, configBytes, weights);
    // Blobs are content-addressed and immutable: uploading them needs no lock and no version number.
    const before = this.d.store.objects.traffic.uploaded;
    const hashed = validated.then((v) =>
      v.ok ? weightsHash(weights, options.weightsSha256, phasesMs) : null,
    );
    const blobs = hashed.then((sha256) =>
      sha256 === null ? [] : this.d.store.putAdapterBlobs(configBytes, weights, sha256),
    );
    // Awaited below; until then a failure must not surface as an unhandled rejection.
    blobs.catch(() => undefined);
    return this.withRunLock(run, async () => {
      lap("lock");
      // Numbered after what the trainer signed or the store verifies, never after an unsigned object.
      const numbering = () =>
        Promise.all([
          this.d.ledger.inspect(run),
          this.d.ledger.newestVersion(run),
          this.d.store.newestVerifiedVersion(run),
        ]);
      // For a run this trainer has published to, the numbering reads overlap the validation (they
      // need nothing from the files, and the upload then has the store to itself); a run it has no
      // ledger for yet gets one only for files that pass.
      const early = (await this.d.ledger.newestVersion(run)) === null ? null : numbering();
      early?.catch(() => undefined);
      // Whatever the validation gives, the numbering (which may repair the store) ends under the lock.
      const checked = await validated.catch(async (e: unknown) => {
        await early?.catch(() => undefined);
        throw e;
      });
      lap("validate");
      if (!checked.ok) {
        await early?.catch(() => undefined);
        return checked;
      }
      const [{ basis }, signed, verified] = await (early ?? numbering());
      lap("number");
      const latest = Math.max(signed ?? 0, verified ?? 0);
      if (latest >= MAX_VERSION)
        return err(
          new TrainerError(
            "conflict",
            `run ${run} has reached version ${latest}, the last one its 12-digit manifest keys hold; publish to a new run`,
          ),
        );
      const extras = (await options.extras) ?? { probe: null, training: null };
      lap("extras");
      // The manifest and the head are sealed while the blobs still go up, and their signature
      // envelopes sent beside them; the manifest's bytes are written only once every blob is in
      // the store (`ready`), and the head's only once the manifest is.
      const next = latest + 1;
      const head = await this.d.ledger.prepareHead(run, next, basis);
      const ready = blobs.then(() => lap("blobs"));
      const stored = await this.d.store.publishVersion(
        run,
        {
          createdAt: new Date(this.d.clock.now()).toISOString(),
          base: { fingerprint: this.d.spec?.fingerprint ?? null },
          ...extras,
          publisher: { service: "trainer", instance: this.d.instance },
          adapter: { files: this.d.store.adapterFiles(configBytes, weights, (await hashed) ?? undefined) },
        },
        latest === 0 ? null : latest,
        { ready },
      );
      lap("manifest");
      const { version } = stored.manifest;
      // Another publisher took `next` (a store with conditional writes settled the race): the
      // head is signed again for the version this one got.
      await this.d.ledger.commitHead(
        version === next ? head : await this.d.ledger.prepareHead(run, version, basis),
      );
      lap("head");
      await this.notify("adapter.published", stored);
      lap("notify");
      const result: PublishResult = {
        run,
        version,
        sha256: weightsFile(stored.manifest).sha256,
        manifestKey: stored.key,
        manifestSha256: stored.sha256,
        uploadedBytes: this.d.store.objects.traffic.uploaded - before,
      };
      this.d.log.info("published", { ...result, phasesMs });
      this.d.onPublished?.(phasesMs);
      return ok(result);
    });
  }

  /**
   * Every published version of a run as the store holds it now: the current one `active`, older
   * ones `retired`, those a rollback record revoked `revoked` (the rollback named in `reason`), and
   * those whose manifest is missing or fails verification (unsigned, foreign key, altered) `failed`
   * with the reason. Manifests are read back on every call, so a manifest tampered with after it
   * was published shows here as it shows on every generator; `current` is the newest version that
   * verifies and no rollback revoked, the version generators converge on. Each read first repairs
   * the run's rollback records and head from the ledger; `store` lists those repairs and the run's
   * records the trainer refuses lately.
   */
  versions(run: string): Promise<Omit<RunVersions, "run">> {
    return this.withRunLock(run, async () => {
      const repaired = await this.d.ledger.repair(run);
      const state = await this.storeState(run);
      const refused = this.d.store.refusals.list().filter((r) => r.run === run);
      return { current: state.current, versions: this.rows(run, state), store: { refused, repaired } };
    });
  }

  /** One row per version: its state, and why when failed or revoked. */
  private rows(run: string, state: StoreState): RunVersion[] {
    const { current, versions, rollbacks, manifests } = state;
    const out: RunVersion[] = versions.map((v, i) => {
      const m = manifests[i] as Result<StoredManifest, string>;
      const revoker = revokedBy(v, rollbacks);
      if (!m.ok) {
        return {
          version: v,
          state: "failed",
          sha256: null,
          createdAt: null,
          manifestKey: manifestKey(run, v),
          reason: m.error,
        };
      }
      return {
        version: v,
        state: v === current ? "active" : revoker !== null ? "revoked" : "retired",
        sha256: weightsFile(m.value.manifest).sha256,
        createdAt: m.value.manifest.createdAt,
        manifestKey: m.value.key,
        reason: revoker === null ? null : revocationMessage(v, revoker),
      };
    });
    return out;
  }

  /**
   * Repairs every run this trainer holds a ledger for: rewrites a deleted or altered head or
   * rollback record from the ledger (logged, counted in `loracast_store_records_repaired_total`),
   * signing nothing that is intact. Run at start and every TRAINER_REPAIR_INTERVAL_S, so that a
   * store tampered with while nobody publishes or reads is put back without a request.
   */
  async repairAll(): Promise<void> {
    for (const run of await this.d.ledger.runs()) {
      if (!runName.safeParse(run).success) continue;
      await this.withRunLock(run, () => this.d.ledger.repair(run));
    }
  }

  /**
   * Re-signs the head of every run in the store or the ledger with a fresh expiry, after repairing
   * the run from the ledger: never naming fewer versions or rollback records than the trainer
   * signed (so a refresh cannot sign a state an attacker hid).
   */
  async refreshHeads(): Promise<void> {
    const runs = new Set([...(await this.d.store.listRuns()), ...(await this.d.ledger.runs())]);
    for (const run of runs) {
      if (!runName.safeParse(run).success) continue;
      await this.withRunLock(run, async () => {
        await this.d.ledger.repair(run);
        await this.d.ledger.signHead(run, null);
      });
    }
  }

  /** Versions, rollback records, each version's manifest read back and verified, and the current version. */
  private async storeState(run: string): Promise<StoreState> {
    const [entries, rollbacks, head, signed] = await Promise.all([
      this.d.store.listVersionEntries(run),
      this.d.store.listRollbacks(run),
      this.d.store.readHead(run),
      this.d.ledger.newestVersion(run),
    ]);
    // Versions the trainer signed but the store no longer lists are reported, as missing.
    const listed = entries.map((e) => e.version);
    const versions = [...listed];
    const named = Math.max(head?.ok === true ? (head.value.version ?? 0) : 0, signed ?? 0);
    for (let v = (listed.at(-1) ?? 0) + 1; v <= named; v++) versions.push(v);
    const manifests = await Promise.all(versions.map((v, i) => this.readBack(run, v, entries[i]?.etag)));
    const current = currentVersion(
      versions.filter((_, i) => manifests[i]?.ok === true),
      rollbacks,
    );
    return { current, versions, rollbacks, manifests };
  }

  /** Revokes every version after `to`; generators move back to `to` and never forward to a revoked one. */
  rollback(run: string, to: number): Promise<Result<RollbackResult, TrainerError>> {
    return this.withRunLock(run, async () => {
      await this.d.ledger.repair(run);
      const { current, versions, rollbacks, manifests } = await this.storeState(run);
      const index = versions.indexOf(to);
      if (index < 0) return err(new TrainerError("not_found", `run ${run} has no version ${to}`));
      const target = manifests[index] as Result<StoredManifest, string>;
      if (!target.ok)
        return err(
          new TrainerError("conflict", `version ${to} of run ${run} cannot be served: ${target.error}`),
        );
      if (isRevoked(to, rollbacks))
        return err(
          new TrainerError("conflict", `version ${to} of run ${run} was revoked by an earlier rollback`),
        );
      if (current === null || to >= current) {
        return err(
          new TrainerError("conflict", `version ${to} is not older than the current version ${current}`),
        );
      }
      const atVersion = versions[versions.length - 1] as number;
      await this.d.ledger.writeRollback({
        schema: "loracast.rollback/v1",
        run,
        to,
        atVersion,
        createdAt: new Date(this.d.clock.now()).toISOString(),
      });
      await this.d.ledger.signHead(run, atVersion);
      await this.notify("adapter.rolled_back", target.value);
      const revoked = versions.filter((v) => v > to && !isRevoked(v, rollbacks));
      this.d.log.info("rolled back", { run, to, revoked });
      return ok({ run, current: to, revoked });
    });
  }

  /**
   * Reads a manifest back from the store and verifies it (from the store's cache when the listing
   * gave its entity tag `etag` and it is unchanged); an error says why it cannot be served.
   */
  private async readBack(
    run: string,
    version: number,
    etag?: string,
  ): Promise<Result<StoredManifest, string>> {
    const key = manifestKey(run, version);
    const read =
      etag === undefined
        ? await this.d.store.readManifest(key)
        : await this.d.store.readManifestAt(key, etag);
    if (read === null) return err(`manifest ${key} is missing from the store`);
    return read.ok ? read : err(read.error.reason);
  }

  private async notify(type: AdapterEvent["type"], stored: StoredManifest): Promise<void> {
    const m: VersionManifest = stored.manifest;
    const event: AdapterEvent = {
      type,
      run: m.run,
      version: m.version,
      manifestKey: stored.key,
      manifestSha256: stored.sha256,
    };
    await this.d.outbox.enqueue(event, await this.d.subscriptions.targets());
  }

  private withRunLock<T>(run: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.runLocks.get(run) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.runLocks.set(run, settled);
    void settled.then(() => {
      if (this.runLocks.get(run) === settled) this.runLocks.delete(run);
    });
    return next;
  }
}
