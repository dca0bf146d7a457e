// The pages over HTTP: GET / on both listeners, the status page's buttons as plain form posts
// (what a browser without JavaScript sends), the cross-site refusal, the admin token on the
// page, and the last upstream fetch per route. Real proxies and fake exporters on loopback.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy, type RawResponse, type TestProxy } from './helpers/proxy.js';

const TOKEN = 'page-token-0123';
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

interface Setup {
  proxy: TestProxy;
  exporter: FakeExporter;
  scrape(path: string): Promise<RawResponse>;
  page(path?: string, headers?: Record<string, string>): Promise<string>;
}

async function setup(options: { token?: string; routes?: (e: FakeExporter) => string } = {}): Promise<Setup> {
  const exporter = await startFakeExporter();
  closers.push(() => exporter.close());
  const routes =
    options.routes?.(exporter) ??
    `routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe
  - name: pages
    path_prefix: /pages/
    upstream: ${exporter.url}/
    cache: false
`;
  const head = `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${options.token ? `  token: ${options.token}\n` : ''}`;
  const proxy = await startProxy(head + routes, { listen: false });
  closers.push(() => proxy.close());
  const auth: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  return {
    proxy,
    exporter,
    scrape: (path) => get(`${proxy.url}${path}`, SCRAPE_HEADERS),
    page: async (path = '/', headers = {}) => {
      const res = await get(`${proxy.adminUrl}${path}`, { ...auth, ...headers });
      assert.equal(res.status, 200, res.body.toString());
      return res.body.toString();
    },
  };
}

/** What a browser sends when a form on the status page is submitted without JavaScript. */
const BROWSER_FORM = {
  'content-type': 'application/x-www-form-urlencoded',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'sec-fetch-site': 'same-origin',
};

function submit(proxy: TestProxy, action: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<RawResponse> {
  return get(`${proxy.adminUrl}${action}`, { ...BROWSER_FORM, origin: proxy.adminUrl, ...headers }, { method: 'POST', body: new URLSearchParams(fields).toString() });
}

/** Follows the 303 the way a browser does, and returns the page's note. */
async function noteAfter(s: Setup, res: RawResponse, headers: Record<string, string> = {}): Promise<string> {
  assert.equal(res.status, 303, res.body.toString());
  const location = String(res.headers.location);
  assert.match(location, /^\/\?result=[A-Za-z0-9_-]+$/);
  const page = await get(`${s.proxy.adminUrl}${location}`, headers);
  const note = /<div id="note" class="note[^"]*" role="status" aria-live="polite">([^<]*)<\/div>/.exec(page.body.toString());
  assert.ok(note, 'the page has its note');
  return note[1]!;
}

const entries = async (s: Setup) => JSON.parse((await get(`${s.proxy.adminUrl}/cache`, { authorization: `Bearer ${TOKEN}` })).body.toString()) as Array<{ route: string }>;

test('GET / on the admin listener is the status page: routes, entries, under a CSP that loads nothing from elsewhere', async () => {
  const s = await setup();
  assert.equal((await s.scrape('/node/metrics')).status, 200);
  const res = await get(`${s.proxy.adminUrl}/`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  assert.match(String(res.headers['content-security-policy']), /^default-src 'none'; script-src 'self'; style-src 'self';.* form-action 'self'; base-uri 'none'; frame-ancestors 'none'$/);
  assert.equal(res.headers['cache-control'], 'no-store');
  const page = res.body.toString();
  assert.match(page, /<h3 id="route-node">node<\/h3>/);
  assert.match(page, /<tr data-row="node \/node\/metrics\? openmetrics;1\.0\.0">/);
  assert.ok(!/(src|href)="(https?:)?\/\//.test(page), 'nothing is loaded from another host');
  const headOnly = await get(`${s.proxy.adminUrl}/`, {}, { method: 'HEAD' });
  assert.equal(headOnly.status, 200);
  assert.equal(headOnly.body.length, 0);
});

test('the page script and stylesheet are served without a token, typed, and unsniffable', async () => {
  const s = await setup({ token: TOKEN });
  const js = await get(`${s.proxy.adminUrl}/static/status-page.js`);
  assert.equal(js.status, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['x-content-type-options'], 'nosniff');
  assert.match(js.body.toString(), /sessionStorage/);
  const css = await get(`${s.proxy.adminUrl}/static/scrapecache.css`);
  assert.equal(css.status, 200);
  assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  assert.equal((await get(`${s.proxy.adminUrl}/static/other.js`)).status, 401, 'nothing else under /static/ skips the token');
  // A tab opened again revalidates them (no-cache) and is told they did not change.
  for (const [path, first] of [['/static/status-page.js', js], ['/static/scrapecache.css', css]] as const) {
    const etag = String(first.headers['etag']);
    assert.match(etag, /^"[A-Za-z0-9_-]+"$/, `${path} has a strong ETag`);
    assert.equal(first.headers['cache-control'], 'no-cache');
    const again = await get(`${s.proxy.adminUrl}${path}`, { 'if-none-match': `"stale", ${etag}` });
    assert.equal(again.status, 304, path);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers['etag'], etag);
    assert.equal((await get(`${s.proxy.adminUrl}${path}`, { 'if-none-match': '"stale"' })).status, 200, `${path}: another validator gets the body`);
  }
  assert.notEqual(js.headers['etag'], css.headers['etag']);
});

test('an invalidate form posted without JavaScript drops the route and answers 303 back to the page with the result', async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  await s.scrape('/probe?target=a');
  const note = await noteAfter(s, await submit(s.proxy, '/invalidate', { route: 'node' }));
  assert.equal(note, 'Invalidate every entry of route node: invalidated 1.');
  assert.deepEqual((await entries(s)).map((e) => e.route), ['probe']);
});

test('a refresh form fetches the entry again at once, and the exporter sees one more request', async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  const before = s.exporter.count;
  const note = await noteAfter(s, await submit(s.proxy, '/invalidate?refresh=true', { route: 'node', path: '/node/metrics', query: '' }));
  assert.equal(note, 'Refresh entry /node/metrics: invalidated 1, refreshed 1.');
  assert.equal(s.exporter.count, before + 1);
  assert.match(String((await s.scrape('/node/metrics')).headers['cache-status']), /^scrapecache; hit/);
});

test('a soft invalidate form keeps the old copy served while one refetch runs, and the page says so', async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  const fetched = s.exporter.count;
  const release = s.exporter.hold();
  try {
    const note = await noteAfter(s, await submit(s.proxy, '/invalidate?soft=true', { route: 'node' }));
    assert.equal(note, 'Soft invalidate every entry of route node: invalidated 1, refetching 1.');
    const during = await s.scrape('/node/metrics');
    assert.match(String(during.headers['cache-status']), /^scrapecache; hit; fwd=stale/, 'the old copy, at once, while the exporter is held');
    assert.equal(s.exporter.count, fetched + 1, 'one refetch');
  } finally {
    release();
  }
});

test('a form naming an unknown route shows the API\'s 404 message on the page, not a crash', async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  const note = await noteAfter(s, await submit(s.proxy, '/invalidate', { route: '<b>nope</b>' }));
  assert.equal(note, 'Refused (HTTP 404): unknown route &quot;&lt;b&gt;nope&lt;/b&gt;&quot;');
  assert.equal((await entries(s)).length, 1, 'nothing dropped');
  const bad = await noteAfter(s, await submit(s.proxy, '/invalidate', { route: 'node', bogus: '1' }));
  assert.match(bad, /^Refused \(HTTP 400\): unknown field &quot;bogus&quot;/);
});

test('a reload form shows the reload\'s error on the page, and the page says the last reload failed', async () => {
  const s = await setup();
  writeFileSync(s.proxy.file, 'listen: [oops\n');
  const note = await noteAfter(s, await submit(s.proxy, '/-/reload', {}));
  assert.match(note, /^Reload refused, the running config stays: .*proxy\.yaml:\d+:\d+: /);
  const page = await s.page();
  assert.match(page, /last reload failed<\/span>, the running config stays/);
  assert.match(page, /<p class="error-text">[^<]*proxy\.yaml:\d+:\d+: /);
});

test('admin POSTs from another site are refused with 403 and change nothing; curl and same-origin pages are not', async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  const crossSite: Array<Record<string, string>> = [
    { 'sec-fetch-site': 'cross-site' },
    // Another port of the same host (the scrape listener's pass-through pages) is another origin.
    { 'sec-fetch-site': 'same-site' },
    { 'sec-fetch-site': '', origin: 'http://evil.example' },
    { origin: 'http://evil.example' },
    { origin: 'null' },
  ];
  for (const headers of crossSite) {
    const h = { ...headers };
    if (h['sec-fetch-site'] === '') delete h['sec-fetch-site'];
    const res = await get(`${s.proxy.adminUrl}/invalidate`, { 'content-type': 'application/x-www-form-urlencoded', ...h }, { method: 'POST', body: 'route=node' });
    assert.equal(res.status, 403, JSON.stringify(headers));
    assert.equal(res.body.toString(), 'cross-site request refused\n');
    assert.equal((await get(`${s.proxy.adminUrl}/-/reload`, h, { method: 'POST' })).status, 403);
  }
  assert.equal((await entries(s)).length, 1, 'nothing was dropped');
  // A text/plain body (what a cross-site form or no-cors fetch can send) is refused the same way.
  const plain = await get(`${s.proxy.adminUrl}/invalidate`, { 'content-type': 'text/plain', origin: 'http://evil.example' }, { method: 'POST', body: '{"route":"node"}' });
  assert.equal(plain.status, 403);
  // Same origin by Origin alone (a browser without Sec-Fetch-Site), and curl, which sends neither.
  const host = s.proxy.adminUrl.replace('http://', '');
  const same = await get(`${s.proxy.adminUrl}/invalidate`, { 'content-type': 'application/json', origin: `http://${host}` }, { method: 'POST', body: '{"route":"node"}' });
  assert.equal(same.status, 200);
  assert.equal((await post(`${s.proxy.adminUrl}/invalidate`, { route: 'probe' })).status, 200);
  // The page script's own header, which no other origin can send without a preflight this
  // listener never grants: behind a proxy that rewrites Host, Origin no longer matches.
  await s.scrape('/node/metrics');
  const fromScript = await get(`${s.proxy.adminUrl}/invalidate`, { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://admin.example', 'x-scrapecache-page': '1' }, { method: 'POST', body: 'route=node' });
  assert.equal(fromScript.status, 200);
  const preflight = await get(`${s.proxy.adminUrl}/invalidate`, { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-scrapecache-page' }, { method: 'OPTIONS' });
  assert.ok(!Object.keys(preflight.headers).some((h) => h.startsWith('access-control-')), 'no CORS preflight is ever granted');
});

test('curl -d with a JSON body (sent as a form content type) and plain form bodies from scripts still get JSON', async () => {
  const s = await setup();
  await s.scrape('/node/metrics');
  await s.scrape('/probe?target=a');
  const json = await get(`${s.proxy.adminUrl}/invalidate`, { 'content-type': 'application/x-www-form-urlencoded' }, { method: 'POST', body: '{"route": "node"}' });
  assert.equal(json.status, 200);
  assert.deepEqual(JSON.parse(json.body.toString()), { invalidated: 1 });
  const form = await get(`${s.proxy.adminUrl}/invalidate`, { 'content-type': 'application/x-www-form-urlencoded' }, { method: 'POST', body: 'path=%2Fprobe&query=target%3Da' });
  assert.equal(form.status, 200);
  assert.deepEqual(JSON.parse(form.body.toString()), { invalidated: 1 });
});

test('with a token, GET / without it is the token form (401, no data); with the header or the token form it is the page', async () => {
  const s = await setup({ token: TOKEN });
  await s.scrape('/node/metrics');
  const locked = await get(`${s.proxy.adminUrl}/`);
  assert.equal(locked.status, 401);
  assert.match(locked.body.toString(), /<form id="token-form" method="post" action="\/"/);
  assert.ok(!locked.body.toString().includes('/node/metrics'), 'no route or entry without the token');
  assert.match(await s.page('/'), /<tr data-row="node \/node\/metrics\? openmetrics;1\.0\.0">/);
  // The token form without JavaScript: the page comes back with the token in its forms' bodies.
  const opened = await submit(s.proxy, '/', { token: TOKEN });
  assert.equal(opened.status, 200);
  assert.match(opened.body.toString(), new RegExp(`<input type="hidden" name="token" value="${TOKEN}">`));
  const wrong = await submit(s.proxy, '/', { token: 'wrong' });
  assert.equal(wrong.status, 401);
  assert.match(wrong.body.toString(), /That token was refused/);
  assert.ok(!wrong.body.toString().includes('/node/metrics'));
});

test('with a token, a form carrying it invalidates; one without it or with a wrong one changes nothing', async () => {
  const s = await setup({ token: TOKEN });
  await s.scrape('/node/metrics');
  const refused = await noteAfter(s, await submit(s.proxy, '/invalidate', { route: 'node', token: 'wrong' }));
  assert.equal(refused, 'The admin token was refused: enter it again.');
  assert.equal((await submit(s.proxy, '/invalidate', { route: 'node' }, { accept: '*/*' })).status, 401, 'an API client gets the plain 401');
  assert.equal((await entries(s)).length, 1);
  const done = await noteAfter(s, await submit(s.proxy, '/invalidate', { route: 'node', token: TOKEN }));
  assert.equal(done, 'Invalidate every entry of route node: invalidated 1.');
  assert.equal((await entries(s)).length, 0);
});

test('the status page shows each route\'s last upstream fetch: status, duration, when, and the error text', async () => {
  const s = await setup({
    routes: (e) => `routes:
  - name: node
    path: /node/metrics
    upstream: ${e.url}/metrics
  - name: gone
    path: /gone
    upstream: http://127.0.0.1:1/metrics
`,
  });
  await s.scrape('/node/metrics');
  assert.equal((await s.scrape('/gone')).status, 502);
  const page = await s.page();
  assert.match(page, /data-live="route\/node\/fetch"><span class="badge good">HTTP 200<\/span>\s*in \d+ ms,\s*<time datetime="\d{4}-\d\d-\d\dT[^"]+" title="[^"]+">\d+ s ago<\/time>/);
  assert.match(page, /data-live="route\/gone\/fetch"><span class="badge bad">unreachable<\/span>[\s\S]*?<p class="error-text">route gone: upstream unreachable[^<]*<\/p>/);
});

test('an upstream error body with markup shows on the status page as text', async () => {
  const upstream = createServer((_req, res) => {
    res.writeHead(500, { 'Content-Type': 'text/html' });
    res.end('<script>alert(1)</script><b>collector failed</b>');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => upstream.close(() => r())));
  const port = (upstream.address() as AddressInfo).port;
  const s = await setup({ routes: () => `routes:\n  - name: html\n    path: /html\n    upstream: http://127.0.0.1:${port}/metrics\n` });
  assert.equal((await s.scrape('/html')).status, 500);
  const page = await s.page();
  assert.match(page, /data-live="route\/html\/fetch"><span class="badge bad">HTTP 500<\/span>[\s\S]*?<p class="error-text">&lt;script&gt;alert\(1\)&lt;\/script&gt;&lt;b&gt;collector failed&lt;\/b&gt;<\/p>/);
  assert.ok(!page.includes('<script>alert'));
});

test('GET / on the scrape listener is the landing page: routes with links, and the status page link from this host', async () => {
  const s = await setup();
  const res = await get(`${s.proxy.url}/`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-security-policy']), /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; img-src data:; form-action 'none'/);
  const page = res.body.toString();
  assert.match(page, /<a href="\/node\/metrics"><code>\/node\/metrics<\/code><\/a>/);
  assert.match(page, /<code>\/pages\/<\/code>…/);
  assert.ok(page.includes(`<a href="http://127.0.0.1:${s.proxy.app.adminAddress.port}/">Status page</a>`));
  assert.equal((await get(`${s.proxy.url}/?x=1`)).status, 200, 'a query on / is still the landing page');
  assert.equal((await get(`${s.proxy.url}/`, {}, { method: 'HEAD' })).body.length, 0);
});

test('only / exactly is the landing page: other unknown paths and other methods stay 404', async () => {
  const s = await setup();
  for (const path of ['/index.html', '/status', '//', '/static/status-page.js', '/static/scrapecache.css']) {
    const res = await get(`${s.proxy.url}${path}`);
    assert.equal(res.status, 404, path);
    assert.equal(res.body.toString(), 'no route for this path\n');
  }
  assert.equal((await get(`${s.proxy.url}/`, {}, { method: 'POST' })).status, 404);
});

test('a route on / is served as a route, not hidden by the landing page', async () => {
  const s = await setup({ routes: (e) => `routes:\n  - name: root\n    path: /\n    upstream: ${e.url}/metrics\n` });
  const res = await s.scrape('/');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['cache-status']), /^scrapecache; fwd=miss; stored/);
});
