// The admin listener (SPEC 4): health and readiness without a token, the bearer token on every
// other call, POST /invalidate and its selections, GET /cache, POST /-/reload. Real proxies and
// counting fake exporters on loopback; every server is closed in after().
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy, type RawResponse, type TestProxy } from './helpers/proxy.js';

const TOKEN = 's3cret-admin-token';
const TEXT_HEADERS = { accept: 'text/plain', 'accept-encoding': 'gzip' };

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function exporter(): Promise<FakeExporter> {
  const e = await startFakeExporter();
  closers.push(() => e.close());
  return e;
}

function head(token: string | undefined): string {
  return `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${token === undefined ? '' : `  token: ${token}\n`}`;
}

function routesYaml(a: FakeExporter, b: FakeExporter, extra = ''): string {
  return `defaults:
  ttl: 5m
routes:
  - name: a
    path: /a/metrics
    upstream: ${a.url}/metrics
  - name: b
    path: /b/metrics
    upstream: ${b.url}/metrics
  - name: multi
    path_prefix: /multi/
    upstream: ${a.url}/
${extra}`;
}

interface Setup {
  proxy: TestProxy;
  a: FakeExporter;
  b: FakeExporter;
  /** Admin call with the right token (when one is configured). */
  admin(path: string, init?: { method?: string; body?: string; headers?: Record<string, string> }): Promise<RawResponse>;
  invalidate(selection?: unknown, query?: string): Promise<RawResponse>;
  scrape(path: string, headers?: Record<string, string>): Promise<RawResponse>;
}

async function setup(options: { token?: string } = {}): Promise<Setup> {
  const a = await exporter();
  const b = await exporter();
  const proxy = await startProxy(head(options.token) + routesYaml(a, b), { listen: false });
  closers.push(() => proxy.close());
  const auth: Record<string, string> = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
  const admin: Setup['admin'] = (path, init = {}) =>
    get(`${proxy.adminUrl}${path}`, { ...auth, ...init.headers }, { method: init.method ?? 'GET', ...(init.body === undefined ? {} : { body: init.body }) });
  return {
    proxy,
    a,
    b,
    admin,
    invalidate: (selection, query = '') => post(`${proxy.adminUrl}/invalidate${query}`, selection, auth),
    scrape: (path, headers = SCRAPE_HEADERS) => get(`${proxy.url}${path}`, headers),
  };
}

function cacheStatus(res: RawResponse): string {
  return String(res.headers['cache-status'] ?? '');
}

function assertHit(res: RawResponse, what: string): void {
  assert.equal(res.status, 200, `${what}: status`);
  assert.ok(cacheStatus(res).startsWith('scrapecache; hit'), `${what}: expected a hit, got Cache-Status "${cacheStatus(res)}"`);
}

function assertMiss(res: RawResponse, what: string): void {
  assert.equal(res.status, 200, `${what}: status`);
  assert.ok(cacheStatus(res).startsWith('scrapecache; fwd=miss'), `${what}: expected a miss, got Cache-Status "${cacheStatus(res)}"`);
}

function jsonOf(res: RawResponse): unknown {
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return JSON.parse(res.body.toString('utf8'));
}

/** Requests the exporter saw for one path (query included or not). */
function seen(e: FakeExporter, path: string): number {
  return e.requests.filter((r) => (r.url ?? '').split('?')[0] === path).length;
}
function seenUrl(e: FakeExporter, pathAndQuery: string): number {
  return e.requests.filter((r) => r.url === pathAndQuery).length;
}

interface CacheRow {
  route: string;
  path: string;
  query: string;
  representation: string;
  bytes: number;
  age_seconds: number;
  ttl_seconds: number;
  hits: number;
}

// ---------------------------------------------------------------------------------------------
// Health, readiness, token

test('/-/healthy answers 200 OK and /-/ready 200 without a token even when a token is configured', async () => {
  const { proxy } = await setup({ token: TOKEN });
  const healthy = await get(`${proxy.adminUrl}/-/healthy`);
  assert.equal(healthy.status, 200);
  assert.equal(healthy.body.toString().trim(), 'OK');
  const ready = await get(`${proxy.adminUrl}/-/ready`);
  assert.equal(ready.status, 200);
  // A wrong token on the probes does not turn them into 401s either.
  assert.equal((await get(`${proxy.adminUrl}/-/healthy`, { authorization: 'Bearer nope' })).status, 200);
  assert.equal((await get(`${proxy.adminUrl}/-/ready`, { authorization: 'Bearer nope' })).status, 200);
});

test('every other admin call without the token or with a wrong one gets 401 with no detail and does nothing', async () => {
  const { proxy, a, scrape } = await setup({ token: TOKEN });
  assertMiss(await scrape('/a/metrics'), 'fill');
  const calls: Array<{ method: string; path: string; body?: string }> = [
    { method: 'GET', path: '/cache' },
    { method: 'GET', path: '/metrics' },
    { method: 'POST', path: '/invalidate', body: '{}' },
    { method: 'POST', path: '/invalidate?route=a' },
    { method: 'POST', path: '/-/reload' },
    { method: 'GET', path: '/no-such-call' },
    { method: 'DELETE', path: '/cache' },
  ];
  const wrong: Array<Record<string, string>> = [
    {},
    { authorization: '' },
    { authorization: 'Bearer' },
    { authorization: 'Bearer ' },
    { authorization: 'Bearer wrong' },
    { authorization: `Bearer ${TOKEN}x` },
    { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    { authorization: TOKEN },
    { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` },
  ];
  for (const call of calls) {
    for (const headers of wrong) {
      const res = await get(`${proxy.adminUrl}${call.path}`, headers, { method: call.method, ...(call.body ? { body: call.body } : {}) });
      const what = `${call.method} ${call.path} with ${JSON.stringify(headers)}`;
      assert.equal(res.status, 401, what);
      assert.equal(res.body.length, 0, `${what}: body must carry no detail, got "${res.body.toString()}"`);
      assert.equal(res.body.toString().includes(TOKEN), false);
    }
  }
  // Nothing was invalidated by the refused calls: the entry is still a hit.
  assertHit(await scrape('/a/metrics'), 'after refused invalidations');
  assert.equal(a.count, 1);
});

test('admin calls with "Authorization: Bearer <token>" are answered', async () => {
  const { admin, invalidate, scrape } = await setup({ token: TOKEN });
  assertMiss(await scrape('/a/metrics'), 'fill');
  const cache = await admin('/cache');
  assert.equal(cache.status, 200);
  assert.equal((jsonOf(cache) as CacheRow[]).length, 1);
  const metrics = await admin('/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.body.toString(), /scrapecache_requests_total/);
  const inv = await invalidate({});
  assert.equal(inv.status, 200);
  assert.deepEqual(jsonOf(inv), { invalidated: 1 });
  assert.equal((await admin('/-/reload', { method: 'POST' })).status, 200);
});

test('accepts the Bearer auth scheme in any letter case (RFC 9110 11.1)', async () => {
  const { proxy } = await setup({ token: TOKEN });
  for (const scheme of ['bearer', 'BEARER']) {
    const res = await get(`${proxy.adminUrl}/cache`, { authorization: `${scheme} ${TOKEN}` });
    assert.equal(res.status, 200, `scheme "${scheme}"`);
  }
});

test('without a configured token admin calls need no Authorization header', async () => {
  const { proxy } = await setup();
  assert.equal((await get(`${proxy.adminUrl}/cache`)).status, 200);
  assert.equal((await get(`${proxy.adminUrl}/metrics`)).status, 200);
});

test('a token changed by reload applies at once: the old one gets 401, the new one works', async () => {
  const { proxy, a, b, admin } = await setup({ token: TOKEN });
  writeFileSync(proxy.file, head('n3w-token') + routesYaml(a, b));
  assert.equal((await admin('/-/reload', { method: 'POST' })).status, 200);
  assert.equal((await admin('/cache')).status, 401);
  assert.equal((await get(`${proxy.adminUrl}/cache`, { authorization: 'Bearer n3w-token' })).status, 200);
});

test('POST /invalidate with a body over 64 KiB answers 413 and drops nothing', async () => {
  const { proxy, a, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'fill');
  const body = JSON.stringify({ route: 'a', padding: 'x'.repeat(70 * 1024) });
  const res = await get(`${proxy.adminUrl}/invalidate`, { 'content-type': 'application/json' }, { method: 'POST', body });
  assert.equal(res.status, 413);
  assertHit(await scrape('/a/metrics'), 'still cached');
  assert.equal(a.count, 1);
});

// ---------------------------------------------------------------------------------------------
// POST /invalidate

test('POST /invalidate with no selection drops every entry and the next scrapes reach the exporters again', async () => {
  const { a, b, invalidate, scrape } = await setup({ token: TOKEN });
  assertMiss(await scrape('/a/metrics'), 'a');
  assertMiss(await scrape('/a/metrics?target=x'), 'a?target=x');
  assertMiss(await scrape('/b/metrics'), 'b');
  assertHit(await scrape('/a/metrics'), 'a before invalidation');
  assert.equal(a.count, 2);
  assert.equal(b.count, 1);

  const res = await invalidate(undefined);
  assert.equal(res.status, 200);
  assert.deepEqual(jsonOf(res), { invalidated: 3 });

  assertMiss(await scrape('/a/metrics'), 'a after');
  assertMiss(await scrape('/a/metrics?target=x'), 'a?target=x after');
  assertMiss(await scrape('/b/metrics'), 'b after');
  assert.equal(a.count, 4);
  assert.equal(b.count, 2);
  // And an empty JSON object selects everything too.
  assert.deepEqual(jsonOf(await invalidate({})), { invalidated: 3 });
  assert.deepEqual(jsonOf(await invalidate({})), { invalidated: 0 });
});

test('POST /invalidate with route drops only that route\'s entries; the other route stays a hit', async () => {
  const { a, b, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'a');
  assertMiss(await scrape('/a/metrics?target=1'), 'a?target=1');
  assertMiss(await scrape('/a/metrics', TEXT_HEADERS), 'a as text');
  assertMiss(await scrape('/b/metrics'), 'b');

  const res = await invalidate({ route: 'a' });
  assert.equal(res.status, 200);
  assert.deepEqual(jsonOf(res), { invalidated: 3 });

  assertHit(await scrape('/b/metrics'), 'b');
  assert.equal(b.count, 1, 'b must not be fetched again');
  assertMiss(await scrape('/a/metrics'), 'a');
  assertMiss(await scrape('/a/metrics?target=1'), 'a?target=1');
  assert.equal(a.count, 5);
});

test('POST /invalidate with an unknown route answers 404 and drops nothing', async () => {
  const { a, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'fill');
  const res = await invalidate({ route: 'nope' });
  assert.equal(res.status, 404);
  assert.match(res.body.toString(), /nope/);
  const viaQuery = await invalidate(undefined, '?route=nope');
  assert.equal(viaQuery.status, 404);
  assertHit(await scrape('/a/metrics'), 'after 404');
  assert.equal(a.count, 1);
});

test('POST /invalidate with path drops the entries of that scrape path only', async () => {
  const { a, invalidate, scrape } = await setup();
  // A prefix route serves many paths: path selects below the route.
  assertMiss(await scrape('/multi/x'), '/multi/x');
  assertMiss(await scrape('/multi/x?target=1'), '/multi/x?target=1');
  assertMiss(await scrape('/multi/x', TEXT_HEADERS), '/multi/x as text');
  assertMiss(await scrape('/multi/y'), '/multi/y');
  assertMiss(await scrape('/a/metrics'), '/a/metrics');
  assert.equal(a.count, 5);

  const res = await invalidate({ path: '/multi/x' });
  assert.equal(res.status, 200);
  assert.deepEqual(jsonOf(res), { invalidated: 3 });

  assertHit(await scrape('/multi/y'), '/multi/y');
  assertHit(await scrape('/a/metrics'), '/a/metrics');
  assert.equal(a.count, 5);
  assertMiss(await scrape('/multi/x'), '/multi/x after');
  assertMiss(await scrape('/multi/x?target=1'), '/multi/x?target=1 after');
  assert.equal(seen(a, '/x'), 5);
  assert.equal(a.count, 7);
});

test('POST /invalidate with a path no route serves answers 404', async () => {
  const { invalidate } = await setup();
  assert.equal((await invalidate({ path: '/nowhere' })).status, 404);
  // path and route that disagree select nothing that exists either.
  assert.equal((await invalidate({ route: 'b', path: '/a/metrics' })).status, 404);
});

test('POST /invalidate with path and query drops that one key in all its representations', async () => {
  const { a, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics?target=1&module=m'), 'key as OpenMetrics');
  const asText = await scrape('/a/metrics?target=1&module=m', TEXT_HEADERS);
  assertMiss(asText, 'key as text');
  assert.match(String(asText.headers['content-type']), /^text\/plain/);
  assertMiss(await scrape('/a/metrics?target=2&module=m'), 'other key');
  assertMiss(await scrape('/a/metrics'), 'query-less key');
  assert.equal(a.count, 4);

  const res = await invalidate({ path: '/a/metrics', query: 'target=1&module=m' });
  assert.equal(res.status, 200);
  assert.deepEqual(jsonOf(res), { invalidated: 2 });

  assertHit(await scrape('/a/metrics?target=2&module=m'), 'other key');
  assertHit(await scrape('/a/metrics'), 'query-less key');
  assert.equal(a.count, 4);
  assertMiss(await scrape('/a/metrics?target=1&module=m'), 'key as OpenMetrics after');
  assertMiss(await scrape('/a/metrics?target=1&module=m', TEXT_HEADERS), 'key as text after');
  assert.equal(a.count, 6);
});

test('POST /invalidate selects a key by its canonical query whatever the parameter order or encoding', async () => {
  const { a, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics?module=http_2xx&target=a.example'), 'fill');
  assertMiss(await scrape('/a/metrics?target=b.example&module=http_2xx'), 'other');

  const res = await invalidate({ path: '/a/metrics', query: 'target=a.example&module=http_2xx' });
  assert.deepEqual(jsonOf(res), { invalidated: 1 });
  assertMiss(await scrape('/a/metrics?module=http_2xx&target=a.example'), 'refetched');
  assertHit(await scrape('/a/metrics?target=b.example&module=http_2xx'), 'other key untouched');

  // Percent-encoding and a leading "?" are normalised too.
  const encoded = await invalidate({ path: '/a/metrics', query: '?target=%61.example&module=http%5F2xx' });
  assert.deepEqual(jsonOf(encoded), { invalidated: 1 });
  assertMiss(await scrape('/a/metrics?module=http_2xx&target=a.example'), 'refetched again');
  assert.equal(seenUrl(a, '/metrics?module=http_2xx&target=a.example') + seenUrl(a, '/metrics?target=a.example&module=http_2xx'), 3);
});

test('POST /invalidate takes the same selections as query parameters', async () => {
  const { a, b, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'a');
  assertMiss(await scrape('/a/metrics?target=1&module=m'), 'a key');
  assertMiss(await scrape('/a/metrics?target=2'), 'a other key');
  assertMiss(await scrape('/b/metrics'), 'b');
  assertMiss(await scrape('/multi/x'), 'multi x');
  assertMiss(await scrape('/multi/y'), 'multi y');

  const byKey = await invalidate(undefined, `?path=/a/metrics&query=${encodeURIComponent('module=m&target=1')}`);
  assert.equal(byKey.status, 200);
  assert.deepEqual(jsonOf(byKey), { invalidated: 1 });
  assertHit(await scrape('/a/metrics?target=2'), 'a other key');

  const byPath = await invalidate(undefined, '?path=/multi/x');
  assert.deepEqual(jsonOf(byPath), { invalidated: 1 });
  assertHit(await scrape('/multi/y'), 'multi y');

  const byRoute = await invalidate(undefined, '?route=a');
  assert.deepEqual(jsonOf(byRoute), { invalidated: 2 });
  assertHit(await scrape('/b/metrics'), 'b');
  assert.equal(b.count, 1);

  const countBefore = a.count;
  assertMiss(await scrape('/a/metrics'), 'a after');
  assertMiss(await scrape('/multi/x'), 'multi x after');
  assert.equal(a.count, countBefore + 2);

  const all = await invalidate(undefined, '');
  // Left: b, /multi/y, and the two refilled just now.
  assert.deepEqual(jsonOf(all), { invalidated: 4 });
});

test('POST /invalidate with refresh: true fetches the dropped query-less entry again at once, so the next scrape is a hit', async () => {
  const { a, b, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'fill');
  assertMiss(await scrape('/b/metrics'), 'b');
  assert.equal(a.count, 1);

  const res = await invalidate({ route: 'a', refresh: true });
  assert.equal(res.status, 200);
  const answer = jsonOf(res) as Record<string, unknown>;
  assert.equal(answer['invalidated'], 1);
  assert.equal(a.count, 2, 'exactly one refetch, done before the answer');

  const next = await scrape('/a/metrics', { accept: SCRAPE_HEADERS.accept });
  assertHit(next, 'after refresh');
  assert.match(next.body.toString(), /fake_version\{path="\/metrics"\} 2\n/, 'serves the refreshed body');
  assert.equal(a.count, 2);
  assertHit(await scrape('/b/metrics'), 'b untouched');
  assert.equal(b.count, 1);

  // The query-parameter spelling does the same.
  const viaQuery = await invalidate(undefined, '?route=a&refresh=true');
  assert.equal((jsonOf(viaQuery) as Record<string, unknown>)['invalidated'], 1);
  assert.equal(a.count, 3);
  assertHit(await scrape('/a/metrics'), 'after refresh via query');
  assert.equal(a.count, 3);
});

test('POST /invalidate with refresh: true does not refetch entries that have a query', async () => {
  const { a, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics?target=1'), 'fill');
  const res = await invalidate({ route: 'a', refresh: true });
  assert.equal((jsonOf(res) as Record<string, unknown>)['invalidated'], 1);
  // Only the route's own path, without a query, is fetched (see the next test).
  assert.deepEqual(a.requests.map((r) => r.url), ['/metrics?target=1', '/metrics']);
  assertMiss(await scrape('/a/metrics?target=1'), 'next scrape fills');
});

test('POST /invalidate with refresh: true after a plain invalidate still fetches the route now, so the next scrape is a hit', async () => {
  const { a, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'fill');
  assert.deepEqual(jsonOf(await invalidate({ route: 'a' })), { invalidated: 1 });
  assert.deepEqual(jsonOf(await invalidate({ route: 'a', refresh: true })), { invalidated: 0, refreshed: 1 });
  assert.equal(a.count, 2);
  assertHit(await scrape('/a/metrics'), 'after refresh');
  assert.equal(a.count, 2);
  // By path, the same; a prefix route has no one path to fetch.
  assert.deepEqual(jsonOf(await invalidate({ path: '/a/metrics' })), { invalidated: 1 });
  assert.deepEqual(jsonOf(await invalidate({ path: '/a/metrics', refresh: true })), { invalidated: 0, refreshed: 1 });
  assertHit(await scrape('/a/metrics'), 'after refresh by path');
  assert.deepEqual(jsonOf(await invalidate({ route: 'multi', refresh: true })), { invalidated: 0, refreshed: 0 });
});

test('POST /invalidate with a malformed JSON body answers 400 and drops nothing', async () => {
  const { proxy, a, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'fill');
  for (const body of ['{', '{"route": }', 'route=a', '[]', '"a"', 'null', '42']) {
    const res = await get(`${proxy.adminUrl}/invalidate`, { 'content-type': 'application/json' }, { method: 'POST', body });
    assert.equal(res.status, 400, `body ${body}`);
    assert.ok(res.body.length > 0, 'says what is wrong');
  }
  assertHit(await scrape('/a/metrics'), 'still cached');
  assert.equal(a.count, 1);
});

test('POST /invalidate with an unknown field or a mistyped one answers 400 naming it', async () => {
  const { a, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'fill');
  const unknown = await invalidate({ rout: 'a' });
  assert.equal(unknown.status, 400);
  assert.match(unknown.body.toString(), /rout/);
  const unknownParam = await invalidate(undefined, '?paths=/a/metrics');
  assert.equal(unknownParam.status, 400);
  assert.match(unknownParam.body.toString(), /paths/);
  assert.equal((await invalidate({ route: 1 })).status, 400);
  assert.equal((await invalidate({ refresh: 'yes' })).status, 400);
  assertHit(await scrape('/a/metrics'), 'still cached');
  assert.equal(a.count, 1);
});

test('admin calls with the wrong method answer 405 with Allow', async () => {
  const { admin } = await setup({ token: TOKEN });
  const cases: Array<[string, string, RegExp]> = [
    ['GET', '/invalidate', /^POST$/],
    ['PUT', '/invalidate', /^POST$/],
    ['POST', '/cache', /^GET\b/],
    ['DELETE', '/metrics', /^GET\b/],
    ['GET', '/-/reload', /\bPOST\b/],
    ['POST', '/-/healthy', /^GET, HEAD$/],
    ['POST', '/-/ready', /^GET, HEAD$/],
  ];
  for (const [method, path, allow] of cases) {
    const res = await admin(path, { method });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.match(String(res.headers['allow']), allow, `${method} ${path}: Allow`);
  }
});

// ---------------------------------------------------------------------------------------------
// GET /cache

test('GET /cache lists every entry with route, path, query, representation, bytes, age, ttl and hits', async () => {
  const { admin, scrape } = await setup({ token: TOKEN });
  const miss = await scrape('/a/metrics');
  assertMiss(miss, 'a');
  for (let i = 0; i < 4; i++) assertHit(await scrape('/a/metrics'), `a hit ${i}`);
  assertMiss(await scrape('/b/metrics?target=t&module=m', TEXT_HEADERS), 'b');
  assertHit(await scrape('/b/metrics?module=m&target=t', TEXT_HEADERS), 'b reordered');

  const res = await admin('/cache');
  assert.equal(res.status, 200);
  const rows = jsonOf(res) as CacheRow[];
  assert.equal(rows.length, 2);
  const a = rows.find((r) => r.route === 'a');
  const b = rows.find((r) => r.route === 'b');
  assert.ok(a && b, JSON.stringify(rows));
  assert.equal(a.path, '/a/metrics');
  assert.equal(a.query, '');
  assert.equal(a.representation, 'openmetrics;1.0.0');
  assert.equal(a.hits, 4);
  assert.equal(a.age_seconds, 0);
  assert.ok(a.ttl_seconds > 290 && a.ttl_seconds <= 300, `ttl_seconds ${a.ttl_seconds}`);
  assert.ok(a.bytes >= miss.body.length, `bytes ${a.bytes} < stored body ${miss.body.length}`);

  assert.equal(b.path, '/b/metrics');
  assert.equal(b.query, 'module=m&target=t');
  assert.equal(b.representation, 'text;0.0.4');
  assert.equal(b.hits, 1);
  for (const row of rows) {
    for (const field of ['route', 'path', 'query', 'representation'] as const) assert.equal(typeof row[field], 'string', field);
    for (const field of ['bytes', 'age_seconds', 'ttl_seconds', 'hits'] as const) assert.ok(Number.isInteger(row[field]), field);
  }

  // Hits keep counting, per entry.
  for (let i = 0; i < 3; i++) assertHit(await scrape('/a/metrics'), `a hit more ${i}`);
  const again = jsonOf(await admin('/cache')) as CacheRow[];
  assert.equal(again.find((r) => r.route === 'a')?.hits, 7);
  assert.equal(again.find((r) => r.route === 'b')?.hits, 1);
});

test('GET /cache lists nothing once the entries are invalidated', async () => {
  const { admin, invalidate, scrape } = await setup();
  assertMiss(await scrape('/a/metrics'), 'fill');
  assert.equal((jsonOf(await admin('/cache')) as CacheRow[]).length, 1);
  await invalidate({});
  assert.deepEqual(jsonOf(await admin('/cache')), []);
});

// ---------------------------------------------------------------------------------------------
// POST /-/reload

test('POST /-/reload with a rewritten config file adds a route and keeps the entries of unchanged routes', async () => {
  const { proxy, a, b, admin, scrape } = await setup({ token: TOKEN });
  const c = await exporter();
  assertMiss(await scrape('/a/metrics'), 'a');
  assert.equal((await scrape('/c/metrics')).status, 404);

  writeFileSync(
    proxy.file,
    head(TOKEN) +
      routesYaml(a, b, `  - name: c\n    path: /c/metrics\n    upstream: ${c.url}/metrics\n`),
  );
  const res = await admin('/-/reload', { method: 'POST' });
  assert.equal(res.status, 200, res.body.toString());

  assertMiss(await scrape('/c/metrics'), 'new route');
  assertHit(await scrape('/c/metrics'), 'new route cached');
  assert.equal(c.count, 1);
  assertHit(await scrape('/a/metrics'), 'unchanged route keeps its entry');
  assert.equal(a.count, 1);
});

test('POST /-/reload drops the entries of a route whose upstream changed, so no scrape is served the old upstream\'s answer', async () => {
  const { proxy, a, b, admin, scrape } = await setup();
  const c = await exporter();
  assertMiss(await scrape('/a/metrics'), 'a');
  assertMiss(await scrape('/b/metrics'), 'b');
  writeFileSync(proxy.file, head(undefined) + routesYaml(a, b).replace(`upstream: ${b.url}/metrics`, `upstream: ${c.url}/metrics`));
  assert.equal((await admin('/-/reload', { method: 'POST' })).status, 200);
  assertMiss(await scrape('/b/metrics'), 'b after its upstream moved');
  assert.equal(c.count, 1);
  assert.equal(b.count, 1);
  assertHit(await scrape('/a/metrics'), 'a unchanged');
});

test('POST /-/reload with a broken config file answers 400 with file:line:column and the old routes keep serving', async () => {
  const { proxy, a, b, admin, scrape } = await setup({ token: TOKEN });
  const c = await exporter();
  assertMiss(await scrape('/a/metrics'), 'a');

  // An unknown key on a known line: routes[3] gets "bogus" at line 1 + head lines + routes lines.
  const good = head(TOKEN) + routesYaml(a, b);
  const goodLines = good.split('\n').length - 1;
  writeFileSync(proxy.file, `${good}  - name: c\n    path: /c/metrics\n    upstream: ${c.url}/metrics\n    bogus: 1\n`);
  const res = await admin('/-/reload', { method: 'POST' });
  assert.equal(res.status, 400);
  const text = res.body.toString();
  assert.ok(text.includes(`${proxy.file}:${goodLines + 4}:5:`), `expected ${proxy.file}:${goodLines + 4}:5: in "${text}"`);
  assert.match(text, /bogus/);

  assertHit(await scrape('/a/metrics'), 'old route');
  assert.equal(a.count, 1);
  assert.equal((await scrape('/c/metrics')).status, 404, 'the broken file\'s route is not added');
  assert.equal((await get(`${proxy.adminUrl}/-/ready`)).status, 200);

  // A YAML syntax error is reported with its position too.
  writeFileSync(proxy.file, `${good}  - name: [unclosed\n`);
  const syntax = await admin('/-/reload', { method: 'POST' });
  assert.equal(syntax.status, 400);
  assert.match(syntax.body.toString(), new RegExp(`${proxy.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
  assertHit(await scrape('/a/metrics'), 'old route after syntax error');
  assert.equal(a.count, 1);
});
