/** SPEC 3.4: stale-while-revalidate, stale-if-error with back-off, prefetch; and the pure arithmetic behind them. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  ageSeconds,
  canServeOnError,
  canServeWhileRevalidating,
  canServeWhileSoftRefetching,
  expiresAt,
  isDead,
  isFresh,
  prefetchAt,
  retryBackoffMs,
  softTimes,
  ttlSeconds,
} from '../src/cache/freshness.js';
import { recordTimes } from '../src/cache/stored-record.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';
import { TestClock } from './helpers/test-clock.js';

describe('freshness arithmetic', () => {
  const policy = { ttlMs: 10_000, staleWhileRevalidateMs: 5_000, staleIfErrorMs: 60_000 };
  const entry = recordTimes(1_000_000, policy);

  test('an entry is fresh for ttl after its fetch completed, and not a millisecond longer', () => {
    assert.equal(isFresh(entry, 1_009_999), true);
    assert.equal(isFresh(entry, 1_010_000), false);
  });

  test('the stale windows start at expiry', () => {
    assert.equal(canServeWhileRevalidating(entry, 1_014_999), true);
    assert.equal(canServeWhileRevalidating(entry, 1_015_000), false);
    assert.equal(canServeOnError(entry, 1_069_999), true);
    assert.equal(canServeOnError(entry, 1_070_000), false);
  });

  test('an entry is dead only past every window', () => {
    assert.equal(isDead(entry, 1_069_999), false);
    assert.equal(isDead(entry, 1_070_000), true);
    assert.equal(isDead(recordTimes(1_000_000, { ...policy, staleIfErrorMs: 0 }), 1_015_000), true);
  });

  test('Age and ttl are whole seconds, ttl negative once stale', () => {
    assert.equal(ageSeconds(entry, 1_001_999), 1);
    assert.equal(ageSeconds(entry, 999_000), 0);
    assert.equal(ttlSeconds(entry, 1_000_500), 9);
    assert.equal(ttlSeconds(entry, 1_012_500), -3);
  });

  const timeoutMs = 30_000;
  const softAt = (at: number, base = entry) => ({ ...base, ...softTimes(base, at, timeoutMs) });

  test('a soft invalidation ends freshness at once, and the stale windows count from it', () => {
    const soft = softAt(1_004_000);
    assert.equal(expiresAt(soft), 1_004_000);
    assert.equal(isFresh(soft, 1_003_999), true);
    assert.equal(isFresh(soft, 1_004_000), false);
    assert.equal(canServeWhileRevalidating(soft, 1_008_999), true);
    assert.equal(canServeWhileRevalidating(soft, 1_009_000), false);
    assert.equal(canServeOnError(soft, 1_063_999), true);
    assert.equal(canServeOnError(soft, 1_064_000), false);
    assert.equal(ttlSeconds(soft, 1_006_500), -3);
  });

  test('a soft invalidation never extends freshness: one after expiry changes nothing', () => {
    const late = softAt(1_020_000);
    assert.equal(expiresAt(late), 1_010_000);
    assert.equal(isFresh(late, 1_015_000), false);
  });

  test('a second soft invalidation keeps the earlier one', () => {
    const twice = softAt(1_006_000, softAt(1_004_000));
    assert.equal(expiresAt(twice), 1_004_000);
  });

  test('a soft-invalidated entry is servable while refetched until its ttl would end plus one timeout, or one timeout past the invalidation', () => {
    assert.equal(canServeWhileSoftRefetching(entry, 1_000_000), false, 'not without a soft invalidation');
    const soft = softAt(1_004_000);
    assert.equal(canServeWhileSoftRefetching(soft, 1_039_999), true);
    assert.equal(canServeWhileSoftRefetching(soft, 1_040_000), false);
    const afterExpiry = softAt(1_050_000);
    assert.equal(canServeWhileSoftRefetching(afterExpiry, 1_079_999), true);
    assert.equal(canServeWhileSoftRefetching(afterExpiry, 1_080_000), false);
  });

  test('a soft-invalidated entry is dead only past its soft window as well as its stale windows', () => {
    const bare = recordTimes(1_000_000, { ...policy, staleWhileRevalidateMs: 0, staleIfErrorMs: 0 });
    const soft = softAt(1_004_000, bare);
    assert.equal(isDead(soft, 1_039_999), false, 'its refetch may still be running');
    assert.equal(isDead(soft, 1_040_000), true);
  });

  test('prefetch runs ahead of expiry by a tenth of the ttl, bounded by the timeout and at least a second', () => {
    assert.equal(prefetchAt(recordTimes(0, { ...policy, ttlMs: 6 * 3600_000 }), 300_000), 6 * 3600_000 - 300_000);
    assert.equal(prefetchAt(recordTimes(0, { ...policy, ttlMs: 60_000 }), 30_000), 54_000);
    assert.equal(prefetchAt(recordTimes(0, { ...policy, ttlMs: 5_000 }), 30_000), 4_000);
  });

  test('the retry back-off doubles from a second and is capped by the ttl and a minute', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => retryBackoffMs(n, policy.ttlMs)),
      [1000, 2000, 4000, 8000],
    );
    assert.equal(retryBackoffMs(10, policy.ttlMs), 10_000);
    assert.equal(retryBackoffMs(10, 3600_000), 60_000);
  });
});

describe('serving stale', () => {
  let exporter: FakeExporter;
  let proxy: TestProxy;
  // Time moves by the test's hand: the ttl, the stale windows and the back-off pass without sleeping.
  const clock = new TestClock();

  before(async () => {
    exporter = await startFakeExporter();
    proxy = await startProxy(`
routes:
  - name: swr
    path: /swr
    upstream: ${exporter.url}/metrics
    ttl: 300ms
    stale_while_revalidate: 1h
  - name: sie
    path: /sie
    upstream: ${exporter.url}/metrics
    ttl: 300ms
    timeout: 500ms
    stale_if_error: 1h
  - name: plain
    path: /plain
    upstream: ${exporter.url}/metrics
    ttl: 300ms
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

  const version = (body: Buffer) => /fake_version\{[^}]*\} (\d+)/.exec(body.toString())![1];

  test('stale-while-revalidate answers at once from the stale entry while one background fetch refreshes it', async () => {
    const first = await get(`${proxy.url}/swr`, { accept: 'text/plain' });
    clock.advance(350);
    exporter.delayMs = 500;
    const started = Date.now();
    const stale = await Promise.all(Array.from({ length: 5 }, () => get(`${proxy.url}/swr`, { accept: 'text/plain' })));
    assert.ok(Date.now() - started < 400, 'stale answers do not wait for the upstream');
    for (const res of stale) {
      assert.deepEqual(res.body, first.body);
      assert.match(String(res.headers['cache-status']), /^scrapecache; hit; fwd=stale; ttl=-\d+$/);
    }
    await proxy.app.cache.drain(); // the refresh, 500 ms of the upstream's
    assert.equal(exporter.count, 2, 'one background refresh for five stale scrapes');
    const fresh = await get(`${proxy.url}/swr`, { accept: 'text/plain' });
    assert.match(String(fresh.headers['cache-status']), /^scrapecache; hit; ttl=/);
    assert.notEqual(version(fresh.body), version(first.body));
  });

  test('stale-if-error serves the stored body while the upstream is down, marked fwd=stale with the error status', async () => {
    const good = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    clock.advance(350);
    exporter.fault = 'reset';
    const res = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, good.body);
    assert.match(String(res.headers['cache-status']), /^scrapecache; hit; fwd=stale; fwd-status=502; ttl=-\d+$/);
  });

  test('stale-if-error covers timeouts and upstream 5xx answers too', async () => {
    const good = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    clock.advance(350);
    exporter.fault = 'hang';
    const timedOut = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    assert.deepEqual(timedOut.body, good.body);
    assert.match(String(timedOut.headers['cache-status']), /fwd-status=504/);
    clock.advance(1100); // past the first back-off
    exporter.fault = 'status-500';
    const failed = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    assert.equal(failed.status, 200);
    assert.deepEqual(failed.body, good.body);
    assert.match(String(failed.headers['cache-status']), /fwd-status=500/);
  });

  test('after a failed refresh, scrapes in the back-off get the stale entry without going upstream', async () => {
    await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    clock.advance(350);
    exporter.fault = 'reset';
    for (let i = 0; i < 20; i++) {
      const res = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
      assert.equal(res.status, 200);
    }
    assert.equal(exporter.count, 2, 'one fill, one failed refresh, then the back-off holds (nginx trac #1000)');
    clock.advance(1050);
    await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    assert.equal(exporter.count, 3, 'the next request after the back-off retries');
  });

  test('a failed refresh never damages the good entry, and the upstream coming back refreshes it', async () => {
    const good = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    clock.advance(350);
    exporter.fault = 'reset-mid-body';
    await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    const listed = JSON.parse((await get(`${proxy.url.replace(/:\d+$/, `:${proxy.app.adminAddress.port}`)}/cache`)).body.toString());
    assert.equal(listed.length, 1);
    exporter.fault = 'none';
    clock.advance(1050);
    const refreshed = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    assert.equal(refreshed.status, 200);
    assert.notDeepEqual(refreshed.body, good.body);
    assert.match(String(refreshed.headers['cache-status']), /^scrapecache; fwd=miss; stored$/);
  });

  test('stale-if-error answers a client whose scrape timeout ends before the refresh does with the stale entry, not 504', async () => {
    const good = await get(`${proxy.url}/sie`, SCRAPE_HEADERS);
    clock.advance(350);
    exporter.delayMs = 450; // inside the route's 500ms timeout, past the client's deadline
    const res = await get(`${proxy.url}/sie`, { ...SCRAPE_HEADERS, 'x-prometheus-scrape-timeout-seconds': '0.2' });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, good.body);
    assert.match(String(res.headers['cache-status']), /^scrapecache; hit; fwd=stale; fwd-status=504; ttl=-\d+$/);
    await proxy.app.cache.drain(); // the refresh the client did not wait for
  });

  test('without stale-if-error an expired entry is not served when the upstream fails', async () => {
    await get(`${proxy.url}/plain`, SCRAPE_HEADERS);
    clock.advance(350);
    exporter.fault = 'reset';
    const res = await get(`${proxy.url}/plain`, SCRAPE_HEADERS);
    assert.equal(res.status, 502);
  });
});

/** A proxy with one prefetch route `/hw` (extra route settings as YAML flow pairs) in front of a fake exporter. */
async function withPrefetchRoute(
  settings: string,
  run: (exporter: FakeExporter, proxy: TestProxy, clock: TestClock, settle: () => Promise<void>) => Promise<void>,
  before?: (exporter: FakeExporter) => void,
): Promise<void> {
  const exporter = await startFakeExporter();
  before?.(exporter);
  const clock = new TestClock();
  const proxy = await startProxy(`routes:\n  - {name: hw, path: /hw, upstream: "${exporter.url}/metrics", prefetch: true, ${settings}}\n`, { clock });
  try {
    // The prefetches a timer starts run to their end (real fetches) before time moves on.
    await run(exporter, proxy, clock, () => proxy.app.cache.drain());
  } finally {
    await proxy.close();
    await exporter.close();
  }
}

describe('prefetch', () => {
  test('a prefetch route is fetched at start-up and refreshed before expiry, so no scrape waits', () =>
    withPrefetchRoute(
      'ttl: 1500ms, timeout: 2s',
      async (exporter, proxy, clock, settle) => {
        await settle();
        assert.equal(exporter.count, 1, 'fetched at start-up');
        const first = clock.now();
        for (let i = 0; i < 8; i++) {
          const started = Date.now();
          const res = await get(`${proxy.url}/hw`, SCRAPE_HEADERS);
          assert.match(String(res.headers['cache-status']), /^scrapecache; hit; ttl=/, `scrape ${i} was a hit`);
          assert.ok(Date.now() - started < 250, 'a prefetched scrape never waits for the 300 ms upstream');
          await clock.runUntil(first + 250 * (i + 1), settle); // one scrape every 250 ms
        }
        assert.ok(exporter.count >= 2 && exporter.count <= 3, `refreshed in the background (${exporter.count} fetches)`);
      },
      (exporter) => {
        exporter.delayMs = 300;
      },
    ));

  test('clients sending arbitrary Accept headers cannot start background refresh loops', () =>
    withPrefetchRoute('ttl: 1s', async (exporter, proxy, clock, settle) => {
      await settle();
      for (let i = 0; i < 20; i++) await get(`${proxy.url}/hw`, { accept: `x/y${i}` });
      const afterScrapes = exporter.count;
      await clock.run(2500, settle);
      // The 20 Accept headers all get text, as the exporter answers them: only the entries of
      // the two answers this exporter gives (OpenMetrics, prefetched, and text) are kept fresh,
      // a refresh each every half second at this ttl, where 20 refreshed keys would make about 100.
      assert.ok(exporter.count - afterScrapes <= 13, `${exporter.count - afterScrapes} background fetches in 2.5 s`);
    }));

  test('a ttl longer than a timer can wait does not turn prefetch into a tight loop', () =>
    withPrefetchRoute('ttl: 30d', async (exporter, _proxy, clock, settle) => {
      await clock.run(600, settle);
      assert.equal(exporter.count, 1);
    }));

  test('a failing prefetch keeps retrying in the background with a back-off', () =>
    withPrefetchRoute(
      'ttl: 10s',
      async (exporter, proxy, clock, settle) => {
        await settle();
        assert.equal(exporter.count, 1);
        exporter.fault = 'none';
        await clock.run(1100, settle);
        assert.equal(exporter.count, 2, 'retried after a second');
        const res = await get(`${proxy.url}/hw`, SCRAPE_HEADERS);
        assert.match(String(res.headers['cache-status']), /^scrapecache; hit/);
      },
      (exporter) => {
        exporter.fault = 'reset';
      },
    ));
});
