import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { s3ClientEnv, s3LocalEnv } from "@loracast/dev-support/stack";
import { type Service, startService } from "@loracast/dev-support/supervisor";
import { type S3Settings, s3EnvSchema, s3SettingsFromEnv } from "@loracast/shared/store";

export const BUCKET = "loracast-test";

/**
 * Starts the embedded S3 server on a free port. Without `dir` it keeps its objects in a temp dir of
 * its own, which `stop()` removes; a given `dir` is the caller's to keep or remove (a test that
 * restarts the server on the same data passes it again).
 */
export async function startS3(dir?: string, port = 0): Promise<Service & { dir: string }> {
  const own = dir === undefined;
  const data = dir ?? mkdtempSync(join(tmpdir(), "loracast-s3-"));
  const s = await startService("s3-local", s3LocalEnv(port, data, BUCKET));
  if (own) {
    const stop = s.stop.bind(s);
    s.stop = async () => {
      await stop();
      rmSync(data, { recursive: true, force: true });
    };
  }
  return Object.assign(s, { dir: data });
}

/** The S3_* variables that point a service at that server (2 attempts per request: outages show fast). */
export function s3Env(url: string, prefix = "loracast"): Record<string, string> {
  return { ...s3ClientEnv(url, BUCKET, prefix), S3_FORCE_PATH_STYLE: "true", S3_MAX_ATTEMPTS: "2" };
}

/** Settings for a store client of that server, as the services parse them, with test overrides. */
export function s3Settings(url: string, prefix: string, overrides: Partial<S3Settings> = {}): S3Settings {
  return { ...s3SettingsFromEnv(s3EnvSchema.parse(s3Env(url, prefix))), ...overrides };
}

/**
 * The embedded server's request counts by S3 operation (`GetObject`, `ListObjectsV2`, …), read from
 * its `/_metrics` (`loracast_s3_requests_total`): every request it has answered since it started.
 */
export async function s3RequestCounts(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/_metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^loracast_s3_requests_total\{operation="(\w+)"\} (\d+)$/gm))
    counts[m[1] as string] = Number(m[2]);
  if (Object.keys(counts).length === 0) throw new Error(`no request counts at ${url}/_metrics`);
  return counts;
}
