/** SPEC 2.1 in one process: what is loaded, what is dropped, what leaves the disk, what never goes on it. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileOf } from '../src/cache/disk-store.js';
import { cacheKey } from '../src/cache/key.js';
import { decodeRecord } from '../src/cache/stored-record.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, sleep, startProxy } from './helpers/proxy.js';
import { TestClock } from './helpers/test-clock.js';

let exporter: FakeExporter;
before(async () => {
  exporter = await startFakeExporter();
});
after(() => exporter.close());

function decodeRecordOr(file: string): number | undefined {
  try {
    return decodeRecord(readFileSync(file)).fetchedAt;
  } catch {
    return undefined;
  }
}

const newDir = () => join(mkdtempSync(join(tmpdir(), 'scrapecache-level-')), 'cache');
const files = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.rec'));

/** Waits (bounded) until the directory holds n entry files: writes end after the answer (polls real file writes, not the clock). */
async function untilFiles(dir: string, n: number): Promise<void> {
  for (let i = 0; i < 100 && files(dir).length !== n; i++) await sleep(20);
  assert.equal(files(dir).length, n);
}

const config = (dir: string, routes: string, cache = '') => `cache:
${cache}  disk:
    path: ${dir}
routes:
${routes}`;

const nodeRoute = (extra = '') => `  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
    ttl: 1h
${extra}`;

describe('the disk level in the proxy', () => {
  test('an entry whose route is gone is dropped at start-up, from disk too', async () => {
    const dir = newDir();
    const a = await startProxy(config(dir, nodeRoute()));
    await get(`${a.url}/node/metrics`, SCRAPE_HEADERS);
    await untilFiles(dir, 1);
    await a.close();
    const b = await startProxy(config(dir, `  - name: other\n    path: /other\n    upstream: ${exporter.url}/other\n`));
    try {
      assert.ok(b.logs.some((l) => l['msg'] === 'stored entry dropped: its route is gone' && l['route'] === 'node'));
      assert.equal(files(dir).length, 0);
    } finally {
      await b.close();
    }
  });

  test('an entry whose route now fetches differently (headers changed) is dropped and fetched again', async () => {
    const dir = newDir();
    const a = await startProxy(config(dir, nodeRoute('    headers: { X-Scope: a }\n')));
    await get(`${a.url}/node/metrics`, SCRAPE_HEADERS);
    await untilFiles(dir, 1);
    await a.close();
    const b = await startProxy(config(dir, nodeRoute('    headers: { X-Scope: b }\n')));
    try {
      assert.ok(b.logs.some((l) => l['msg'] === 'stored entry dropped: its route fetches differently now'));
      const before = exporter.count;
      const res = await get(`${b.url}/node/metrics`, SCRAPE_HEADERS);
      assert.equal(res.headers['cache-status'], 'scrapecache; fwd=miss; stored');
      assert.equal(exporter.count, before + 1);
    } finally {
      await b.close();
    }
  });

  test('a changed ttl keeps the loaded entry (its times were fixed when it was fetched)', async () => {
    const dir = newDir();
    const a = await startProxy(config(dir, nodeRoute()));
    await get(`${a.url}/node/metrics`, SCRAPE_HEADERS);
    await untilFiles(dir, 1);
    await a.close();
    const b = await startProxy(config(dir, nodeRoute().replace('ttl: 1h', 'ttl: 2h')));
    try {
      const res = await get(`${b.url}/node/metrics`, SCRAPE_HEADERS);
      assert.match(String(res.headers['cache-status']), /^scrapecache; hit; ttl=3[0-9]{3}$/);
    } finally {
      await b.close();
    }
  });

  test('invalidated entries leave the disk, and a refresh writes the new one', async () => {
    const dir = newDir();
    const p = await startProxy(config(dir, `${nodeRoute()}  - name: probe\n    path: /probe\n    upstream: ${exporter.url}/probe\n    ttl: 1h\n`));
    try {
      await get(`${p.url}/node/metrics`, SCRAPE_HEADERS);
      await get(`${p.url}/probe?target=a`, SCRAPE_HEADERS);
      await get(`${p.url}/probe?target=b`, SCRAPE_HEADERS);
      await untilFiles(dir, 3);
      assert.deepEqual(JSON.parse((await post(`${p.adminUrl}/invalidate`, { path: '/probe', query: 'target=a' })).body.toString()), { invalidated: 1 });
      assert.equal(files(dir).length, 2);
      const nodeFile = join(dir, fileOf(cacheKey('node', '/node/metrics', '', 'openmetrics;1.0.0')));
      const old = decodeRecord(readFileSync(nodeFile)).fetchedAt;
      await post(`${p.adminUrl}/invalidate`, { route: 'node', refresh: true });
      // Polls the refetch's file write (real I/O), not the clock.
      for (let i = 0; i < 100 && !((decodeRecordOr(nodeFile) ?? 0) > old); i++) await sleep(20);
      assert.ok(decodeRecordOr(nodeFile)! > old, 'the refreshed entry replaced the old file');
      await post(`${p.adminUrl}/invalidate`, {});
      assert.equal(files(dir).length, 0);
    } finally {
      await p.close();
    }
  });

  test('invalidating a large selection answers once every entry is gone from memory and disk, and scrapes of other routes go on meanwhile', async () => {
    const dir = newDir();
    const p = await startProxy(config(dir, `${nodeRoute()}  - name: probe\n    path: /probe\n    upstream: ${exporter.url}/probe\n    ttl: 1h\n    query_keys: [target]\n`));
    try {
      await get(`${p.url}/node/metrics`, SCRAPE_HEADERS);
      // More than one slice of memory (1 000) and of disk (500) deletions.
      const n = 2300;
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < n) await get(`${p.url}/probe?target=t${next++}`, SCRAPE_HEADERS);
      }));
      await untilFiles(dir, n + 1);
      const invalidation = post(`${p.adminUrl}/invalidate`, { route: 'probe' });
      // Scrapes are answered while the invalidation works through its slices.
      const during = await get(`${p.url}/node/metrics`, SCRAPE_HEADERS);
      assert.match(String(during.headers['cache-status']), /^scrapecache; hit/);
      const answer = await invalidation;
      assert.deepEqual(JSON.parse(answer.body.toString()), { invalidated: n });
      assert.deepEqual(files(dir), [fileOf(cacheKey('node', '/node/metrics', '', 'openmetrics;1.0.0'))], 'only the other route is left on disk when the answer comes');
      const listing = await get(`${p.adminUrl}/cache?route=probe`);
      assert.equal(listing.headers['x-total-count'], '0');
      const metrics = (await get(`${p.adminUrl}/metrics`)).body.toString();
      assert.match(metrics, /^scrapecache_cache_entries\{route="probe"\} 0$/m);
      assert.match(metrics, /^scrapecache_cache_entries\{route="node"\} 1$/m);
      const again = await get(`${p.url}/probe?target=t7`, SCRAPE_HEADERS);
      assert.equal(again.headers['cache-status'], 'scrapecache; fwd=miss; stored');
    } finally {
      await p.close();
    }
  });

  test('an entry evicted from memory leaves the disk too', async () => {
    const dir = newDir();
    const p = await startProxy(
      config(dir, `  - name: pages\n    path_prefix: /pages/\n    upstream: ${exporter.url}/\n    ttl: 1h\n`, '  max_bytes: 3KiB\n'),
    );
    try {
      for (const n of [1, 2, 3, 4, 5]) await get(`${p.url}/pages/metrics${n}`, SCRAPE_HEADERS);
      // The writes and the eviction's deletes end after the answers (real I/O, not the clock).
      for (let i = 0; i < 100 && files(dir).length !== p.app.cache.count; i++) await sleep(20);
      assert.equal(files(dir).length, p.app.cache.count, 'the directory holds what memory holds');
      assert.ok(p.app.cache.count < 5, 'some entries were evicted');
    } finally {
      await p.close();
    }
  });

  test('a stale entry loaded at start-up is served under stale_while_revalidate while one refresh runs', async () => {
    const dir = newDir();
    const route = nodeRoute().replace('ttl: 1h', 'ttl: 1s\n    stale_while_revalidate: 1h');
    const a = await startProxy(config(dir, route));
    await get(`${a.url}/node/metrics`, SCRAPE_HEADERS);
    await untilFiles(dir, 1);
    await a.close();
    // The second process starts past the ttl: its clock is 1.1 s ahead.
    const later = new TestClock();
    later.advance(1100);
    const b = await startProxy(config(dir, route), { clock: later });
    try {
      const before = exporter.count;
      const res = await get(`${b.url}/node/metrics`, SCRAPE_HEADERS);
      assert.match(String(res.headers['cache-status']), /^scrapecache; hit; fwd=stale/);
      await b.app.cache.drain();
      assert.equal(exporter.count, before + 1, 'one background refresh');
    } finally {
      await b.close();
    }
  });

  test('prefetch schedules from what was loaded: no fetch at start-up while the loaded entry is fresh', async () => {
    const dir = newDir();
    const route = nodeRoute('    prefetch: true\n');
    const a = await startProxy(config(dir, route));
    await untilFiles(dir, 1);
    await a.close();
    const before = exporter.count;
    const b = await startProxy(config(dir, route));
    try {
      await b.app.cache.drain(); // a fetch at start-up would be in flight by now
      assert.equal(exporter.count, before);
      const res = await get(`${b.url}/node/metrics`, SCRAPE_HEADERS);
      assert.match(String(res.headers['cache-status']), /^scrapecache; hit/);
    } finally {
      await b.close();
    }
  });

  test('nothing secret is written: no password, token, Authorization or upstream request header', async () => {
    const dir = newDir();
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-secret-'));
    writeFileSync(join(base, 'token'), 'tok-SECRET-4711\n');
    const p = await startProxy(
      config(
        dir,
        `  - name: basic
    path: /basic
    upstream: ${exporter.url}/basic
    headers: { X-Api-Key: key-SECRET-0815 }
    basic_auth: { username: prom, password: pw-SECRET-1234 }
  - name: bearer
    path: /bearer
    upstream: ${exporter.url}/bearer
    bearer_token_file: ${join(base, 'token')}
`,
      ),
    );
    try {
      await get(`${p.url}/basic`, SCRAPE_HEADERS);
      await get(`${p.url}/bearer`, SCRAPE_HEADERS);
      await untilFiles(dir, 2);
      for (const f of readdirSync(dir)) {
        const text = readFileSync(join(dir, f)).toString('latin1');
        for (const secret of ['SECRET', Buffer.from('prom:pw-SECRET-1234').toString('base64'), 'uthorization', 'X-Api-Key']) {
          assert.ok(!text.includes(secret), `${f} holds ${secret}`);
        }
      }
    } finally {
      await p.close();
    }
  });

  test('an unwritable cache.disk.path is a start-up error that names it', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-unwritable-'));
    writeFileSync(join(base, 'file'), '');
    await assert.rejects(startProxy(config(join(base, 'file', 'cache'), nodeRoute())), /cache\.disk\.path .*file\/cache: cannot write there \(ENOTDIR\)/);
  });
});
