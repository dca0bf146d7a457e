// The pages in a real headless Chromium (Debian's chromium, driven by playwright-core): the
// status page with its script (in-place refresh, buttons, the token in sessionStorage) and
// without JavaScript (forms, 303 back to the page), the landing page's links, no CSP
// violations, a phone-sized viewport. Screenshots go to test-output/ (gitignored).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'browser-token-42';
const OUT = new URL('../../test-output/', import.meta.url);
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (bash .ci/install-e2e.sh installs it)`;

let browser: Browser;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  if (skip) return;
  mkdirSync(OUT, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});

after(async () => {
  for (const close of closers.reverse()) await close();
  await browser?.close();
});

interface Setup {
  proxy: TestProxy;
  exporter: FakeExporter;
  scrape(path: string): Promise<void>;
}

async function setup(token?: string): Promise<Setup> {
  const exporter = await startFakeExporter();
  closers.push(() => exporter.close());
  const proxy = await startProxy(
    `listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
${token ? `  token: ${token}\n` : ''}routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
    ttl: 5m
    stale_if_error: 1h
  - name: blackbox
    path: /probe
    upstream: ${exporter.url}/probe
    ttl: 1m
    query_keys: [target, module]
  - name: hardware
    path: /hardware/metrics
    upstream: http://127.0.0.1:1/metrics
    ttl: 6h
  - name: pages
    path_prefix: /pages/
    upstream: ${exporter.url}/
    cache: false
`,
    { listen: false },
  );
  closers.push(() => proxy.close());
  return {
    proxy,
    exporter,
    scrape: async (path) => {
      await get(`${proxy.url}${path}`, SCRAPE_HEADERS);
    },
  };
}

/** A page that records every console error and uncaught exception (a CSP violation is one). */
async function open(options: { javaScript?: boolean; phone?: boolean } = {}): Promise<{ page: Page; context: BrowserContext; errors: string[] }> {
  const context = await browser.newContext({
    javaScriptEnabled: options.javaScript !== false,
    viewport: options.phone ? { width: 390, height: 844 } : { width: 1280, height: 900 },
    ...(options.phone ? { deviceScaleFactor: 2, isMobile: true, hasTouch: true } : {}),
  });
  closers.push(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    // An exporter's plain-text answer (a route the landing page links) has no icon of its own.
    if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) errors.push(`${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, context, errors };
}

/** Waits for a condition on the exporter or the proxy, bounded. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const entryRow = (page: Page, key: string) => page.locator(`tr[data-row="${key}"]`);
const NODE_ENTRY = 'node /node/metrics? openmetrics;1.0.0';

test('the status page shows routes and entries; refresh and soft invalidate make the exporter fetch again, invalidate removes the entry, in place', { skip }, async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  await s.scrape('/node/metrics');
  await s.scrape('/probe?target=https://example.org&module=http_2xx');
  await s.scrape('/probe?target=<script>alert(1)</script>&module=http_2xx');
  await s.scrape('/hardware/metrics');
  const { page, errors } = await open();
  await page.goto(`${s.proxy.adminUrl}/`);
  await page.getByRole('heading', { name: 'node', exact: true }).waitFor();
  assert.equal(await entryRow(page, NODE_ENTRY).count(), 1);
  assert.match((await page.locator('[data-live="route/hardware/fetch"]').textContent())!, /unreachable[\s\S]*route hardware: upstream unreachable/);
  assert.equal(await page.getByText('module=http_2xx&target=<script>alert(1)</script>', { exact: true }).count(), 1, 'a query with markup shows as text');
  await page.screenshot({ path: new URL('status-page.png', OUT).pathname, fullPage: true });

  const fetched = s.exporter.count;
  const url = page.url();
  await page.getByRole('button', { name: 'Refresh every entry of route node: fetch again now' }).click();
  await until('the refresh to reach the exporter', () => s.exporter.count === fetched + 1);
  await page.locator('#note', { hasText: 'Refresh every entry of route node: invalidated 1, refreshed 1.' }).waitFor();
  assert.equal(page.url(), url, 'the script answered in place, without navigating');

  const beforeSoft = s.exporter.count;
  await page.getByRole('button', { name: 'Soft invalidate every entry of route node: serve the old copy while one refetch runs' }).click();
  await page.locator('#note', { hasText: 'Soft invalidate every entry of route node: invalidated 1, refetching 1.' }).waitFor();
  await until('the soft invalidation\'s refetch to reach the exporter', () => s.exporter.count === beforeSoft + 1);

  await entryRow(page, NODE_ENTRY).getByRole('button', { name: 'Invalidate entry /node/metrics (all representations)', exact: true }).click();
  await entryRow(page, NODE_ENTRY).waitFor({ state: 'detached' });
  const cached = JSON.parse((await get(`${s.proxy.adminUrl}/cache`)).body.toString()) as Array<{ route: string }>;
  assert.ok(!cached.some((e) => e.route === 'node'));
  assert.deepEqual(errors, [], 'no script error and no CSP violation');
});

test('the numbers refresh in place while the page is open', { skip }, async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  const { page } = await open();
  await page.goto(`${s.proxy.adminUrl}/`);
  const total = page.locator('[data-live="route/node/total"]');
  assert.equal(await total.textContent(), '1');
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  for (let i = 0; i < 4; i++) await s.scrape('/node/metrics');
  await until('the scrape count to update', async () => (await total.textContent()) === '5', 15_000);
  assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'the page was not reloaded');
});

test('with a token: the token form keeps it in sessionStorage, never in the URL; buttons work; a wrong token is refused', { skip }, async () => {
  const s = await setup(TOKEN);
  await s.scrape('/node/metrics');
  const { page, errors } = await open();
  await page.goto(`${s.proxy.adminUrl}/`);
  await page.getByLabel('Token', { exact: true }).fill('wrong');
  await page.getByRole('button', { name: 'Show status' }).click();
  await page.getByText('That token was refused.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  await page.getByLabel('Token', { exact: true }).fill(TOKEN);
  await page.getByRole('button', { name: 'Show status' }).click();
  await page.getByRole('heading', { name: 'node', exact: true }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('scrapecache.adminToken')), TOKEN);
  assert.ok(!page.url().includes(TOKEN));
  assert.ok(!(await page.content()).includes(TOKEN), 'the token is not written into the page');

  // A reload finds the token in sessionStorage.
  await page.reload();
  await page.getByRole('heading', { name: 'node', exact: true }).waitFor();

  const fetched = s.exporter.count;
  await page.getByRole('button', { name: 'Refresh every entry of route node: fetch again now' }).click();
  await until('the refresh to reach the exporter', () => s.exporter.count === fetched + 1);
  await entryRow(page, NODE_ENTRY).getByRole('button', { name: 'Invalidate entry /node/metrics (all representations)', exact: true }).click();
  await entryRow(page, NODE_ENTRY).waitFor({ state: 'detached' });
  assert.ok(!page.url().includes(TOKEN));

  await page.getByRole('button', { name: 'Forget the token' }).click();
  await page.getByLabel('Token', { exact: true }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  // The 401 of the locked page is the only console message Chromium logs.
  assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
});

test('without JavaScript the buttons are forms: refresh and invalidate post, and the page comes back with the result', { skip }, async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  const { page } = await open({ javaScript: false });
  await page.goto(`${s.proxy.adminUrl}/`);
  const fetched = s.exporter.count;
  await page.getByRole('button', { name: 'Refresh every entry of route node: fetch again now' }).click();
  await page.waitForURL(/\/\?result=/);
  assert.equal(s.exporter.count, fetched + 1);
  assert.equal(await page.locator('#note').textContent(), 'Refresh every entry of route node: invalidated 1, refreshed 1.');
  await entryRow(page, NODE_ENTRY).getByRole('button', { name: /^Invalidate entry/ }).click();
  await page.locator('#note', { hasText: 'Invalidate entry /node/metrics: invalidated 1.' }).waitFor();
  assert.equal(await entryRow(page, NODE_ENTRY).count(), 0);
  // The filter is a plain GET form.
  await s.scrape('/probe?target=a');
  await s.scrape('/probe?target=b');
  await page.getByLabel('Filter by route, path, query or representation').fill('target=b');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/filter=target%3Db/);
  assert.equal(await page.locator('tbody[data-region="entries"] tr').count(), 1);
});

test('without JavaScript and with a token: the token form opens the page and a button works', { skip }, async () => {
  const s = await setup(TOKEN);
  await s.scrape('/node/metrics');
  const { page } = await open({ javaScript: false });
  await page.goto(`${s.proxy.adminUrl}/`);
  await page.getByLabel('Token', { exact: true }).fill(TOKEN);
  await page.getByRole('button', { name: 'Show status' }).click();
  await page.getByRole('heading', { name: 'node', exact: true }).waitFor();
  assert.ok(!page.url().includes(TOKEN));
  const fetched = s.exporter.count;
  await page.getByRole('button', { name: 'Refresh every entry of route node: fetch again now' }).click();
  await page.waitForURL(/\/\?result=/);
  assert.equal(s.exporter.count, fetched + 1);
  assert.ok(!page.url().includes(TOKEN));
  assert.equal(await page.locator('#note').textContent(), 'Refresh every entry of route node: invalidated 1, refreshed 1.');
  // The page it comes back to asks for the token again: it cannot send a header.
  await page.getByLabel('Token', { exact: true }).waitFor();
});

test('the landing page links to the routes and to the status page, and both work', { skip }, async () => {
  const s = await setup();
  const { page, errors } = await open();
  await page.goto(`${s.proxy.url}/`);
  await page.getByRole('heading', { name: 'scrapecache', level: 1 }).waitFor();
  await page.screenshot({ path: new URL('landing-page.png', OUT).pathname, fullPage: true });
  await page.getByRole('link', { name: '/node/metrics' }).click();
  await page.waitForURL(`${s.proxy.url}/node/metrics`);
  assert.match((await page.textContent('body'))!, /fake_version/);
  await page.goBack();
  await page.getByRole('link', { name: 'Status page' }).click();
  await page.waitForURL(`${s.proxy.adminUrl}/`);
  await page.getByRole('heading', { name: 'node', exact: true }).waitFor();
  assert.deepEqual(errors, []);
});

test('on a phone-sized screen the pages fit the width, and the keyboard reaches the skip link and the buttons', { skip }, async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  await s.scrape('/probe?target=https://example.org&module=http_2xx');
  const { page } = await open({ phone: true });
  await page.goto(`${s.proxy.adminUrl}/`);
  await page.getByRole('heading', { name: 'node', exact: true }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await page.screenshot({ path: new URL('status-page-phone.png', OUT).pathname, fullPage: true });
  await page.goto(`${s.proxy.url}/`);
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)) <= 0);
  await page.screenshot({ path: new URL('landing-page-phone.png', OUT).pathname, fullPage: true });

  const { page: desk } = await open();
  await desk.goto(`${s.proxy.adminUrl}/`);
  await desk.keyboard.press('Tab');
  assert.equal(await desk.evaluate(() => document.activeElement?.textContent), 'Skip to the entries');
  // Tab onwards to the first route's Invalidate button and press it with the keyboard.
  for (let i = 0; i < 20; i++) {
    await desk.keyboard.press('Tab');
    if ((await desk.evaluate(() => document.activeElement?.getAttribute('aria-label'))) === 'Invalidate every entry of route node') break;
  }
  assert.equal(await desk.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Invalidate every entry of route node');
  await desk.keyboard.press('Enter');
  await desk.locator('#note', { hasText: 'invalidated 1' }).waitFor();
  assert.equal(await desk.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Invalidate every entry of route node', 'focus stays on the button');
});
