import { randomUUID } from "node:crypto";
import { access, mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import pRetry, { AbortError } from "p-retry";
import type { AdapterEvent } from "../manifest/index.ts";
import type { Clock, Logger } from "../platform/index.ts";
import { signWebhook } from "./signing.ts";

/** A subscriber answered in a way that retrying will not change. */
class SubscriberRefusedError extends Error {
  override readonly name = "SubscriberRefusedError";
}

/**
 * Where one delivery goes: `url`, and for a URL expanded from a subscriber that stands for several
 * replicas (a DNS name resolved to each address), `via`, that subscriber, so the outbox can ask
 * whether the replica is still there before each attempt ({@link OutboxOptions.stillWanted}).
 */
export interface DeliveryTarget {
  url: string;
  via?: string;
}

/** One event bound for one subscriber, as kept on disk until it is delivered. */
export interface Delivery extends DeliveryTarget {
  id: string;
  event: AdapterEvent;
  createdAt: number;
}

/**
 * How an `Outbox` stores and delivers: its directory, the signing secret, and p-retry's backoff
 * (`retries` per round, `minTimeoutMs` first delay).
 */
export interface OutboxOptions {
  /** Directory for pending deliveries; survives restarts. */
  dir: string;
  secret: string;
  clock: Clock;
  log: Logger;
  /** Retries per delivery attempt round, with exponential backoff and jitter. @default 5 */
  retries?: number;
  /** First backoff delay in ms. @default 200 */
  minTimeoutMs?: number;
  /** Per-request timeout in ms. @default 5000 */
  requestTimeoutMs?: number;
  /** Deliveries older than this are given up and moved to `dead/`. @default 24 h */
  maxAgeMs?: number;
  /** How often pending deliveries are retried after a failed round. @default 2000 */
  sweepIntervalMs?: number;
  newId?: () => string;
  fetch?: typeof fetch;
  /** Sees each delivery acknowledged: milliseconds from its enqueue (`createdAt`, `clock`) to the 2xx. */
  onDelivered?: (ms: number) => void;
  /**
   * Asked before each attempt round and after each failed attempt: false means the subscriber is
   * gone (a replica that left its DNS name, a subscription removed) and the delivery is dropped
   * (`stats.dropped`) instead of retried until `maxAgeMs`. A rejection counts as true: an answer
   * nobody could get is no proof the subscriber left. Absent, every delivery is wanted.
   */
  stillWanted?: (d: Delivery) => Promise<boolean>;
}

/**
 * A durable webhook outbox. `enqueue` writes each delivery to disk (fsync, then rename) before it
 * returns; delivery then runs in the background with p-retry, and whatever is still pending after a
 * crash is sent by the next process that opens the same directory.
 */
export class Outbox {
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** Aborted by `stop`: retry loops in flight end instead of backing off for minutes after it. */
  private readonly stopping = new AbortController();
  private readonly fetchFn: typeof fetch;
  private readonly newId: () => string;
  /**
   * Since start: deliveries sent, failed attempts, deliveries given up (`dead/`: too old or refused
   * with a 4xx) and deliveries dropped because their subscriber left (`stillWanted`).
   */
  readonly stats = { delivered: 0, failedAttempts: 0, dead: 0, dropped: 0 };

  constructor(private readonly o: OutboxOptions) {
    this.fetchFn = o.fetch ?? fetch;
    this.newId = o.newId ?? (() => `msg_${randomUUID()}`);
  }

  async start(): Promise<void> {
    await mkdir(join(this.o.dir, "dead"), { recursive: true });
    this.timer = setInterval(() => void this.sweep(), this.o.sweepIntervalMs ?? 2000);
    this.timer.unref();
    void this.sweep();
  }

  /**
   * Stops sweeping and ends the retry loops in flight; what they had not sent stays on disk for the
   * next process that opens the directory.
   */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.stopping.abort();
  }

  /** True between `start` (its directory exists, its pending deliveries are being resent) and `stop`. */
  get started(): boolean {
    return this.timer !== undefined;
  }

  /** Persists one delivery per target, then starts sending them. */
  async enqueue(event: AdapterEvent, targets: readonly DeliveryTarget[]): Promise<Delivery[]> {
    const deliveries = targets.map((t) => ({ ...t, id: this.newId(), event, createdAt: this.o.clock.now() }));
    await Promise.all(deliveries.map((d) => this.persist(d)));
    for (const d of deliveries) void this.attempt(d);
    return deliveries;
  }

  /** Deliveries still on disk. */
  async pending(): Promise<Delivery[]> {
    const names = (await readdir(this.o.dir)).filter((n) => n.endsWith(".json"));
    const out: Delivery[] = [];
    for (const n of names) {
      try {
        out.push(JSON.parse(await readFile(join(this.o.dir, n), "utf8")) as Delivery);
      } catch {
        // A file another sweep just removed; nothing to do.
      }
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  private async persist(d: Delivery): Promise<void> {
    const tmp = join(this.o.dir, `.${d.id}.tmp`);
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(JSON.stringify(d));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.o.dir, `${d.id}.json`));
  }

  private async sweep(): Promise<void> {
    let pending: Delivery[];
    try {
      pending = await this.pending();
    } catch (e) {
      this.o.log.error("outbox sweep failed", { error: e });
      return;
    }
    await Promise.all(pending.map((d) => this.attempt(d)));
  }

  private async wanted(d: Delivery): Promise<boolean> {
    if (this.o.stillWanted === undefined) return true;
    return this.o.stillWanted(d).catch(() => true);
  }

  private async attempt(d: Delivery): Promise<void> {
    if (this.inFlight.has(d.id)) return;
    this.inFlight.add(d.id);
    const path = join(this.o.dir, `${d.id}.json`);
    let gone = false;
    try {
      // A sweep that listed this delivery before another attempt sent it and removed its file
      // must not send it again.
      if (
        !(await access(path).then(
          () => true,
          () => false,
        ))
      )
        return;
      if (this.o.clock.now() - d.createdAt > (this.o.maxAgeMs ?? 86_400_000)) {
        await rename(path, join(this.o.dir, "dead", `${d.id}.json`));
        this.stats.dead++;
        this.o.log.error("webhook given up", { id: d.id, url: d.url, event: d.event });
        return;
      }
      gone = !(await this.wanted(d));
      if (gone) throw new Error("subscriber gone");
      await pRetry(() => this.send(d), {
        retries: this.o.retries ?? 5,
        minTimeout: this.o.minTimeoutMs ?? 200,
        randomize: true,
        signal: this.stopping.signal,
        shouldRetry: async () => {
          gone = !(await this.wanted(d));
          return !gone;
        },
        onFailedAttempt: ({ error, attemptNumber }) => {
          this.stats.failedAttempts++;
          this.o.log.warn("webhook attempt failed", {
            id: d.id,
            url: d.url,
            run: d.event.run,
            version: d.event.version,
            attempt: attemptNumber,
            error: error.message,
          });
        },
      });
      await unlink(path).catch(() => undefined);
      this.stats.delivered++;
      this.o.onDelivered?.(this.o.clock.now() - d.createdAt);
      this.o.log.info("webhook delivered", {
        id: d.id,
        url: d.url,
        type: d.event.type,
        run: d.event.run,
        version: d.event.version,
      });
    } catch (e) {
      if (gone) {
        await unlink(path).catch(() => undefined);
        this.stats.dropped++;
        this.o.log.info("webhook dropped: subscriber gone", { id: d.id, url: d.url, via: d.via });
      } else if (e instanceof SubscriberRefusedError) {
        await rename(path, join(this.o.dir, "dead", `${d.id}.json`)).catch(() => undefined);
        this.stats.dead++;
        this.o.log.error("webhook refused by subscriber", {
          id: d.id,
          url: d.url,
          run: d.event.run,
          version: d.event.version,
          error: e.message,
        });
      }
      // Otherwise it stays on disk and the next sweep tries again.
    } finally {
      this.inFlight.delete(d.id);
    }
  }

  private async send(d: Delivery): Promise<void> {
    const body = JSON.stringify(d.event);
    // Each attempt gets its own webhook-id: receivers refuse a repeated id as a replay, and an attempt
    // whose response was lost may well have arrived.
    const headers = signWebhook({ secret: this.o.secret, id: this.newId(), clock: this.o.clock, body });
    const res = await this.fetchFn(d.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
      signal: AbortSignal.timeout(this.o.requestTimeoutMs ?? 5000),
    });
    await res.body?.cancel();
    if (res.ok) return;
    // 4xx means the subscriber will never take this message; 408 and 429 are worth retrying.
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
      throw new AbortError(new SubscriberRefusedError(`subscriber answered ${res.status}`));
    }
    throw new Error(`subscriber answered ${res.status}`);
  }
}
