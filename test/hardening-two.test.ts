/**
 * Issue 17, hardening round two: each test is named after what broke, and runs the parts that
 * broke for real (the built CLI, redis-server, a real disk directory).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { Agent, get as httpGet } from 'node:http';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { DiskStore } from '../src/cache/disk-store.js';
import { cacheKey } from '../src/cache/key.js';
import { MemoryStore } from '../src/cache/memory-store.js';
import { ScrapeCache } from '../src/cache/scrape-cache.js';
import { encodeRecord, RECORD_VERSION, recordTimes, type StoredRecord } from '../src/cache/stored-record.js';
import { openRedisLevel } from '../src/cache/redis/redis-level.js';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { BasicAuth, loadBcrypt } from '../src/server/basic-auth.js';
import { UpstreamFiller } from '../src/upstream/upstream-filler.js';
import { startCli } from './helpers/cli-process.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, PROMETHEUS_ACCEPT, SCRAPE_HEADERS, startProxy } from './helpers/proxy.js';
import { startRedis, type TestRedis } from './helpers/redis-server.js';
import { startReplicas, until, type Replica, type ReplicaSet } from './helpers/replicas.js';
import { clockWith } from './helpers/test-clock.js';

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
    const target = (i: number) => ({ route, path: '/probe', query: `target=t${i}`, representation: 'openmetrics;1.0.0' as const, accept: PROMETHEUS_ACCEPT });
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
    clock: clockWith(now),
  });
  cache.setRoutes(config.routes);
  return {
    config,
    cache,
    level,
    target: (name: string, query = '') => {
      const route = config.routes.find((r) => r.name === name)!;
      return { route, path: route.path!, query, representation: 'openmetrics;1.0.0' as const, accept: PROMETHEUS_ACCEPT };
    },
    /** Resolves once this replica's cache has handled the next event of that type from the bus. */
    heard: (type: string) =>
      new Promise<void>((resolve) => {
        const off = level.bus.subscribe((e) => {
          if (e.type !== type) return;
          off();
          // After the cache's own listener (subscribed first, called first, synchronously).
          setImmediate(resolve);
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

/** A plain subscriber on the replicas' event channel: how many bytes the bus carries, and whether Redis cut it off. */
function rawSubscriber(port: number, channel: string) {
  const socket = createConnection({ host: '127.0.0.1', port });
  const state = { text: '', bytes: 0, closed: false };
  socket.on('data', (chunk: Buffer) => {
    state.bytes += chunk.length;
    state.text += chunk.toString('latin1');
  });
  socket.on('close', () => (state.closed = true));
  socket.on('error', () => undefined);
  socket.write(`*2\r\n$9\r\nSUBSCRIBE\r\n$${channel.length}\r\n${channel}\r\n`);
  return { state, close: () => socket.destroy() };
}

describe('#3 a large record cuts every replica off the bus', () => {
  let redis: TestRedis;
  let set: ReplicaSet;
  const yaml = () => `cache:\n  redis:\n    url: ${redis.url}\n    timeout: 1s\nroutes:\n  - name: big\n    path: /big\n    upstream: ${exporter.url}/big\n    ttl: 1h\n`;
  before(async () => {
    redis = await startRedis();
    // The default is 32mb; a smaller limit shows the same thing with a 4 MiB body.
    await redis.command('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 1mb 1mb 0');
    set = await startReplicas(2, yaml());
  });
  after(async () => {
    await set.close();
    await redis.close();
  });

  test('a 4 MiB record crosses the bus as a notice: no subscriber is disconnected, and the next invalidation reaches the other replica', async () => {
    const [a, b] = set.replicas as [Replica, Replica];
    const sub = rawSubscriber(redis.port, 'scrapecache:events');
    try {
      await until('subscribed', () => sub.state.text.includes('subscribe'));
      exporter.padding = 4 << 20;
      const filled = await get(`${a.scrape}/big`, { accept: PROMETHEUS_ACCEPT });
      exporter.padding = 0;
      assert.equal(filled.headers['cache-status'], 'scrapecache; fwd=miss; stored');
      await until('the notice arrived', () => sub.state.text.includes('"stored"') || sub.state.closed);
      assert.equal(sub.state.closed, false, 'redis cut the subscriber off');
      assert.ok(sub.state.bytes < 64 * 1024, `the bus carried ${sub.state.bytes} bytes`);
      const read = await get(`${b.scrape}/big`, { accept: PROMETHEUS_ACCEPT });
      assert.match(String(read.headers['cache-status']), /^scrapecache; hit/);
      assert.deepEqual(read.body, filled.body);
      // Only the replicas on the bus now (the plain subscriber would not confirm the invalidation).
      sub.close();
      await until('the plain subscriber is gone', async () => (await redis.command('PUBSUB', 'NUMSUB', 'scrapecache:events')).endsWith(':2\r\n'));
      const answer = JSON.parse((await post(`${a.admin}/invalidate`, { route: 'big' })).body.toString()) as Record<string, unknown>;
      assert.deepEqual(answer, { invalidated: 1 });
      const after = await get(`${b.scrape}/big`, { accept: PROMETHEUS_ACCEPT });
      assert.equal(after.headers['cache-status'], 'scrapecache; fwd=miss; stored');
    } finally {
      exporter.padding = 0;
      sub.close();
    }
  });

  test('on a notice, a replica holding an older copy takes the newer record from Redis', async () => {
    let t = Date.now();
    const now = () => t;
    const route = `  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1m\n`;
    const b = await replicaOn(redis.url, route, now);
    const a = await replicaOn(redis.url, route, now);
    try {
      assert.equal((await b.cache.lookup(b.target('node'))).cache, 'miss');
      t += 120_000; // B's copy is stale now
      const fetched = await a.cache.lookup(a.target('node'));
      assert.equal(fetched.cache, 'miss');
      await until('B took the record the notice named', () => b.cache.peek(b.target('node'))?.fetchedAt === fetched.entry.fetchedAt);
      const since = exporter.count;
      const again = b.cache.lookup(b.target('node'));
      assert.ok(!(again instanceof Promise), 'B waited for a fill: it did not take the record on the notice');
      assert.equal(again.cache, 'hit');
      assert.deepEqual(again.entry.body, fetched.entry.body);
      assert.equal(exporter.count, since);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('an invalidation that could not reach the fleet says so in its answer and on the status page', async () => {
    const [a] = set.replicas as [Replica, Replica];
    await get(`${a.scrape}/big`, { accept: PROMETHEUS_ACCEPT });
    await redis.kill();
    try {
      const res = await post(`${a.admin}/invalidate`, { route: 'big' });
      assert.equal(res.status, 200);
      const answer = JSON.parse(res.body.toString()) as Record<string, unknown>;
      assert.equal(answer['invalidated'], 1);
      assert.equal(answer['reached'], 'this replica only');
      assert.match(String(answer['reason']), /redis unavailable/);
      const page = await get(`${a.admin}/`, { accept: 'text/html' });
      assert.match(page.body.toString(), /reached this replica only: redis unavailable/);
    } finally {
      await redis.start();
      await redis.command('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 1mb 1mb 0');
    }
  });
});

/** A bcrypt hash as `htpasswd -nBC cost` writes it. */
function htpasswd(user: string, password: string, cost = 10): string {
  const line = execFileSync('htpasswd', ['-nbBC', String(cost), user, password], { encoding: 'utf8' }).trim();
  return line.slice(line.indexOf(':') + 1);
}

describe('#4 pass-through routes forward the listener\'s own credentials', () => {
  test('a cache: false route sends the upstream neither the password to the proxy nor the cookies; a route with basic_auth sends its own', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-4-'));
    writeFileSync(join(base, 'web.yml'), `basic_auth_users:\n  prom: ${htpasswd('prom', 'to-the-proxy')}\n`);
    writeFileSync(join(base, 'upstream-password'), 'to-the-upstream\n');
    writeFileSync(
      join(base, 'proxy.yaml'),
      `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n  - name: pages\n    path_prefix: /pages/\n    upstream: ${exporter.url}/\n    cache: false\n  - name: secured\n    path_prefix: /secured/\n    upstream: ${exporter.url}/\n    cache: false\n    basic_auth: { username: up, password_file: ${join(base, 'upstream-password')} }\n`,
    );
    const cli = await startCli(join(base, 'proxy.yaml'), { args: ['--web.config.file', join(base, 'web.yml')] });
    const proxyAuth = `Basic ${Buffer.from('prom:to-the-proxy').toString('base64')}`;
    try {
      const since = exporter.count;
      const plain = await get(`${cli.scrapeUrl}/pages/metrics`, { authorization: proxyAuth, cookie: 'session=secret' });
      assert.equal(plain.status, 200);
      const secured = await get(`${cli.scrapeUrl}/secured/metrics`, { authorization: proxyAuth, cookie: 'session=secret' });
      assert.equal(secured.status, 200);
      const [first, second] = exporter.requests.slice(since);
      assert.equal(first!.headers.authorization, undefined, 'the password to the proxy reached the upstream');
      assert.equal(first!.headers.cookie, undefined);
      assert.equal(second!.headers.authorization, `Basic ${Buffer.from('up:to-the-upstream').toString('base64')}`);
      assert.equal(second!.headers.cookie, undefined);
    } finally {
      cli.child.kill('SIGKILL');
      await cli.exited;
    }
  });
});

describe('#5 a flood of wrong passwords locks out the right ones', () => {
  test('a remembered success is renewed by use: a Prometheus scraping through it never goes back to bcrypt', async () => {
    let t = 1_000_000;
    const auth = new BasicAuth(await loadBcrypt(), new Map([['prom', htpasswd('prom', 'right', 4)]]), { cacheTtlMs: 60_000, now: () => t });
    const header = `Basic ${Buffer.from('prom:right').toString('base64')}`;
    assert.equal(await auth.check(header), 'ok');
    for (let i = 0; i < 5; i++) {
      t += 45_000; // every scrape within the ttl of the one before, 3m45s in all
      assert.equal(auth.check(header), 'ok', `scrape ${i} needed bcrypt again`);
    }
  });

  test('the built CLI: 160 clients sending wrong passwords; the right one gets 200 on both listeners every time', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-5-'));
    writeFileSync(join(base, 'web.yml'), `basic_auth_users:\n  prom: ${htpasswd('prom', 'right')}\n`);
    writeFileSync(join(base, 'proxy.yaml'), `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1h\n`);
    const cli = await startCli(join(base, 'proxy.yaml'), { args: ['--web.config.file', join(base, 'web.yml')] });
    const agent = new Agent({ keepAlive: true, maxSockets: 160 });
    let flooding = true;
    const refused = { busy: 0, denied: 0 };
    const wrong = (i: number, n: number) => `Basic ${Buffer.from(i % 4 === 0 ? 'prom:wrong' : `user${i}-${n}:guess${n}`).toString('base64')}`;
    const client = async (i: number) => {
      for (let n = 0; flooding; n++) {
        const status = await new Promise<number>((resolve) => {
          const req = httpGet(`${cli.scrapeUrl}/node/metrics`, { agent, headers: { authorization: wrong(i, n) } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', () => resolve(0));
        });
        if (status === 429) refused.busy++;
        else if (status === 401) refused.denied++;
      }
    };
    const flood = Array.from({ length: 160 }, (_, i) => client(i));
    const right = { authorization: `Basic ${Buffer.from('prom:right').toString('base64')}` };
    try {
      await until('the flood fills the queue', () => refused.busy > 0, 30_000);
      const answers: string[] = [];
      for (let i = 0; i < 9; i++) {
        answers.push(`scrape ${(await get(`${cli.scrapeUrl}/node/metrics`, right)).status}`);
        answers.push(`admin ${(await get(`${cli.adminUrl}/cache`, right)).status}`);
      }
      assert.deepEqual(answers.filter((a) => !a.endsWith(' 200')), [], `under the flood (${refused.busy} refused with 429, ${refused.denied} with 401)`);
    } finally {
      flooding = false;
      await Promise.all(flood);
      agent.destroy();
      cli.child.kill('SIGKILL');
      await cli.exited;
    }
  });
});

describe('#6 soft invalidation is kept only in memory', () => {
  test('disk: a restart during the refetch serves the soft-invalidated copy as stale, not as fresh', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scrapecache-i17-6-'));
    const yaml = `cache:\n  disk:\n    path: ${dir}\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1h\n    timeout: 1m\n`;
    const a = await startProxy(yaml);
    let release: (() => void) | undefined;
    try {
      const first = await get(`${a.url}/node/metrics`, SCRAPE_HEADERS);
      await until('the entry is on disk', () => recFiles(dir).length === 1);
      release = exporter.hold();
      const answer = JSON.parse((await post(`${a.adminUrl}/invalidate`, { route: 'node', soft: true })).body.toString()) as Record<string, unknown>;
      assert.deepEqual(answer, { invalidated: 1, refetching: 1 });
      await a.close();
      const b = await startProxy(yaml);
      try {
        const again = await get(`${b.url}/node/metrics`, SCRAPE_HEADERS);
        assert.match(String(again.headers['cache-status']), /^scrapecache; hit; fwd=stale/, 'the soft-invalidated copy was served as fresh after the restart');
        assert.deepEqual(again.body, first.body);
      } finally {
        release();
        release = undefined;
        await b.close();
      }
    } finally {
      release?.();
      await a.close();
    }
  });

  test('redis: a replica reading the soft-invalidated record from Redis serves it as stale, at once', async () => {
    const redis = await startRedis();
    const now = Date.now;
    const yaml = `  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1h\n    timeout: 1m\n`;
    const a = await replicaOn(redis.url, yaml, now);
    const b = await replicaOn(redis.url, yaml, now);
    try {
      const first = await a.cache.lookup(a.target('node'));
      assert.equal(first.cache, 'miss');
      const hold = exporter.hold();
      try {
        const soft = await a.cache.softInvalidate({ route: 'node' });
        assert.equal(soft.invalidated, 1);
        const read = b.cache.lookup(b.target('node'));
        const answer = read instanceof Promise ? await read : read;
        assert.equal(answer.cache, 'stale', `B answered ${answer.cache} from the soft-invalidated record in Redis`);
        assert.deepEqual(answer.entry.body, first.entry.body);
      } finally {
        hold();
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
      await redis.close();
    }
  });
});

describe('#7 a FIFO, a device or a huge file named *.rec stops start-up', () => {
  test('the built CLI starts past a FIFO, a link to /dev/zero and a 600 MiB foreign file, each skipped with a warning, without reading them', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-7-'));
    const dir = join(base, 'cache');
    mkdirSync(dir);
    execFileSync('mkfifo', [join(dir, 'fifo.rec')]);
    symlinkSync('/dev/zero', join(dir, 'zero.rec'));
    execFileSync('truncate', ['-s', '600M', join(dir, 'huge.rec')]);
    writeFileSync(join(base, 'proxy.yaml'), `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ncache:\n  disk:\n    path: ${dir}\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n`);
    const skipped: string[] = [];
    const cli = await startCli(join(base, 'proxy.yaml'), {
      timeoutMs: 20_000,
      onEntry: (e) => e.msg === 'cache file skipped' && skipped.push(String((e as unknown as Record<string, unknown>)['file'])),
    });
    try {
      assert.deepEqual(skipped.sort(), ['fifo.rec', 'huge.rec', 'zero.rec']);
      const peakKiB = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${cli.child.pid}/status`, 'utf8'))![1]);
      assert.ok(peakKiB < 300 * 1024, `peak memory ${Math.round(peakKiB / 1024)} MiB`);
      assert.equal((await get(`${cli.scrapeUrl}/node/metrics`, SCRAPE_HEADERS)).status, 200);
      // Not ours: skipped, left where they are.
      for (const name of ['fifo.rec', 'huge.rec', 'zero.rec']) assert.ok(recFiles(dir).includes(name), name);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });
});

describe('#8 the lock file is written through a symlink', () => {
  const cliPath = new URL('../src/cli.js', import.meta.url).pathname;
  const setUp = () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-8-'));
    const dir = join(base, 'cache');
    mkdirSync(dir);
    writeFileSync(join(base, 'proxy.yaml'), `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ncache:\n  disk:\n    path: ${dir}\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n`);
    return { base, dir, file: join(base, 'proxy.yaml') };
  };

  test('a link planted as scrapecache.lock is refused, with a start-up error naming it, and its target is left alone', () => {
    const { base, dir, file } = setUp();
    writeFileSync(join(base, 'precious'), 'precious data\n');
    symlinkSync(join(base, 'precious'), join(dir, 'scrapecache.lock'));
    const run = spawnSync(process.execPath, [cliPath, '--config.file', file], { encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' });
    assert.equal(readFileSync(join(base, 'precious'), 'utf8'), 'precious data\n');
    assert.equal(run.status, 1);
    assert.match(run.stderr, /scrapecache\.lock is a symbolic link; refusing to write through it/);
  });

  test('a cache directory others can write to gets a warning at start-up', async () => {
    const { dir, file } = setUp();
    chmodSync(dir, 0o777);
    const warnings: string[] = [];
    const cli = await startCli(file, { onEntry: (e) => (e as unknown as { level: number }).level >= 40 && warnings.push(e.msg) });
    try {
      assert.ok(warnings.some((w) => w.startsWith('the cache directory is writable by every user')), warnings.join('\n'));
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });
});

describe('#9 timing tells users apart', () => {
  test('with users of two bcrypt costs, unknown names are checked at both costs, each name always at the same one', async () => {
    const real = await loadBcrypt();
    const costs: number[] = [];
    const recording = { verify: (password: string | Buffer, hash: string | Buffer) => (costs.push(Number(String(hash).slice(4, 6))), real.verify(password, hash)) };
    const users = new Map([
      ['prom', htpasswd('prom', 'a', 4)],
      ['admin', htpasswd('admin', 'b', 5)],
    ]);
    const auth = new BasicAuth(recording, users);
    const basic = (user: string) => `Basic ${Buffer.from(`${user}:wrong`).toString('base64')}`;
    // A known user costs its own hash's time: cost 5 for admin.
    assert.equal(await auth.check(basic('admin')), 'denied');
    assert.deepEqual(costs.splice(0), [5]);
    for (let i = 0; i < 40; i++) assert.equal(await auth.check(basic(`nobody-${i}`)), 'denied');
    const unknown = costs.splice(0);
    assert.ok(unknown.includes(5) && unknown.includes(4), `unknown names were checked at costs ${[...new Set(unknown)].join(', ')} only: a cost-5 answer tells that the user exists`);
    // The same name again (a different password, so no remembered failure): the same cost.
    for (let i = 0; i < 40; i++) await auth.check(`Basic ${Buffer.from(`nobody-${i}:other`).toString('base64')}`);
    assert.deepEqual(costs, unknown);
  });
});

describe('#10 DNS rebinding on the admin listener', { skip: existsSync('/usr/bin/chromium') ? false : '/usr/bin/chromium is not installed' }, () => {
  test('without a token, a page whose name was rebound to the admin address can neither read /cache nor invalidate; a configured name can', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-10-'));
    writeFileSync(
      join(base, 'proxy.yaml'),
      `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n  allowed_hosts: [scrapecache.internal]\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1h\n`,
    );
    const cli = await startCli(join(base, 'proxy.yaml'));
    const port = new URL(cli.adminUrl).port;
    // The attacker's name now resolves to the admin listener's address, as after a rebinding.
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--host-resolver-rules=MAP rebound.example 127.0.0.1, MAP scrapecache.internal 127.0.0.1'],
    });
    try {
      await get(`${cli.scrapeUrl}/node/metrics`, SCRAPE_HEADERS);
      const page = await browser.newPage();
      const read = await page.goto(`http://rebound.example:${port}/cache`);
      assert.equal(read!.status(), 403, `the rebound page read /cache: ${await read!.text()}`);
      const invalidated = await page.evaluate(async () => (await fetch('/invalidate', { method: 'POST' })).status);
      assert.equal(invalidated, 403);
      const listed = JSON.parse((await get(`${cli.adminUrl}/cache`)).body.toString()) as unknown[];
      assert.equal(listed.length, 1, 'the entry is still there');
      const named = await page.goto(`http://scrapecache.internal:${port}/cache`);
      assert.equal(named!.status(), 200);
      assert.equal(((await named!.json()) as unknown[]).length, 1);
    } finally {
      await browser.close();
      cli.child.kill('SIGKILL');
      await cli.exited;
    }
  });
});

describe('#11 406 answers on pinned routes carry no Cache-Status', () => {
  test('the built CLI: a 406 for a format or a coding the client does not admit carries Cache-Status', async () => {
    const base = mkdtempSync(join(tmpdir(), 'scrapecache-i17-11-'));
    // An OpenMetrics pin has nothing for a client that asks for text only (issue 16).
    writeFileSync(join(base, 'proxy.yaml'), `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n  - name: pinned\n    path: /pinned\n    upstream: ${exporter.url}/pinned\n    format: openmetrics\n`);
    const cli = await startCli(join(base, 'proxy.yaml'));
    try {
      const format = await get(`${cli.scrapeUrl}/pinned`, { accept: 'text/plain;version=0.0.4' });
      assert.equal(format.status, 406);
      assert.equal(format.headers['cache-status'], 'scrapecache; detail=not-acceptable');
      const coding = await get(`${cli.scrapeUrl}/pinned`, { accept: 'application/openmetrics-text', 'accept-encoding': 'gzip;q=0, identity;q=0' });
      assert.equal(coding.status, 406);
      assert.equal(coding.headers['cache-status'], 'scrapecache; detail=not-acceptable');
    } finally {
      cli.child.kill('SIGKILL');
      await cli.exited;
    }
  });
});

describe('#12 records planted in Redis by another writer are served unchecked', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.close());

  test('a planted record with a 1xx status or a malformed header name is skipped; the scrape is fetched and answered 200', async () => {
    const routes = `routes:\n  - name: one\n    path: /one\n    upstream: ${exporter.url}/one\n    ttl: 1h\n  - name: two\n    path: /two\n    upstream: ${exporter.url}/two\n    ttl: 1h\n`;
    const yaml = `cache:\n  redis:\n    url: ${redis.url}\n${routes}`;
    const config = parseConfig(yaml, '/planted.yaml');
    const plant = async (name: string, change: Partial<StoredRecord>) => {
      const route = config.routes.find((r) => r.name === name)!;
      const record: StoredRecord = {
        version: RECORD_VERSION,
        key: cacheKey(name, route.path!, '', 'openmetrics'),
        route: name,
        path: route.path!,
        query: '',
        representation: 'openmetrics',
        accept: PROMETHEUS_ACCEPT,
        fingerprint: route.recordFingerprint,
        status: 200,
        coding: 'identity',
        headers: ['Content-Type', 'application/openmetrics-text; version=1.0.0; charset=utf-8'],
        body: Buffer.from('planted 1\n# EOF\n'),
        ...recordTimes(Date.now(), { ttlMs: 3_600_000, staleWhileRevalidateMs: 0, staleIfErrorMs: 0 }),
        ...change,
      };
      const resp = (args: Array<string | Buffer>) => Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => [Buffer.from(`$${Buffer.byteLength(a)}\r\n`), Buffer.from(a), Buffer.from('\r\n')])]);
      // Another writer: the record's own bytes, SET as the replicas would.
      await new Promise<void>((resolve, reject) => {
        const socket = createConnection({ host: '127.0.0.1', port: redis.port });
        socket.on('data', (d) => (d.toString().startsWith('+OK') ? (socket.end(), resolve()) : reject(new Error(d.toString()))));
        socket.on('error', reject);
        socket.write(resp(['SET', `scrapecache:e:${record.key}`, encodeRecord(record), 'PX', '3600000']));
      });
    };
    await plant('one', { status: 103 });
    await plant('two', { headers: ['Bad Header', 'x', 'Content-Type', 'text/plain'] });
    const set = await startReplicas(1, yaml);
    try {
      const [replica] = set.replicas as [Replica];
      for (const path of ['/one', '/two']) {
        const res = await Promise.race([
          get(`${replica.scrape}${path}`, SCRAPE_HEADERS),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${path}: no answer within 5 s (a 1xx left the client waiting)`)), 5000)),
        ]);
        assert.equal(res.status, 200, `${path} answered ${res.status}`);
        assert.equal(res.headers['cache-status'], 'scrapecache; fwd=miss; stored', path);
      }
    } finally {
      await set.close();
    }
  });
});
