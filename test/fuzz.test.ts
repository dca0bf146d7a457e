/**
 * A bounded raw-socket fuzz test of the scrape listener (issue 8): a few thousand generated
 * requests (mutated request lines, headers, framing, bodies, pipelining) against a counting origin
 * behind a cached and a pass-through route. It asserts that the process lives, that every
 * response is well framed, that the origin never sees a request the client did not send as one,
 * and that no response carries another client's body. The generator is seeded: a failure names
 * its seed and the request that broke.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { get, startProxy, type TestProxy } from './helpers/proxy.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const CONNECTIONS = 1400;
const PARALLEL = 24;

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    int: (n: number) => Math.floor(next() * n),
  };
}

interface OriginSeen {
  method: string;
  url: string;
  framing: boolean;
  raw?: string;
}

let originSeen: OriginSeen[] = [];
let proxy: TestProxy;
let origin: ReturnType<typeof createServer>;

before(async () => {
  origin = createServer((req: IncomingMessage, res: ServerResponse) => {
    originSeen.push({ method: req.method ?? '', url: req.url ?? '', framing: (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0") || req.headers["transfer-encoding"] !== undefined, raw: JSON.stringify(req.rawHeaders) });
    req.resume();
    const body = `seen ${req.method} ${req.url}\n`;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  proxy = await startProxy(
    `
log:
  level: error
routes:
  - name: cached
    path: /metrics
    upstream: ${url}/metrics
    timeout: 5s
  - name: pages
    path_prefix: /pages/
    upstream: ${url}/base/
    cache: false
    timeout: 5s
`,
    { limits: { headersTimeoutMs: 2000, requestTimeoutMs: 4000, keepAliveTimeoutMs: 5000 } },
  );
});

after(async () => {
  await proxy.close();
  await new Promise((r) => origin.close(r));
});

/** One generated request: its bytes and what a correct server makes of it. */
interface Generated {
  text: string;
  method: string;
  id: string;
  /** Well-formed GET or HEAD without a body on a route: the one kind that may reach the origin. */
  forwardable: boolean;
}

const SMUGGLED = 'GET /pages/~smuggled~ HTTP/1.1\r\nHost: x\r\n\r\n';

function generate(rnd: ReturnType<typeof prng>, n: number): Generated {
  const id = `~r${n}~`;
  const shared = rnd.chance(0.3);
  const method = rnd.chance(0.8) ? rnd.pick(['GET', 'GET', 'GET', 'HEAD']) : rnd.pick(['POST', 'PUT', 'DELETE', 'OPTIONS', 'get', 'G ET', 'CONNECT', 'TRACE', 'PATCH', '']);
  const routePath = rnd.pick(['/metrics', '/pages/']);
  let path = routePath === '/metrics' ? `/metrics?${shared ? `shared=${rnd.int(4)}` : `id=${id}`}` : `/pages/${shared ? `s${rnd.int(4)}` : id}`;
  if (rnd.chance(0.05)) path = rnd.pick(['/pages/../metrics', '/pages/%2e%2e/x', '/pages/\\x', '//pages/x', '/nope', '*', 'http://evil/pages/x', '/pages/%zz', '/metrics?%zz', '/metrics?a=1&a=2', `/pages/${'a'.repeat(20_000)}`]) + id;
  if (rnd.chance(0.05)) path += rnd.pick(['?x=http://a//b', '#frag', '?a=%00', '?\u00ff', '; x', '?a=1&&b']);
  const version = rnd.chance(0.95) ? 'HTTP/1.1' : rnd.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ', 'HTTP/x', 'http/1.1', '']);
  const headers: string[] = [];
  if (rnd.chance(0.97)) headers.push(`Host: ${rnd.pick(['proxy', 'evil.example', '127.0.0.1:1', ''])}`);
  if (rnd.chance(0.03)) headers.push('Host: second');
  if (rnd.chance(0.5)) headers.push(`Accept: ${rnd.pick(['application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', 'text/plain', '*/*', 'application/x-nope', 'text/*;q=0, */*', '', ';;;,,', 'text/plain;q=abc'])}`);
  if (rnd.chance(0.5)) headers.push(`Accept-Encoding: ${rnd.pick(['gzip', 'identity', 'br', '*;q=0', 'gzip;q=0, identity;q=0', 'GZIP', ''])}`);
  if (rnd.chance(0.1)) headers.push(`X-Prometheus-Scrape-Timeout-Seconds: ${rnd.pick(['10', '0', '-1', 'abc', '1e9', '0.5'])}`);
  if (rnd.chance(0.1)) headers.push(`Connection: ${rnd.pick(['keep-alive', 'close', 'keep-alive, Content-Length', 'Transfer-Encoding', 'x-foo, close', 'upgrade'])}`);
  if (rnd.chance(0.05)) headers.push(rnd.pick(['Upgrade: websocket', 'Expect: 100-continue', 'Proxy-Authorization: Basic eA==', 'Te: trailers', 'Trailer: X']));
  if (rnd.chance(0.04)) headers.push(rnd.pick(['X-Folded: a\r\n b', 'Bad Header: x', 'X-Nul: a\0b', ': empty', `X-Long: ${'v'.repeat(20_000)}`, 'X-LF: a\nb']));
  let body = '';
  let hasBody = false;
  if (rnd.chance(0.12)) {
    hasBody = true;
    const content = rnd.chance(0.5) ? SMUGGLED : 'x'.repeat(rnd.int(20) + 1);
    switch (rnd.int(5)) {
      case 0:
        headers.push(`Content-Length: ${content.length}`);
        body = content;
        break;
      case 1:
        headers.push('Transfer-Encoding: chunked');
        body = `${content.length.toString(16)}\r\n${content}\r\n0\r\n\r\n`;
        break;
      case 2:
        headers.push(`Content-Length: ${content.length}`, 'Transfer-Encoding: chunked');
        body = `${content.length.toString(16)}\r\n${content}\r\n0\r\n\r\n`;
        break;
      case 3:
        headers.push(`Content-Length: ${content.length}`, `Content-Length: ${content.length + 1}`);
        body = content;
        break;
      default:
        headers.push(`Transfer-Encoding: ${rnd.pick(['chunked, identity', ' chunked', 'identity', 'gzip, chunked', 'xchunked'])}`);
        body = `${content.length.toString(16)}\r\n${content}\r\n0\r\n\r\n`;
    }
  } else if (rnd.chance(0.03)) {
    headers.push('Content-Length: 0');
  }
  const eol = rnd.chance(0.02) ? '\n' : '\r\n';
  const line = `${method} ${path} ${version}`.replace(/ $/, rnd.chance(0.5) ? ' ' : '');
  const text = `${line}${eol}${headers.join(eol)}${headers.length ? eol : ''}${eol}${body}`;
  // node's parser takes any HTTP/d.d version (HTTP/2.0 is answered as 1.x), and a line without one.
  const forwardable = (method === 'GET' || method === 'HEAD') && !hasBody && /^\S+ \S+( HTTP\/\d\.\d)?$/.test(line);
  return { text, method, id, forwardable };
}

interface Parsed {
  status: number;
  headers: Map<string, string[]>;
  body: string;
}

/** A strict HTTP/1.1 response parser: throws on anything that is not well framed. */
function parseResponses(raw: string, methods: string[]): Parsed[] {
  const out: Parsed[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const end = raw.indexOf('\r\n\r\n', pos);
    if (end === -1) throw new Error(`incomplete response head at ${pos}: ${JSON.stringify(raw.slice(pos, pos + 200))}`);
    const [statusLine = '', ...lines] = raw.slice(pos, end).split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(statusLine);
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const h = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([^\r\n\0]*)$/.exec(line);
      if (!h) throw new Error(`bad header line ${JSON.stringify(line)}`);
      const name = h[1]!.toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), h[2]!]);
    }
    pos = end + 4;
    // RFC 9110 15.2: interim answers (node sends 100 Continue to an Expect) precede the final one.
    if (status >= 100 && status < 200) continue;
    const method = methods[out.length];
    if (method === undefined) throw new Error(`more responses than requests: ${JSON.stringify(raw.slice(end - 200, end + 200))}`);
    const cl = headers.get('content-length');
    const te = headers.get('transfer-encoding');
    if (cl && te) throw new Error('both Content-Length and Transfer-Encoding');
    if (cl && cl.length > 1) throw new Error('two Content-Length headers');
    const close = /close/i.test((headers.get('connection') ?? []).join(','));
    let body = '';
    if (method === 'HEAD' || status === 204 || status === 304) {
      body = '';
    } else if (te) {
      if (te.join(',') !== 'chunked') throw new Error(`Transfer-Encoding ${te}`);
      for (;;) {
        const lineEnd = raw.indexOf('\r\n', pos);
        if (lineEnd === -1) throw new Error('incomplete chunk size');
        const size = parseInt(raw.slice(pos, lineEnd), 16);
        if (!Number.isInteger(size) || !/^[0-9a-f]+$/i.test(raw.slice(pos, lineEnd))) throw new Error('bad chunk size');
        pos = lineEnd + 2;
        if (size === 0) {
          if (raw.slice(pos, pos + 2) !== '\r\n') throw new Error('bad last chunk');
          pos += 2;
          break;
        }
        body += raw.slice(pos, pos + size);
        if (raw.slice(pos + size, pos + size + 2) !== '\r\n') throw new Error('bad chunk end');
        pos += size + 2;
      }
    } else if (cl) {
      const length = Number(cl[0]);
      if (!Number.isSafeInteger(length) || length < 0) throw new Error(`Content-Length ${cl[0]}`);
      if (pos + length > raw.length) throw new Error(`body shorter than Content-Length ${length}`);
      body = raw.slice(pos, pos + length);
      pos += length;
    } else {
      if (!close) throw new Error(`response ${status} without framing on a kept connection`);
      body = raw.slice(pos);
      pos = raw.length;
    }
    out.push({ status, headers, body });
    // After Connection: close nothing more is framed; a HEAD answered by the parser's 400 may carry its body.
    if (close) {
      if (pos < raw.length && method !== 'HEAD') throw new Error(`bytes after Connection: close: ${JSON.stringify(raw.slice(pos, pos + 100))}`);
      break;
    }
  }
  return out;
}

function exchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the proxy neither answered nor closed within 15 s'));
    }, 15_000);
    socket.on('data', (c: Buffer) => got.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got).toString('latin1'));
    });
    socket.on('connect', () => socket.end(Buffer.from(bytes, 'latin1')));
  });
}

test(`thousands of mutated and pipelined requests: framed answers, no smuggled or foreign request upstream, no foreign body (seed ${SEED})`, async () => {
  originSeen = [];
  const rnd = prng(SEED);
  const port = proxy.app.scrapeAddress.port;
  const sentIds = new Map<string, Generated>();
  let total = 0;
  const connections: Generated[][] = [];
  for (let c = 0; c < CONNECTIONS; c++) {
    const requests = Array.from({ length: 1 + (rnd.chance(0.4) ? rnd.int(4) : 0) }, () => generate(rnd, total++));
    for (const r of requests) sentIds.set(r.id, r);
    connections.push(requests);
  }
  let answered = 0;
  for (let i = 0; i < connections.length; i += PARALLEL) {
    await Promise.all(
      connections.slice(i, i + PARALLEL).map(async (requests) => {
        const raw = await exchange(port, requests.map((r) => r.text).join(''));
        let responses: Parsed[];
        try {
          responses = parseResponses(raw, requests.map((r) => r.method));
        } catch (err) {
          throw new Error(`${(err as Error).message}\nsent: ${JSON.stringify(requests.map((r) => r.text.slice(0, 300)))}\ngot: ${JSON.stringify(raw.slice(0, 600))}`);
        }
        answered += responses.length;
        responses.forEach((res, k) => {
          const req = requests[k]!;
          // A body from the origin names the request it answered: it must be this client's.
          const seen = /^seen (\S+) (\S+)\n$/.exec(res.body);
          if (!seen) return;
          const url = seen[2]!;
          const ids = url.match(/~r\d+~/g) ?? [];
          const sharedKey = /shared=\d|\/s\d/.exec(url)?.[0];
          const ok = ids.length === 0 ? sharedKey !== undefined && req.text.includes(sharedKey) : ids.length === 1 && ids[0] === req.id;
          assert.ok(ok, `a response carries another request's body: ${res.body.trim()} for ${JSON.stringify(req.text.slice(0, 200))}`);
        });
      }),
    );
  }
  // The process lives and serves.
  assert.equal((await get(`${proxy.url}/pages/after`)).status, 200);
  for (const seen of originSeen.slice(0, -1)) {
    assert.ok(seen.method === 'GET' || seen.method === 'HEAD', `the origin saw ${seen.method} ${seen.url}`);
    assert.ok(!seen.framing, `a request with a body reached the origin: ${seen.method} ${seen.url} ${seen.raw} from ${JSON.stringify(sentIds.get(seen.url.match(/~r\d+~/)?.[0] ?? "")?.text)}`);
    assert.doesNotMatch(seen.url, /smuggled/);
    assert.match(seen.url, /^\/(base\/|metrics)/, `outside the routes: ${seen.url}`);
    const ids = seen.url.match(/~r\d+~/g) ?? [];
    for (const id of ids) {
      const req = sentIds.get(id);
      assert.ok(req?.forwardable, `the origin saw a request the client did not send as one: ${seen.method} ${seen.url} from ${JSON.stringify(req)}`);
    }
  }
  // Each id is one request from the client: pass-through forwards it once; a cached key fetches once.
  const perId = new Map<string, number>();
  for (const seen of originSeen) for (const id of seen.url.match(/~r\d+~/g) ?? []) perId.set(id, (perId.get(id) ?? 0) + 1);
  for (const [id, n] of perId) assert.equal(n, 1, `${id} reached the origin ${n} times`);
  assert.ok(total > 1500, `${total} requests generated`);
  assert.ok(answered > total / 4, `${answered} of ${total} answered`);
});
