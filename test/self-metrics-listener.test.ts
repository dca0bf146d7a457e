/**
 * The proxy's own metrics on the scrape listener (`GET /metrics`), where Prometheus users look
 * first and where the shipped config lets them reach it: read only, the same as the admin
 * listener's, and never in the way of a route that serves that path.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';

let exporter: FakeExporter;
before(async () => {
  exporter = await startFakeExporter();
});
after(() => exporter.close());

describe('GET /metrics on the scrape listener, no route on that path', () => {
  let proxy: TestProxy;
  before(async () => {
    proxy = await startProxy(`routes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1m\n`);
  });
  after(() => proxy.close());

  it('answers the same metrics as the admin listener, counting scrapes by outcome', async () => {
    await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const res = await get(`${proxy.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = res.body.toString();
    assert.match(text, /^scrapecache_requests_total\{route="node",cache="miss"\} 1$/m);
    assert.match(text, /^scrapecache_requests_total\{route="node",cache="hit"\} 1$/m);
    const admin = (await get(`${proxy.adminUrl}/metrics`)).body.toString();
    const families = (t: string) => [...t.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(families(text), families(admin));
    assert.equal(exporter.count, 1, 'reading /metrics fetches nothing upstream');
  });

  it('is read only: HEAD answers without a body, POST gets 405, a body 400', async () => {
    const head = await get(`${proxy.url}/metrics`, {}, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const posted = await post(`${proxy.url}/metrics`, { route: 'node' });
    assert.equal(posted.status, 405);
    assert.equal(posted.headers.allow, 'GET, HEAD');
    const withBody = await get(`${proxy.url}/metrics`, { 'content-length': '2' }, { body: '{}' });
    assert.equal(withBody.status, 400);
    // Admin calls stay on the admin listener.
    assert.equal((await post(`${proxy.url}/invalidate`)).status, 404);
  });

  it('is linked from the landing page', async () => {
    const page = (await get(`${proxy.url}/`)).body.toString();
    assert.match(page, /<a href="\/metrics"><code>\/metrics<\/code><\/a>: the proxy's own metrics/);
  });
});

describe('a route that serves /metrics', () => {
  let proxy: TestProxy;
  before(async () => {
    proxy = await startProxy(`routes:\n  - name: exporter\n    path: /metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1m\n`);
  });
  after(() => proxy.close());

  it('keeps the path: /metrics is the exporter through the cache, and the landing page does not offer self-metrics', async () => {
    const before = exporter.count;
    const res = await get(`${proxy.url}/metrics`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['cache-status']), /^scrapecache; fwd=miss; stored/);
    assert.equal(exporter.count, before + 1);
    const page = (await get(`${proxy.url}/`)).body.toString();
    assert.doesNotMatch(page, /the proxy's own metrics/);
    // Still on the admin listener.
    assert.match((await get(`${proxy.adminUrl}/metrics`)).body.toString(), /^scrapecache_requests_total\{route="exporter",cache="miss"\} 1$/m);
  });
});
