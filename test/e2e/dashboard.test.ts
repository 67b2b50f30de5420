/**
 * The dashboard in a real browser on a real demo run (issue 21): `npm start` on free ports prints
 * the dashboard link; headless Chromium (Debian's package, driven by playwright-core) opens it and
 * follows the demo run. The reward chart gains points as steps arrive; Ctrl-C mid-run and a second
 * `npm start` (the trainer resumes the run from its checkpoint) keep the history on the open page
 * and on a freshly loaded one; the fleet panel shows both generators reaching the newest version;
 * no request leaves the trainer's origin. The screenshot is saved as `dashboard.png` in the
 * artifacts folder (TEST_ARTIFACTS_DIR, else test-artifacts/), the source of docs/dashboard.png.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually } from "@loracast/dev-support/supervisor";
import { runInfoSchema } from "@loracast/shared/trainer-api";
import type { Page } from "playwright-core";
import { artifactsDir, type Browser, launchChromium } from "../helpers/browser.ts";
import { freePortRange, type LocalStackRun, startLocalStack } from "../helpers/local-stack.ts";

const STEPS = 30;
/** Ctrl-C once the demo printed this step: past the first checkpoint (every 10 steps), before the end. */
const STOP_AT = 13;
const TOKEN = "dashboard-e2e-token-0123456789";
const WAIT = 300_000;

/** How many steps the page's reward chart holds (the points it gave uPlot). */
const rewardPoints = async (page: Page): Promise<number> =>
  Number((await page.locator("#chart-reward").getAttribute("data-points")) ?? "0");

/** Resolves once the page's reward chart holds at least `n` points; returns how many it holds. */
const waitPoints = (page: Page, n: number, timeoutMs = WAIT): Promise<number> =>
  eventually(
    `the reward chart holds ${n} points`,
    async () => {
      const p = await rewardPoints(page);
      return p >= n ? p : undefined;
    },
    timeoutMs,
    200,
  );

describe("the dashboard follows the demo run in headless Chromium", () => {
  let data: string;
  let env: Record<string, string>;
  let browser: Browser;
  const stacks: LocalStackRun[] = [];
  /** Every URL the browser asked for that is not the trainer's origin (each was aborted). */
  const outside: string[] = [];
  let requests = 0;
  let origin = "";

  before(async () => {
    data = mkdtempSync(join(tmpdir(), "loracast-dashboard-"));
    const base = await freePortRange(4);
    env = {
      LORACAST_DATA_DIR: data,
      LORACAST_BASE_PORT: String(base),
      LORACAST_DEMO_STEPS: String(STEPS),
      TRAINER_API_TOKEN: TOKEN,
    };
    origin = `http://127.0.0.1:${base + 1}`;
    browser = await launchChromium();
    await browser.context.route("**/*", (route) => {
      const url = route.request().url();
      requests++;
      if (new URL(url).origin === origin) return route.continue();
      outside.push(url);
      return route.abort();
    });
  });
  after(async () => {
    await browser?.close();
    for (const s of stacks) s.killGroup();
    rmSync(data, { recursive: true, force: true });
  });

  it("shows live curves, keeps them across a trainer restart, and the fleet converging", async () => {
    const first = startLocalStack(env);
    stacks.push(first);
    const line = await first.waitForLine(/^ {2}dashboard +http/, WAIT);
    const link = line.trim().split(/\s+/)[1] as string;
    assert.equal(link, `${origin}/dashboard#token=${TOKEN}`, "npm start prints the link with the token");

    const page = await browser.context.newPage();
    await page.goto(link);
    // The token moved to sessionStorage: the address bar no longer shows it.
    await eventually("the run is selected", async () =>
      page.url().includes("run=digits-1") ? true : undefined,
    );
    assert.doesNotMatch(page.url(), /token/);

    // Points arrive while the run runs.
    const early = await waitPoints(page, 2);
    await waitPoints(page, early + 2);
    await first.waitForLine(new RegExp(`^ {2}step +${STOP_AT}/${STEPS} `), WAIT);
    const beforeStop = await rewardPoints(page);
    assert.ok(beforeStop >= early + 2, `the chart grew from ${early} to ${beforeStop} points`);
    assert.ok(beforeStop < STEPS, "the run is still running when the trainer stops");

    await first.interrupt();
    assert.match(first.text(), /^stopped\.$/m);
    // The open page notices and keeps what it has.
    await eventually("the page says it lost the trainer", async () => {
      const text = (await page.locator("#connection").textContent()) ?? "";
      return /Reconnecting|Lost|unreachable/.test(text) ? text : undefined;
    });
    assert.ok(
      (await rewardPoints(page)) >= beforeStop,
      "the chart keeps its points while the trainer is down",
    );

    const second = startLocalStack(env);
    stacks.push(second);
    const resumed = await second.waitForLine(/resumed from the checkpoint at step \d+/, WAIT);
    const checkpoint = Number(/at step (\d+)/.exec(resumed)?.[1]);
    assert.ok(checkpoint >= 10 && checkpoint <= STOP_AT, resumed);

    // A page opened after the restart replays the stored history.
    const fresh = await browser.context.newPage();
    await fresh.goto(`${origin}/dashboard?run=digits-1#token=${TOKEN}`);
    await waitPoints(fresh, checkpoint);

    await second.waitForLine(/^demo summary \(digits-1\)$/, WAIT);
    // Both pages end with one point per step: the redone steps replaced the first attempt's.
    assert.equal(await waitPoints(page, STEPS), STEPS);
    assert.equal(await waitPoints(fresh, STEPS), STEPS);

    const info = runInfoSchema.parse(
      await (
        await fetch(`${origin}/v1/runs/digits-1`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json(),
    );
    const newest = info.version;
    assert.ok(newest !== null && newest >= STEPS / 2, `the run published its versions (newest ${newest})`);
    const rows = await eventually(
      `both generators show v${newest} active in the fleet panel`,
      async () => {
        const trs = page.locator("#fleet-table tbody tr");
        const active: (string | null)[] = [];
        for (let i = 0; i < (await trs.count()); i++)
          active.push(await trs.nth(i).getAttribute("data-active"));
        return active.length === 2 && active.every((v) => v === String(newest)) ? active : undefined;
      },
      30_000,
      200,
    );
    assert.equal(rows.length, 2);
    assert.match((await page.locator("#fleet-failures").textContent()) ?? "", /none/);
    // The latency chart has a point per version the generators activated.
    const latencyPoints = Number(await page.locator("#chart-latency").getAttribute("data-points"));
    assert.ok(latencyPoints >= 1, `latency points: ${latencyPoints}`);

    // Every chart is labelled and described in text.
    const figures = page.locator("figure.chart");
    const charts: { id: string | null; role: string | null; label: string; description: string }[] = [];
    const textOf = async (id: string | null) =>
      id === null ? "" : ((await page.locator(`#${id}`).textContent()) ?? "");
    for (let i = 0; i < (await figures.count()); i++) {
      const plot = figures.nth(i).locator(".plot");
      charts.push({
        id: await figures.nth(i).getAttribute("id"),
        role: await plot.getAttribute("role"),
        label: await textOf(await plot.getAttribute("aria-labelledby")),
        description: await textOf(await plot.getAttribute("aria-describedby")),
      });
    }
    assert.ok(charts.length >= 9, `charts: ${charts.map((c) => c.id).join(", ")}`);
    for (const c of charts) {
      assert.equal(c.role, "img", String(c.id));
      assert.ok(c.label.length > 0 && c.description.length > 0, JSON.stringify(c));
    }

    await page.setViewportSize({ width: 1400, height: 900 });
    await page.screenshot({ path: join(artifactsDir(), "dashboard.png"), fullPage: true });
    await second.interrupt();
  });

  it("asks for the token, refuses a wrong one, and is usable from the keyboard", async () => {
    const run = startLocalStack({ ...env, LORACAST_DEMO: "false" });
    stacks.push(run);
    await run.waitForLine(/^ {2}dashboard +http/, WAIT);
    // The page is public; the fleet it reads is not (it names internal URLs), and checks its `run`.
    assert.equal((await fetch(`${origin}/v1/fleet`)).status, 401);
    const bad = await fetch(`${origin}/v1/fleet?run=Not_A_Run`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(bad.status, 400);
    const page = await browser.context.newPage();
    await page.goto(`${origin}/`);
    assert.equal(new URL(page.url()).pathname, "/dashboard", "GET / redirects to the dashboard");
    // No token in this tab: the form asks for it and has the focus.
    await page.locator("#token-input").waitFor({ state: "visible" });
    await eventually("the token field has the focus", async () =>
      (await page.evaluate("document.activeElement?.id")) === "token-input" ? true : undefined,
    );
    await page.keyboard.type("not-the-token");
    await page.keyboard.press("Enter");
    await eventually("a wrong token is refused", async () =>
      /refused/.test((await page.locator("#token-message").textContent()) ?? "") ? true : undefined,
    );
    // The header says so too (not "Starting…").
    assert.match((await page.locator("#connection").textContent()) ?? "", /refused/);
    await page.locator("#token-input").focus();
    await page.keyboard.type(TOKEN);
    await page.keyboard.press("Enter");
    await page.locator('#runs-table tr[data-run="digits-1"]').waitFor({ timeout: 30_000 });
    // The run's button takes the keyboard focus with a visible outline, and Enter selects it.
    const button = page.locator('#runs-table tr[data-run="digits-1"] button');
    await button.focus();
    await page.keyboard.press("Enter");
    assert.equal(await button.getAttribute("aria-pressed"), "true");
    // (Strings: this project's TypeScript has no DOM types.)
    const outline = {
      tag: await page.evaluate("document.activeElement.tagName"),
      style: await page.evaluate("getComputedStyle(document.activeElement).outlineStyle"),
    };
    assert.equal(outline.tag, "BUTTON");
    assert.notEqual(outline.style, "none", "keyboard focus is visible");
    await waitPoints(page, STEPS, 60_000);
    // A run id that does not exist: "no such run", not a live run retried forever; the list stays.
    await page.goto(`${origin}/dashboard?run=does-not-exist`);
    await eventually("the page says there is no such run", async () => {
      const heading = (await page.locator("#run-heading").textContent()) ?? "";
      return /No such run/.test(heading) ? heading : undefined;
    });
    assert.match((await page.locator("#connection").textContent()) ?? "", /No such run/);
    assert.doesNotMatch((await page.locator("#run-summary").textContent()) ?? "", /running/);
    await page.locator('#runs-table tr[data-run="digits-1"] button').click();
    await waitPoints(page, STEPS, 60_000);
    await run.interrupt();
  });

  it("loaded nothing from outside the trainer's origin", () => {
    assert.ok(requests > 10, `the route handler saw the page's requests (${requests})`);
    assert.deepEqual(outside, []);
  });
});
