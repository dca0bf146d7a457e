// Replicas sharing one cache on Redis (SPEC 2.2): a real redis-server, a fake exporter that counts
// its requests, and replicas that are either real processes of the built CLI (where the test is
// about a process: killed, hung) or apps started in this process on one TestClock (where the test
// is about time: a ttl, a back-off, a prefetch lead pass by moving the clock, not by sleeping).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { retryBackoffMs } from '../src/cache/freshness.js';
import { get, post, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';
import { startRedis, type TestRedis } from './helpers/redis-server.js';
import { startReplicas, until, type Replica, type ReplicaSet } from './helpers/replicas.js';
import { TestClock } from './helpers/test-clock.js';

let redis: TestRedis;
let exporter: FakeExporter;
const sets: ReplicaSet[] = [];
const apps: TestProxy[] = [];
before(async () => {
  [redis, exporter] = await Promise.all([startRedis(), startFakeExporter()]);
});
after(async () => {
  await Promise.all([...sets.map((s) => s.close()), ...apps.map((a) => a.close())]);
  await Promise.all([redis?.close(), exporter?.close()]);
});

/** Replicas with their own key prefix on the shared Redis, and routes to the fake exporter. */
async function fleet(count: number, routes: FleetRoutes = {}): Promise<Replica[]> {
  const set = await startReplicas(count, fleetYaml(routes));
  sets.push(set);
  // Sharing starts once every replica counts Redis as up.
  for (const r of set.replicas) await until(`${r.name} sees Redis`, () => storeUp(r.admin).then((up) => up === 1));
  return set.replicas;
}

/**
 * The same fleet started in this process: each replica its own app with its own Redis connection,
 * all on one clock, so their ttl, back-off and prefetch timers pass when the test moves it.
 */
async function clockedFleet(count: number, clock: TestClock, routes: FleetRoutes = {}): Promise<ClockedFleet> {
  const yaml = fleetYaml(routes);
  const replicas: TestProxy[] = [];
  for (let i = 0; i < count; i++) {
    const replica = await startProxy(yaml, { clock });
    apps.push(replica);
    replicas.push(replica);
  }
  for (const [i, r] of replicas.entries()) await until(`replica ${i} sees Redis`, () => storeUp(r.adminUrl).then((up) => up === 1));
  // The fills, refreshes and peer waits a step started, on every replica, run to their end.
  const settle = () => Promise.all(replicas.map((r) => r.app.cache.drain()));
  return { replicas, settle };
}

interface ClockedFleet {
  replicas: TestProxy[];
  settle: () => Promise<unknown>;
}

interface FleetRoutes {
  ttl?: string;
  timeout?: string;
  extra?: string;
  workers?: number;
}

function fleetYaml(routes: FleetRoutes): string {
  return `${routes.workers ? `workers: ${routes.workers}\n` : ''}cache:
  redis:
    url: ${redis.url}
    key_prefix: "${randomUUID().slice(0, 8)}:"
    timeout: 250ms
routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
    ttl: ${routes.ttl ?? '1m'}
    timeout: ${routes.timeout ?? '10s'}
${routes.extra ?? ''}  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe
    ttl: ${routes.ttl ?? '1m'}
`;
}

async function storeUp(adminUrl: string): Promise<number | undefined> {
  const text = (await get(`${adminUrl}/metrics`)).body.toString();
  const m = /^scrapecache_store_up\{store="redis"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Upstream requests for one path since the counter was read. */
function fetchesOf(path: string, since = 0): number {
  return exporter.requests.slice(since).filter((r) => (r.url ?? '').split('?')[0] === path).length;
}

describe('replicas sharing Redis', () => {
  it('150 concurrent cold scrapes of one key spread over 3 replicas make exactly 1 upstream fetch', async () => {
    const replicas = await fleet(3);
    exporter.fault = 'none';
    exporter.delayMs = 300;
    const since = exporter.count;
    try {
      const answers = await Promise.all(Array.from({ length: 150 }, (_, i) => get(`${replicas[i % 3]!.scrape}/node/metrics`, SCRAPE_HEADERS)));
      assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
      assert.equal(fetchesOf('/metrics', since), 1);
      assert.equal(new Set(answers.map((a) => a.body.toString('base64'))).size, 1, 'every replica serves the one fetched body');
    } finally {
      exporter.delayMs = 0;
    }
  });

  it('30 keys scraped at once over 3 replicas make 30 upstream fetches', async () => {
    const replicas = await fleet(3);
    exporter.delayMs = 200;
    const since = exporter.count;
    try {
      const answers = await Promise.all(
        Array.from({ length: 150 }, (_, i) => get(`${replicas[i % 3]!.scrape}/probe?target=t${i % 30}`, SCRAPE_HEADERS)),
      );
      assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
      const targets = exporter.requests.slice(since).map((r) => r.url);
      assert.equal(targets.length, 30, `fetched: ${targets.join(' ')}`);
      assert.equal(new Set(targets).size, 30);
    } finally {
      exporter.delayMs = 0;
    }
  });

  it('an invalidation on replica A makes the next scrapes on B and C fetch anew, once in all', async () => {
    const [a, b, c] = await fleet(3);
    const since = exporter.count;
    for (const r of [a!, b!, c!]) assert.equal((await get(`${r.scrape}/node/metrics`, SCRAPE_HEADERS)).status, 200);
    assert.equal(fetchesOf('/metrics', since), 1);
    const answer = await post(`${a!.admin}/invalidate`, { route: 'node' });
    assert.equal(answer.status, 200);
    // Before the answer returned, every replica dropped its copy: no waiting here.
    const onB = await get(`${b!.scrape}/node/metrics`, SCRAPE_HEADERS);
    const onC = await get(`${c!.scrape}/node/metrics`, SCRAPE_HEADERS);
    assert.match(String(onB.headers['cache-status']), /fwd=miss/);
    assert.equal(fetchesOf('/metrics', since), 2);
    assert.equal(onC.body.toString(), onB.body.toString(), 'C serves the body B fetched after the invalidation');
    assert.equal((await get(`${a!.scrape}/node/metrics`, SCRAPE_HEADERS)).body.toString(), onB.body.toString());
  });

  it('Redis killed mid-run: every replica keeps answering 200; restarted: one fetch per key across the fleet again', async () => {
    const own = await startRedis();
    const yaml = `cache:
  redis:
    url: ${own.url}
    timeout: 250ms
routes:
  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe
    ttl: 1m
`;
    const set = await startReplicas(3, yaml);
    sets.push(set);
    try {
      for (const r of set.replicas) await until(`${r.name} sees Redis`, () => storeUp(r.admin).then((up) => up === 1));
      await own.kill();
      for (const r of set.replicas) await until(`${r.name} counts Redis down`, () => storeUp(r.admin).then((up) => up === 0));
      const whileDown = await Promise.all(set.replicas.flatMap((r) => [1, 2, 3].map((n) => get(`${r.scrape}/probe?target=down${n}`, SCRAPE_HEADERS))));
      assert.deepEqual([...new Set(whileDown.map((a) => a.status))], [200]);
      await own.start();
      for (const r of set.replicas) await until(`${r.name} sees Redis again`, () => storeUp(r.admin).then((up) => up === 1));
      exporter.delayMs = 200;
      const since = exporter.count;
      const after = await Promise.all(
        Array.from({ length: 60 }, (_, i) => get(`${set.replicas[i % 3]!.scrape}/probe?target=up${i % 4}`, SCRAPE_HEADERS)),
      );
      assert.deepEqual([...new Set(after.map((a) => a.status))], [200]);
      assert.equal(exporter.requests.slice(since).length, 4);
      for (const r of set.replicas) {
        const changes = r.logs().filter((l) => String(l['msg']).startsWith('redis unavailable'));
        assert.equal(changes.length, 1, `${r.name} logs the outage once`);
      }
    } finally {
      exporter.delayMs = 0;
      await own.close();
    }
  });

  it('a replica SIGKILLed while holding a lease: another replica fetches the key within the lease time, and no scrape hangs', async () => {
    const [a, b, c] = await fleet(3, { timeout: '2s' });
    exporter.fault = 'hang';
    const since = exporter.count;
    const first = get(`${a!.scrape}/node/metrics`, SCRAPE_HEADERS).catch(() => undefined);
    await until('A is fetching', () => fetchesOf('/metrics', since) === 1);
    await a!.kill();
    void first;
    exporter.fault = 'none';
    const started = Date.now();
    const answers = await Promise.all([b!, c!, b!, c!].map((r) => get(`${r.scrape}/node/metrics`, SCRAPE_HEADERS)));
    assert.deepEqual(answers.map((x) => x.status), [200, 200, 200, 200]);
    // The lease is the route timeout (2 s) and a margin (5 s); a stuck key would never answer.
    assert.ok(Date.now() - started < 2000 + 5000 + 5000, `answered after ${Date.now() - started} ms`);
    assert.equal(fetchesOf('/metrics', since), 2, 'the hung fetch of A, then one fetch by B or C');
  });

  it('stale_if_error with 3 replicas and a failing upstream: retries stay within the single-replica back-off', async () => {
    const ttlMs = 2000;
    const clock = new TestClock();
    const { replicas, settle } = await clockedFleet(3, clock, {
      extra: `  - name: flaky\n    path: /flaky\n    upstream: ${exporter.url}/flaky\n    ttl: ${ttlMs}ms\n    stale_if_error: 1m\n`,
    });
    const since = exporter.count;
    for (const r of replicas) assert.equal((await get(`${r.url}/flaky`, SCRAPE_HEADERS)).status, 200);
    assert.equal(fetchesOf('/flaky', since), 1);
    exporter.fault = 'status-500';
    try {
      clock.advance(ttlMs);
      // Scrapes on every replica every 50 ms for 4 s of the clock: each one gets the stale copy.
      const failingSince = exporter.count;
      const windowMs = 4000;
      const started = clock.now();
      const statuses = new Set<number>();
      while (clock.now() < started + windowMs) {
        const answers = await Promise.all(replicas.map((r) => get(`${r.url}/flaky`, SCRAPE_HEADERS)));
        for (const a of answers) statuses.add(a.status);
        await settle();
        clock.advance(50);
      }
      assert.deepEqual([...statuses], [200]);
      // One replica alone retries at 0, then after each back-off: 1 s, 2 s, 2 s... (retryBackoffMs).
      const elapsed = clock.now() - started;
      let alone = 0;
      for (let t = 0, n = 1; t < elapsed; t += retryBackoffMs(n++, ttlMs)) alone++;
      const retries = fetchesOf('/flaky', failingSince);
      assert.ok(retries >= 1, 'the upstream was retried');
      assert.ok(retries <= alone + 1, `${retries} retries with 3 replicas in ${elapsed} ms; one replica alone makes about ${alone}`);
    } finally {
      exporter.fault = 'none';
    }
  });

  it('stale_while_revalidate with 3 replicas: one background refresh per key for the whole fleet', async () => {
    const ttlMs = 1000;
    const clock = new TestClock();
    const { replicas, settle } = await clockedFleet(3, clock, {
      extra: `  - name: swr\n    path: /swr\n    upstream: ${exporter.url}/swr\n    ttl: ${ttlMs}ms\n    stale_while_revalidate: 1m\n`,
    });
    const since = exporter.count;
    for (const r of replicas) assert.equal((await get(`${r.url}/swr`, SCRAPE_HEADERS)).status, 200);
    assert.equal(fetchesOf('/swr', since), 1);
    clock.advance(ttlMs + 100);
    exporter.delayMs = 300;
    try {
      const stale = await Promise.all(Array.from({ length: 30 }, (_, i) => get(`${replicas[i % 3]!.url}/swr`, SCRAPE_HEADERS)));
      for (const a of stale) assert.match(String(a.headers['cache-status']), /fwd=stale/);
      await settle();
      await until('the refresh is stored everywhere', async () => {
        const answers = await Promise.all(replicas.map((r) => get(`${r.url}/swr`, SCRAPE_HEADERS)));
        return answers.every((a) => /^scrapecache; hit; ttl/.test(String(a.headers['cache-status'])));
      });
      assert.equal(fetchesOf('/swr', since), 2, 'the first fill and one refresh');
    } finally {
      exporter.delayMs = 0;
    }
  });

  it('prefetch with 3 replicas: the fleet refreshes a key as often as one replica would', async () => {
    const ttlMs = 2000;
    const since = exporter.count;
    const clock = new TestClock();
    const started = clock.now();
    const { replicas, settle } = await clockedFleet(3, clock, {
      extra: `  - name: pre\n    path: /pre\n    upstream: ${exporter.url}/pre\n    ttl: ${ttlMs}ms\n    prefetch: true\n`,
    });
    await settle();
    // Scrapes on every replica every 100 ms for 3 s of the clock; the prefetch timers due on the way fire.
    const windowMs = 3000;
    const from = clock.now();
    for (let step = 1; clock.now() < from + windowMs; step++) {
      const answers = await Promise.all(replicas.map((r) => get(`${r.url}/pre`, SCRAPE_HEADERS)));
      for (const a of answers) assert.match(String(a.headers['cache-status']), /^scrapecache; hit/, 'prefetch keeps every replica fresh');
      await clock.runUntil(from + 100 * step, settle);
    }
    // One replica alone fetches at start-up, then once per ttl less its lead (prefetchAt).
    const lead = Math.max(Math.min(ttlMs / 10, 10_000), Math.min(1000, ttlMs / 2));
    const alone = 1 + Math.ceil((clock.now() - started + 2000) / (ttlMs - lead));
    const fetched = fetchesOf('/pre', since);
    assert.ok(fetched >= 1 + Math.floor(windowMs / ttlMs), `the key was refreshed (${fetched} fetches)`);
    assert.ok(fetched <= alone, `${fetched} prefetches by 3 replicas; one replica alone makes about ${alone}`);
  });

  it('replicas with workers share Redis too: one fetch for the fleet, and an invalidation reaches the other replica\'s workers', async () => {
    const [a, b] = await fleet(2, { workers: 2 });
    exporter.delayMs = 200;
    const since = exporter.count;
    try {
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => get(`${(i % 2 ? a : b)!.scrape}/node/metrics`, SCRAPE_HEADERS)));
      assert.deepEqual([...new Set(answers.map((x) => x.status))], [200]);
      assert.equal(fetchesOf('/metrics', since), 1);
    } finally {
      exporter.delayMs = 0;
    }
    assert.equal((await post(`${a!.admin}/invalidate`, { route: 'node' })).status, 200);
    // Each scrape on a fresh connection may land on either worker of B: every one must have dropped its copy.
    const after = await Promise.all(Array.from({ length: 6 }, () => get(`${b!.scrape}/node/metrics`, SCRAPE_HEADERS)));
    assert.ok(after.every((x) => x.status === 200));
    assert.equal(fetchesOf('/metrics', since), 2, 'one fetch after the invalidation, for every worker of B');
  });
});
