/** The scrape listener against a promhttp-like exporter: keys, representations, single flight, headers. */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, before, beforeEach, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { OPENMETRICS_TYPE, startFakeExporter, TEXT_TYPE, type FakeExporter } from './helpers/fake-exporter.js';
import { get, PROMETHEUS_ACCEPT, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';
import { TestClock } from './helpers/test-clock.js';

let exporter: FakeExporter;
let proxy: TestProxy;
/** Ttls and Age pass by the test's hand. */
const clock = new TestClock();

before(async () => {
  exporter = await startFakeExporter();
  proxy = await startProxy(`
routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
    ttl: 1m
  - name: short
    path: /short/metrics
    upstream: ${exporter.url}/metrics
    ttl: 300ms
  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe?fixed=1
    query_keys: [target, module]
  - name: any-query
    path: /any
    upstream: ${exporter.url}/any
`, { clock });
});

after(async () => {
  await proxy.close();
  await exporter.close();
});

beforeEach(async () => {
  exporter.fault = 'none';
  exporter.delayMs = 0;
  await proxy.app.cache.invalidate({});
  exporter.requests.length = 0;
});

describe('caching', () => {
  test('the second scrape inside the ttl is served from memory with the same body', async () => {
    const first = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const second = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    assert.equal(first.status, 200);
    assert.equal(exporter.count, 1);
    assert.deepEqual(second.body, first.body);
    assert.equal(first.headers['cache-status'], 'scrapecache; fwd=miss; stored');
    assert.match(String(second.headers['cache-status']), /^scrapecache; hit; ttl=(59|60)$/);
    assert.equal(second.headers['age'], '0');
  });

  test('an expired entry is fetched again', async () => {
    await get(`${proxy.url}/short/metrics`, SCRAPE_HEADERS);
    clock.advance(350);
    const again = await get(`${proxy.url}/short/metrics`, SCRAPE_HEADERS);
    assert.equal(exporter.count, 2);
    assert.equal(again.headers['cache-status'], 'scrapecache; fwd=miss; stored');
  });

  test('Age counts whole seconds since the fetch, also on hits whose header block was prepared a second before', async () => {
    await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const early = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    assert.equal(early.headers['age'], '0');
    clock.advance(1100);
    const hit = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    assert.equal(hit.headers['age'], '1');
    assert.match(String(hit.headers['cache-status']), /ttl=58$/);
  });

  test('100 concurrent cold requests produce exactly one upstream request', async () => {
    // The upstream is held until all 100 scrapes have reached the proxy (seen through node:http's
    // own diagnostics channel), so each one arrives while the fill is in flight however loaded the
    // machine is, as concurrent scrapes of a slow exporter do.
    const release = exporter.hold();
    let arrived = 0;
    const onStart = (message: unknown) => {
      const { request, socket } = message as { request: { url?: string }; socket: { localPort?: number } };
      if (socket.localPort === proxy.app.scrapeAddress.port && request.url === '/node/metrics') arrived++;
    };
    diagnostics.subscribe('http.server.request.start', onStart);
    let results: Awaited<ReturnType<typeof get>>[];
    try {
      const all = Promise.all(Array.from({ length: 100 }, () => get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS)));
      await exporter.arrived(1);
      const deadline = Date.now() + 10_000;
      while (arrived < 100) {
        assert.ok(Date.now() < deadline, `only ${arrived} of 100 scrapes reached the proxy`);
        await new Promise((r) => setTimeout(r, 5));
      }
      release();
      results = await all;
    } finally {
      release();
      diagnostics.unsubscribe('http.server.request.start', onStart);
    }
    assert.equal(exporter.count, 1);
    const bodies = new Set(results.map((r) => r.body.toString('base64')));
    assert.equal(bodies.size, 1);
    const statuses = results.map((r) => String(r.headers['cache-status']));
    assert.equal(statuses.filter((s) => s === 'scrapecache; fwd=miss; stored').length, 1);
    assert.equal(statuses.filter((s) => s === 'scrapecache; fwd=miss; stored; collapsed').length, 99);
  });

  test('?a=1&b=2 and ?b=2&a=1 share one entry, and so do equivalent percent-encodings', async () => {
    await get(`${proxy.url}/any?a=1&b=2`, SCRAPE_HEADERS);
    const swapped = await get(`${proxy.url}/any?b=2&a=1`, SCRAPE_HEADERS);
    const encoded = await get(`${proxy.url}/any?b=%32&a=1`, SCRAPE_HEADERS);
    assert.equal(exporter.count, 1);
    assert.match(String(swapped.headers['cache-status']), /^scrapecache; hit/);
    assert.match(String(encoded.headers['cache-status']), /^scrapecache; hit/);
    await get(`${proxy.url}/any?a=1&b=3`, SCRAPE_HEADERS);
    assert.equal(exporter.count, 2);
  });

  test('repeated parameter names keep their order in the key', async () => {
    await get(`${proxy.url}/any?x=1&x=2`, SCRAPE_HEADERS);
    await get(`${proxy.url}/any?x=2&x=1`, SCRAPE_HEADERS);
    assert.equal(exporter.count, 2);
  });

  test('the client query is merged with the upstream URL query and sent upstream', async () => {
    await get(`${proxy.url}/probe?target=example.org&module=http_2xx`, SCRAPE_HEADERS);
    assert.equal(exporter.requests[0]!.url, '/probe?fixed=1&module=http_2xx&target=example.org');
  });

  test('HEAD is answered from the GET entry without a body', async () => {
    const full = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const head = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], full.headers['content-length']);
    assert.equal(exporter.count, 1);
  });

  test('the proxy fetches upstream with gzip and the route timeout as the scrape timeout', async () => {
    await get(`${proxy.url}/node/metrics`, { accept: 'text/plain' });
    const sent = exporter.requests[0]!.headers;
    assert.equal(sent['accept-encoding'], 'gzip');
    assert.equal(sent['accept'], 'text/plain');
    assert.equal(sent['x-prometheus-scrape-timeout-seconds'], '30');
  });
});

describe('representations never cross', () => {
  test('a client without Accept-Encoding after a gzip client gets plain text from the same entry', async () => {
    const gz = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    const plain = await get(`${proxy.url}/node/metrics`, { accept: PROMETHEUS_ACCEPT });
    assert.equal(exporter.count, 1);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.deepEqual(plain.body, gunzipSync(gz.body));
    assert.equal(plain.headers['content-length'], String(plain.body.length));
    assert.match(plain.body.toString(), /^# HELP fake_version/);
  });

  test('a gzip client after an identity-only fill still gets a body it can read', async () => {
    const plain = await get(`${proxy.url}/node/metrics`, { accept: PROMETHEUS_ACCEPT, 'accept-encoding': 'identity' });
    const gz = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    assert.equal(exporter.count, 1);
    const body = gz.headers['content-encoding'] === 'gzip' ? gunzipSync(gz.body) : gz.body;
    assert.deepEqual(body, plain.body);
  });

  test('a client that refuses identity and gzip gets 406', async () => {
    await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const res = await get(`${proxy.url}/node/metrics`, { 'accept-encoding': 'br, identity;q=0' });
    assert.equal(res.status, 406);
  });

  test('responses carry Vary: Accept, Accept-Encoding', async () => {
    const res = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    assert.equal(res.headers['vary'], 'Accept, Accept-Encoding');
  });

  test('OpenMetrics and text scrapes get separate entries and their own types', async () => {
    const om = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const text = await get(`${proxy.url}/node/metrics`, { accept: 'text/plain;version=0.0.4', 'accept-encoding': 'gzip' });
    assert.equal(om.headers['content-type'], OPENMETRICS_TYPE);
    assert.equal(text.headers['content-type'], TEXT_TYPE);
    assert.equal(exporter.count, 2);
    assert.doesNotMatch(gunzipSync(text.body).toString(), /# EOF/);
  });

  // From an exporter that honours escaping= they must not: see scraper-fleet.test.ts (a real
  // client_golang process, where Prometheus 3 gets quoted UTF-8 names and 2.x underscores).
  test('two Prometheus versions share one entry where the exporter ignores escaping= (no escaping term in its Content-Type)', async () => {
    await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const prom3 = await get(`${proxy.url}/node/metrics`, {
      accept:
        'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
      'accept-encoding': 'gzip',
    });
    assert.equal(exporter.count, 1);
    assert.match(String(prom3.headers['cache-status']), /^scrapecache; hit/);
    assert.equal(prom3.headers['content-type'], OPENMETRICS_TYPE);
  });

  test('no Accept and Accept: */* share the text entry', async () => {
    await get(`${proxy.url}/node/metrics`, {});
    const star = await get(`${proxy.url}/node/metrics`, { accept: '*/*' });
    assert.equal(exporter.count, 1);
    assert.equal(star.headers['content-type'], TEXT_TYPE);
  });

  test('an entry whose type a client does not admit is not served to it', async () => {
    // Prometheus fills the OpenMetrics entry; this client names only OpenMetrics 0.0.1.
    await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    const strict = await get(`${proxy.url}/node/metrics`, { accept: 'application/openmetrics-text;version=0.0.1' });
    assert.equal(exporter.count, 2);
    assert.equal(exporter.requests[1]!.headers['accept'], 'application/openmetrics-text;version=0.0.1');
    assert.notEqual(strict.headers['cache-status'], undefined);
  });
});

describe('requests that are refused', () => {
  test('an unknown path gets 404', async () => {
    const res = await get(`${proxy.url}/nope`);
    assert.equal(res.status, 404);
  });

  test('POST gets 405 with Allow: GET, HEAD', async () => {
    const res = await get(`${proxy.url}/node/metrics`, {}, { method: 'POST', body: 'x' });
    assert.equal(res.status, 405);
    assert.equal(res.headers['allow'], 'GET, HEAD');
    assert.equal(exporter.count, 0);
  });

  test('a query parameter outside query_keys gets 400 naming it', async () => {
    const res = await get(`${proxy.url}/probe?target=a&evil=1`);
    assert.equal(res.status, 400);
    assert.match(res.body.toString(), /"evil" is not in query_keys/);
    assert.equal(exporter.count, 0);
  });

  test('malformed percent-encoding gets 400', async () => {
    const res = await get(`${proxy.url}/any?a=%E0%A4%A`);
    assert.equal(res.status, 400);
    assert.match(res.body.toString(), /malformed percent-encoding/);
  });

  test('a query with 10 000 parameters is refused, not stored', async () => {
    const query = Array.from({ length: 10_000 }, (_, i) => `p${i}=1`).join('&');
    const res = await get(`${proxy.url}/any?${query}`);
    assert.ok(res.status === 400 || res.status === 431 || res.status === 414, `status ${res.status}`);
    assert.equal(exporter.count, 0);
  });

  test('a query just over the parameter limit gets 400', async () => {
    const query = Array.from({ length: 129 }, (_, i) => `p${i}=1`).join('&');
    const res = await get(`${proxy.url}/any?${query}`);
    assert.equal(res.status, 400);
    assert.match(res.body.toString(), /more than 128 query parameters/);
  });

  test('.. segments, raw or encoded, get 400 and never reach the upstream', async () => {
    for (const path of ['/node/../node/metrics', '/node/%2e%2e/node/metrics', '/node/metrics/..']) {
      const res = await get(`${proxy.url}${path}`);
      assert.equal(res.status, 400, path);
    }
    assert.equal(exporter.count, 0);
  });

  test('a Host header cannot send the proxy elsewhere', async () => {
    const res = await get(`${proxy.url}/node/metrics`, { host: 'evil.example' });
    assert.equal(res.status, 200);
    assert.equal(exporter.requests[0]!.headers['host'], `127.0.0.1:${exporter.port}`);
  });

  test('an oversized header gets 431 and the listener keeps serving', async () => {
    const res = await get(`${proxy.url}/node/metrics`, { 'x-big': 'x'.repeat(20_000) });
    assert.equal(res.status, 431);
    const ok = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
    assert.equal(ok.status, 200);
  });
});

describe('a bug of ours', () => {
  // A hit is answered without a promise (the handler runs synchronously to the write); a fill
  // waits. A bug thrown on either way gets a 500 and a log line, and the listener serves on.
  const broken = (how: 'throws' | 'rejects') => {
    const lookup = proxy.app.cache.lookup;
    proxy.app.cache.lookup = () => {
      if (how === 'throws') throw new TypeError('a bug on the hit path');
      return Promise.reject(new TypeError('a bug behind a fill'));
    };
    return () => {
      proxy.app.cache.lookup = lookup;
    };
  };

  for (const how of ['throws', 'rejects'] as const) {
    test(`a lookup that ${how} is answered 500 and logged, and the next scrape is served`, async () => {
      await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
      const logged = proxy.logs.length;
      const restore = broken(how);
      let failed: Awaited<ReturnType<typeof get>>;
      try {
        failed = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
      } finally {
        restore();
      }
      assert.equal(failed.status, 500);
      const lines = proxy.logs.slice(logged).filter((l) => l['msg'] === 'request failed');
      assert.equal(lines.length, 1);
      assert.match(String((lines[0]!['err'] as { message?: string }).message), /a bug/);
      const next = await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
      assert.equal(next.status, 200);
      assert.match(String(next.headers['cache-status']), /^scrapecache; hit/);
    });
  }
});
