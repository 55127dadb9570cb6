import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../engine/receiver.js';
import { startDashboardFixture, type DashboardFixture } from './dashboard-fixture.js';

/**
 * The dashboard in a real browser (Debian's Chromium, driven by playwright-core) against a real
 * callback process and real subscribers on loopback. With KFP_NOTIFY_SCREENSHOTS=<dir> it also saves
 * a screenshot of each view there (`npm run docs:screenshots` refreshes docs/img/).
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = process.env.KFP_NOTIFY_SCREENSHOTS;
const HOSTILE_RUN_NAME = '<img src=x onerror="window.__pwned=1"><b>bold</b>';

let fx: DashboardFixture;
let browser: Browser;
let page: Page;
let evil: Server;

async function shot(name: string, p: Page = page): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await p.screenshot({ path: `${SHOTS}/dashboard-${name}.png`, fullPage: true });
}

beforeAll(async () => {
  fx = await startDashboardFixture();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('dialog', (d) => void d.accept());
  // Another origin (localhost, not 127.0.0.1) whose page posts a form at the dashboard's replay action.
  evil = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end(
      `<form id="f" method="post" action="${fx.url}/ui/api/subscribers/flaky/replay"><input name="x" value="1"></form><button id="go" form="f">go</button>`,
    );
  });
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  evil?.close();
  await fx?.close();
});

const row = (p: Page, runId: string) => p.locator('tr', { has: p.locator('code', { hasText: runId }) });

describe('the delivery dashboard in Chromium', () => {
  it('logs in with the admin token and lands on the events view; the token is nowhere in the page or its URL', async () => {
    await page.goto(`${fx.url}/ui/`);
    await shot('login');
    await page.fill('input[name=operator]', 'alice');
    await page.fill('input[name=token]', fx.adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('#who:has-text("logged in as alice")');
    expect(page.url()).toBe(`${fx.url}/ui/`);
    expect(await page.content()).not.toContain(fx.adminToken);
    const cookies = await page.context().cookies();
    expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite, c.path])).toEqual([['kfpn_session', true, 'Strict', '/ui/']]);
  });

  it('shows a delivered event with its deliveries; a hostile run name is shown as text, never run', async () => {
    expect(await fx.postHook({ kfpRunId: 'run-ok', runName: HOSTILE_RUN_NAME })).toBe(202);
    await until(() => fx.receivers.ops.received.length >= 1 && fx.receivers.flaky.received.length >= 2 && fx.receivers.gone.received.length >= 1, 'all three subscribers tried');
    // No reload: the page refreshes itself.
    await row(page, 'run-ok').locator('a.badge.delivered', { hasText: 'ops: delivered' }).waitFor({ timeout: 15_000 });
    await row(page, 'run-ok').locator('a.badge.dead', { hasText: 'flaky: dead' }).waitFor({ timeout: 15_000 });
    const r = row(page, 'run-ok');
    expect(await r.textContent()).toContain(HOSTILE_RUN_NAME);
    expect(await page.locator('#view img, #view b').count()).toBe(0);
    expect(await page.evaluate('typeof window.__pwned')).toBe('undefined');
    await shot('events');
  });

  it('searches by run id and EventType', async () => {
    expect(await fx.postHook({ kfpRunId: 'run-other', runName: 'other', pipelineName: 'etl' })).toBe(202);
    await row(page, 'run-other').waitFor({ timeout: 15_000 });
    await page.fill('#search input[name=runId]', 'run-ok');
    await page.click('#search button[type=submit]');
    // Polled from the test, not in the page: a string predicate is evaluated with eval there, which the
    // dashboard's Content-Security-Policy rightly refuses.
    await expect.poll(() => page.locator('#view tbody tr').count(), { timeout: 15_000 }).toBe(1);
    expect(await row(page, 'run-ok').count()).toBe(1);
    await page.fill('#search input[name=runId]', '');
    await page.selectOption('#search select[name=eventType]', 'WorkflowFailed');
    await page.click('#search button[type=submit]');
    await page.waitForSelector('#view p.muted:has-text("No events match.")');
    expect(page.url()).toContain('eventType=WorkflowFailed');
  });

  it("shows a failing subscriber's attempts with status, duration and next time, and the request with secrets masked", async () => {
    await page.goto(`${fx.url}/ui/#/events?runId=run-ok`);
    await row(page, 'run-ok').locator('a.badge', { hasText: 'flaky: dead' }).click();
    await page.waitForSelector('#delivery-state:has-text("dead")');
    const attempts = page.locator('#view table tbody tr');
    expect(await attempts.count()).toBe(2);
    expect(await attempts.nth(0).textContent()).toMatch(/retry.*HTTP 500.*ms.*\d{4}-\d\d-\d\d/);
    expect(await attempts.nth(1).textContent()).toMatch(/dead.*HTTP 500/);
    const body = await page.locator('details.request[open] pre.body').textContent();
    expect(JSON.parse(body ?? '{}')).toMatchObject({ KfpRunId: 'run-ok', RunName: HOSTILE_RUN_NAME });
    await shot('delivery');

    // ops: its X-Api-Key came from a Secret and its signature: masked; the receiver got the real value.
    await page.goto(`${fx.url}/ui/#/events?runId=run-ok`);
    await row(page, 'run-ok').locator('a.badge', { hasText: 'ops: delivered' }).click();
    const headers = (await page.locator('details.request[open] pre.headers').textContent()) ?? '';
    expect(headers).toContain('x-api-key: [masked]');
    expect(headers).toContain('webhook-signature: [masked]');
    expect(headers).toContain('x-team: ml');
    expect(await page.content()).not.toContain(fx.apiKey);
    expect(fx.receivers.ops.received[0]?.headers['x-api-key']).toBe(fx.apiKey);
  });

  it('replays the dead letter after confirmation; the receiver gets it and the page shows it delivered', async () => {
    await page.goto(`${fx.url}/ui/#/events?runId=run-ok`);
    await row(page, 'run-ok').locator('a.badge', { hasText: 'flaky: dead' }).click();
    await page.waitForSelector('#replay');
    fx.flakyHeals();
    const before = fx.receivers.flaky.received.length;
    await page.click('#replay');
    await until(() => fx.receivers.flaky.received.length === before + 1, 'the replayed delivery at the receiver');
    expect(JSON.parse(fx.receivers.flaky.received.at(-1)?.body ?? '{}')).toMatchObject({ KfpRunId: 'run-ok' });
    await page.waitForSelector('#delivery-state:has-text("delivered")', { timeout: 15_000 });
    expect(await page.locator('#view table tbody tr').count()).toBe(3);
    await until(() => fx.cb.lines.some((l) => l.msg === 'dashboard: dead letter replayed' && l.operator === 'alice'), 'the audit line');
  });

  it('re-enables the subscriber a 410 disabled, after confirmation', async () => {
    await page.goto(`${fx.url}/ui/#/subscribers`);
    const gone = page.locator('tr[data-subscriber="gone"]');
    await gone.locator('text=HTTP 410 Gone').waitFor();
    expect(await page.locator('tr[data-subscriber="ops"]').textContent()).toMatch(/enabled/);
    await shot('subscribers');
    await gone.locator('button[data-action="enable"]').click();
    await page.waitForSelector('#status:has-text("gone re-enabled")');
    await gone.locator('td[data-label="State"]', { hasText: /^enabled$/ }).waitFor();
    expect(await gone.locator('button[data-action="enable"]').count()).toBe(0);
    await until(() => fx.cb.lines.some((l) => l.msg === 'dashboard: subscriber re-enabled' && l.operator === 'alice'), 'the audit line');
  });

  it('fits a narrow screen without sideways scrolling', async () => {
    const phone = await browser.newPage({ viewport: { width: 375, height: 740 } });
    await phone.context().addCookies(await page.context().cookies());
    try {
      for (const view of ['#/events', '#/subscribers']) {
        await phone.goto(`${fx.url}/ui/${view}`);
        await phone.waitForSelector('#view table');
        expect(await phone.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      }
      await shot('narrow', phone);
    } finally {
      await phone.close();
    }
  });

  it('a form posted from another site is refused, and so is a request without the session', async () => {
    const replayedBefore = fx.cb.lines.filter((l) => l.msg === "dashboard: a subscriber's dead letters replayed").length;
    const { port } = evil.address() as AddressInfo;
    await page.goto(`http://localhost:${port}/`);
    await page.click('#go');
    await page.waitForLoadState();
    expect(await page.textContent('body')).toMatch(/cross-site request refused/);
    const fresh = await browser.newPage();
    try {
      const res = await fresh.goto(`${fx.url}/ui/api/events`);
      expect(res?.status()).toBe(401);
    } finally {
      await fresh.close();
    }
    expect(fx.cb.lines.filter((l) => l.msg === "dashboard: a subscriber's dead letters replayed")).toHaveLength(replayedBefore);
  });

  it('logs out: the page is the login form again', async () => {
    await page.goto(`${fx.url}/ui/`);
    await page.click('#logout');
    await page.waitForSelector('form[action="/ui/login"]');
  });
});
