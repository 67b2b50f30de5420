/**
 * Headless Chromium for the dashboard's end-to-end test: Debian's `chromium` package
 * (`apt-get install -y chromium`; `.ci/run` installs it) driven by playwright-core, which downloads
 * no browser. Each launch gets a new empty profile, removed on close, and no background traffic
 * (component updates, sync, QUIC), so every request the page makes is the page's own.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "@loracast/dev-support/fixtures";
import { type BrowserContext, chromium } from "playwright-core";

/** Where Debian's package puts the browser. */
const CHROMIUM = "/usr/bin/chromium";

/**
 * Where tests save what a person may want to look at afterwards (screenshots): `TEST_ARTIFACTS_DIR`,
 * else `test-artifacts/` at the repository root (gitignored, and outside the TMPDIR that test/run.ts
 * checks for leftovers). Created when missing.
 */
export function artifactsDir(): string {
  const dir = process.env.TEST_ARTIFACTS_DIR ?? join(ROOT, "test-artifacts");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A browser context on a fresh profile; `close` also removes the profile. */
export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launches headless Chromium with a new empty `--user-data-dir` and a 1400×900 viewport. */
export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "loracast-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
