// One error type and one writer of its answer (issue 18): status, one-line body, the error's
// own headers, and on the scrape path a Cache-Status naming the error's kind (RFC 9211).
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { ProxyError } from '../src/errors.js';
import { writeError } from '../src/net/write-text.js';

let server: Server;
let next: (res: import('node:http').ServerResponse) => void = () => undefined;

before(async () => {
  server = createServer((_req, res) => next(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
after(() => new Promise<void>((r) => server.close(() => r())));

function get(): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

test('a refusal is answered with its status, its headers and its message as one line, never cached', async () => {
  next = (res) => writeError(res, new ProxyError('METHOD_NOT_ALLOWED', '/cache answers GET', { headers: { Allow: 'GET' } }));
  const res = await get();
  assert.equal(res.status, 405);
  assert.equal(res.headers['allow'], 'GET');
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal(res.headers['cache-status'], undefined);
  assert.equal(res.body, '/cache answers GET\n');
});

test('a failed fetch on the scrape path says how the request went and the error kind in Cache-Status', async () => {
  next = (res) => writeError(res, new ProxyError('UPSTREAM_TIMEOUT', 'route node: upstream timed out after 10ms'), { fwd: 'miss' });
  const res = await get();
  assert.equal(res.status, 504);
  assert.equal(res.headers['cache-status'], 'scrapecache; fwd=miss; detail=timeout');
  assert.equal(res.body, 'route node: upstream timed out after 10ms\n');
});

test('refusals are the client-side codes only; upstream failures and 406 are not', () => {
  for (const code of ['BAD_REQUEST', 'FORBIDDEN', 'NOT_FOUND', 'METHOD_NOT_ALLOWED', 'REQUEST_TOO_LARGE'] as const) assert.equal(new ProxyError(code, 'x').isRefusal, true, code);
  for (const code of ['UPSTREAM_TIMEOUT', 'UPSTREAM_UNREACHABLE', 'NOT_ACCEPTABLE', 'SHUTTING_DOWN'] as const) assert.equal(new ProxyError(code, 'x').isRefusal, false, code);
});

test("the proxy's own 406 says in Cache-Status that nothing was forwarded, with the detail the README documents", async () => {
  next = (res) => writeError(res, new ProxyError('NOT_ACCEPTABLE', 'route pinned serves OpenMetrics only', { headers: { Vary: 'Accept' } }), { fwd: 'none' });
  const res = await get();
  assert.equal(res.status, 406);
  assert.equal(res.headers['vary'], 'Accept');
  assert.equal(res.headers['cache-status'], 'scrapecache; detail=not-acceptable');
  assert.equal(res.body, 'route pinned serves OpenMetrics only\n');
});

test("the listeners' refusals carry their statuses and headers: 401 asks for Basic, 429 says when to retry, 431, 500", async () => {
  const cases = [
    [new ProxyError('UNAUTHORIZED', 'Unauthorized', { headers: { 'WWW-Authenticate': 'Basic' } }), 401, 'www-authenticate', 'Basic'],
    [new ProxyError('RATE_LIMITED', 'Too Many Requests', { headers: { 'Retry-After': '1' } }), 429, 'retry-after', '1'],
    [new ProxyError('HEADERS_TOO_LARGE', 'Request Header Fields Too Large: Authorization'), 431, 'cache-status', undefined],
    [new ProxyError('WEB_CONFIG_INVALID', 'Internal Server Error: the web config is invalid (see the log)'), 500, 'cache-status', undefined],
  ] as const;
  for (const [err, status, header, value] of cases) {
    next = (res) => writeError(res, err);
    const res = await get();
    assert.equal(res.status, status, err.code);
    assert.equal(res.headers[header], value, err.code);
    assert.equal(res.body, `${err.message}\n`);
  }
  for (const code of ['UNAUTHORIZED', 'RATE_LIMITED', 'HEADERS_TOO_LARGE'] as const) assert.equal(new ProxyError(code, 'x').isRefusal, true, code);
  assert.equal(new ProxyError('WEB_CONFIG_INVALID', 'x').isRefusal, false);
});
