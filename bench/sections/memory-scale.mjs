// Memory formula (issue 21): does RSS follow what docs/performance.md says from 1 000 to 100 000
// small entries and for large ones? Per size a fresh proxy (one process, memory level only) with
// one route keyed by `query_keys: [target]` is filled, left to settle, and its RSS set against
// the formula applied to its own scrapecache_cache_bytes and scrapecache_cache_entries. Then,
// through the inspector the bench (only the bench) starts it with, a full GC is forced and the
// heap read, to say where the memory went. Last, a replica that fills through Redis against a
// proxy without Redis at the same entry count.
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'undici';
import { startScrapecache, readCacheGauges } from '../peers/scrapecache.mjs';
import { startRedisServer } from '../peers/redis.mjs';
import { request, scrapeHeaders, forEachConcurrent } from '../lib/http-client.mjs';
import { rssBytes } from '../lib/proc-stats.mjs';

const MiB = 2 ** 20;
const FILL_CONCURRENCY = 16;

/**
 * The formula of docs/performance.md ("Memory"), for one process: RSS = IDLE + A x
 * scrapecache_cache_bytes + B x scrapecache_cache_entries. Keep the two in step.
 */
export const FORMULA = {
  idleBytes: 85 * MiB,
  perCacheByte: 1.25,
  text: '85 MiB + 1.25 x cache bytes',
  predict: (cacheBytes) => FORMULA.idleBytes + FORMULA.perCacheByte * cacheBytes,
};

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket (undici's). */
export async function openInspector(handle) {
  const deadline = Date.now() + 10_000;
  let url;
  while (!(url = /ws:\/\/\S+/.exec(handle.stderr)?.[0])) {
    if (Date.now() > deadline) throw new Error(`no inspector URL on stderr: ${handle.stderr.slice(-300)}`);
    await sleep(50);
  }
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', () => reject(new Error(`inspector ${url}: connection failed`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map();
  ws.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data));
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(message.error.message));
    else waiter.resolve(message.result);
  });
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, params }));
  });
  return {
    send,
    /** process.memoryUsage() of the proxy, and v8's heap spaces. */
    async memoryUsage() {
      const { result } = await send('Runtime.evaluate', {
        expression: "({ ...process.memoryUsage(), spaces: Object.fromEntries(require('node:v8').getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size])), committed: Object.fromEntries(require('node:v8').getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size])), mallocedMemory: require('node:v8').getHeapStatistics().malloced_memory })",
        returnByValue: true,
        includeCommandLineAPI: true,
      });
      return result.value;
    },
    async collectGarbage() {
      await send('HeapProfiler.collectGarbage');
      await send('HeapProfiler.collectGarbage');
    },
    close: () => ws.close(),
  };
}

/** Waits until RSS moves by less than 1 MiB over 2 s (at most 20 s); the last reading. */
async function settledRss(pid) {
  let last = rssBytes(pid);
  for (let waited = 0; waited < 20_000; waited += 2000) {
    await sleep(2000);
    const now = rssBytes(pid);
    if (Math.abs(now - last) < MiB) return now;
    last = now;
  }
  return last;
}

async function fill(proxy, path, count) {
  const headers = scrapeHeaders({ gzip: true });
  const started = performance.now();
  const { failures, firstError } = await forEachConcurrent(0, count, FILL_CONCURRENCY, async (i) => {
    const response = await request(`${proxy.baseUrl}${path}?target=${i}`, { headers });
    if (response.status !== 200) throw new Error(`target=${i}: status ${response.status} ${response.body.toString().slice(0, 120)}`);
  });
  if (failures) throw new Error(`${failures} of ${count} fills failed: ${firstError?.message}`);
  return (performance.now() - started) / 1000;
}

/** One fresh proxy filled with `count` entries of `fixture`; RSS settled and after a full GC. */
async function measureOne(ctx, { label, fixture, count, redisUrl, redisKeyPrefix, workers }) {
  const path = '/ms/metrics';
  const proxy = await startScrapecache({
    tmpDir: ctx.tmpDir,
    label,
    routes: [{ name: 'ms', path, upstream: ctx.fixture.upstream(fixture), queryKeys: ['target'] }],
    cpus: ctx.options.serverCpus,
    redisUrl,
    redisKeyPrefix,
    workers,
    // The inspector is not started (its thread and server would count in RSS): SIGUSR1 starts
    // it once RSS is read, on a free port.
    // (Not with workers: cluster gives each worker the next inspector port, which port 0 has not.)
    extraNodeArgs: workers ? [] : ['--inspect-port=127.0.0.1:0'],
  });
  if (!proxy) throw new Error('scrapecache not built');
  let inspector;
  try {
    const idleRss = await settledRss(proxy.pid);
    const fillSec = await fill(proxy, path, count);
    const rss = await settledRss(proxy.pid);
    const gauges = await readCacheGauges(proxy.adminUrl);
    let before;
    let after;
    let rssAfterGc;
    if (!workers) {
      process.kill(proxy.pid, 'SIGUSR1');
      inspector = await openInspector(proxy.handle);
      before = await inspector.memoryUsage();
      await inspector.collectGarbage();
      await sleep(1000);
      after = await inspector.memoryUsage();
      rssAfterGc = rssBytes(proxy.pid);
    }
    // With workers every process holds its own copy (SPEC: the primary too): N + 1 times.
    const processes = workers ? workers + 1 : 1;
    const predicted = processes * FORMULA.predict(gauges.bytes);
    const row = { label, workers: workers ?? 1, fixture, count, bodyBytes: ctx.fixture.sizes[fixture]?.bytes ?? ctx.fixture.sizes[fixture], idleRss, fillSec, rss, rssAfterGc, cacheBytes: gauges.bytes, entries: gauges.entries, predicted, ratio: rss / predicted, before, after };
    const mib = (n) => (n / MiB).toFixed(1);
    if (!after) {
      console.log(`  ${label.padEnd(22)} ${String(count).padStart(6)} x ${row.bodyBytes} B: fill ${fillSec.toFixed(1)} s, idle ${mib(idleRss)} MiB, rss of the tree ${mib(rss)} MiB, predicted ${mib(predicted)} MiB, ratio ${row.ratio.toFixed(2)}; cache ${mib(gauges.bytes)} MiB / ${gauges.entries} entries`);
      return row;
    }
    console.log(`  ${label.padEnd(22)} ${String(count).padStart(6)} x ${row.bodyBytes} B: fill ${fillSec.toFixed(1)} s, idle ${mib(idleRss)} MiB, rss ${mib(rss)} MiB, predicted ${mib(predicted)} MiB, ratio ${row.ratio.toFixed(2)}; ` +
      `cache ${mib(gauges.bytes)} MiB / ${gauges.entries} entries; after GC: rss ${mib(rssAfterGc)}, heap used ${mib(after.heapUsed)} (was ${mib(before.heapUsed)}), heap total ${mib(after.heapTotal)} (was ${mib(before.heapTotal)}; old space committed ${mib(before.committed.old_space)} -> ${mib(after.committed.old_space)}), array buffers before GC ${mib(before.arrayBuffers)}, external ${mib(after.external)}, array buffers ${mib(after.arrayBuffers)}; spaces ${Object.entries(after.spaces).filter(([, v]) => v > MiB).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}`);
    return row;
  } finally {
    inspector?.close();
    await proxy.stop();
  }
}

export async function runMemoryScale(ctx) {
  const small = ctx.plan.memoryScale.small;
  const large = ctx.plan.memoryScale.large;
  const rows = [];
  for (const count of ctx.plan.memoryScale.counts) rows.push(await measureOne(ctx, { label: `small-${count}`, fixture: small, count }));
  rows.push(await measureOne(ctx, { label: `large-${large.count}`, fixture: large.fixture, count: large.count }));

  // Redis: the replica whose scrapes fill (it fetches, writes the record to Redis, publishes the
  // notice) beside a second replica on the same prefix, against the plain proxy's row above.
  const redis = [];
  const redisServer = await startRedisServer({ tmpDir: ctx.tmpDir, cpus: ctx.options.loadCpus });
  if (!redisServer) {
    ctx.skip('memory-scale: redis-server not found: no Redis rows');
  } else {
    try {
      for (const count of ctx.plan.memoryScale.redisCounts) {
        const prefix = `ms-${count}:`;
        const path = '/ms/metrics';
        // The other replica: subscribed on the same prefix, it receives every notice.
        const other = await startScrapecache({
          tmpDir: ctx.tmpDir,
          label: `redis-other-${count}`,
          routes: [{ name: 'ms', path, upstream: ctx.fixture.upstream(small), queryKeys: ['target'] }],
          redisUrl: redisServer.url,
          redisKeyPrefix: prefix,
        });
        try {
          const row = await measureOne(ctx, { label: `redis-filler-${count}`, fixture: small, count, redisUrl: redisServer.url, redisKeyPrefix: prefix });
          row.otherRss = rssBytes(other.pid);
          row.plain = rows.find((r) => r.fixture === small && r.count === count);
          redis.push(row);
          console.log(`  redis: the filling replica ${(row.rss / MiB).toFixed(1)} MiB against ${row.plain ? `${(row.plain.rss / MiB).toFixed(1)} MiB without Redis (${(row.rss / row.plain.rss).toFixed(2)}x)` : 'no plain row'}; the other replica ${(row.otherRss / MiB).toFixed(1)} MiB`);
        } finally {
          await other.stop();
        }
      }
    } finally {
      await redisServer.stop();
    }
  }
  // workers: 2, the tree's RSS (primary and workers) against three times the formula.
  const workerRows = [];
  for (const count of ctx.plan.memoryScale.workerCounts) {
    workerRows.push(await measureOne(ctx, { label: `workers-2-${count}`, fixture: small, count, workers: 2 }));
  }
  return { rows, redis, workerRows, formula: FORMULA.text };
}

/** The section in the results file. */
export function memoryScaleSection(result) {
  const mib = (n) => (n === null || n === undefined ? '?' : `${(n / MiB).toFixed(1)}`);
  // Sizes in MiB.
  const out = ['### Memory formula, 1 000 to 100 000 entries', '',
    `Sizes in MiB. A fresh proxy per row (one process, memory level only, \`--max-semi-space-size=4\`), one route with \`query_keys: [target]\`, identity bodies; filled 16 at a time by scrapes with Prometheus's headers, then left until RSS moves by less than 1 MiB in 2 s. ` +
    `"predicted" is the formula of docs/performance.md, ${result.formula}, from the proxy's own scrapecache_cache_bytes and scrapecache_cache_entries; "ratio" is measured over predicted (the bound: 0.85 to 1.15). ` +
    '"after GC": the same process after a full garbage collection forced through the inspector, which the bench starts (SIGUSR1, `--inspect-port=127.0.0.1:0`) once RSS is read.', '',
    '| entries x body | cache bytes | RSS idle | RSS measured | RSS predicted | ratio | RSS after GC | heap used after GC | array buffers | fill |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const r of result.rows) {
    out.push(`| ${r.count} x ${r.bodyBytes} B | ${mib(r.cacheBytes)} | ${mib(r.idleRss)} | ${mib(r.rss)} | ${mib(r.predicted)} | ${r.ratio.toFixed(2)} | ${mib(r.rssAfterGc)} | ${mib(r.after.heapUsed)} | ${mib(r.after.arrayBuffers)} | ${r.fillSec.toFixed(1)} s |`);
  }
  out.push('');
  if (result.redis.length) {
    out.push('The replica that fills through Redis (Debian\'s redis-server on loopback, a second replica subscribed on the same prefix) against the proxy without Redis above, same entries:', '',
      '| entries | RSS without Redis | RSS of the filling replica | ratio | its RSS after GC | its heap used after GC | the other replica |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of result.redis) {
      out.push(`| ${r.count} | ${r.plain ? mib(r.plain.rss) : '?'} | ${mib(r.rss)} | ${r.plain ? (r.rss / r.plain.rss).toFixed(2) : '?'} | ${mib(r.rssAfterGc)} | ${mib(r.after.heapUsed)} | ${mib(r.otherRss)} |`);
    }
    out.push('');
  }
  if (result.workerRows?.length) {
    out.push('`workers: 2`: RSS of the whole tree (the primary and both workers, each holding its own copy) against three times the formula:', '',
      '| entries x body | cache bytes (one copy) | RSS of the tree | predicted (3 x formula) | ratio |',
      '| ---: | ---: | ---: | ---: | ---: |');
    for (const r of result.workerRows) out.push(`| ${r.count} x ${r.bodyBytes} B | ${mib(r.cacheBytes)} | ${mib(r.rss)} | ${mib(r.predicted)} | ${r.ratio.toFixed(2)} |`);
    out.push('');
  }
  return out;
}
