/**
 * Regression tests for the defects a hostile review found (issue 8): each is named after what
 * broke, against raw-socket origins and clients on loopback.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { okResponse, rawRequest, startRawOrigin, type RawOrigin } from './helpers/raw-origin.js';
import { get, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';

let origin: RawOrigin;
let proxy: TestProxy;

before(async () => {
  origin = await startRawOrigin();
  proxy = await startProxy(`
routes:
  - name: cached
    path: /metrics
    upstream: ${origin.url}/metrics
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
  await proxy.app.cache.invalidate(() => true);
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
