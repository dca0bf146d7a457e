/**
 * Pass-through routes (`cache: false` with `path_prefix`, SPEC 2 and 3.5): forwarded below the
 * upstream path with the query, streamed as it arrives, never stored, with the same error
 * answers, timeout and body cap as cached routes.
 */
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, beforeEach, describe, test } from 'node:test';
import { get, post, SCRAPE_HEADERS, sleep, startProxy, type TestProxy } from './helpers/proxy.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';

const LIMIT = 4096;
const TIMEOUT_MS = 1000;
const STREAM_PAUSE_MS = 500;

interface Origin {
  url: string;
  /** Request targets received, in order. */
  seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }>;
  /** When /base/stream sent its last byte (performance.now()). */
  streamEndedAt: number;
  close(): Promise<void>;
}

/** An upstream whose behaviour is chosen by the path below /base/. */
async function startOrigin(): Promise<Origin> {
  const sockets = new Set<Socket>();
  const origin: Origin = { url: '', seen: [], streamEndedAt: 0, close: async () => undefined };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    origin.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const what = (req.url ?? '').replace(/^\/base\//, '').replace(/\?.*$/, '');
    switch (what) {
      case 'stream':
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('first chunk\n');
        setTimeout(() => {
          origin.streamEndedAt = performance.now();
          res.end('second chunk\n');
        }, STREAM_PAUSE_MS);
        return;
      case 'status/404':
        res.writeHead(404, { 'Content-Type': 'text/plain', 'X-Origin': 'yes' });
        res.end('no such page\n');
        return;
      case 'status/500':
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end('collector failed\n');
        return;
      case 'big-declared': {
        const body = Buffer.alloc(LIMIT * 2, 'x');
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
        res.end(body);
        return;
      }
      case 'big-chunked':
        // Starts under the cap, so the status is out before the body grows past it.
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write(Buffer.alloc(1024, 'a'));
        setTimeout(() => {
          for (let i = 0; i < 8; i++) res.write(Buffer.alloc(1024, 'b'));
          res.end();
        }, 100);
        return;
      case 'hang':
        return;
      case 'hop':
        res.writeHead(200, {
          'Content-Type': 'text/plain',
          // With close, so that the proxy does not pool a socket this server is about to close.
          Connection: 'close, X-Hop-Token',
          'Keep-Alive': 'timeout=1234, max=7',
          'X-Hop-Token': 'only-for-the-next-hop',
          'X-End-To-End': 'kept',
        });
        res.write('hop ');
        res.end('body\n');
        return;
      case 'chunked':
        // No Content-Length: Node frames this with Transfer-Encoding: chunked.
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('chunk one, ');
        setTimeout(() => res.end('chunk two\n'), 20);
        return;
      default: {
        const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      }
    }
  };
  const server: Server = createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  origin.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return origin;
}

interface Echo {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** Sends bytes as written and returns what came back until the proxy closed the connection. */
function rawExchange(url: string, text: string): Promise<{ head: string; body: Buffer }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => socket.write(text));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no response head in ${JSON.stringify(all.toString())}`));
      resolve({ head: all.subarray(0, split).toString(), body: all.subarray(split + 4) });
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('raw exchange timed out')));
  });
}

/** Decodes a chunked body by hand, failing on anything malformed. */
function dechunk(body: Buffer): string {
  let text = body.toString('latin1');
  let out = '';
  for (;;) {
    const eol = text.indexOf('\r\n');
    assert.notEqual(eol, -1, `malformed chunked body ${JSON.stringify(body.toString())}`);
    const size = parseInt(text.slice(0, eol), 16);
    assert.ok(Number.isInteger(size), `malformed chunk size in ${JSON.stringify(body.toString())}`);
    if (size === 0) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    text = text.slice(eol + 2 + size + 2);
  }
}

function headerLines(head: string): Array<[string, string]> {
  return head
    .split('\r\n')
    .slice(1)
    .map((line) => {
      const i = line.indexOf(':');
      return [line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()] as [string, string];
    });
}

let origin: Origin;
let cached: FakeExporter;
let proxy: TestProxy;

before(async () => {
  origin = await startOrigin();
  cached = await startFakeExporter();
  proxy = await startProxy(`
routes:
  - name: pages
    path_prefix: /pages/
    upstream: ${origin.url}/base/
    cache: false
    timeout: ${TIMEOUT_MS}ms
    max_body_bytes: ${LIMIT}
    headers: { X-Scope: pages }
  - name: pages-query
    path_prefix: /q/
    upstream: ${origin.url}/base/?fixed=1
    cache: false
  - name: pages-refused
    path_prefix: /refused/
    upstream: http://127.0.0.1:1/
    cache: false
  - name: cached
    path: /cached
    upstream: ${cached.url}/metrics
`);
});

after(async () => {
  await proxy.close();
  await origin.close();
  await cached.close();
});

beforeEach(() => {
  origin.seen.length = 0;
});

describe('pass-through routes', () => {
  test('forwards the rest of the path below the upstream path, raw, with the query as sent', async () => {
    const cases: Array<[string, string]> = [
      ['/pages/', '/base/'],
      ['/pages/echo', '/base/echo'],
      ['/pages/a/b/c.txt', '/base/a/b/c.txt'],
      ['/pages/a%20b', '/base/a%20b'],
      ['/pages/echo?b=2&a=1&a=0', '/base/echo?b=2&a=1&a=0'],
      ['/q/echo', '/base/echo?fixed=1'],
      ['/q/echo?x=1', '/base/echo?fixed=1&x=1'],
    ];
    for (const [path, upstream] of cases) {
      const res = await get(`${proxy.url}${path}`);
      assert.equal(res.status, 200, `${path}: ${res.body.toString()}`);
      assert.equal((JSON.parse(res.body.toString()) as Echo).url, upstream, path);
    }
    assert.deepEqual(
      origin.seen.map((s) => s.url),
      cases.map(([, upstream]) => upstream),
    );
  });

  test('a request path cannot point the proxy at another host', async () => {
    const res = await get(`${proxy.url}/pages//127.0.0.1:1/x`);
    assert.equal(res.status, 200, res.body.toString());
    const echo = JSON.parse(res.body.toString()) as Echo;
    assert.equal(echo.url, '/base/127.0.0.1:1/x');
    assert.equal(echo.headers.host, new URL(origin.url).host);
  });

  test('a backslash in the path (read as / by URL parsers: /\\host) gets 400 and reaches no host', async () => {
    const other = createServer((_req, res) => res.end('other host reached'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    let reached = 0;
    other.on('request', () => reached++);
    try {
      const port = (other.address() as AddressInfo).port;
      for (const path of [`/pages/\\127.0.0.1:${port}/x`, `/pages/\\2130706433:${port}/x`, `/pages/%5C127.0.0.1:${port}/x`]) {
        const res = await get(`${proxy.url}${path}`);
        assert.equal(res.status, 400, path);
      }
      assert.equal(reached, 0);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  test('sends the route headers upstream, over a client header of the same name', async () => {
    const res = await get(`${proxy.url}/pages/echo`, { 'X-Scope': 'client-chose-this', 'X-Client': 'kept' });
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body.toString()) as Echo;
    assert.equal(echo.headers['x-scope'], 'pages');
    assert.equal(echo.headers['x-client'], 'kept');
    assert.equal(echo.headers.host, new URL(origin.url).host, 'Host is the upstream\'s, not the proxy\'s');
  });

  test('answers with Cache-Status: scrapecache; fwd=bypass', async () => {
    const res = await get(`${proxy.url}/pages/echo`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-status'], 'scrapecache; fwd=bypass');
  });

  test('streams the response: the first chunk reaches the client before the upstream has finished', async () => {
    const started = performance.now();
    const { firstDataAt, endAt, body } = await new Promise<{ firstDataAt: number; endAt: number; body: string }>((resolve, reject) => {
      const req = request(`${proxy.url}/pages/stream`, { agent: false }, (res) => {
        let firstDataAt = 0;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (firstDataAt === 0) firstDataAt = performance.now();
          body += chunk;
        });
        res.on('end', () => resolve({ firstDataAt, endAt: performance.now(), body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, 'first chunk\nsecond chunk\n');
    assert.ok(origin.streamEndedAt > 0);
    assert.ok(
      firstDataAt < origin.streamEndedAt,
      `first chunk at +${Math.round(firstDataAt - started)}ms, upstream finished at +${Math.round(origin.streamEndedAt - started)}ms`,
    );
    assert.ok(firstDataAt - started < STREAM_PAUSE_MS - 150, `first chunk after ${Math.round(firstDataAt - started)}ms: buffered`);
    assert.ok(endAt - started >= STREAM_PAUSE_MS - 20, `ended after ${Math.round(endAt - started)}ms`);
  });

  test('never stores: every request reaches the upstream and GET /cache lists nothing for the route', async () => {
    // A cached route alongside, so that the listing is known to show stored entries.
    assert.equal((await get(`${proxy.url}/cached`, SCRAPE_HEADERS)).status, 200);
    const first = await get(`${proxy.url}/pages/echo`, SCRAPE_HEADERS);
    const second = await get(`${proxy.url}/pages/echo`, SCRAPE_HEADERS);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(second.headers['cache-status'], 'scrapecache; fwd=bypass');
    assert.equal(second.headers.age, undefined, 'a pass-through answer has no Age');
    assert.equal(origin.seen.length, 2);
    const listing = await get(`${proxy.adminUrl}/cache`);
    assert.equal(listing.status, 200);
    const entries = JSON.parse(listing.body.toString()) as Array<{ route: string }>;
    assert.deepEqual(
      entries.map((e) => e.route),
      ['cached'],
    );
  });

  test('HEAD is forwarded as HEAD and answered without a body', async () => {
    const res = await get(`${proxy.url}/pages/echo`, {}, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
    assert.equal(res.headers['cache-status'], 'scrapecache; fwd=bypass');
    assert.deepEqual(
      origin.seen.map((s) => s.method),
      ['HEAD'],
    );
  });

  test('POST gets 405 with Allow: GET, HEAD and never reaches the upstream', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = method === 'POST' ? await post(`${proxy.url}/pages/echo`, { a: 1 }) : await get(`${proxy.url}/pages/echo`, {}, { method });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'GET, HEAD', method);
      assert.match(res.body.toString(), /^route pages\b[^\n]*\n$/);
    }
    assert.equal(origin.seen.length, 0);
  });

  test('passes upstream 404 and 500 through with their bodies', async () => {
    const notFound = await get(`${proxy.url}/pages/status/404`);
    assert.equal(notFound.status, 404);
    assert.equal(notFound.body.toString(), 'no such page\n');
    assert.equal(notFound.headers['x-origin'], 'yes');
    assert.equal(notFound.headers['cache-status'], 'scrapecache; fwd=bypass');
    const failed = await get(`${proxy.url}/pages/status/500`);
    assert.equal(failed.status, 500);
    assert.equal(failed.body.toString(), 'collector failed\n');
    assert.equal(failed.headers['content-type'], 'text/plain');
  });

  test('an unreachable upstream gets 502 with one line naming the route', async () => {
    const res = await get(`${proxy.url}/refused/anything`);
    assert.equal(res.status, 502);
    assert.equal(res.body.toString(), 'route pages-refused: upstream unreachable at 127.0.0.1:1 (ECONNREFUSED)\n');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.match(String(res.headers['cache-status']), /^scrapecache; fwd=bypass\b/);
  });

  test('a hanging upstream gets 504 after the route timeout', async () => {
    const started = performance.now();
    const res = await get(`${proxy.url}/pages/hang`);
    const elapsed = performance.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.body.toString(), `route pages: upstream timed out after ${TIMEOUT_MS}ms\n`);
    assert.ok(elapsed >= TIMEOUT_MS - 50 && elapsed < TIMEOUT_MS + 1500, `answered after ${Math.round(elapsed)}ms`);
    assert.equal((await get(`${proxy.url}/pages/echo`)).status, 200, 'the route serves on');
  });

  test('a declared Content-Length over max_body_bytes gets 502 naming the route and the limit', async () => {
    const res = await get(`${proxy.url}/pages/big-declared`);
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), new RegExp(`^route pages: [^\\n]*max_body_bytes \\(${LIMIT}\\)\\n$`));
  });

  test('a chunked body that grows past max_body_bytes is cut off, and the proxy serves on', async () => {
    const outcome = await new Promise<{ status: number; received: number; complete: boolean; error: string | undefined }>((resolve, reject) => {
      const req = request(`${proxy.url}/pages/big-chunked`, { agent: false }, (res) => {
        let received = 0;
        let error: string | undefined;
        res.on('data', (c: Buffer) => (received += c.length));
        res.on('error', (err) => (error = err.message));
        res.on('close', () => resolve({ status: res.statusCode ?? 0, received, complete: res.complete, error }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(outcome.status, 200, 'the status was sent before the body grew');
    assert.equal(outcome.complete, false, `the client must see an incomplete response (got ${outcome.received} bytes, complete)`);
    assert.ok(outcome.received <= LIMIT, `the client got ${outcome.received} bytes, more than max_body_bytes`);
    const next = await get(`${proxy.url}/pages/echo`);
    assert.equal(next.status, 200);
    assert.equal((await get(`${proxy.url}/cached`, SCRAPE_HEADERS)).status, 200);
  });

  test('Connection, Keep-Alive and Transfer-Encoding from the upstream are not copied to the client', async () => {
    const { head, body } = await rawExchange(proxy.url, 'GET /pages/hop HTTP/1.1\r\nHost: scrapecache\r\nConnection: close\r\n\r\n');
    const lines = headerLines(head);
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.ok(!lines.some(([n, v]) => n === 'connection' && /x-hop-token/i.test(v)), `Connection copied:\n${head}`);
    assert.ok(!lines.some(([n, v]) => n === 'keep-alive' && v.includes('1234')), `Keep-Alive copied:\n${head}`);
    assert.ok(lines.filter(([n]) => n === 'transfer-encoding').length <= 1, `Transfer-Encoding twice:\n${head}`);
    assert.deepEqual(
      lines.filter(([n]) => n === 'x-end-to-end'),
      [['x-end-to-end', 'kept']],
    );
    const te = lines.find(([n]) => n === 'transfer-encoding')?.[1];
    assert.equal(te === 'chunked' ? dechunk(body) : body.toString(), 'hop body\n');
  });

  test('an HTTP/1.0 client gets an unchunked body although the upstream sent chunked', async () => {
    const { head, body } = await rawExchange(proxy.url, 'GET /pages/chunked HTTP/1.0\r\nHost: scrapecache\r\n\r\n');
    assert.match(head, /^HTTP\/1\.[01] 200 /);
    assert.ok(!headerLines(head).some(([n]) => n === 'transfer-encoding'), `Transfer-Encoding sent to an HTTP/1.0 client:\n${head}`);
    assert.equal(body.toString(), 'chunk one, chunk two\n');
  });

  test(
    'headers the upstream names in Connection are dropped too (RFC 9110 7.6.1)',
    async () => {
      const res = await get(`${proxy.url}/pages/hop`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-end-to-end'], 'kept');
      assert.equal(res.headers['x-hop-token'], undefined);
    },
  );

  test(
    'Connection, Keep-Alive and the headers the client names in Connection are not forwarded upstream',
    async () => {
      const res = await get(`${proxy.url}/pages/echo`, {
        Connection: 'close, X-Client-Hop',
        'Keep-Alive': 'timeout=5',
        'X-Client-Hop': 'only-for-the-proxy',
        'X-Client': 'kept',
      });
      assert.equal(res.status, 200);
      const { headers } = JSON.parse(res.body.toString()) as Echo;
      assert.equal(headers['x-client'], 'kept');
      assert.equal(headers['keep-alive'], undefined, 'Keep-Alive forwarded');
      assert.equal(headers['x-client-hop'], undefined, 'a header the client named in Connection was forwarded');
      assert.doesNotMatch(String(headers.connection), /x-client-hop|close/i, 'the client\'s Connection header was forwarded');
    },
  );

  test('a path with .. segments gets 400 and never reaches the upstream', async () => {
    for (const path of ['/pages/../admin', '/pages/a/../../etc/passwd', '/pages/%2e%2e/secret', '/pages/a/..%2f..%2fsecret', '/pages/..']) {
      const res = await get(`${proxy.url}${path}`);
      assert.equal(res.status, 400, path);
      assert.equal(res.body.toString().split('\n').length, 2, `one line for ${path}`);
    }
    assert.equal(origin.seen.length, 0);
  });

  test('the proxy still serves after every failure above', async () => {
    await sleep(10);
    const res = await get(`${proxy.url}/pages/echo?after=all`);
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body.toString()) as Echo).url, '/base/echo?after=all');
  });
});
