/**
 * Regression tests for the defects a hostile review found (issue 8): each is named after what
 * broke, against raw-socket origins and clients on loopback.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { okResponse, rawRequest, startRawOrigin, type RawOrigin } from './helpers/raw-origin.js';
import { gunzipSync, gzipSync } from 'node:zlib';
import { get, post, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';

let origin: RawOrigin;
let proxy: TestProxy;

before(async () => {
  origin = await startRawOrigin();
  proxy = await startProxy(`
routes:
  - name: cached
    path: /metrics
    upstream: ${origin.url}/metrics
  - name: small
    path: /small
    upstream: ${origin.url}/metrics
    max_body_bytes: 1MiB
  - name: pages
    path_prefix: /pages/
    upstream: ${origin.url}/base/
    cache: false
`);
});

after(async () => {
  await proxy.close();
  await origin.close();
});

beforeEach(async () => {
  origin.answer = () => okResponse();
  await proxy.app.cache.invalidate({});
  origin.requests.length = 0;
});

const SMUGGLED = 'POST /control/shutdown HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n';

describe('request smuggling (defect 1)', () => {
  const bodies: Array<[string, string]> = [
    ['chunked', `Transfer-Encoding: chunked\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`],
    ['Content-Length named in Connection', `Connection: keep-alive, Content-Length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
    ['Content-Length', `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
  ];
  for (const [framing, rest] of bodies) {
    for (const [method, path] of [['GET', '/pages/x'], ['HEAD', '/pages/x'], ['GET', '/metrics']] as const) {
      test(`a ${method} with a body (${framing}) on ${path} gets 400 and nothing of it reaches the upstream`, async () => {
        const reply = await rawRequest(proxy.url, `${method} ${path} HTTP/1.1\r\nHost: proxy\r\n${rest}`);
        assert.match(reply, /^HTTP\/1\.1 400 /, reply);
        assert.equal(reply.match(/HTTP\/1\.1 /g)?.length, 1, `one answer only:\n${reply}`);
        assert.deepEqual(origin.requests, []);
        assert.doesNotMatch(origin.received(), /control/);
      });
    }
  }

  test('a GET with Content-Length: 0 is served as usual', async () => {
    const reply = await rawRequest(proxy.url, 'GET /pages/x HTTP/1.1\r\nHost: proxy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 200 /, reply);
    assert.equal(origin.requests.length, 1);
  });

  test('an upstream Connection header naming Content-Length does not strip the framing of the answer', async () => {
    origin.answer = () => okResponse('framed 1\n', ['Connection: keep-alive, Content-Length']);
    const reply = await rawRequest(proxy.url, 'GET /pages/x HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 200 /, reply);
    assert.match(reply, /\r\nContent-Length: 9\r\n/i, reply);
  });
});

describe('pass-through request target (defect 3)', () => {
  test('pass-through forwards the query byte for byte: ?x=http://a//b reaches the upstream as sent', async () => {
    for (const query of ['x=http://a//b', 'a=1&&b=%2F%2f//c', 'q=//', 'u=a///b?c=d//e']) {
      const res = await get(`${proxy.url}/pages/echo?${query}`);
      assert.equal(res.status, 200, query);
      assert.equal(origin.requests.at(-1)?.line, `GET /base/echo?${query} HTTP/1.1`);
    }
  });
});

describe('content codings (defect 6)', () => {
  test('Content-Encoding: GZIP is gzip: stored, and an identity client gets the decoded body', async () => {
    const text = 'upper_case_coding 1\n';
    origin.answer = () => {
      const body = gzipSync(text);
      return Buffer.concat([
        Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Encoding: GZIP\r\nContent-Length: ${body.length}\r\n\r\n`),
        body,
      ]);
    };
    const identity = await get(`${proxy.url}/metrics`, { accept: 'text/plain' });
    assert.equal(identity.status, 200);
    assert.equal(identity.headers['content-encoding'], undefined);
    assert.equal(identity.body.toString(), text);
    const gzip = await get(`${proxy.url}/metrics`, { accept: 'text/plain', 'accept-encoding': 'gzip' });
    assert.equal(gzip.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(gzip.body).toString(), text);
    assert.match(String(gzip.headers['cache-status']), /hit/);
    assert.equal(origin.requests.length, 1);
  });

  test('a br body never reaches a client that accepts only identity or gzip; a br client gets it as sent', async () => {
    const brBody = Buffer.from([0x8b, 0x02, 0x80, 0x68, 0x69, 0x03]);
    origin.answer = () =>
      Buffer.concat([
        Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Encoding: br\r\nContent-Length: ${brBody.length}\r\n\r\n`),
        brBody,
      ]);
    for (const acceptEncoding of [undefined, 'identity', 'gzip', 'gzip, deflate', 'br;q=0, gzip']) {
      const res = await get(`${proxy.url}/metrics`, acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding });
      assert.equal(res.status, 502, `Accept-Encoding ${acceptEncoding}`);
      assert.equal(res.headers['content-encoding'], undefined);
      assert.match(res.body.toString(), /^route cached: upstream sent a content coding \(br\)/);
    }
    const br = await get(`${proxy.url}/metrics`, { 'accept-encoding': 'gzip, BR' });
    assert.equal(br.status, 200);
    assert.equal(br.headers['content-encoding'], 'br');
    assert.deepEqual(br.body, brBody);
  });
});

describe('upstream framing (defect 11)', () => {
  const bigHeaders = () => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\nContent-Length: 2\r\n\r\nok`;

  test('upstream headers over the limit are a bad_response, not unreachable, on cached and pass-through routes', async () => {
    origin.answer = bigHeaders;
    const cached = await get(`${proxy.url}/metrics`);
    assert.equal(cached.status, 502);
    assert.match(cached.body.toString(), /^route cached: upstream sent response headers over the size limit/);
    const passed = await get(`${proxy.url}/pages/x`);
    assert.equal(passed.status, 502);
    const metrics = (await get(`${proxy.adminUrl}/metrics`)).body.toString();
    assert.match(metrics, /scrapecache_upstream_requests_total\{route="cached",code="bad_response"\} 1/);
    assert.match(metrics, /scrapecache_upstream_requests_total\{route="pages",code="bad_response"\} 1/);
    assert.doesNotMatch(metrics, /code="unreachable"/);
  });

  for (const status of [204, 304]) {
    test(`a ${status} from the upstream is passed on without Content-Length`, async () => {
      origin.answer = () => `HTTP/1.1 ${status} X\r\n${status === 204 ? 'Content-Length: 0\r\n' : ''}X-Origin: yes\r\n\r\n`;
      for (const path of ['/metrics', '/pages/x']) {
        const reply = await rawRequest(proxy.url, `GET ${path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n`);
        assert.match(reply, new RegExp(`^HTTP/1\\.1 ${status} `), reply);
        assert.doesNotMatch(reply, /content-length/i, `${path}:\n${reply}`);
        assert.doesNotMatch(reply, /transfer-encoding/i, `${path}:\n${reply}`);
      }
    });
  }
});

describe('found by the fuzz test', () => {
  test('a pipelined request with Expect: 100-continue gets no interim 100 inside the answer before it', async () => {
    await get(`${proxy.url}/metrics`);
    const one = 'GET /metrics HTTP/1.1\r\nHost: p\r\n\r\n';
    const reply = await rawRequest(proxy.url, `${one}${one}GET /metrics HTTP/1.1\r\nHost: p\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    assert.doesNotMatch(reply, /100 Continue/);
    assert.equal(reply.match(/^HTTP\/1\.1 200 OK\r\n/gm)?.length, 3, reply);
    assert.equal(reply.match(/ok_metric 1\n/g)?.length, 3, reply);
  });

  test('a GET with a body the parser then rejects gets one 400, not a second answer nobody asked for', async () => {
    const reply = await rawRequest(proxy.url, 'GET /pages/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(reply.match(/HTTP\/1\.1 /g)?.length, 1, reply);
    assert.match(reply, /^HTTP\/1\.1 400 /);
  });
});

describe('found by the property tests', () => {
  test('POST /invalidate with a lone surrogate in query is 400, not 500', async () => {
    const res = await post(`${proxy.adminUrl}/invalidate`, { path: '/metrics', query: 'x=\ud800' });
    assert.equal(res.status, 400, res.body.toString());
    assert.match(res.body.toString(), /not valid Unicode/);
  });
});

describe('security (defect 10)', () => {
  test('pass-through does not forward Proxy-Authorization upstream', async () => {
    const res = await get(`${proxy.url}/pages/x`, { 'proxy-authorization': 'Basic c2VjcmV0OnNlY3JldA==', 'x-kept': '1' });
    assert.equal(res.status, 200);
    const headers = origin.requests.at(-1)!.headers.map((h) => h.toLowerCase());
    assert.ok(headers.some((h) => h.startsWith('x-kept:')));
    assert.ok(!headers.some((h) => h.startsWith('proxy-authorization:')), headers.join('\n'));
  });

  for (const [how, send] of [
    ['query', (url: string) => post(`${url}/invalidate?__proto__=x`)],
    ['JSON body', (url: string) => post(`${url}/invalidate`, JSON.parse('{"__proto__": {"route": "cached"}}'))],
    ['JSON constructor', (url: string) => post(`${url}/invalidate`, { constructor: 'x' })],
  ] as const) {
    test(`POST /invalidate with __proto__ (${how}) is 400 as an unknown field and drops nothing`, async () => {
      await get(`${proxy.url}/metrics`);
      const res = await send(proxy.adminUrl);
      assert.equal(res.status, 400, res.body.toString());
      assert.match(res.body.toString(), /^unknown field "(__proto__|constructor)"/);
      assert.equal(proxy.app.cache.count, 1);
    });
  }
});

describe('shutdown and reload (defects 7 and 8)', () => {
  test('shutdown answers 503 to every client still waiting on an upstream when the grace period ends', async () => {
    const silent = await startRawOrigin(() => undefined);
    const p = await startProxy(`
routes:
  - name: slow
    path: /slow
    upstream: ${silent.url}/metrics
    timeout: 30s
  - name: slow-pages
    path_prefix: /slow-pages/
    upstream: ${silent.url}/
    cache: false
    timeout: 30s
`);
    try {
      const answers = ['/slow', '/slow', '/slow-pages/x', '/slow?x=1'].map((path) =>
        rawRequest(p.url, `${path.startsWith('/slow?') ? 'HEAD' : 'GET'} ${path} HTTP/1.1\r\nHost: proxy\r\n\r\n`, 15_000),
      );
      while (silent.requests.length < 3) await new Promise((r) => setTimeout(r, 10));
      await p.app.close(100);
      for (const reply of await Promise.all(answers)) {
        assert.match(reply, /^HTTP\/1\.1 503 /, `got: ${JSON.stringify(reply)}`);
      }
    } finally {
      await p.close();
      await silent.close();
    }
  });

  test('a reload that changes a pass-through route does not cut a download in flight', async () => {
    const SIZE = 8 * 1024 * 1024;
    const big = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': SIZE });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const more = () => {
        while (sent < SIZE) {
          sent += chunk.length;
          if (!res.write(chunk)) return res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    const upstream = `http://127.0.0.1:${(big.address() as AddressInfo).port}/`;
    const yaml = (header: string) => `
routes:
  - name: files
    path_prefix: /files/
    upstream: ${upstream}
    cache: false
    headers: { X-Generation: "${header}" }
`;
    const p = await startProxy(yaml('one'));
    try {
      const received = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${p.url}/files/big`, { agent: false }, (res) => {
          let n = 0;
          let reloaded = false;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (!reloaded && n > 1024 * 1024) {
              reloaded = true;
              res.pause();
              writeFileSync(p.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${yaml('two')}`);
              p.app.reload().then((error) => {
                assert.equal(error, undefined);
                res.resume();
              }, reject);
            }
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(received, SIZE);
    } finally {
      await p.close();
      await new Promise((r) => big.close(r));
    }
  });
});

describe('gzip bombs (defect 4)', () => {
  const gzipAnswer = (body: Buffer) => () =>
    Buffer.concat([
      Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Encoding: gzip\r\nContent-Length: ${body.length}\r\n\r\n`),
      body,
    ]);

  test('a gzip body that decodes past max_body_bytes is refused at fill time (502) for gzip clients too, and never stored', async () => {
    const bomb = gzipSync(Buffer.alloc(16 * 1024 * 1024));
    assert.ok(bomb.length < 1024 * 1024);
    origin.answer = gzipAnswer(bomb);
    for (const headers of [SCRAPE_HEADERS, SCRAPE_HEADERS, {}]) {
      const res = await get(`${proxy.url}/small`, headers);
      assert.equal(res.status, 502);
      assert.equal(res.body.toString(), `route small: upstream gzip body decodes to more than max_body_bytes (${1024 * 1024})\n`);
    }
    assert.equal(origin.requests.length, 3);
    assert.equal(proxy.app.cache.count, 0);
    const metrics = (await get(`${proxy.adminUrl}/metrics`)).body.toString();
    assert.match(metrics, /scrapecache_upstream_requests_total\{route="small",code="too_large"\} 3/);
  });

  test('a corrupt gzip body is refused at fill time for every client and never stored', async () => {
    const corrupt = gzipSync('valid_start 1\n'.repeat(100));
    corrupt.fill(0x55, 20, 40);
    origin.answer = gzipAnswer(corrupt);
    const res = await get(`${proxy.url}/small`, SCRAPE_HEADERS);
    assert.equal(res.status, 502);
    assert.equal(res.body.toString(), 'route small: upstream sent a corrupt gzip body\n');
    assert.equal(proxy.app.cache.count, 0);
  });

  test('a gzip body that decodes within max_body_bytes is stored as before', async () => {
    origin.answer = gzipAnswer(gzipSync(Buffer.alloc(1024 * 1024 - 64, 'a')));
    assert.equal((await get(`${proxy.url}/small`, SCRAPE_HEADERS)).status, 200);
    const identity = await get(`${proxy.url}/small`, { accept: SCRAPE_HEADERS.accept });
    assert.equal(identity.status, 200);
    assert.equal(identity.body.length, 1024 * 1024 - 64);
    assert.equal(origin.requests.length, 1);
  });
});

/** Entries keyed by an exact Accept, per cache key (MAX_EXACT_ACCEPTS_PER_KEY). */
const MAX_EXACT_ACCEPTS_PER_KEY = 8;

describe('random Accept headers (defect 5)', () => {
  let exporter: FakeExporter;
  let p: TestProxy;
  before(async () => {
    exporter = await startFakeExporter();
    p = await startProxy(`
routes:
  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe
    query_keys: [target]
  - name: probe-pb
    path: /probe-pb
    upstream: ${exporter.url}/probe
`);
  });
  after(async () => {
    await p.close();
    await exporter.close();
  });

  test('random Accept headers on one target cost one upstream fetch: each gets what the exporter answers it, text', async () => {
    for (let i = 0; i < 40; i++) {
      const res = await get(`${p.url}/probe?target=a`, { accept: `application/x-${i}-${Math.random().toString(36).slice(2)}` });
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    }
    assert.equal(exporter.count, 1, 'client_golang answers text to any Accept that names no format it offers: one entry');
    assert.equal((await get(`${p.url}/probe?target=a`, SCRAPE_HEADERS)).status, 200);
  });

  test('protobuf text encodings, which are not rendered, get entries of their own: at most 8 per target, the rest 406 and counted', async () => {
    exporter.protobuf = true;
    const before = exporter.count;
    const statuses: number[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const accept = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text;x=${i}${Math.random().toString(36).slice(2)}`;
        statuses.push((await get(`${p.url}/probe-pb?target=d`, { accept })).status);
      }
    } finally {
      exporter.protobuf = false;
    }
    assert.equal(exporter.count - before, MAX_EXACT_ACCEPTS_PER_KEY);
    assert.equal(statuses.filter((s) => s === 406).length, 40 - MAX_EXACT_ACCEPTS_PER_KEY);
    const metrics = (await get(`${p.adminUrl}/metrics`)).body.toString();
    assert.match(metrics, new RegExp(`scrapecache_accept_over_cap_total\\{route="probe-pb",answer="not_acceptable"\\} ${40 - MAX_EXACT_ACCEPTS_PER_KEY}`));
  });
});

describe('valid upstream behaviour that gave 502 (defect 9)', () => {
  test('an unsolicited 100 Continue before the 200 is skipped, on cached and pass-through routes', async () => {
    origin.answer = () => `HTTP/1.1 100 Continue\r\n\r\n${okResponse('after_continue 1\n')}`;
    for (let i = 0; i < 3; i++) {
      await proxy.app.cache.invalidate({});
      const res = await get(`${proxy.url}/metrics`);
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.body.toString(), 'after_continue 1\n');
    }
    const passed = await get(`${proxy.url}/pages/x`);
    assert.equal(passed.status, 200, passed.body.toString());
    assert.equal(passed.body.toString(), 'after_continue 1\n');
  });

  test('a keep-alive socket the upstream closes as the next request arrives: the GET is retried once on a fresh connection', async () => {
    // Every connection answers its first request and closes when the second arrives.
    origin.answer = (request, socket) => {
      if (request.onConnection === 0) return okResponse('fresh 1\n', ['Connection: keep-alive']);
      socket.destroy();
      return undefined;
    };
    for (const path of ['/metrics', '/pages/x']) {
      for (let i = 0; i < 6; i++) {
        await proxy.app.cache.invalidate({});
        const res = await get(`${proxy.url}${path}`);
        assert.equal(res.status, 200, `${path} fetch ${i}: ${res.body.toString()}`);
        assert.equal(res.body.toString(), 'fresh 1\n');
      }
    }
  });
});
