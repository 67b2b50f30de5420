import { EgressRefused, redactText, redactUrl } from "@loracast/shared/egress";
import { type AdapterRow, adapterListSchema } from "@loracast/shared/generator-api";
import {
  FLEET_MAX_GENERATORS,
  FLEET_MAX_ROWS,
  type Fleet,
  type FleetGenerator,
} from "@loracast/shared/trainer-api";
import type { Subscription } from "../subscriptions.ts";

/** What the fleet view asks generators through, and its bounds. */
export interface FleetDeps {
  /**
   * The webhook subscribers, static and registered, in their order, a `dns+` fan-out subscriber as
   * one entry per address its name has now (`SubscriptionRegistry.resolved`).
   */
  subscribers(): Promise<Subscription[]>;
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

type Answer = Pick<FleetGenerator, "reach" | "error" | "active" | "versions" | "versionsOmitted">;

const failed = (reach: FleetGenerator["reach"], error: string): Answer => ({
  reach,
  error: redactText(error),
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

/** One generator's `GET /v1/adapters`, classified; never throws. */
async function ask(d: FleetDeps, base: string, run: string | null): Promise<Answer> {
  let res: Response;
  try {
    res = await d.fetch(`${base}/v1/adapters`, { signal: AbortSignal.timeout(d.timeoutMs) });
  } catch (e) {
    if (e instanceof EgressRefused) return failed("refused", e.message);
    const name = (e as Error).name;
    if (name === "TimeoutError" || name === "AbortError") {
      return failed("unreachable", `no answer within ${d.timeoutMs} ms`);
    }
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    return failed("unreachable", cause?.code ?? cause?.message ?? (e as Error).message);
  }
  let text: string;
  try {
    text = await boundedText(res, d.maxBodyBytes);
  } catch (e) {
    if (e instanceof BodyTooLarge) return failed("invalid", e.message);
    const name = (e as Error).name;
    return failed(
      "unreachable",
      name === "TimeoutError" || name === "AbortError"
        ? `no answer within ${d.timeoutMs} ms`
        : (e as Error).message,
    );
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
  const { active, data } = parsed.data;
  const activeOfRun =
    run === null ? active : run in active ? { [run]: active[run] as (typeof active)[string] } : {};
  return { reach: "ok", error: null, active: activeOfRun, ...selectRows(data, run) };
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
 * The fleet as it is now: each distinct generator among the webhook subscribers (subscriptions
 * naming the same base URL are one generator) asked for its `GET /v1/adapters`, at most
 * `concurrency` at a time, each within `timeoutMs` and `maxBodyBytes`; a generator that does not
 * answer properly is listed with its `reach` and why. Rows are restricted to `run` when given.
 */
export async function readFleet(d: FleetDeps, run: string | null): Promise<Fleet> {
  const byBase = new Map<string, string[]>();
  for (const s of await d.subscribers()) {
    const base = generatorBase(s.url);
    byBase.set(base, [...(byBase.get(base) ?? []), s.id]);
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
