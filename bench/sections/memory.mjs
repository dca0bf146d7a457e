// Memory of scrapecache against what it stores: RSS as distinct keys grow, and the
// 1 000 entries x 100 KB check. Each uses a fresh proxy with a route keyed by a query parameter.
import { setTimeout as sleep } from 'node:timers/promises';
import { startScrapecache, readCacheGauges } from '../peers/scrapecache.mjs';
import { request, scrapeHeaders, forEachConcurrent } from '../lib/http-client.mjs';
import { rssBytes, memoryOfTree } from '../lib/proc-stats.mjs';
import { startChild, stopChild, waitForLine } from '../lib/children.mjs';

const FILL_CONCURRENCY = 16;

async function fill(proxy, path, from, to) {
  const headers = scrapeHeaders({ gzip: true });
  const started = performance.now();
  const { failures, firstError } = await forEachConcurrent(from, to, FILL_CONCURRENCY, async (i) => {
    const response = await request(`${proxy.baseUrl}${path}?k=${i}`, { headers });
    if (response.status !== 200) throw new Error(`k=${i}: status ${response.status} ${response.body.toString().slice(0, 120)}`);
  });
  const seconds = (performance.now() - started) / 1000;
  return { failures, firstError: firstError?.message, rate: (to - from) / seconds };
}

async function settledRss(pid) {
  // Let the proxy finish what the fill left (timers, a GC) before reading.
  await sleep(1500);
  return rssBytes(pid);
}

export async function runKeySweep(ctx) {
  const path = '/keys/metrics';
  const proxy = await startScrapecache({
    tmpDir: ctx.tmpDir,
    label: 'scrapecache-keys',
    routes: [{ name: 'keys', path, upstream: ctx.fixture.upstream(ctx.plan.keyFixture), queryKeys: ['k'] }],
    workers: ctx.options.workers,
    cpus: ctx.options.serverCpus,
  });
  if (!proxy) return null;
  try {
    const idleRss = await settledRss(proxy.pid);
    const rows = [];
    let filled = 0;
    for (const keys of ctx.plan.keyCounts) {
      const result = await fill(proxy, path, filled, keys);
      filled = keys;
      const rss = await settledRss(proxy.pid);
      const gauges = await readCacheGauges(proxy.adminUrl);
      const row = { keys, rss, overIdle: rss - idleRss, perEntry: (rss - idleRss) / keys, fillRate: result.rate, failures: result.failures, firstError: result.firstError, ...gauges };
      console.log(`  keys ${String(keys).padStart(7)}  rss ${(rss / 2 ** 20).toFixed(1)} MiB  (+${(row.overIdle / 2 ** 20).toFixed(1)} MiB, ${Math.round(row.perEntry)} B/entry)  fills ${Math.round(result.rate)}/s${result.failures ? `  ${result.failures} failed: ${result.firstError}` : ''}`);
      rows.push(row);
    }
    const again = await request(`${proxy.baseUrl}${path}?k=0`, { headers: scrapeHeaders({ gzip: true }) });
    return { idleRss, rows, entryBytes: ctx.fixture.sizes[ctx.plan.keyFixture], firstKeyCacheStatus: again.headers['cache-status'] ?? '' };
  } finally {
    await proxy.stop();
  }
}

/** RSS of an idle node:http server that holds nothing: what the runtime alone costs. */
async function bareNodeRss(cpus) {
  const handle = startChild('bare-node', process.execPath, ['-e',
    "require('node:http').createServer((q, s) => s.end()).listen(0, '127.0.0.1', () => console.log('up'))"], { cpus });
  try {
    await waitForLine(handle, (l) => l === 'up', 10_000);
    return await settledRss(handle.pid);
  } finally {
    await stopChild(handle);
  }
}

export async function runBigEntries(ctx) {
  const path = '/big/metrics';
  const count = ctx.plan.bigEntries.count;
  const fixtureName = ctx.plan.bigEntries.fixture;
  const proxy = await startScrapecache({
    tmpDir: ctx.tmpDir,
    label: `scrapecache-big-w${ctx.options.serverWorkers ?? 1}`,
    routes: [{ name: 'big', path, upstream: ctx.fixture.upstream(fixtureName), queryKeys: ['k'] }],
    workers: ctx.options.workers,
    cpus: ctx.options.serverCpus,
  });
  if (!proxy) return null;
  try {
    const idleRss = await settledRss(proxy.pid);
    const result = await fill(proxy, path, 0, count);
    // A second pass of scrapes: all hits, and whatever a hit allocates is counted too.
    const hits = await fill(proxy, path, 0, count);
    const rss = await settledRss(proxy.pid);
    const tree = memoryOfTree(proxy.pid);
    const gauges = await readCacheGauges(proxy.adminUrl);
    const entryBytes = ctx.fixture.sizes[fixtureName].bytes;
    const storedBytes = entryBytes * count;
    const limit = 1.3 * storedBytes + 60 * 2 ** 20;
    console.log(`  ${count} x ${entryBytes} B: rss ${(rss / 2 ** 20).toFixed(1)} MiB for ${(storedBytes / 2 ** 20).toFixed(1)} MiB stored (idle ${(idleRss / 2 ** 20).toFixed(1)} MiB, limit ${(limit / 2 ** 20).toFixed(1)} MiB)`);
    const bareRss = await bareNodeRss(ctx.options.serverCpus);
    return { count, entryBytes, storedBytes, idleRss, bareRss, rss, processes: tree.processes, privateBytes: tree.private, limit, fillRate: result.rate, failures: result.failures + hits.failures, firstError: result.firstError ?? hits.firstError, ...gauges };
  } finally {
    await proxy.stop();
  }
}

/**
 * Restart to first hit with the disk level (issue 9): fill N keys, stop with SIGTERM, start
 * again on the same directory and time from the spawn to the first hit; then check that every
 * key is a hit and that the exporter was not asked again.
 */
export async function runRestart(ctx) {
  const path = '/restart/metrics';
  const count = ctx.plan.restartEntries;
  const diskPath = `${ctx.tmpDir}/restart-disk`;
  const options = {
    tmpDir: ctx.tmpDir,
    routes: [{ name: 'restart', path, upstream: ctx.fixture.upstream(ctx.plan.keyFixture), queryKeys: ['k'] }],
    workers: ctx.options.workers,
    cpus: ctx.options.serverCpus,
    diskPath,
  };
  const first = await startScrapecache({ ...options, label: 'scrapecache-restart-1' });
  if (!first) return null;
  let result;
  try {
    result = await fill(first, path, 0, count);
    // Writes end after the answers: give the last renames a moment before the stop.
    await sleep(1000);
  } finally {
    await first.stop();
  }
  const started = performance.now();
  const second = await startScrapecache({ ...options, label: 'scrapecache-restart-2' });
  try {
    const headers = scrapeHeaders({ gzip: true });
    const firstHit = await request(`${second.baseUrl}${path}?k=0`, { headers });
    const toFirstHitMs = performance.now() - started;
    let hits = 0;
    await forEachConcurrent(0, count, FILL_CONCURRENCY, async (i) => {
      const response = await request(`${second.baseUrl}${path}?k=${i}`, { headers });
      if (String(response.headers['cache-status'] ?? '').startsWith('scrapecache; hit')) hits++;
    });
    console.log(`  ${count} entries on disk: ${Math.round(toFirstHitMs)} ms from start to the first hit (${firstHit.headers['cache-status']}); ${hits}/${count} hits after the restart`);
    return { count, toFirstHitMs, firstCacheStatus: String(firstHit.headers['cache-status'] ?? ''), hits, failures: result.failures, firstError: result.firstError };
  } finally {
    await second.stop();
  }
}
