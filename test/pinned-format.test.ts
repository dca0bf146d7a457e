/**
 * SPEC 3.2 `format`: a pinned route fetches one format with an Accept that asks for exactly it,
 * keeps one entry per path+query and answer, and serves each client what an exporter offering
 * only that format would answer it; 406 only for a client that admits nothing the route can
 * give. Protobuf is passed through as bytes to protobuf clients and rendered for the others.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, beforeEach, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { OPENMETRICS_TYPE, PROTOBUF_TYPE, protobufBody, startFakeExporter, TEXT_TYPE, type FakeExporter } from './helpers/fake-exporter.js';
import { get, PROMETHEUS_ACCEPT, sleep, startProxy, type RawResponse, type TestProxy } from './helpers/proxy.js';

/** What vmagent (VictoriaMetrics) sends on a scrape. */
const VMAGENT_ACCEPT = 'text/plain;version=0.0.4;q=1,*/*;q=0.1';
/** Prometheus with native histograms (scrape_protocols starting with PrometheusProto). */
const PROMETHEUS_PROTOBUF_ACCEPT =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

let exporter: FakeExporter;
let proxy: TestProxy;

const routes = (textFormat = 'text') => `defaults:
  ttl: 5m
routes:
  - name: text
    path: /text/metrics
    upstream: ${exporter.url}/metrics
    format: ${textFormat}
  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe
    format: text
  - name: proto
    path: /proto/metrics
    upstream: ${exporter.url}/metrics
    format: protobuf
  - name: om
    path: /om/metrics
    upstream: ${exporter.url}/metrics
    format: openmetrics
  - name: negotiated
    path: /negotiated/metrics
    upstream: ${exporter.url}/metrics
`;

before(async () => {
  exporter = await startFakeExporter();
  proxy = await startProxy(routes());
});

after(async () => {
  await proxy.close();
  await exporter.close();
});

beforeEach(async () => {
  exporter.protobuf = true;
  await proxy.app.cache.invalidate({});
  exporter.requests.length = 0;
});

const scrape = (path: string, headers: Record<string, string> = {}) => get(`${proxy.url}${path}`, headers);

function decoded(res: RawResponse): Buffer {
  return res.headers['content-encoding'] === 'gzip' ? gunzipSync(res.body) : res.body;
}

async function cacheRows(route: string): Promise<Array<{ query: string; representation: string }>> {
  const res = await get(`${proxy.adminUrl}/cache?route=${route}`);
  return JSON.parse(res.body.toString()) as Array<{ query: string; representation: string }>;
}

test('a route pinned to text serves Prometheus, vmagent, curl and a client without Accept from one upstream fetch', async () => {
  const clients: Array<Record<string, string>> = [
    { accept: PROMETHEUS_ACCEPT, 'accept-encoding': 'gzip' },
    { accept: VMAGENT_ACCEPT, 'accept-encoding': 'gzip' },
    { accept: '*/*' },
    {},
  ];
  const answers = [];
  for (const headers of clients) answers.push(await scrape('/text/metrics', headers));
  for (const res of answers) {
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], TEXT_TYPE);
    assert.deepEqual(decoded(res), decoded(answers[0]!));
  }
  assert.equal(exporter.count, 1, 'one fetch for every client');
  assert.equal(exporter.requests[0]!.headers.accept, 'text/plain;version=0.0.4;escaping=underscores', 'the fetch asked for exactly text');
  assert.deepEqual((await cacheRows('text')).map((r) => r.representation), ['text;0.0.4']);
});

test('without format, an exporter that speaks protobuf is fetched once per TTL for Prometheus and vmagent alike', async () => {
  // The first window also asks once whether the exporter offers OpenMetrics (this one does).
  for (let round = 0; round < 2; round++) {
    await proxy.app.cache.invalidate({});
    exporter.requests.length = 0;
    const prometheus = await scrape('/negotiated/metrics', { accept: PROMETHEUS_ACCEPT });
    const vmagent = await scrape('/negotiated/metrics', { accept: VMAGENT_ACCEPT });
    assert.equal(prometheus.status, 200);
    assert.match(String(prometheus.headers['content-type']), /^application\/openmetrics-text; version=1\.0\.0/);
    assert.match(String(vmagent.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(decoded(vmagent).toString(), /^fake_version\{path="\/metrics"\} \d+$/m);
    if (round === 1) {
      assert.equal(exporter.count, 1, 'one protobuf fetch renders both answers');
      assert.match(exporter.requests[0]!.headers.accept ?? '', /^application\/vnd\.google\.protobuf;proto=io\.prometheus\.client\.MetricFamily;encoding=delimited;escaping=allow-utf-8/);
      assert.match(String(vmagent.headers['cache-status']), /detail="rendered from protobuf"/);
    } else {
      assert.ok(exporter.count <= 2, `${exporter.count} fetches while learning`);
    }
  }
});

test('a pinned route keeps one entry per path and query, whatever the clients send', async () => {
  await scrape('/probe?target=a&module=m', { accept: PROMETHEUS_ACCEPT });
  await scrape('/probe?module=m&target=a', { accept: VMAGENT_ACCEPT });
  await scrape('/probe?target=b&module=m', { accept: VMAGENT_ACCEPT });
  await scrape('/probe?target=b&module=m', { accept: PROMETHEUS_ACCEPT });
  assert.equal(exporter.count, 2);
  const rows = await cacheRows('probe');
  assert.deepEqual(rows.map((r) => `${r.query} ${r.representation}`).sort(), ['module=m&target=a text;0.0.4', 'module=m&target=b text;0.0.4']);
});

test('a pinned route answers each client as an exporter offering only that format would: 406 only where it cannot give what the client asks', async () => {
  // An exporter without OpenMetrics answers text to an OpenMetrics-only Accept, and to application/json.
  const om = await scrape('/text/metrics', { accept: 'application/openmetrics-text;version=1.0.0' });
  assert.equal(om.status, 200);
  assert.equal(om.headers['content-type'], TEXT_TYPE);
  const head = await get(`${proxy.url}/text/metrics`, { accept: 'application/json' }, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(exporter.count, 1);
  // An OpenMetrics pin has no text to give a client that asks for text only.
  const text = await scrape('/om/metrics', { accept: 'text/plain;version=0.0.4' });
  assert.equal(text.status, 406);
  assert.match(text.body.toString(), /route om serves OpenMetrics only \(format: openmetrics\)/);
  assert.equal(exporter.count, 1, 'the refused client cost no fetch');
});

test('a route pinned to openmetrics never gives OpenMetrics to a client that admits it only through */* (vmagent)', async () => {
  const vmagent = await scrape('/om/metrics', { accept: VMAGENT_ACCEPT });
  assert.equal(vmagent.status, 406);
  const prometheus = await scrape('/om/metrics', { accept: PROMETHEUS_ACCEPT });
  assert.equal(prometheus.status, 200);
  assert.equal(prometheus.headers['content-type'], OPENMETRICS_TYPE);
  assert.match(exporter.requests[0]!.headers.accept ?? '', /^application\/openmetrics-text;version=1\.0\.0/);
  assert.doesNotMatch(exporter.requests[0]!.headers.accept ?? '', /text\/plain|\*\/\*/);
});

test('a route pinned to openmetrics on an exporter without it serves the text it answers to the clients that ask for text', async () => {
  exporter.openmetrics = false;
  try {
    const prometheus = await scrape('/om/metrics', { accept: PROMETHEUS_ACCEPT });
    assert.equal(prometheus.status, 200);
    assert.equal(prometheus.headers['content-type'], TEXT_TYPE);
    for (const accept of ['text/plain', VMAGENT_ACCEPT, 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3']) {
      const res = await scrape('/om/metrics', { accept });
      assert.equal(res.status, 200, accept);
      assert.equal(res.headers['content-type'], TEXT_TYPE);
    }
    assert.equal(exporter.count, 1, 'Telegraf, Datadog and vmagent share the text Prometheus was answered');
  } finally {
    exporter.openmetrics = true;
  }
});

test('protobuf passes through as bytes: gzip and identity clients get exactly what the exporter sent', async () => {
  const gzipped = await scrape('/proto/metrics', { accept: PROMETHEUS_PROTOBUF_ACCEPT, 'accept-encoding': 'gzip' });
  const identity = await scrape('/proto/metrics', { accept: PROMETHEUS_PROTOBUF_ACCEPT });
  const expected = protobufBody(exporter.version, '/metrics');
  for (const res of [gzipped, identity]) {
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], PROTOBUF_TYPE);
  }
  assert.equal(gzipped.headers['content-encoding'], 'gzip');
  assert.deepEqual(gunzipSync(gzipped.body), expected);
  assert.equal(identity.headers['content-encoding'], undefined);
  assert.deepEqual(identity.body, expected);
  assert.equal(exporter.count, 1);
  assert.equal(exporter.requests[0]!.headers.accept, 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8');
  // format: protobuf renders text for a text client rather than refusing it.
  const [held] = (await cacheRows('proto')) as unknown as Array<{ bytes: number; renderings: string[] }>;
  assert.deepEqual(held!.renderings, []);
  const textOnly = await scrape('/proto/metrics', { accept: 'text/plain;version=0.0.4' });
  assert.equal(textOnly.status, 200);
  assert.equal(textOnly.headers['content-type'], TEXT_TYPE);
  assert.match(textOnly.body.toString(), new RegExp(`^fake_version\\{path="/metrics"\\} ${exporter.version}$`, 'm'));
  const again = await scrape('/proto/metrics', { accept: 'text/plain;version=0.0.4' });
  assert.match(String(again.headers['cache-status']), /^scrapecache; hit; ttl=\d+; detail="rendered from protobuf"$/);
  assert.deepEqual(again.body, textOnly.body);
  assert.equal(exporter.count, 1);
  // The rendering is kept with its entry and counted in its bytes (and so in max_bytes).
  const [rendered] = (await cacheRows('proto')) as unknown as Array<{ bytes: number; renderings: string[] }>;
  assert.deepEqual(rendered!.renderings, ['text;0.0.4;underscores']);
  assert.ok(rendered!.bytes >= held!.bytes + textOnly.body.length, `${rendered!.bytes} bytes with the rendering, ${held!.bytes} without`);
});

test('an exporter that answers another format than the pinned one: clients it would answer that way get it, the others 406', async () => {
  exporter.protobuf = false;
  const prometheus = await scrape('/proto/metrics', { accept: PROMETHEUS_PROTOBUF_ACCEPT });
  assert.equal(prometheus.status, 200);
  assert.equal(prometheus.headers['content-type'], TEXT_TYPE);
  const vmagent = await scrape('/proto/metrics', { accept: VMAGENT_ACCEPT });
  assert.equal(vmagent.status, 200);
  assert.equal(exporter.count, 1, 'one text entry for both');
});

test('defaults.format pins every cached route; a route that sets its own wins', async () => {
  const other = await startProxy(`defaults:
  format: text
routes:
  - name: inherits
    path: /a
    upstream: ${exporter.url}/a
  - name: own
    path: /b
    upstream: ${exporter.url}/b
    format: openmetrics
  - name: pass
    path: /c
    upstream: ${exporter.url}/c
    cache: false
`);
  try {
    await get(`${other.url}/a`, { accept: PROMETHEUS_ACCEPT });
    await get(`${other.url}/b`, { accept: PROMETHEUS_ACCEPT });
    await get(`${other.url}/c`, { accept: PROMETHEUS_ACCEPT });
    const accepts = Object.fromEntries(exporter.requests.map((r) => [r.url, r.headers.accept]));
    assert.equal(accepts['/a'], 'text/plain;version=0.0.4;escaping=underscores');
    assert.match(accepts['/b'] ?? '', /^application\/openmetrics-text/);
    assert.equal(accepts['/c'], PROMETHEUS_ACCEPT, 'a pass-through route streams the client request as it is');
  } finally {
    await other.close();
  }
});

test('prefetch on a pinned route fetches the pinned format at start-up, so the first scrape of any client is a hit', async () => {
  const other = await startProxy(`routes:
  - name: pre
    path: /pre
    upstream: ${exporter.url}/pre
    prefetch: true
    format: text
`);
  try {
    for (let i = 0; i < 100 && (await get(`${other.adminUrl}/cache`)).body.toString() === '[]'; i++) await sleep(50);
    const res = await get(`${other.url}/pre`, { accept: VMAGENT_ACCEPT });
    assert.match(String(res.headers['cache-status']), /^scrapecache; hit/);
    assert.equal(exporter.requests.filter((r) => r.url === '/pre').length, 1);
    assert.equal(exporter.requests[0]!.headers.accept, 'text/plain;version=0.0.4;escaping=underscores');
  } finally {
    await other.close();
  }
});

test('a reload that changes a route\'s format drops its entries: the next scrape fetches the new format', async () => {
  await scrape('/text/metrics', { accept: PROMETHEUS_ACCEPT });
  writeFileSync(proxy.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${routes('openmetrics')}`);
  try {
    assert.equal(await proxy.app.reload(), undefined);
    assert.deepEqual(await cacheRows('text'), []);
    const res = await scrape('/text/metrics', { accept: PROMETHEUS_ACCEPT });
    assert.equal(res.headers['content-type'], OPENMETRICS_TYPE);
  } finally {
    writeFileSync(proxy.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${routes()}`);
    await proxy.app.reload();
  }
});
