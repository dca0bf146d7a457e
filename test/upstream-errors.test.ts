/** Failing upstreams and bad clients: clear 502/504, nothing broken stored, every other route serving. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';

let exporter: FakeExporter;
let healthy: FakeExporter;
let proxy: TestProxy;

before(async () => {
  exporter = await startFakeExporter();
  healthy = await startFakeExporter();
  proxy = await startProxy(`
routes:
  - name: flaky
    path: /flaky
    upstream: ${exporter.url}/metrics
    timeout: 400ms
    max_body_bytes: 4KiB
  - name: slow
    path: /slow
    upstream: ${exporter.url}/metrics
    timeout: 3s
  - name: refused
    path: /refused
    upstream: http://127.0.0.1:1/metrics
  - name: healthy
    path: /healthy
    upstream: ${healthy.url}/metrics
`);
});

after(async () => {
  await proxy.close();
  await exporter.close();
  await healthy.close();
});

beforeEach(async () => {
  exporter.fault = 'none';
  exporter.delayMs = 0;
  exporter.padding = 0;
  await proxy.app.cache.invalidate({});
  exporter.requests.length = 0;
});

async function expectNotStored(path: string) {
  exporter.fault = 'none';
  const next = await get(`${proxy.url}${path}`, SCRAPE_HEADERS);
  assert.equal(next.status, 200);
  assert.equal(next.headers['cache-status'], 'scrapecache; fwd=miss; stored', 'the failed response must not have been stored');
}

async function expectOtherRoutesServe() {
  const res = await get(`${proxy.url}/healthy`, SCRAPE_HEADERS);
  assert.equal(res.status, 200);
}

describe('upstream failures', () => {
  test('an unreachable upstream gets 502 naming the route, the address and the cause; the log line names them without empty error fields', async () => {
    const res = await get(`${proxy.url}/refused`, SCRAPE_HEADERS);
    assert.equal(res.status, 502);
    assert.equal(res.body.toString(), 'route refused: upstream unreachable at 127.0.0.1:1 (ECONNREFUSED)\n');
    const line = proxy.logs.find((l) => l['msg'] === 'upstream fetch failed' && l['route'] === 'refused');
    assert.ok(line, 'an "upstream fetch failed" line');
    assert.equal(line['upstream'], '127.0.0.1:1');
    assert.equal(line['code'], 'UPSTREAM_UNREACHABLE');
    assert.equal(line['error'], 'route refused: upstream unreachable at 127.0.0.1:1 (ECONNREFUSED)');
    assert.equal(line['err'], undefined, 'no serialised pseudo-error with an empty stack');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    await expectOtherRoutesServe();
  });

  test('a hanging upstream gets 504 after the route timeout', async () => {
    exporter.fault = 'hang';
    const res = await get(`${proxy.url}/flaky`, SCRAPE_HEADERS);
    assert.equal(res.status, 504);
    assert.match(res.body.toString(), /^route flaky: upstream timed out after 400ms\n$/);
    await expectNotStored('/flaky');
  });

  test('a connection reset before the answer gets 502', async () => {
    exporter.fault = 'reset';
    const res = await get(`${proxy.url}/flaky`, SCRAPE_HEADERS);
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /route flaky: upstream closed the connection/);
    await expectNotStored('/flaky');
  });

  test('a reset in the middle of the body gets 502 and is never stored', async () => {
    exporter.fault = 'reset-mid-body';
    const res = await get(`${proxy.url}/flaky`, SCRAPE_HEADERS);
    assert.equal(res.status, 502);
    await expectNotStored('/flaky');
  });

  test('a truncated body (short of its Content-Length) gets 502 and is never stored', async () => {
    exporter.fault = 'truncate';
    const res = await get(`${proxy.url}/flaky`, SCRAPE_HEADERS);
    assert.equal(res.status, 502);
    await expectNotStored('/flaky');
  });

  test('garbage instead of HTTP gets 502', async () => {
    exporter.fault = 'garbage';
    const res = await get(`${proxy.url}/flaky`, SCRAPE_HEADERS);
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /^route flaky: /);
    await expectNotStored('/flaky');
  });

  test('a body over max_body_bytes gets 502 and is never stored', async () => {
    exporter.padding = 20_000;
    const res = await get(`${proxy.url}/flaky`, { accept: 'text/plain' });
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /over max_body_bytes \(4096\)/);
    exporter.padding = 0;
    await expectNotStored('/flaky');
  });

  test('an upstream 500 is passed through with its body and not cached', async () => {
    exporter.fault = 'status-500';
    const res = await get(`${proxy.url}/flaky`, SCRAPE_HEADERS);
    assert.equal(res.status, 500);
    assert.equal(res.body.toString(), 'collector failed\n');
    assert.equal(res.headers['cache-status'], 'scrapecache; fwd=miss; fwd-status=500');
    await expectNotStored('/flaky');
  });

  test('a response with Set-Cookie is served but never stored', async () => {
    exporter.fault = 'set-cookie';
    const res = await get(`${proxy.url}/flaky`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.equal(res.headers['set-cookie'], undefined);
    await expectNotStored('/flaky');
  });

  test('collapsed waiters all get the error of the one failed fetch', async () => {
    exporter.fault = 'reset-mid-body';
    exporter.delayMs = 100;
    const results = await Promise.all(Array.from({ length: 10 }, () => get(`${proxy.url}/flaky`, SCRAPE_HEADERS)));
    assert.deepEqual(
      results.map((r) => r.status),
      Array(10).fill(502),
    );
    assert.equal(exporter.count, 1);
  });
});

describe('the scrape-timeout header', () => {
  test('a waiting client gets 504 before its deadline while the fetch runs on and is stored', async () => {
    exporter.delayMs = 1500;
    const started = Date.now();
    const res = await get(`${proxy.url}/slow`, { ...SCRAPE_HEADERS, 'x-prometheus-scrape-timeout-seconds': '1' });
    const waited = Date.now() - started;
    assert.equal(res.status, 504);
    assert.match(res.body.toString(), /within the scrape timeout \(1s\); the fetch goes on/);
    assert.ok(waited < 1000, `answered after ${waited}ms, past the client's 1s deadline`);
    await proxy.app.cache.drain(); // the fetch the client gave up on, 1.5 s of the upstream's
    const next = await get(`${proxy.url}/slow`, { ...SCRAPE_HEADERS, 'x-prometheus-scrape-timeout-seconds': '1' });
    assert.equal(next.status, 200);
    assert.match(String(next.headers['cache-status']), /^scrapecache; hit/);
    assert.equal(exporter.count, 1);
  });
});

describe('clients that misbehave', () => {
  test('a client that hangs up mid-fill costs nothing and the fill is still stored', async () => {
    exporter.delayMs = 200;
    await new Promise<void>((resolve) => {
      const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1', () => {
        socket.write('GET /slow HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n');
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 50);
      });
    });
    await proxy.app.cache.drain(); // the fill the client hung up on
    const res = await get(`${proxy.url}/slow`, { 'accept-encoding': 'gzip' });
    assert.match(String(res.headers['cache-status']), /^scrapecache; hit/);
    assert.equal(exporter.count, 1);
  });

  test('a client that sends its headers too slowly (slowloris) is cut off, and others are served meanwhile', async () => {
    const limited = await startProxy(`routes:\n  - {name: h, path: /h, upstream: "${healthy.url}/metrics"}\n`, {
      limits: { headersTimeoutMs: 400, requestTimeoutMs: 800, keepAliveTimeoutMs: 400 },
    });
    try {
      const port = Number(new URL(limited.url).port);
      const started = Date.now();
      const closed = new Promise<{ text: string; after: number }>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('GET /h HTTP/1.1\r\nHost: x\r\n'));
        // One header line every 150 ms, never the blank line that ends them.
        const drip = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 150);
        let text = '';
        socket.on('data', (d) => (text += d.toString()));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearInterval(drip);
          resolve({ text, after: Date.now() - started });
        });
      });
      const meanwhile = await get(`${limited.url}/h`, SCRAPE_HEADERS);
      assert.equal(meanwhile.status, 200);
      const { text, after } = await closed;
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.ok(after < 3000, `cut off after ${after} ms`);
    } finally {
      await limited.close();
    }
  });

  test('a request line that is not HTTP gets 400 and the listener keeps serving', async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1', () => socket.write('HELLO THERE\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    await expectOtherRoutesServe();
  });

  test('an absolute-form request target gets 400 and never reaches an upstream', async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1', () =>
        socket.write(`GET http://127.0.0.1:${exporter.port}/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.equal(exporter.count, 0);
  });
});
