// A hit's header block (issue 9, issue 21): Age and Cache-Status's ttl are right at every hit,
// whether the key is hot (its block prepared once per second of Age and reused) or cold (built
// per hit and not kept on the entry, where it would outlive the young generation: with
// thousands of keys each scraped every few seconds, it was promoted at every hit).
import assert from 'node:assert/strict';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { Variant } from '../src/cache/stored-response.js';
import { writeHit } from '../src/server/respond.js';

let server: Server;
let next: (res: ServerResponse) => void = () => undefined;

before(async () => {
  server = createServer((_req, res) => next(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
after(() => new Promise<void>((r) => server.close(() => r())));

function hit(variant: Variant, age: number, ttl: number): Promise<{ headers: Record<string, string | string[] | undefined>; body: string }> {
  next = (res) => writeHit(res, 200, variant, age, ttl, false);
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ headers: res.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

function variant(): Variant {
  return { body: Buffer.from('up 1\n'), head: ['Content-Type', 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length', '5'] };
}

test('a hot key reuses its header block within a second of Age, and every hit carries its own Age and ttl', async () => {
  const v = variant();
  const seen: string[] = [];
  for (const [age, ttl] of [
    [5, 55],
    [5, 55],
    [5, 55],
    [6, 54],
    [6, 54],
    [7, 53],
  ] as const) {
    const { headers, body } = await hit(v, age, ttl);
    assert.equal(body, 'up 1\n');
    assert.equal(headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    seen.push(`${headers['age']} ${headers['cache-status']}`);
  }
  assert.deepEqual(seen, ['5 scrapecache; hit; ttl=55', '5 scrapecache; hit; ttl=55', '5 scrapecache; hit; ttl=55', '6 scrapecache; hit; ttl=54', '6 scrapecache; hit; ttl=54', '7 scrapecache; hit; ttl=53']);
  // Hit twice at Age 6, then once at 7: the block of 6 was kept while it served, the one of 7 is not yet.
  assert.equal(v.hit, undefined);
  await hit(v, 7, 53);
  assert.deepEqual((v as Variant).hit?.head.slice(-4), ['Age', '7', 'Cache-Status', 'scrapecache; hit; ttl=53']);
});

test('a cold key (hit once per second of Age or less) gets the right headers and keeps no header block', async () => {
  const v = { ...variant(), detail: '; detail="rendered from protobuf"' };
  for (const [age, ttl] of [
    [3, 57],
    [11, 49],
    [19, 41],
  ] as const) {
    const { headers } = await hit(v, age, ttl);
    assert.equal(headers['age'], String(age));
    assert.equal(headers['cache-status'], `scrapecache; hit; ttl=${ttl}; detail="rendered from protobuf"`);
    assert.equal(v.hit, undefined, `age ${age}: nothing kept for a key hit once`);
  }
});
