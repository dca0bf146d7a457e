// Self-metrics (SPEC 5) as scraped from the admin listener's GET /metrics: request outcomes,
// upstream codes and durations, store gauges, evictions, invalidations, reload state, label
// cardinality, and promtool's lint. Real proxies and counting fake exporters on loopback.
import { newScrapeCache } from './helpers/scrape-cache.js';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { startApp } from '../src/app.js';
import type { ScrapeCache, ScrapeTarget } from '../src/cache/scrape-cache.js';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { Metrics } from '../src/metrics.js';
import { createLogger } from '../src/log.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy, type RawResponse, type TestProxy } from './helpers/proxy.js';
import { TestClock } from './helpers/test-clock.js';

const PROMTOOL = '/usr/bin/promtool';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function exporter(): Promise<FakeExporter> {
  const e = await startFakeExporter();
  closers.push(() => e.close());
  return e;
}

async function proxyFor(yaml: string, clock?: TestClock): Promise<TestProxy> {
  const proxy = await startProxy(yaml, clock ? { clock } : {});
  closers.push(() => proxy.close());
  return proxy;
}

function routesYaml(a: FakeExporter, b: FakeExporter, pages: FakeExporter): string {
  return `defaults:
  ttl: 5m
routes:
  - name: a
    path: /a/metrics
    upstream: ${a.url}/metrics
  - name: b
    path: /b/metrics
    upstream: ${b.url}/metrics
  - name: pages
    path_prefix: /pages/
    upstream: ${pages.url}/
    cache: false
`;
}

async function setup(clock?: TestClock): Promise<{ proxy: TestProxy; a: FakeExporter; b: FakeExporter; pages: FakeExporter }> {
  const a = await exporter();
  const b = await exporter();
  const pages = await exporter();
  const proxy = await proxyFor(routesYaml(a, b, pages), clock);
  return { proxy, a, b, pages };
}

const scrape = (proxy: TestProxy, path: string, headers: Record<string, string> = SCRAPE_HEADERS): Promise<RawResponse> =>
  get(`${proxy.url}${path}`, headers);

// ---------------------------------------------------------------------------------------------
// A small parser for the Prometheus text exposition format: `name{labels} value`.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function unescapeLabel(text: string): string {
  return text.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(match, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const labelText = match[2] ?? '';
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;
    let consumed = 0;
    for (let m = labelRe.exec(labelText); m; m = labelRe.exec(labelText)) {
      labels[m[1]!] = unescapeLabel(m[2]!);
      consumed = labelRe.lastIndex;
    }
    assert.equal(consumed, labelText.length, `unparseable labels: ${line}`);
    const raw = match[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    assert.ok(raw === 'NaN' || !Number.isNaN(value), `unparseable value: ${line}`);
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

class Exposition {
  constructor(
    readonly text: string,
    readonly samples: Sample[],
  ) {}

  /** The one sample with this name and exactly these labels; undefined when there is none. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const wanted = Object.entries(labels);
    const found = this.samples.filter(
      (s) => s.name === name && Object.keys(s.labels).length === wanted.length && wanted.every(([k, v]) => s.labels[k] === v),
    );
    assert.ok(found.length <= 1, `${name}${JSON.stringify(labels)} matches ${found.length} samples`);
    return found[0]?.value;
  }

  /** Like value, but the series must exist. */
  must(name: string, labels: Record<string, string> = {}): number {
    const v = this.value(name, labels);
    assert.notEqual(v, undefined, `no sample ${name}${JSON.stringify(labels)} in:\n${this.text.split('\n').filter((l) => l.startsWith(name)).join('\n')}`);
    return v!;
  }

  /** A missing series of a labelled counter counts as 0. */
  count(name: string, labels: Record<string, string>): number {
    return this.value(name, labels) ?? 0;
  }

  named(name: string): Sample[] {
    return this.samples.filter((s) => s.name === name);
  }
}

async function scrapeMetrics(proxy: TestProxy): Promise<Exposition> {
  const res = await get(`${proxy.adminUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  const text = res.body.toString('utf8');
  return new Exposition(text, parseExposition(text));
}

const REQUESTS = 'scrapecache_requests_total';
const UPSTREAM = 'scrapecache_upstream_requests_total';
const DURATION = 'scrapecache_upstream_request_duration_seconds';

function requests(m: Exposition, route: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const cache of ['hit', 'miss', 'collapsed', 'stale', 'bypass']) out[cache] = m.count(REQUESTS, { route, cache });
  return out;
}

test('the exposition parser reads names, escaped labels and special values', () => {
  const samples = parseExposition('# HELP x y\nx{a="1",b="q\\"uote\\\\"} 2.5\ny 3\nz{le="+Inf"} +Inf\n');
  assert.deepEqual(samples, [
    { name: 'x', labels: { a: '1', b: 'q"uote\\' }, value: 2.5 },
    { name: 'y', labels: {}, value: 3 },
    { name: 'z', labels: { le: '+Inf' }, value: Infinity },
  ]);
});

// ---------------------------------------------------------------------------------------------
// scrapecache_requests_total

test('scrapecache_requests_total has every outcome series of every configured route at 0 from the start', async () => {
  const { proxy, a, b, pages } = await setup();
  const check = async (routes: string[]) => {
    const m = await scrapeMetrics(proxy);
    for (const route of routes) {
      for (const cache of ['hit', 'miss', 'collapsed', 'stale', 'bypass']) assert.equal(m.value(REQUESTS, { route, cache }), 0, `${REQUESTS}{route="${route}",cache="${cache}"}`);
    }
  };
  await check(['a', 'b', 'pages']);
  // And a route added by reload gets its series at reload, before its first request.
  const c = await exporter();
  writeFileSync(
    proxy.file,
    `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${routesYaml(a, b, pages)}  - name: c\n    path: /c/metrics\n    upstream: ${c.url}/metrics\n`,
  );
  assert.equal((await post(`${proxy.adminUrl}/-/reload`)).status, 200);
  await check(['c']);
});

test('scrapecache_requests_total counts a miss, then hits, by route', async () => {
  const { proxy, a } = await setup();
  const before = await scrapeMetrics(proxy);
  for (const route of ['a', 'b', 'pages']) assert.deepEqual(requests(before, route), { hit: 0, miss: 0, collapsed: 0, stale: 0, bypass: 0 });

  await scrape(proxy, '/a/metrics');
  for (let i = 0; i < 4; i++) await scrape(proxy, '/a/metrics');
  assert.equal(a.count, 1);
  const m = await scrapeMetrics(proxy);
  assert.deepEqual(requests(m, 'a'), { hit: 4, miss: 1, collapsed: 0, stale: 0, bypass: 0 });
  assert.deepEqual(requests(m, 'b'), { hit: 0, miss: 0, collapsed: 0, stale: 0, bypass: 0 });
});

test('scrapecache_requests_total counts a burst on an empty key as one miss and the rest collapsed', async () => {
  const { proxy, b } = await setup();
  b.delayMs = 200;
  const burst = await Promise.all(Array.from({ length: 10 }, () => scrape(proxy, '/b/metrics')));
  for (const res of burst) assert.equal(res.status, 200);
  assert.equal(b.count, 1, 'one upstream fetch for the whole burst');
  const statuses = burst.map((r) => String(r.headers['cache-status']));
  assert.equal(statuses.filter((s) => s.includes('collapsed')).length, 9, statuses.join('\n'));
  const m = await scrapeMetrics(proxy);
  assert.deepEqual(requests(m, 'b'), { hit: 0, miss: 1, collapsed: 9, stale: 0, bypass: 0 });
  assert.equal(m.must(UPSTREAM, { route: 'b', code: '200' }), 1);
});

test('scrapecache_requests_total counts pass-through requests as bypass, and their upstream answers', async () => {
  const { proxy, pages } = await setup();
  for (const path of ['/pages/one', '/pages/two', '/pages/one']) {
    const res = await scrape(proxy, path);
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-status'], 'scrapecache; fwd=bypass');
  }
  assert.equal(pages.count, 3);
  const m = await scrapeMetrics(proxy);
  assert.deepEqual(requests(m, 'pages'), { hit: 0, miss: 0, collapsed: 0, stale: 0, bypass: 3 });
  assert.equal(m.must(UPSTREAM, { route: 'pages', code: '200' }), 3);
  assert.equal(m.must(`${DURATION}_count`, { route: 'pages' }), 3);
});

test.skip('scrapecache_requests_total counts stale serves (issue 3: stale serving is covered there)', () => {});

// ---------------------------------------------------------------------------------------------
// scrapecache_upstream_requests_total and the duration histogram

test('scrapecache_upstream_requests_total counts 200s, upstream statuses and error kinds by route', async () => {
  const { proxy, a, b } = await setup();
  assert.equal((await scrape(proxy, '/a/metrics')).status, 200);
  assert.equal((await scrape(proxy, '/a/metrics?target=2')).status, 200);

  b.fault = 'status-500';
  assert.equal((await scrape(proxy, '/b/metrics')).status, 500);
  assert.equal((await scrape(proxy, '/b/metrics')).status, 500, 'a 500 is not cached: fetched again');
  b.fault = 'reset';
  assert.equal((await scrape(proxy, '/b/metrics?x=1')).status, 502);
  assert.equal(b.count, 3);
  assert.equal(a.count, 2);

  const m = await scrapeMetrics(proxy);
  assert.equal(m.must(UPSTREAM, { route: 'a', code: '200' }), 2);
  assert.equal(m.must(UPSTREAM, { route: 'b', code: '500' }), 2);
  assert.equal(m.count(UPSTREAM, { route: 'b', code: '200' }), 0);
  const bErrors = m.named(UPSTREAM).filter((s) => s.labels['route'] === 'b' && s.labels['code'] !== '500');
  assert.equal(bErrors.length, 1, `one error kind for the reset: ${JSON.stringify(bErrors)}`);
  const kind = bErrors[0]!.labels['code']!;
  assert.doesNotMatch(kind, /^\d+$/, 'a reset is an error kind, not an HTTP status');
  assert.equal(kind, 'reset');
  assert.equal(bErrors[0]!.value, 1);
  // Failed answers are misses for the clients that got them.
  assert.deepEqual(requests(m, 'b'), { hit: 0, miss: 3, collapsed: 0, stale: 0, bypass: 0 });
});

test('scrapecache_requests_total counts a burst that fails together as one miss and the rest collapsed', async () => {
  const b = await exporter();
  const a = await exporter();
  const pages = await exporter();
  const proxy = await proxyFor(routesYaml(a, b, pages).replace(`upstream: ${b.url}/metrics`, `upstream: ${b.url}/metrics\n    timeout: 300ms`));
  b.fault = 'hang';
  const burst = await Promise.all(Array.from({ length: 10 }, () => scrape(proxy, '/b/metrics')));
  for (const res of burst) assert.equal(res.status, 504);
  assert.equal(b.count, 1, 'one upstream fetch for the whole burst');
  const m = await scrapeMetrics(proxy);
  assert.equal(m.must(UPSTREAM, { route: 'b', code: 'timeout' }), 1);
  // The same accounting as a burst that succeeds: the requests that went upstream are misses.
  assert.deepEqual(requests(m, 'b'), { hit: 0, miss: 1, collapsed: 9, stale: 0, bypass: 0 });
});

test('a failed upstream fetch is observed in the duration histogram with the time it took, not as 0 s', async () => {
  const b = await exporter();
  const a = await exporter();
  const pages = await exporter();
  const proxy = await proxyFor(routesYaml(a, b, pages).replace(`upstream: ${b.url}/metrics`, `upstream: ${b.url}/metrics\n    timeout: 300ms`));
  b.fault = 'hang';
  assert.equal((await scrape(proxy, '/b/metrics')).status, 504);
  const m = await scrapeMetrics(proxy);
  assert.equal(m.must(`${DURATION}_count`, { route: 'b' }), 1);
  const sum = m.must(`${DURATION}_sum`, { route: 'b' });
  assert.ok(sum >= 0.25, `a 300 ms timeout observed as ${sum} s`);
  assert.equal(m.must(`${DURATION}_bucket`, { route: 'b', le: '0.1' }), 0);
});

test('the upstream duration histogram observes every upstream fetch once, per route', async () => {
  const { proxy, a, b } = await setup();
  a.delayMs = 120;
  await scrape(proxy, '/a/metrics');
  await scrape(proxy, '/a/metrics'); // hit: no observation
  await scrape(proxy, '/a/metrics?target=1');
  await scrape(proxy, '/b/metrics');
  assert.equal(a.count, 2);
  assert.equal(b.count, 1);

  const m = await scrapeMetrics(proxy);
  assert.equal(m.must(`${DURATION}_count`, { route: 'a' }), 2);
  assert.equal(m.must(`${DURATION}_count`, { route: 'b' }), 1);
  assert.equal(m.must(`${DURATION}_bucket`, { route: 'a', le: '+Inf' }), 2);
  const sumA = m.must(`${DURATION}_sum`, { route: 'a' });
  assert.ok(sumA >= 0.2 && sumA < 5, `sum for two ~120 ms fetches: ${sumA}`);
  assert.equal(m.must(`${DURATION}_bucket`, { route: 'a', le: '0.1' }), 0, 'both fetches took over 100 ms');
  // Buckets are cumulative.
  const buckets = m.named(`${DURATION}_bucket`).filter((s) => s.labels['route'] === 'a');
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
});

// ---------------------------------------------------------------------------------------------
// Store gauges, invalidations, evictions

test('scrapecache_cache_entries and scrapecache_cache_bytes follow the store per route', async () => {
  const { proxy } = await setup();
  let m = await scrapeMetrics(proxy);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'a' }), 0);
  assert.equal(m.must('scrapecache_cache_bytes', { route: 'a' }), 0);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'b' }), 0);

  const bodies = [
    await scrape(proxy, '/a/metrics'),
    await scrape(proxy, '/a/metrics?target=1'),
    await scrape(proxy, '/a/metrics', { accept: 'text/plain', 'accept-encoding': 'gzip' }),
  ];
  await scrape(proxy, '/b/metrics');
  await scrape(proxy, '/pages/x'); // pass-through: never stored
  const stored = bodies.reduce((n, r) => n + r.body.length, 0);

  m = await scrapeMetrics(proxy);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'a' }), 3);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'b' }), 1);
  assert.equal(m.value('scrapecache_cache_entries', { route: 'pages' }) ?? 0, 0);
  const bytesA = m.must('scrapecache_cache_bytes', { route: 'a' });
  assert.ok(bytesA > stored, `cache_bytes ${bytesA} must exceed the stored bodies (${stored})`);
  assert.equal(m.value('scrapecache_cache_bytes', { route: 'pages' }) ?? 0, 0);

  // The gauges agree with GET /cache.
  const listed = JSON.parse((await get(`${proxy.adminUrl}/cache`)).body.toString()) as Array<{ route: string; bytes: number }>;
  assert.equal(bytesA, listed.filter((e) => e.route === 'a').reduce((n, e) => n + e.bytes, 0));

  // A client that needs identity adds a converted variant: the bytes grow, the entries do not.
  await scrape(proxy, '/a/metrics', { accept: SCRAPE_HEADERS.accept });
  m = await scrapeMetrics(proxy);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'a' }), 3);
  assert.ok(m.must('scrapecache_cache_bytes', { route: 'a' }) > bytesA, 'the identity variant is accounted');

  await post(`${proxy.adminUrl}/invalidate`, { route: 'a' });
  m = await scrapeMetrics(proxy);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'a' }), 0);
  assert.equal(m.must('scrapecache_cache_bytes', { route: 'a' }), 0);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'b' }), 1);
});

test('scrapecache_invalidations_total counts the entries POST /invalidate dropped', async () => {
  const { proxy } = await setup();
  assert.equal((await scrapeMetrics(proxy)).must('scrapecache_invalidations_total'), 0);
  await scrape(proxy, '/a/metrics');
  await scrape(proxy, '/a/metrics?target=1');
  await scrape(proxy, '/b/metrics');

  const inv = (body: unknown) => post(`${proxy.adminUrl}/invalidate`, body);
  assert.deepEqual(JSON.parse((await inv({ route: 'a' })).body.toString()), { invalidated: 2 });
  assert.equal((await scrapeMetrics(proxy)).must('scrapecache_invalidations_total'), 2);
  await inv({ route: 'a' }); // nothing left to drop
  assert.equal((await scrapeMetrics(proxy)).must('scrapecache_invalidations_total'), 2);
  assert.equal((await inv({ route: 'nope' })).status, 404);
  assert.equal((await scrapeMetrics(proxy)).must('scrapecache_invalidations_total'), 2);
  await inv({});
  assert.equal((await scrapeMetrics(proxy)).must('scrapecache_invalidations_total'), 3);
});

test('scrapecache_cache_evictions_total rises when cache.max_bytes cannot hold every key', async () => {
  const a = await exporter();
  const b = await exporter();
  const pages = await exporter();
  const proxy = await proxyFor(`cache:\n  max_bytes: 20KiB\n${routesYaml(a, b, pages)}`);
  a.padding = 8000; // ~9 KB per entry once the identity variant exists: two fit in 20 KiB
  const identity = { accept: SCRAPE_HEADERS.accept };
  assert.equal((await scrapeMetrics(proxy)).must('scrapecache_cache_evictions_total'), 0);
  for (let i = 0; i < 6; i++) assert.equal((await scrape(proxy, `/a/metrics?target=${i}`, identity)).status, 200);

  const m = await scrapeMetrics(proxy);
  const entries = m.must('scrapecache_cache_entries', { route: 'a' });
  const evictions = m.must('scrapecache_cache_evictions_total');
  assert.ok(entries < 6, `only some of the 6 keys fit, got ${entries}`);
  assert.equal(evictions, 6 - entries, 'every key not held was evicted');
  assert.ok(m.must('scrapecache_cache_bytes', { route: 'a' }) <= 20 * 1024, 'the store stays under max_bytes');

  // The first key was the least recently used: gone, so the next scrape is a miss.
  const again = await scrape(proxy, '/a/metrics?target=0', identity);
  assert.match(String(again.headers['cache-status']), /fwd=miss/);
  assert.equal(a.count, 7);
  assert.ok((await scrapeMetrics(proxy)).must('scrapecache_cache_evictions_total') > evictions);
});

// ---------------------------------------------------------------------------------------------
// Reload state

test('scrapecache_config_last_reload_successful is 1 at start, 0 after a failed reload, 1 after a good one; the timestamp is recent', async () => {
  const startedAt = Math.floor(Date.now() / 1000);
  const clock = new TestClock();
  const { proxy, a, b, pages } = await setup(clock);
  const reload = () => post(`${proxy.adminUrl}/-/reload`);
  let m = await scrapeMetrics(proxy);
  assert.equal(m.must('scrapecache_config_last_reload_successful'), 1);
  const ts0 = m.must('scrapecache_config_last_reload_success_timestamp_seconds');
  assert.ok(ts0 >= startedAt - 1 && ts0 <= Date.now() / 1000 + 1, `timestamp ${ts0} is not recent (started ${startedAt})`);

  clock.advance(1100); // the timestamp has whole-second resolution
  writeFileSync(proxy.file, 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nroutes: [\n');
  assert.equal((await reload()).status, 400);
  m = await scrapeMetrics(proxy);
  assert.equal(m.must('scrapecache_config_last_reload_successful'), 0);
  assert.equal(m.must('scrapecache_config_last_reload_success_timestamp_seconds'), ts0, 'a failed reload keeps the last success time');

  writeFileSync(proxy.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${routesYaml(a, b, pages)}`);
  assert.equal((await reload()).status, 200);
  m = await scrapeMetrics(proxy);
  assert.equal(m.must('scrapecache_config_last_reload_successful'), 1);
  const ts1 = m.must('scrapecache_config_last_reload_success_timestamp_seconds');
  assert.ok(ts1 > ts0, `a good reload moves the timestamp (${ts0} -> ${ts1})`);
  assert.ok(Math.abs(ts1 - Date.now() / 1000) < 5);
});

test('a route added by reload gets its series; a removed one stops being reported as cached', async () => {
  const { proxy, a } = await setup();
  await scrape(proxy, '/b/metrics');
  const c = await exporter();
  writeFileSync(
    proxy.file,
    `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ndefaults:\n  ttl: 5m\nroutes:\n  - name: a\n    path: /a/metrics\n    upstream: ${a.url}/metrics\n  - name: c\n    path: /c/metrics\n    upstream: ${c.url}/metrics\n`,
  );
  assert.equal((await post(`${proxy.adminUrl}/-/reload`)).status, 200);
  await scrape(proxy, '/c/metrics');
  const m = await scrapeMetrics(proxy);
  assert.deepEqual(requests(m, 'c'), { hit: 0, miss: 1, collapsed: 0, stale: 0, bypass: 0 });
  assert.equal(m.must('scrapecache_cache_entries', { route: 'c' }), 1);
  assert.equal(m.value('scrapecache_cache_entries', { route: 'b' }) ?? 0, 0, 'the removed route holds nothing');
});

// ---------------------------------------------------------------------------------------------
// Cardinality and lint

test('label values are route names and outcomes only: no raw path or query appears in any label', async () => {
  const { proxy } = await setup();
  for (let i = 0; i < 20; i++) {
    await scrape(proxy, `/a/metrics?target=host${i}.example&module=http_2xx`);
    await scrape(proxy, `/pages/p${i}?q=${i}`);
  }
  await scrape(proxy, '/nowhere/metrics?target=x'); // 404: no route
  const m = await scrapeMetrics(proxy);
  const routes = new Set(['a', 'b', 'pages']);
  let routeLabelled = 0;
  for (const s of m.samples) {
    for (const [name, value] of Object.entries(s.labels)) {
      assert.doesNotMatch(value, /[/?=&]|host\d|http_2xx|nowhere|p\d/, `${s.name}{${name}="${value}"}`);
      if (name === 'route') {
        routeLabelled++;
        assert.ok(routes.has(value), `route label "${value}" on ${s.name} is not a configured route name`);
      }
    }
  }
  assert.ok(routeLabelled > 0);
  // Cardinality does not grow with distinct queries: one entries series per route.
  assert.equal(m.named('scrapecache_cache_entries').length, 3);
  assert.equal(m.must('scrapecache_cache_entries', { route: 'a' }), 20);
  assert.equal(m.named(UPSTREAM).filter((s) => s.labels['route'] === 'a').length, 1);
});

function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, output: `${run.stdout ?? ''}${run.stderr ?? ''}`.trim() };
}

function promtoolInstalled(): boolean {
  try {
    accessSync(PROMTOOL, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

test('promtool check metrics finds nothing to complain about in the proxy\'s own metrics', async (t) => {
  if (!promtoolInstalled()) {
    t.skip(`promtool not installed (${PROMTOOL})`);
    return;
  }
  const { proxy, b } = await setup();
  await scrape(proxy, '/a/metrics');
  await scrape(proxy, '/a/metrics');
  await scrape(proxy, '/pages/x');
  b.fault = 'reset';
  await scrape(proxy, '/b/metrics');
  const m = await scrapeMetrics(proxy);
  const { status, output } = promtoolCheck(m.text);
  assert.equal(output, '', `promtool says:\n${output}`);
  assert.equal(status, 0);
});

test('promtool check metrics finds nothing to complain about with the Node.js default metrics on, as the CLI runs', async (t) => {
  if (!promtoolInstalled()) {
    t.skip(`promtool not installed (${PROMTOOL})`);
    return;
  }
  const a = await exporter();
  const b = await exporter();
  const pages = await exporter();
  // Like the CLI: startApp with its default of collecting prom-client's default metrics.
  const helper = await proxyFor(routesYaml(a, b, pages));
  const log = createLogger('error', new Writable({ write: (_c, _e, done) => done() }));
  const app = await startApp({ config: loadConfig(helper.file), log });
  closers.push(() => app.close(1000));
  await get(`http://127.0.0.1:${app.scrapeAddress.port}/a/metrics`, SCRAPE_HEADERS);
  const res = await get(`http://127.0.0.1:${app.adminAddress.port}/metrics`);
  const text = res.body.toString();
  assert.match(text, /^process_cpu_seconds_total /m, 'default process metrics are there');
  assert.match(text, /^nodejs_/m, 'default Node.js metrics are there');
  const { status, output } = promtoolCheck(text);
  assert.equal(output, '', `promtool says:\n${output}`);
  assert.equal(status, 0);
});

test('scrapecache_cache_oldest_age_seconds is the age of the oldest entry a route may still serve, growing while stale_if_error covers a dead upstream', async () => {
  const e = await exporter();
  const config = parseConfig(
    `routes:
  - name: covered
    path: /c
    upstream: ${e.url}/c
    ttl: 1m
    stale_if_error: 1h
  - name: empty
    path: /e
    upstream: ${e.url}/e
`,
    'age.yaml',
  );
  let now = 1_700_000_000_000;
  let cache: ScrapeCache | undefined;
  const metrics = new Metrics({ usage: (r) => cache!.usage(r) }, { defaultMetrics: false });
  cache = newScrapeCache(1 << 20, metrics, createLogger('silent'), () => now);
  closers.push(() => cache!.close());
  cache.setRoutes(config.routes);
  metrics.setRoutes(config.routes.map((r) => r.name));
  const route = config.routes[0]!;
  const target = (query: string): ScrapeTarget => ({ route, path: '/c', query, representation: 'text;0.0.4', accept: undefined });
  const age = async () => {
    const text = await metrics.registry.metrics();
    return new Exposition(text, parseExposition(text));
  };

  await cache.lookup(target('x=a'));
  now += 20_000;
  await cache.lookup(target('x=b'));
  now += 10_000;
  let m = await age();
  assert.equal(m.value('scrapecache_cache_oldest_age_seconds', { route: 'covered' }), 30, 'the oldest of the two entries');
  assert.equal(m.value('scrapecache_cache_oldest_age_seconds', { route: 'empty' }), undefined, 'no series for a route that holds nothing');

  e.fault = 'status-500';
  now += 40 * 60_000;
  const served = await cache.lookup(target('x=a'));
  assert.equal(served.cache, 'stale', 'stale_if_error covers the failing upstream');
  m = await age();
  assert.equal(m.value('scrapecache_cache_oldest_age_seconds', { route: 'covered' }), 2430);

  now += 30 * 60_000;
  m = await age();
  assert.equal(m.value('scrapecache_cache_oldest_age_seconds', { route: 'covered' }), undefined, 'past every window nothing is served, so no age');
});

test('scrapecache_build_info says the version, the revision written at build time and the Node.js version', async () => {
  const a = await exporter();
  const proxy = await proxyFor(`routes:\n  - name: a\n    path: /a\n    upstream: ${a.url}/a\n`);
  const m = await scrapeMetrics(proxy);
  const [info, ...more] = m.named('scrapecache_build_info');
  assert.equal(more.length, 0);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  let revision = 'unknown';
  try {
    revision = (JSON.parse(readFileSync(new URL('../src/build-info.json', import.meta.url), 'utf8')) as { revision: string }).revision;
  } catch {
    // built with tsc alone: no revision was written
  }
  assert.deepEqual(info, { name: 'scrapecache_build_info', labels: { version: pkg.version, revision, nodejs_version: process.version }, value: 1 });
});
