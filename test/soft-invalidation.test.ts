/**
 * SPEC 4 `soft`: POST /invalidate marks entries stale but keeps serving them while one refetch
 * per key runs, then serves the new copy; a failed refetch leaves only stale_if_error. The
 * exporter is held (an exporter that takes minutes) so that what happens meanwhile is observed
 * without timing anything.
 */
import { newScrapeCache } from './helpers/scrape-cache.js';
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { ScrapeTarget } from '../src/cache/scrape-cache.js';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, sleep, startProxy, type RawResponse, type TestProxy } from './helpers/proxy.js';

let exporter: FakeExporter;
let proxy: TestProxy;
/** Releases a held exporter; tests that hold it set this, so that a failing test never leaves it held. */
let release: () => void = () => undefined;

before(async () => {
  exporter = await startFakeExporter();
  proxy = await startProxy(`defaults:
  ttl: 5m
  timeout: 1m
routes:
  - name: slow
    path: /slow/metrics
    upstream: ${exporter.url}/slow
  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe
  - name: covered
    path: /covered/metrics
    upstream: ${exporter.url}/covered
    stale_if_error: 1h
  - name: bare
    path: /bare/metrics
    upstream: ${exporter.url}/bare
`);
});

after(async () => {
  release();
  await proxy.close();
  await exporter.close();
});

beforeEach(async () => {
  release();
  exporter.fault = 'none';
  await proxy.app.cache.invalidate({});
  exporter.requests.length = 0;
});

const scrape = (path: string) => get(`${proxy.url}${path}`);
const invalidate = (body: unknown, query = '') => post(`${proxy.adminUrl}/invalidate${query}`, body);
const json = (res: RawResponse) => JSON.parse(res.body.toString()) as unknown;
const versionOf = (res: RawResponse) => Number(/^fake_version\{[^}]*\} (\d+)$/m.exec(res.body.toString())?.[1]);
const cacheStatus = (res: RawResponse) => String(res.headers['cache-status']);

/** Rejects when a scrape has not answered within a bound far beyond any hit: it waited for the held upstream. */
function answersWhileHeld(res: Promise<RawResponse>): Promise<RawResponse> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the scrape waited for the blocked upstream')), 10_000);
  });
  return Promise.race([res, bound]).finally(() => clearTimeout(timer));
}

/** Waits for the fills in flight, then polls until check passes, bounded; returns the last value. */
async function until<T>(what: string, probe: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  await proxy.app.cache.drain();
  for (let i = 0; i < 200; i++) {
    const value = await probe();
    if (check(value)) return value;
    await sleep(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

const requestsFor = (path: string) => exporter.requests.filter((r) => (r.url ?? '').split('?')[0] === path).length;

async function refetchStored(route: string): Promise<void> {
  await until(
    `${route}'s refetch to be stored`,
    async () => JSON.parse((await get(`${proxy.adminUrl}/cache?route=${route}`)).body.toString()) as Array<{ fresh: boolean }>,
    (rows) => rows.length > 0 && rows.every((r) => r.fresh),
  );
}

describe('POST /invalidate with soft', () => {
  test('while the refetch of an exporter that takes minutes runs, every scrape gets the old copy at once, marked stale; then the new copy', async () => {
    const old = await scrape('/slow/metrics');
    release = exporter.hold();
    const res = await invalidate({ route: 'slow', soft: true });
    assert.equal(res.status, 200, 'the call does not wait for the refetch');
    assert.deepEqual(json(res), { invalidated: 1, refetching: 1 });
    await exporter.arrived(2); // the refetch reached the exporter

    const during = await Promise.all(Array.from({ length: 10 }, () => answersWhileHeld(scrape('/slow/metrics'))));
    for (const r of during) {
      assert.equal(r.status, 200);
      assert.equal(versionOf(r), versionOf(old), 'the old copy');
      assert.match(cacheStatus(r), /^scrapecache; hit; fwd=stale; ttl=/);
    }
    assert.equal(requestsFor('/slow'), 2, 'one refetch for all those scrapes');

    release();
    await refetchStored('slow');
    const next = await scrape('/slow/metrics');
    assert.match(cacheStatus(next), /^scrapecache; hit; ttl=/);
    assert.equal(versionOf(next), versionOf(old) + 1, 'the new copy');
    assert.equal(requestsFor('/slow'), 2);
  });

  test('works with query parameters: soft=true and route in the query string', async () => {
    await scrape('/slow/metrics');
    const res = await invalidate(undefined, '?route=slow&soft=true');
    assert.deepEqual(json(res), { invalidated: 1, refetching: 1 });
    await refetchStored('slow');
    assert.equal(requestsFor('/slow'), 2);
  });

  test('an entry with a query is refetched on its next scrape, which gets the old copy at once', async () => {
    const old = await scrape('/probe?target=a');
    await scrape('/probe?target=b');
    const res = await invalidate({ path: '/probe', query: 'target=a', soft: true });
    assert.deepEqual(json(res), { invalidated: 1, refetching: 0 });
    assert.equal(requestsFor('/probe'), 2, 'nothing is fetched until a scrape asks');

    release = exporter.hold();
    const first = await answersWhileHeld(scrape('/probe?target=a'));
    assert.equal(versionOf(first), versionOf(old));
    assert.match(cacheStatus(first), /fwd=stale/);
    await exporter.arrived(3); // the refetch reached the exporter
    const second = await answersWhileHeld(scrape('/probe?target=a'));
    assert.equal(versionOf(second), versionOf(old));
    assert.match(cacheStatus(await scrape('/probe?target=b')), /^scrapecache; hit; ttl=/, 'the other key stays fresh');

    release();
    const fresh = await until('the new copy', () => scrape('/probe?target=a'), (r) => /^scrapecache; hit; ttl=/.test(cacheStatus(r)));
    assert.ok(versionOf(fresh) > versionOf(old));
    assert.equal(requestsFor('/probe'), 3);
  });

  test('a failed refetch keeps the old copy under stale_if_error, with what the upstream answered', async () => {
    const old = await scrape('/covered/metrics');
    exporter.fault = 'status-500';
    assert.deepEqual(json(await invalidate({ route: 'covered', soft: true })), { invalidated: 1, refetching: 1 });
    const after = await until('the refetch to fail', () => scrape('/covered/metrics'), (r) => /fwd-status=500/.test(cacheStatus(r)));
    assert.equal(after.status, 200);
    assert.equal(versionOf(after), versionOf(old));
    assert.match(cacheStatus(after), /^scrapecache; hit; fwd=stale; fwd-status=500/);
  });

  test('without stale_if_error, a failed refetch passes the upstream error on', async () => {
    await scrape('/bare/metrics');
    exporter.fault = 'status-500';
    await invalidate({ route: 'bare', soft: true });
    const failed = await until('the refetch to fail', () => scrape('/bare/metrics'), (r) => r.status !== 200);
    assert.equal(failed.status, 500);
    assert.equal(failed.body.toString(), 'collector failed\n');
  });

  test('soft with refresh waits for the refetch and says how many were stored; the next scrape is a hit with the new copy', async () => {
    const old = await scrape('/slow/metrics');
    const res = await invalidate({ path: '/slow/metrics', soft: true, refresh: true });
    assert.deepEqual(json(res), { invalidated: 1, refetching: 1, refreshed: 1 });
    const next = await scrape('/slow/metrics');
    assert.match(cacheStatus(next), /^scrapecache; hit; ttl=/);
    assert.equal(versionOf(next), versionOf(old) + 1);
  });

  test('a soft value that is not a boolean answers 400, an unknown route 404, and nothing is marked stale', async () => {
    await scrape('/slow/metrics');
    assert.equal((await invalidate({ soft: 'yes' })).status, 400);
    assert.equal((await invalidate({ route: 'nope', soft: true })).status, 404);
    assert.match(cacheStatus(await scrape('/slow/metrics')), /^scrapecache; hit; ttl=/);
    assert.equal(requestsFor('/slow'), 1);
  });

  test('soft invalidations count in scrapecache_invalidations_total', async () => {
    await scrape('/slow/metrics');
    const count = async () => Number(/^scrapecache_invalidations_total (\d+)/m.exec((await get(`${proxy.adminUrl}/metrics`)).body.toString())?.[1]);
    const before = await count();
    await invalidate({ route: 'slow', soft: true, refresh: true });
    assert.equal(await count(), before + 1);
  });
});

describe('the soft window, on an injected clock', () => {
  test('past its ttl, a soft-invalidated entry is still served at once while its refetch runs, up to one timeout past expiry', async () => {
    const config = parseConfig(
      `routes:\n  - name: r\n    path: /r\n    upstream: ${exporter.url}/clock\n    ttl: 1m\n    timeout: 2m\n`,
      'clock.yaml',
    );
    const route = config.routes[0]!;
    let now = 1_000_000;
    const cache = newScrapeCache(1 << 20, undefined, createLogger('silent'), () => now);
    cache.setRoutes(config.routes);
    const target: ScrapeTarget = { route, path: '/r', query: '', representation: 'text;0.0.4', accept: undefined };
    try {
      const first = await cache.lookup(target);
      assert.equal(first.cache, 'miss');
      release = exporter.hold();
      now += 30_000;
      await cache.softInvalidate({});
      for (const at of [30_001, 60_000, 90_000, 179_999]) {
        now = 1_000_000 + at;
        const found = cache.lookup(target);
        assert.ok(!(found instanceof Promise), `at ${at} ms the scrape is answered at once`);
        assert.equal(found.cache, 'stale');
        // The entry first stored, softly invalidated: a new entry (entries are never changed) with its body and fetch time.
        assert.equal(found.entry.body, first.entry.body);
        assert.equal(found.entry.fetchedAt, first.entry.fetchedAt);
      }
      now = 1_000_000 + 180_000;
      const late = cache.lookup(target);
      assert.ok(late instanceof Promise, 'past ttl plus one timeout the entry is no longer served stale');
      late.catch(() => undefined);
    } finally {
      release();
      await cache.drain();
      await cache.close();
    }
  });
});
