/**
 * A service's first contact with the object store, shared by the trainer and the generators. An
 * outage (no answer, a refused connection, 5xx) is retried with backoff for a bounded time, one log
 * line per failed attempt (each attempt has its own time limit, so a hung server is logged too); a wrong setting (no such bucket, rejected credentials) cannot heal by
 * waiting, so it fails at once. Either way the failure names the S3_* variable to check.
 */
import pRetry from "p-retry";
import type { Logger } from "../platform/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { StoreError } from "./object-store.ts";

/** Why a service could not start on its store: which setting to check, in one sentence. */
export interface StoreStartupFailure {
  /** `config`: a setting is wrong (exit 2); `unavailable`: still unreachable when time ran out. */
  code: "config" | "unavailable";
  /** The environment variable to look at first, e.g. `S3_BUCKET`. */
  variable: string;
  message: string;
}

/** What `waitForStore` probes, where (for the messages), and how long it retries. */
export interface WaitForStoreOptions<T> {
  /** The first requests a service makes; any StoreError it throws is classified as below. */
  probe: () => Promise<T>;
  /** Where the store is, for the messages. */
  target: { endpoint?: string; bucket: string };
  log: Logger;
  /** How long an unreachable store is retried, in milliseconds (S3_STARTUP_TIMEOUT_S); 0: one attempt. */
  timeoutMs: number;
  /** First delay between attempts, doubling up to 5 s; the default suits people watching a terminal. */
  minDelayMs?: number;
  /**
   * How long one attempt may wait for an answer, in milliseconds (default 5 s): a server that
   * accepts connections but never answers (a hung or stopped process) fails each attempt, with
   * its line, instead of the whole wait passing in silence.
   */
  attemptTimeoutMs?: number;
}

/** S3 error codes that mean the key pair itself is wrong. */
const BAD_CREDENTIALS = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "InvalidSecurity",
]);
/** S3 error codes that mean the request went to the wrong region. */
const WRONG_REGION = new Set([
  "AuthorizationHeaderMalformed",
  "PermanentRedirect",
  "IllegalLocationConstraintException",
]);

/**
 * Runs `probe` until it succeeds, a setting is found wrong, or `timeoutMs` has passed. Returns the
 * probe's value, or the failure with the variable to check (the caller logs it and exits).
 * Errors other than StoreError are bugs and propagate.
 */
export async function waitForStore<T>(o: WaitForStoreOptions<T>): Promise<Result<T, StoreStartupFailure>> {
  const where = o.target.endpoint ?? "AWS S3 (S3_ENDPOINT unset)";
  const deadline = Date.now() + o.timeoutMs;
  const seconds = Math.round(o.timeoutMs / 1000);
  const unreachable = (e: StoreError) =>
    `S3_ENDPOINT ${where} is unreachable (${e.reason ?? e.message}): check that the S3 server is up and that S3_ENDPOINT points at it`;
  try {
    const attemptMs = o.attemptTimeoutMs ?? 5_000;
    const value = await pRetry(() => withDeadline(o.probe(), Math.min(deadline, Date.now() + attemptMs)), {
      retries: Number.POSITIVE_INFINITY,
      maxRetryTime: o.timeoutMs,
      minTimeout: o.minDelayMs ?? 500,
      maxTimeout: 5_000,
      shouldRetry: ({ error, attemptNumber }) => {
        if (!(error instanceof StoreError) || classify(error, o.target, where) !== null) return false;
        o.log.warn(
          `${unreachable(error)}; attempt ${attemptNumber} failed, retrying for up to ${seconds} s`,
          {
            variable: "S3_ENDPOINT",
          },
        );
        return true;
      },
    });
    return ok(value);
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    const config = classify(e, o.target, where);
    if (config !== null) return err(config);
    return err({
      code: "unavailable",
      variable: "S3_ENDPOINT",
      message: `${unreachable(e)}; gave up after ${seconds} s (S3_STARTUP_TIMEOUT_S)`,
    });
  }
}

/** A wrong setting, or null for an outage worth waiting out. */
function classify(e: StoreError, target: { bucket: string }, where: string): StoreStartupFailure | null {
  if (e.code === "unavailable") return null;
  const why = e.reason ?? e.message;
  if (e.reason === "NoSuchBucket") {
    return {
      code: "config",
      variable: "S3_BUCKET",
      message: `S3_BUCKET ${target.bucket} does not exist at ${where} (NoSuchBucket): create the bucket or fix S3_BUCKET`,
    };
  }
  if (e.reason !== undefined && BAD_CREDENTIALS.has(e.reason)) {
    return {
      code: "config",
      variable: "S3_ACCESS_KEY_ID",
      message: `S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY were rejected by ${where} (${why}): check the key pair`,
    };
  }
  if (e.reason === "AccessDenied") {
    return {
      code: "config",
      variable: "S3_ACCESS_KEY_ID",
      message: `S3_ACCESS_KEY_ID may not read and write bucket ${target.bucket} (AccessDenied): check the key's policy, S3_BUCKET and S3_PREFIX`,
    };
  }
  if (e.reason !== undefined && WRONG_REGION.has(e.reason)) {
    return {
      code: "config",
      variable: "S3_REGION",
      message: `bucket ${target.bucket} is not in S3_REGION (${why}): set S3_REGION to the bucket's region`,
    };
  }
  return {
    code: "config",
    variable: "S3_ENDPOINT",
    message: `${where} refused the store's first request (${why}): check S3_ENDPOINT, S3_BUCKET and the credentials`,
  };
}

/**
 * `work`, or a StoreError "unavailable" if it has not settled by `deadline` (epoch ms; at least
 * one second from now): a server that never answers.
 */
function withDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const wait = Math.max(deadline - Date.now(), 1_000);
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new StoreError("unavailable", "no answer", {
            reason: `no answer within ${Math.round(wait / 1000)} s`,
          }),
        ),
      wait,
    );
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/**
 * `waitForStore` for a service's `main.ts`: the probe's value, or the failure logged as one error
 * line naming the variable, then exit 2 for a wrong setting and 1 for a store still unreachable.
 */
export async function waitForStoreOrExit<T>(o: WaitForStoreOptions<T>): Promise<T> {
  const reached = await waitForStore(o);
  if (reached.ok) return reached.value;
  o.log.error(reached.error.message, { variable: reached.error.variable });
  process.exit(reached.error.code === "config" ? 2 : 1);
}
