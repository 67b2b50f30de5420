import { EgressRefused, redactText, redactUrl } from "@loracast/shared/egress";
import { type AdapterRow, adapterListSchema } from "@loracast/shared/generator-api";
import {
  FLEET_MAX_GENERATORS,
  FLEET_MAX_ROWS,
  type Fleet,
  type FleetGenerator,
} from "@loracast/shared/trainer-api";
import type { DeliveryTarget } from "@loracast/shared/webhooks";
import type { Subscription } from "../subscriptions.ts";

/** What the fleet view asks generators through, and its bounds. */
export interface FleetDeps {
  /** The webhook subscriptions, static and registered, in their order (for their ids). */
  subscriptions(): Subscription[];
  /**
   * Where a webhook would go now: one URL per subscriber, a `dns+` subscriber expanded to one per
   * address its name has (`via` names it), as `SubscriptionRegistry.targets` answers.
   */
  targets(): Promise<DeliveryTarget[]>;
  /** The egress-checked fetch (`egressFetch` of the trainer's policy, `shared/egress`). */
  fetch: typeof fetch;
  /** Milliseconds since the epoch (`checkedAt`) and for round trips. */
  now(): number;
  /** How long one generator may take to answer, in milliseconds. */
  timeoutMs: number;
  /** The largest `/v1/adapters` body read from one generator, in bytes. */
  maxBodyBytes: number;
  /** How many generators are asked at once. */
  concurrency: number;
}

/** Default bounds: 2 s per generator, 4 MiB per listing, 8 generators at a time. */
export const FLEET_DEFAULTS = { timeoutMs: 2000, maxBodyBytes: 4 * 1024 * 1024, concurrency: 8 } as const;

const WEBHOOK_PATH = /\/v1\/webhooks\/adapters\/?$/;

/**
 * A generator's base URL from its webhook URL: `http://h:9002/v1/webhooks/adapters` →
 * `http://h:9002`. A subscriber URL of another shape is taken as a base itself (its `/v1/adapters`
 * then most likely answers 404: `invalid`).
 */
export function generatorBase(webhookUrl: string): string {
  return webhookUrl.replace(WEBHOOK_PATH, "").replace(/\/+$/, "");
}

class BodyTooLarge extends Error {}

/** The body as text, refusing (BodyTooLarge) once it passes `max` bytes, Content-Length or not. */
async function boundedText(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > max) {
    await res.body?.cancel();
    throw new BodyTooLarge(`its listing is ${declared} bytes, more than the ${max} read`);
  }
  if (res.body === null) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > max) throw new BodyTooLarge(`its listing passed the ${max} bytes read`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

type Answer = Pick<
  FleetGenerator,
  "reach" | "error" | "startedAt" | "active" | "versions" | "versionsOmitted"
>;

const failed = (reach: FleetGenerator["reach"], error: string): Answer => ({
  reach,
  error: redactText(error),
  startedAt: null,
  active: {},
  versions: [],
  versionsOmitted: 0,
});

/** Newest version first (then run name), the rows of `run` only when given, at most FLEET_MAX_ROWS. */
function selectRows(rows: AdapterRow[], run: string | null): Pick<Answer, "versions" | "versionsOmitted"> {
  const mine = rows
    .filter((r) => run === null || r.run === run)
    .sort((a, b) => b.version - a.version || a.run.localeCompare(b.run));
  return {
    versions: mine.slice(0, FLEET_MAX_ROWS),
    versionsOmitted: Math.max(0, mine.length - FLEET_MAX_ROWS),
  };
}

/** Why a request or its body failed: the timeout, else the socket's error code (ECONNREFUSED, …). */
function lostConnection(e: unknown, timeoutMs: number): string {
  const name = (e as Error).name;
  if (name === "TimeoutError" || name === "AbortError") return `no answer within ${timeoutMs} ms`;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}

/** One generator's `GET /v1/adapters`, classified; never throws. `timeoutMs` bounds the whole read. */
async function ask(d: FleetDeps, base: string, run: string | null): Promise<Answer> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException(`no answer within ${d.timeoutMs} ms`, "TimeoutError")),
    d.timeoutMs,
  );
  try {
    return await askWithin(d, base, run, controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

async function askWithin(
  d: FleetDeps,
  base: string,
  run: string | null,
  signal: AbortSignal,
): Promise<Answer> {
  let res: Response;
  try {
    res = await d.fetch(`${base}/v1/adapters`, { signal });
  } catch (e) {
    if (e instanceof EgressRefused) return failed("refused", e.message);
    return failed("unreachable", lostConnection(e, d.timeoutMs));
  }
  let text: string;
  try {
    text = await boundedText(res, d.maxBodyBytes);
  } catch (e) {
    if (e instanceof BodyTooLarge) return failed("invalid", e.message);
    return failed("unreachable", lostConnection(e, d.timeoutMs));
  }
  if (!res.ok) return failed("invalid", `GET /v1/adapters answered HTTP ${res.status}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return failed("invalid", "GET /v1/adapters answered something other than JSON");
  }
  const parsed = adapterListSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return failed(
      "invalid",
      `GET /v1/adapters: not an adapter listing (${issue?.path.join(".")}: ${issue?.message})`,
    );
  }
  const { startedAt, active, data } = parsed.data;
  const activeOfRun =
    run === null ? active : run in active ? { [run]: active[run] as (typeof active)[string] } : {};
  return {
    reach: "ok",
    error: null,
    startedAt: startedAt ?? null,
    active: activeOfRun,
    ...selectRows(data, run),
  };
}

/** Runs `work` over `items` with at most `limit` at once, keeping the items' order in the results. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * The fleet as it is now: each distinct generator among the webhook targets (every address of a
 * `dns+` subscriber is one generator; targets naming the same base URL are one) asked for its
 * `GET /v1/adapters`, at most `concurrency` at a time, each within `timeoutMs` and `maxBodyBytes`;
 * a generator that does not answer properly is listed with its `reach` and why. Rows are
 * restricted to `run` when given. A `dns+` subscriber whose lookup fails has no targets, so none
 * of its generators is listed (the trainer logs the failed lookup).
 */
export async function readFleet(d: FleetDeps, run: string | null): Promise<Fleet> {
  const subscriptions = d.subscriptions();
  const byBase = new Map<string, string[]>();
  for (const t of await d.targets()) {
    const base = generatorBase(t.url);
    const ids = subscriptions.filter((s) => s.url === (t.via ?? t.url)).map((s) => s.id);
    byBase.set(base, [...new Set([...(byBase.get(base) ?? []), ...ids])]);
  }
  const all = [...byBase.entries()];
  const asked = all.slice(0, FLEET_MAX_GENERATORS);
  const generators = await mapLimited(asked, d.concurrency, async ([base, subscriptions]) => {
    const t0 = d.now();
    const answer = await ask(d, base, run);
    return { url: redactUrl(base), subscriptions, ms: Math.max(0, d.now() - t0), ...answer };
  });
  return {
    run,
    checkedAt: new Date(d.now()).toISOString(),
    generators,
    omitted: all.length - asked.length,
  };
}
