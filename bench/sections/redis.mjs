// cache.redis (SPEC 2.2): the hit path with Redis configured (a hit never touches Redis, so it
// should cost what it costs without), and the latency of a miss with Redis (read, lease, write,
// publish around the upstream fetch) against without it. Each uses a fresh pair of proxies that
// differ only in cache.redis.
import { measurePeers } from '../lib/measure.mjs';
import { logPoint } from '../lib/log.mjs';
import { request, scrapeHeaders } from '../lib/http-client.mjs';
import { startScrapecache } from '../peers/scrapecache.mjs';
import { startRedisServer } from '../peers/redis.mjs';

function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export async function runRedisSection(ctx) {
  const redis = await startRedisServer({ tmpDir: ctx.tmpDir, cpus: ctx.options.loadCpus });
  if (!redis) {
    ctx.skip('redis: redis-server not found (apt-get install redis-server, or REDIS_SERVER=/path)');
    return null;
  }
  const profile = ctx.plan.compare[0];
  const routes = [
    { name: profile.fixture, path: ctx.fixture.path(profile.fixture), upstream: ctx.fixture.upstream(profile.fixture) },
    { name: 'miss', path: '/miss/metrics', upstream: ctx.fixture.upstream(profile.fixture), queryKeys: ['k'] },
  ];
  const started = [];
  try {
    const common = { tmpDir: ctx.tmpDir, routes, cpus: ctx.options.serverCpus };
    const plain = await startScrapecache({ ...common, label: 'scrapecache-plain' });
    started.push(plain);
    const shared = await startScrapecache({ ...common, label: 'scrapecache-redis', redisUrl: redis.url });
    started.push(shared);
    const reference = ctx.peers.find((p) => p.name === 'reference');
    const peers = [...(reference ? [reference] : []), plain, shared];

    const hits = await measurePeers(peers, {
      path: ctx.fixture.path(profile.fixture),
      gzip: profile.gzip,
      expected: ctx.expected.get(profile.fixture),
      connections: ctx.options.connections,
      durationSec: ctx.options.duration,
      warmupSec: ctx.options.warmup,
      rounds: ctx.options.rounds,
      loadTool: ctx.loadTool,
      options: ctx.options,
    });
    for (const point of hits) logPoint(`redis-hit ${profile.id}`, point);

    // Misses one at a time, the two proxies in turn, so that a disturbance hits both alike.
    const count = ctx.options.quick ? 200 : 2000;
    const headers = scrapeHeaders({ gzip: profile.gzip });
    const latencies = { [plain.name]: [], [shared.name]: [] };
    let failures = 0;
    for (let i = 0; i < count; i++) {
      for (const peer of [plain, shared]) {
        const t0 = performance.now();
        const response = await request(`${peer.baseUrl}/miss/metrics?k=${i}`, { headers });
        const elapsed = performance.now() - t0;
        if (response.status !== 200 || !/fwd=miss/.test(response.headers['cache-status'] ?? '')) failures++;
        else latencies[peer.name].push(elapsed);
      }
    }
    const misses = Object.entries(latencies).map(([peer, values]) => {
      const sorted = values.sort((a, b) => a - b);
      return { peer, count: sorted.length, p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted.at(-1) };
    });
    for (const m of misses) console.log(`  miss ${m.peer.padEnd(18)} p50 ${m.p50.toFixed(2)} ms  p90 ${m.p90.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  (${m.count} misses)`);
    if (failures) console.log(`  ${failures} misses were not a 200 fwd=miss`);
    return { profile, hits, misses, failures, redisVersion: redis.version };
  } finally {
    for (const peer of started) await peer.stop();
    await redis.stop();
  }
}
