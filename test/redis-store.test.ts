// The Redis level on its own (SPEC 2.2), against a real redis-server: the store contract's
// suite, the lease, the bus, and what happens when Redis is killed, slow or full.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { CacheEvent } from '../src/cache/event-bus.js';
import { openRedisLevel, type RedisLevel } from '../src/cache/redis/redis-level.js';
import type { RedisSettings } from '../src/config/types.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { startRedis, type TestRedis } from './helpers/redis-server.js';
import { makeRecord, plain, storeConformance } from './helpers/store-conformance.js';

let redis: TestRedis;
const opened: RedisLevel[] = [];
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await Promise.all(opened.map((l) => l.close()));
  await redis?.close();
});

function settings(overrides: Partial<RedisSettings> = {}): RedisSettings {
  return {
    url: redis.url,
    host: '127.0.0.1',
    port: redis.port,
    database: 0,
    // Each level its own prefix: tests share one server and never see each other's keys.
    keyPrefix: `t-${randomUUID().slice(0, 8)}:`,
    timeoutMs: 250,
    ...overrides,
  };
}

function logSink() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', new Writable({ write: (c: Buffer, _e, done) => (c.toString().split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l) as Record<string, unknown>)), done()) }));
  return { log, lines };
}

async function open(overrides: Partial<RedisSettings> = {}, now?: () => number) {
  const { log, lines } = logSink();
  const metrics = new Metrics({ usage: () => ({ entries: 0, bytes: 0, oldestAgeSeconds: undefined }) }, { defaultMetrics: false });
  const level = await openRedisLevel(settings(overrides), metrics, log, now);
  opened.push(level);
  return { level, metrics, lines };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** PUBSUB NUMSUB: how many connections listen on a channel. */
async function subscribers(channel: string): Promise<number> {
  return Number(/:(\d+)\r\n$/.exec(await redis.command('PUBSUB', 'NUMSUB', channel))?.[1]);
}

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
}

storeConformance('redis', async ({ now }) => {
  const { level } = await open({}, now);
  return level.store;
});

describe('the Redis fill lease', () => {
  it('is taken by one of many at once, and freed only by the token that holds it', async () => {
    const a = await open();
    const bOnA = await open({ keyPrefix: a.level.connection.prefix });
    const tokens = await Promise.all([a.level.lease.acquire('k', 5000), bOnA.level.lease.acquire('k', 5000), a.level.lease.acquire('k', 5000)]);
    assert.equal(tokens.filter((t) => t !== undefined).length, 1);
    const holder = tokens.find((t) => t !== undefined)!;
    assert.equal(await bOnA.level.lease.release('k', 'not-the-token'), false);
    assert.equal(await bOnA.level.lease.acquire('k', 5000), undefined);
    assert.equal(await a.level.lease.release('k', holder), true);
    assert.notEqual(await bOnA.level.lease.acquire('k', 5000), undefined);
  });

  it('lapses by itself after its time, so a holder that died does not block the key', async () => {
    const { level } = await open();
    assert.notEqual(await level.lease.acquire('k', 100), undefined);
    assert.equal(await level.lease.acquire('k', 100), undefined);
    await until('the lease lapsed', async () => (await level.lease.acquire('k', 5000)) !== undefined);
  });
});

describe('the Redis store', () => {
  it('refuses a fill whose lease an invalidation deleted, and keeps the record a later fill stored', async () => {
    const { level } = await open();
    const record = makeRecord({ fetchedAt: Date.now() });
    const token = (await level.lease.acquire(record.key, 5000))!;
    assert.equal(await level.store.deleteSelected({ route: 'node' }), 0);
    assert.equal(await level.store.set(record), false, 'the fill that the invalidation overtook stores nothing');
    assert.equal(await level.store.get(record.key), undefined);
    await level.lease.release(record.key, token);
    const again = (await level.lease.acquire(record.key, 5000))!;
    assert.equal(await level.store.set(record), true);
    await level.lease.release(record.key, again);
    assert.deepEqual(plain(await level.store.get(record.key)), plain(record));
  });

  it('expires a record in Redis at its deadAt', async () => {
    const { level } = await open();
    const record = makeRecord({ fetchedAt: Date.now(), ttlMs: 10_000, staleIfErrorMs: 50_000 });
    await level.store.set(record);
    const pttl = Number((await redis.command('PTTL', `${level.connection.prefix}e:${record.key}`)).slice(1));
    assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
  });

  it('matches a path with glob characters only to itself', async () => {
    const { level } = await open();
    const star = makeRecord({ route: 'pages', path: '/pages/*', fetchedAt: Date.now() });
    const other = makeRecord({ route: 'pages', path: '/pages/x', fetchedAt: Date.now() });
    await level.store.set(star);
    await level.store.set(other);
    assert.equal(await level.store.deleteSelected({ route: 'pages', path: '/pages/*' }), 1);
    assert.notEqual(await level.store.get(other.key), undefined);
  });
});

describe('the Redis event bus', () => {
  it('delivers events to the others as notices (key, fetch time, fingerprint; never the body), not back to the sender', async () => {
    const a = await open();
    const b = await open({ keyPrefix: a.level.connection.prefix });
    const seenA: CacheEvent[] = [];
    const seenB: CacheEvent[] = [];
    a.level.bus.subscribe((e) => seenA.push(e));
    b.level.bus.subscribe((e) => seenB.push(e));
    await until('both subscribed', async () => (await subscribers(`${a.level.connection.prefix}events`)) === 2);
    const record = makeRecord({ body: Buffer.from([0, 1, 2, 255]) });
    await a.level.bus.publish({ type: 'stored', key: record.key, record });
    await a.level.bus.publish({ type: 'failed', key: record.key, fwdStatus: 502, retryAt: 123 });
    await until('b saw both', () => seenB.length === 2);
    assert.deepEqual(seenB[0], { type: 'stored', key: record.key, fetchedAt: record.fetchedAt, fingerprint: record.fingerprint });
    assert.deepEqual(seenB[1], { type: 'failed', key: record.key, fwdStatus: 502, retryAt: 123 });
    assert.deepEqual(seenA, []);
  });

  it('resolves an invalidation only after every other subscriber handled it', async () => {
    const a = await open();
    const others = [await open({ keyPrefix: a.level.connection.prefix }), await open({ keyPrefix: a.level.connection.prefix })];
    const handled: number[] = [];
    others.forEach((o, i) => o.level.bus.subscribe((e) => e.type === 'invalidated' && handled.push(i)));
    await until('all subscribed', async () => (await subscribers(`${a.level.connection.prefix}events`)) === 3);
    await a.level.bus.publish({ type: 'invalidated', selection: { route: 'node' } });
    assert.deepEqual(handled.sort(), [0, 1]);
  });
});

describe('Redis down, slow or full', () => {
  it('counts a killed Redis as down at once, skips calls while down, and comes back by itself after a restart', async () => {
    const own = await startRedis();
    try {
      const { level, metrics, lines } = await open({ port: own.port, url: own.url });
      assert.equal(level.connection.up, true);
      assert.equal(await metricValue(metrics, 'scrapecache_store_up', { store: 'redis' }), 1);
      const record = makeRecord({ fetchedAt: Date.now() });
      assert.equal(await level.store.set(record), true);
      await own.kill();
      await until('down', () => !level.connection.up);
      assert.equal(await metricValue(metrics, 'scrapecache_store_up', { store: 'redis' }), 0);
      const started = Date.now();
      assert.equal(await level.store.get(record.key), undefined);
      assert.equal(await level.store.set(record), false);
      assert.ok(Date.now() - started < 250 * 2, 'answers within the timeout');
      assert.ok((await metricValue(metrics, 'scrapecache_store_operations_total', { store: 'redis', operation: 'get', result: 'skipped' }))! >= 1);
      await own.start();
      await until('up again', () => level.connection.up);
      assert.equal(await level.store.set(record), true);
      const changes = lines.filter((l) => /^redis (un)?available/.test(String(l['msg'])));
      assert.deepEqual(
        changes.map((l) => String(l['msg']).split(':')[0]),
        ['redis available', 'redis unavailable', 'redis available'],
        'each change is logged once',
      );
    } finally {
      await own.close();
    }
  });

  it('answers within the timeout when Redis stops answering, and counts a timeout', async () => {
    const own = await startRedis();
    try {
      const { level, metrics } = await open({ port: own.port, url: own.url, timeoutMs: 200 });
      own.pause();
      const started = Date.now();
      assert.equal(await level.store.get('k'), undefined);
      assert.ok(Date.now() - started < 1000);
      assert.equal(level.connection.up, false);
      assert.equal(await metricValue(metrics, 'scrapecache_store_operations_total', { store: 'redis', operation: 'get', result: 'timeout' }), 1);
      own.resume();
      await until('up again', () => level.connection.up);
    } finally {
      own.resume();
      await own.close();
    }
  });

  it('counts a full Redis (maxmemory, noeviction) as down until writes go through again', async () => {
    const own = await startRedis();
    try {
      const { level } = await open({ port: own.port, url: own.url });
      await own.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
      await own.command('CONFIG', 'SET', 'maxmemory', '1');
      assert.equal(await level.store.set(makeRecord({ fetchedAt: Date.now() })), false);
      assert.equal(level.connection.up, false);
      await own.command('CONFIG', 'SET', 'maxmemory', '0');
      await until('up again', () => level.connection.up);
      assert.equal(await level.store.set(makeRecord({ fetchedAt: Date.now() })), true);
    } finally {
      await own.close();
    }
  });

  it('closes at once while Redis is unreachable (regression: shutdown waited forever for a reconnecting client)', async () => {
    const own = await startRedis();
    await own.kill();
    try {
      const { level } = await open({ port: own.port, url: own.url });
      opened.splice(opened.indexOf(level), 1);
      const closing = level.close().then(() => 'closed');
      assert.equal(await Promise.race([closing, new Promise((r) => setTimeout(() => r('still waiting'), 5000))]), 'closed');
    } finally {
      await own.close();
    }
  });

  it('starts without Redis and joins once it answers', async () => {
    const own = await startRedis();
    await own.kill();
    try {
      const { level } = await open({ port: own.port, url: own.url });
      assert.equal(level.connection.up, false);
      assert.equal(await level.lease.acquire('k', 1000) !== undefined, true, 'a local lease while Redis is down');
      await own.start();
      await until('up', () => level.connection.up);
    } finally {
      await own.close();
    }
  });
});
