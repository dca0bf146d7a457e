/**
 * Issue 17, hardening round two: each test is named after what broke, and runs the parts that
 * broke for real (the built CLI, redis-server, a real disk directory).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { DiskStore } from '../src/cache/disk-store.js';
import { MemoryStore } from '../src/cache/memory-store.js';
import { ScrapeCache } from '../src/cache/scrape-cache.js';
import { openRedisLevel } from '../src/cache/redis/redis-level.js';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { UpstreamFiller } from '../src/upstream/upstream-filler.js';
import { startCli } from './helpers/cli-process.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, PROMETHEUS_ACCEPT, SCRAPE_HEADERS } from './helpers/proxy.js';
import { startRedis, type TestRedis } from './helpers/redis-server.js';

let exporter: FakeExporter;
before(async () => {
  exporter = await startFakeExporter();
});
after(() => exporter.close());

const quiet = () =>
  createLogger(
    'warn',
    new Writable({
      write(_c, _e, done) {
        done();
      },
    }),
  );

const recFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.rec'));

describe('#1 an invalidation is undone by a disk write in flight', () => {
  test('writes still in flight when a route is invalidated never reach the disk, the next scrape or the next start', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-1-'));
    const dir = join(base, 'cache');
    const config = parseConfig(
      `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ncache:\n  disk:\n    path: ${dir}\nroutes:\n  - name: probe\n    path: /probe\n    upstream: ${exporter.url}/probe\n    ttl: 1h\n`,
      join(base, 'proxy.yaml'),
    );
    const route = config.routes[0]!;
    const log = quiet();
    // A slow disk: every write waits at the gate until the test opens it, then is written for real.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const slow = async (path: string, bytes: Buffer) => {
      await gate;
      const { writeFile } = await import('node:fs/promises');
      await writeFile(path, bytes, { flag: 'wx', mode: 0o600 });
    };
    const make = (disk: DiskStore) => {
      const cache = new ScrapeCache({ memory: new MemoryStore(64 << 20), filler: new UpstreamFiller(undefined, log), second: disk, log });
      cache.setRoutes(config.routes);
      return cache;
    };
    const disk = new DiskStore({ dir, maxBytes: 64 << 20, log, writeDurably: slow });
    const cache = make(disk);
    const target = (i: number) => ({ route, path: '/probe', query: `target=t${i}`, representation: 'openmetrics' as const, accept: PROMETHEUS_ACCEPT });
    const first = await Promise.all(Array.from({ length: 50 }, async (_, i) => (await cache.lookup(target(i))).entry.body));
    assert.equal(cache.count, 50);
    const answer = cache.invalidate({ route: 'probe' });
    open();
    assert.equal((await answer).invalidated, 50);
    // After the answer: nothing from any level, now or after a restart.
    for (let i = 0; i < 50; i++) {
      const again = await cache.lookup(target(i));
      assert.equal(again.cache, 'miss', `key ${i} came back as ${again.cache}`);
      assert.notDeepEqual(again.entry.body, first[i]);
    }
    await cache.invalidate({ route: 'probe' });
    await cache.close();
    assert.deepEqual(recFiles(dir), []);
    const restarted = make(new DiskStore({ dir, maxBytes: 64 << 20, log }));
    try {
      assert.deepEqual(await restarted.load(config.routes), { loaded: 0, dropped: 0 });
    } finally {
      await restarted.close();
    }
  });

  test('the built CLI: 50 keys filled and the route invalidated at once come back as misses with new bodies, also after a restart', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-1e-'));
    const file = join(base, 'proxy.yaml');
    writeFileSync(
      file,
      `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ncache:\n  disk:\n    path: ${join(base, 'cache')}\nroutes:\n  - name: probe\n    path: /probe\n    upstream: ${exporter.url}/probe\n    ttl: 1h\n`,
    );
    let cli = await startCli(file);
    try {
      const first = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${cli.scrapeUrl}/probe?target=t${i}`, SCRAPE_HEADERS)));
      const answer = JSON.parse((await post(`${cli.adminUrl}/invalidate`, { route: 'probe' })).body.toString()) as { invalidated: number };
      assert.equal(answer.invalidated, 50);
      const second = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${cli.scrapeUrl}/probe?target=t${i}`, SCRAPE_HEADERS)));
      for (let i = 0; i < 50; i++) {
        assert.equal(second[i]!.headers['cache-status'], 'scrapecache; fwd=miss; stored', `key ${i}`);
        assert.notDeepEqual(second[i]!.body, first[i]!.body, `key ${i} served the invalidated body`);
      }
      cli.child.kill('SIGTERM');
      await cli.exited;
      cli = await startCli(file);
      const third = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${cli.scrapeUrl}/probe?target=t${i}`, SCRAPE_HEADERS)));
      for (let i = 0; i < 50; i++) assert.notDeepEqual(third[i]!.body, first[i]!.body, `key ${i} served the invalidated body after a restart`);
    } finally {
      cli.child.kill('SIGKILL');
      await cli.exited;
    }
  });
});

/** A cache as one replica builds it on a real Redis, on the test's clock. */
async function replicaOn(redisUrl: string, routesYaml: string, now: () => number) {
  const config = parseConfig(`cache:\n  redis:\n    url: ${redisUrl}\nroutes:\n${routesYaml}`, '/replica.yaml');
  const log = quiet();
  const level = await openRedisLevel(config.cache.redis!, undefined, log, now);
  const cache = new ScrapeCache({
    memory: new MemoryStore(64 << 20, {}, now),
    filler: new UpstreamFiller(undefined, log, now),
    second: level.store,
    lease: level.lease,
    bus: level.bus,
    log,
    now,
  });
  cache.setRoutes(config.routes);
  return {
    config,
    cache,
    level,
    target: (name: string, query = '') => {
      const route = config.routes.find((r) => r.name === name)!;
      return { route, path: route.path!, query, representation: 'openmetrics' as const, accept: PROMETHEUS_ACCEPT };
    },
    /** Resolves once this replica's cache has heard the next event of that type from the bus. */
    heard: (type: string) =>
      new Promise<void>((resolve) => {
        const off = level.bus.subscribe((e) => {
          if (e.type !== type) return;
          off();
          // After the cache's own listener, and after what it read from Redis for it.
          setTimeout(resolve, 100);
        });
      }),
    async close() {
      await cache.close();
      await level.close();
    },
  };
}

describe('#2 replicas adopt records from the bus without the route-fingerprint check', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.close());

  test("a replica whose route fetches differently (rolling change of headers) never serves the other's record", async () => {
    let t = Date.now();
    const now = () => t;
    const route = (scope: string) => `  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1m\n    headers: { X-Scope: ${scope} }\n`;
    const b = await replicaOn(redis.url, route('old'), now);
    const a = await replicaOn(redis.url, route('new'), now);
    try {
      const own = await b.cache.lookup(b.target('node'));
      assert.equal(own.cache, 'miss');
      t += 120_000; // B's copy is stale now
      const heard = b.heard('stored');
      const theirs = await a.cache.lookup(a.target('node'));
      assert.equal(theirs.cache, 'miss', 'A fetched for itself: B fetches differently');
      await heard;
      const again = await b.cache.lookup(b.target('node'));
      assert.equal(again.cache, 'miss', `B answered ${again.cache} with A's record`);
      assert.notDeepEqual(again.entry.body, theirs.entry.body);
      assert.equal(exporter.requests.at(-1)!.headers['x-scope'], 'old');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
