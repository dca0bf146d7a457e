// Scale (issue 21): one multi-target route (`query_keys: [target]`, 2 KiB bodies) filled with
// 1 000, 10 000 and 50 000 keys (or the sizes of --scale-sizes), a fresh proxy with the disk
// level per size. Per size: fill time, RSS, CPU per hit and hit p99 (scrapes spread over every
// key); the same hits while the status page is fetched back to back; the same hits with and
// without a real browser tab showing the status page (which refreshes itself every 5 s), rounds
// taken in turn; what one status page costs the proxy (CPU and the longest stall of its event
// loop, read by a bench-only probe loaded into the proxy), what the tab asks for; GET /cache's
// first page, GET /metrics, one-key invalidation, restart to first hit from the disk level, and
// invalidating the whole route.
//
// The browser stands for a user's browser, which runs on the operator's machine, not on the
// proxy's: Chromium runs under SCHED_IDLE (`chrt --idle 0`; `nice -n 19` where chrt cannot) and,
// when the run is pinned, on the load generator's CPU, so that it takes no CPU the proxy could use.
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startScrapecache, readCacheGauges } from '../peers/scrapecache.mjs';
import { request, scrapeHeaders, forEachConcurrent } from '../lib/http-client.mjs';
import { rssBytes, cpuSeconds } from '../lib/proc-stats.mjs';
import { startChild, waitForExit, tail } from '../lib/children.mjs';

const FILL_CONCURRENCY = 16;
const CHROMIUM = '/usr/bin/chromium';
const LOAD_CONNECTIONS = 10;
const WRK_BASE = new URL('../wrk-scrape.lua', import.meta.url).pathname;
const WRK_SCALE = new URL('../wrk-scale.lua', import.meta.url).pathname;
const PROBE = pathToFileURL(new URL('../lib/loop-probe.mjs', import.meta.url).pathname).href;
/** Status pages fetched one after the other to find the CPU one costs. */
const PAGE_LOADS = 40;
/** The status page's own refresh period (src/pages/browser/status-page.ts). */
const REFRESH_SEC = 5;

async function timed(fn) {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * The proxy's event loop and CPU as bench/lib/loop-probe.mjs sees them: `read()` returns what
 * happened since the previous read (longest loop delay, CPU microseconds) and starts afresh.
 */
function loopProbe(pid, file) {
  let seq = 0;
  return {
    async read() {
      process.kill(pid, 'SIGUSR2');
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        try {
          const snapshot = JSON.parse(readFileSync(file, 'utf8'));
          if (snapshot.seq > seq) {
            seq = snapshot.seq;
            return snapshot;
          }
        } catch { /* not written yet */ }
        await sleep(10);
      }
      throw new Error('the loop probe did not answer within 30 s');
    },
  };
}

/** wrk over every key for `seconds`; hit p99, the proxy's CPU per 10 000 hits, its longest loop stall. */
async function hitLoad(ctx, proxy, path, keys, seconds) {
  const cpuBefore = cpuSeconds(proxy.pid);
  await proxy.probe.read();
  const handle = startChild('wrk-scale', ctx.loadTool.binary, ['-t1', `-c${LOAD_CONNECTIONS}`, `-d${seconds}s`, '--timeout', '10s', '-s', WRK_SCALE, proxy.baseUrl], {
    cpus: ctx.options.loadCpus,
    env: { BENCH_GZIP: '1', BENCH_WRK_BASE: WRK_BASE, BENCH_PATH: path, BENCH_KEYS: String(keys) },
  });
  const code = await waitForExit(handle);
  const loop = await proxy.probe.read();
  const cpu = cpuSeconds(proxy.pid) - cpuBefore;
  const line = handle.stdout.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code})\n${tail(handle)}`);
  const r = JSON.parse(line.slice('BENCH_JSON '.length));
  const errors = r.connect_errors + r.read_errors + r.write_errors + r.status_errors + r.timeouts;
  return { rps: r.requests / (r.duration_us / 1e6), p99: r.p99_us / 1000, errors, cpuPer10k: (cpu / r.requests) * 10_000, loopMaxMs: loop.maxMs, gcMaxMs: loop.gc.maxMs, majorGcs: loop.gc.major };
}

/** Fetches the status page back to back until `stop()`; its sizes and times. */
async function pageLoop(adminUrl, stop) {
  const times = [];
  let bytes = 0;
  while (!stop()) {
    const { ms, value } = await timed(() => request(`${adminUrl}/`, { timeoutMs: 60_000 }));
    times.push(ms);
    bytes = value.body.length;
    // A browser's tab refreshes itself; this one asks again at once, a harsher reader.
    await sleep(50);
  }
  return { fetches: times.length, medianMs: median(times), bytes };
}

/**
 * What `path` costs the proxy, no scrapes meanwhile: `PAGE_LOADS` requests one after the other;
 * CPU per request (less what the idle proxy uses in the same time), median time to the last
 * byte, the longest stall of the event loop, the body size.
 */
async function serverCost(proxy, path, headers = {}) {
  await proxy.probe.read();
  await sleep(500);
  const idle = await proxy.probe.read();
  const idleUsPerMs = idle.cpuUs / 500;
  const times = [];
  let bytes = 0;
  const started = performance.now();
  for (let i = 0; i < PAGE_LOADS; i++) {
    const { ms, value } = await timed(() => request(`${proxy.adminUrl}${path}`, { headers, timeoutMs: 60_000 }));
    if (value.status !== 200) throw new Error(`GET ${path}: status ${value.status}`);
    times.push(ms);
    bytes = value.body.length;
  }
  const elapsed = performance.now() - started;
  const used = await proxy.probe.read();
  return { cpuMs: Math.max(0, used.cpuUs - idleUsPerMs * elapsed) / 1000 / PAGE_LOADS, medianMs: median(times), loopMaxMs: used.maxMs, bytes };
}

/** How Chromium is kept off the proxy's CPU: SCHED_IDLE where chrt can set it, else nice 19; pinned with the load generator when the run pins. */
function browserPriority(ctx) {
  let prefix;
  let words;
  try {
    execFileSync('chrt', ['--idle', '0', 'true'], { stdio: 'ignore' });
    prefix = ['chrt', '--idle', '0'];
    words = 'SCHED_IDLE (`chrt --idle 0`)';
  } catch {
    prefix = ['nice', '-n', '19'];
    words = 'nice 19 (`nice -n 19`; `chrt --idle 0` failed here)';
  }
  if (ctx.options.loadCpus !== undefined) {
    prefix.push('taskset', '-c', ctx.options.loadCpus);
    words += `, pinned to CPU ${ctx.options.loadCpus} with the load generator (\`taskset -c ${ctx.options.loadCpus}\`; the proxy has CPU ${ctx.options.serverCpus})`;
  } else words += ', not pinned';
  return { prefix, words };
}

/** Debian's chromium through playwright-core (a devDependency), deprioritised, or null where either is missing. */
async function openBrowser(ctx) {
  if (!existsSync(CHROMIUM)) return null;
  const { prefix, words } = browserPriority(ctx);
  // playwright-core starts the executable it is given; this one execs chromium under chrt/taskset,
  // whose settings every process Chromium forks (renderer, GPU, utility) inherits.
  const wrapper = join(ctx.tmpDir, 'chromium-deprioritised.sh');
  const quote = (s) => `'${s.replace(/'/g, "'\\''")}'`;
  writeFileSync(wrapper, `#!/bin/sh\nexec ${[...prefix, CHROMIUM].map(quote).join(' ')} "$@"\n`);
  chmodSync(wrapper, 0o755);
  try {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    return { browser, words };
  } catch (error) {
    ctx.skip(`scale: chromium did not start: ${error.message.split('\n')[0]}`);
    return null;
  }
}

/** A tab on the status page; counts what it asks the admin listener for, by path. */
async function openTab(browser, adminUrl) {
  const page = await browser.newPage();
  const asked = new Map();
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.origin !== new URL(adminUrl).origin) return;
    asked.set(url.pathname, (asked.get(url.pathname) ?? 0) + 1);
  });
  await page.goto(`${adminUrl}/`, { waitUntil: 'load', timeout: 120_000 });
  return { page, asked };
}

/**
 * Hit p99 with and without a browser tab on the status page, `rounds` rounds taken in turn (the
 * tab is opened before its window and closed after it); medians over the rounds. Also what the
 * tab asked for while it was open, and what opening it cost the proxy.
 */
async function hitsWithAndWithoutTab(ctx, proxy, path, keys, browser) {
  // What the idle proxy uses per ms (the probe's own timer, housekeeping): left out of opening the tab.
  await proxy.probe.read();
  await sleep(500);
  const idleUsPerMs = (await proxy.probe.read()).cpuUs / 500;
  const alone = [];
  const withTab = [];
  const asked = new Map();
  let refreshes = 0;
  let openCpuMs;
  for (let round = 0; round < ctx.plan.scaleTabRounds; round++) {
    alone.push(await hitLoad(ctx, proxy, path, keys, ctx.plan.scaleTabSec));
    await proxy.probe.read();
    const opening = performance.now();
    const tab = await openTab(browser, proxy.adminUrl);
    const opened = await proxy.probe.read();
    openCpuMs ??= Math.max(0, opened.cpuUs - idleUsPerMs * (performance.now() - opening)) / 1000;
    const pagesAtOpen = tab.asked.get('/') ?? 0;
    try {
      withTab.push(await hitLoad(ctx, proxy, path, keys, ctx.plan.scaleTabSec));
    } finally {
      await tab.page.close();
    }
    refreshes += (tab.asked.get('/') ?? 0) - pagesAtOpen;
    for (const [p, n] of tab.asked) asked.set(p, (asked.get(p) ?? 0) + n);
  }
  const summary = (rows) => {
    const mid = (f) => median(rows.map(f));
    return {
      p99: mid((r) => r.p99),
      p99s: rows.map((r) => r.p99),
      loopMaxMs: mid((r) => r.loopMaxMs),
      gcMaxMs: Math.max(...rows.map((r) => r.gcMaxMs)),
      majorGcs: rows.reduce((n, r) => n + r.majorGcs, 0),
      rps: mid((r) => r.rps),
      cpuPer10k: mid((r) => r.cpuPer10k),
      errors: rows.reduce((n, r) => n + r.errors, 0),
    };
  };
  return {
    alone: summary(alone),
    withTab: summary(withTab),
    rounds: ctx.plan.scaleTabRounds,
    refreshes,
    asked: Object.fromEntries(asked),
    openCpuMs,
  };
}

async function runSize(ctx, keys, browser) {
  const path = '/scale/metrics';
  const diskPath = `${ctx.tmpDir}/scale-${keys}-disk`;
  const probeFile = join(ctx.tmpDir, `scale-${keys}-probe.json`);
  const options = {
    tmpDir: ctx.tmpDir,
    routes: [{ name: 'scale', path, upstream: ctx.fixture.upstream(ctx.plan.scaleFixture), queryKeys: ['target'] }],
    cpus: ctx.options.serverCpus,
    diskPath,
  };
  const headers = scrapeHeaders({ gzip: true });
  const row = { keys };
  let proxy = await startScrapecache({ ...options, label: `scrapecache-scale-${keys}`, extraNodeArgs: ['--import', PROBE], env: { BENCH_LOOP_FILE: probeFile } });
  proxy.probe = loopProbe(proxy.pid, probeFile);
  try {
    await sleep(1500);
    row.idleRss = rssBytes(proxy.pid);
    const fill = await timed(() => forEachConcurrent(0, keys, FILL_CONCURRENCY, async (i) => {
      const response = await request(`${proxy.baseUrl}${path}?target=${i}`, { headers });
      if (response.status !== 200) throw new Error(`target=${i}: status ${response.status}`);
    }));
    if (fill.value.failures) throw new Error(`${fill.value.failures} fills failed: ${fill.value.firstError?.message}`);
    row.fillSec = fill.ms / 1000;
    await sleep(1500);
    row.rss = rssBytes(proxy.pid);
    // What the cache counts (scrapecache_cache_bytes): RSS over idle + this is what the README's memory formula states.
    row.cacheBytes = (await readCacheGauges(proxy.adminUrl)).bytes;
    // Warm-up, then the hit path alone.
    await hitLoad(ctx, proxy, path, keys, 1);
    row.hits = await hitLoad(ctx, proxy, path, keys, ctx.plan.scaleLoadSec);
    // The same load while the status page is read again and again.
    let done = false;
    const pages = pageLoop(proxy.adminUrl, () => done);
    try {
      row.hitsWithPage = await hitLoad(ctx, proxy, path, keys, ctx.plan.scaleLoadSec);
    } finally {
      done = true;
    }
    row.page = await pages;
    if (browser) row.tab = await hitsWithAndWithoutTab(ctx, proxy, path, keys, browser);
    // What one status page costs the proxy: the first screen as a new tab asks for it, and as the
    // tab's refresh asks for it (the script's fetch: same page, its own headers).
    row.firstScreen = await serverCost(proxy, '/', { accept: 'text/html' });
    row.refreshCost = await serverCost(proxy, '/', { accept: 'text/html', 'x-scrapecache-page': '1' });
    row.metrics = await serverCost(proxy, '/metrics');
    const first = await timed(() => request(`${proxy.adminUrl}/cache?limit=100`));
    row.cacheMs = first.ms;
    row.cachePageBytes = first.value.body.length;
    row.metricsMs = row.metrics.medianMs;
    const invalidateTimes = [];
    await proxy.probe.read();
    for (let i = 0; i < 5; i++) {
      const target = Math.floor((keys * (i + 1)) / 7);
      const answer = await timed(() => request(`${proxy.adminUrl}/invalidate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path, query: `target=${target}` }),
      }));
      if (answer.value.status !== 200) throw new Error(`invalidate: ${answer.value.status} ${answer.value.body}`);
      invalidateTimes.push(answer.ms);
    }
    row.invalidateOneCpuMs = (await proxy.probe.read()).cpuUs / 1000 / 5;
    row.invalidateOneMs = median(invalidateTimes);
    // Disk writes end after the answers.
    await sleep(1000);
  } finally {
    await proxy.stop();
  }
  const started = performance.now();
  proxy = await startScrapecache({ ...options, label: `scrapecache-scale-${keys}-again` });
  try {
    const firstHit = await request(`${proxy.baseUrl}${path}?target=0`, { headers });
    row.restartMs = performance.now() - started;
    row.restartStatus = String(firstHit.headers['cache-status'] ?? '');
    const route = await timed(() => request(`${proxy.adminUrl}/invalidate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ route: 'scale' }),
    }));
    row.invalidateRouteMs = route.ms;
    row.invalidateRouteAnswer = route.value.body.toString();
  } finally {
    await proxy.stop();
  }
  const mib = (n) => (n / 2 ** 20).toFixed(1);
  const t = row.tab;
  console.log(`  ${String(keys).padStart(6)} keys: fill ${row.fillSec.toFixed(1)} s, rss ${mib(row.rss)} MiB (idle ${mib(row.idleRss)}, cache bytes ${mib(row.cacheBytes ?? 0)}), hit p99 ${row.hits.p99.toFixed(1)} ms (${row.hitsWithPage.p99.toFixed(1)} ms with the page, ${row.page.fetches} pages of ${Math.round(row.page.bytes / 1024)} KiB, ${Math.round(row.page.medianMs)} ms), ` +
    `cpu/10k ${row.hits.cpuPer10k.toFixed(2)} s, /cache ${Math.round(row.cacheMs)} ms ${Math.round(row.cachePageBytes / 1024)} KiB, /metrics ${row.metrics.medianMs.toFixed(1)} ms ${row.metrics.cpuMs.toFixed(2)} ms CPU, invalidate one ${row.invalidateOneMs.toFixed(1)} ms ${row.invalidateOneCpuMs.toFixed(2)} ms CPU, ` +
    `first screen ${row.firstScreen.cpuMs.toFixed(2)} ms CPU ${row.firstScreen.medianMs.toFixed(1)} ms, loop max ${row.firstScreen.loopMaxMs.toFixed(1)} ms; refresh ${row.refreshCost.cpuMs.toFixed(2)} ms CPU, ` +
    `${t ? `hit p99 ${t.alone.p99.toFixed(1)} ms without / ${t.withTab.p99.toFixed(1)} ms with a browser tab (rounds ${t.alone.p99s.map((v) => v.toFixed(1))} / ${t.withTab.p99s.map((v) => v.toFixed(1))}; loop max ${t.alone.loopMaxMs.toFixed(1)} / ${t.withTab.loopMaxMs.toFixed(1)} ms, GC max ${t.alone.gcMaxMs.toFixed(1)} (${t.alone.majorGcs} full) / ${t.withTab.gcMaxMs.toFixed(1)} (${t.withTab.majorGcs} full) ms, ${t.refreshes} refreshes, tab asked ${JSON.stringify(t.asked)}, opening it ${t.openCpuMs.toFixed(1)} ms CPU), ` : ''}restart ${Math.round(row.restartMs)} ms (${row.restartStatus}), invalidate route ${Math.round(row.invalidateRouteMs)} ms ${row.invalidateRouteAnswer}`);
  return row;
}

export async function runScale(ctx) {
  const rows = [];
  const opened = await openBrowser(ctx);
  if (!opened) ctx.skip('scale: no chromium with playwright-core: no "with a browser tab" columns');
  try {
    for (const keys of ctx.plan.scaleKeys) rows.push(await runSize(ctx, keys, opened?.browser));
  } finally {
    await opened?.browser.close();
  }
  return {
    rows,
    browser: opened?.words ?? null,
    tabSec: ctx.plan.scaleTabSec,
    rounds: ctx.plan.scaleTabRounds,
    command: ctx.options.argv.join(' '),
    bodyBytes: ctx.fixture.sizes[ctx.plan.scaleFixture]?.bytes ?? ctx.fixture.sizes[ctx.plan.scaleFixture],
  };
}

/** The section in RESULTS.md. */
export function scaleSection(scale) {
  const mib = (n) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  const ms = (n) => (n >= 100 ? `${Math.round(n)}` : n >= 10 ? n.toFixed(1) : n.toFixed(2));
  const x = (a, b) => (a !== undefined && b ? `×${(a / b).toFixed(2)}` : '–');
  const out = ['## Scale (issue 21)', '',
    `\`node bench/run.mjs ${scale.command}\`. One route with \`query_keys: [target]\`, identity bodies of ${scale.bodyBytes} B, the disk level on; a fresh proxy per size, loaded with a bench-only probe (\`--import bench/lib/loop-probe.mjs\`: the event loop's longest stall, CPU time, garbage-collection pauses). ` +
    `Hits: wrk, ${LOAD_CONNECTIONS} connections, spread over every key; "with page": the same while the admin status page is fetched back to back (50 ms apart). ` +
    (scale.browser
      ? `"Tab": ${scale.rounds} rounds taken in turn of ${scale.tabSec} s of hits without, then with, a headless Chromium tab showing the status page (it refreshes itself every ${REFRESH_SEC} s); medians over the rounds. Chromium runs at ${scale.browser}. `
      : 'No browser was found: no tab columns. ') +
    `Server costs: ${PAGE_LOADS} requests one after the other with no scrapes, CPU per request from the probe less the idle proxy's, median time to the last byte, the longest event-loop stall. ` +
    'Times in ms unless said; CPU/10k hits in seconds.', '',
    '| keys | fill | RSS (idle; cache bytes; RSS over idle + cache bytes) | CPU/10k hits | hit p99 | hit p99 with page (page size, time) | /cache first page | restart to first hit | invalidate the route |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const r of scale.rows) {
    const ratio = r.cacheBytes ? (r.rss / (r.idleRss + r.cacheBytes)).toFixed(2) : '?';
    out.push(`| ${r.keys} | ${r.fillSec.toFixed(1)} s | ${mib(r.rss)} (${mib(r.idleRss)}; ${r.cacheBytes ? mib(r.cacheBytes) : '?'}; ${ratio}) | ${r.hits.cpuPer10k.toFixed(2)} | ${ms(r.hits.p99)} | ${ms(r.hitsWithPage.p99)} (${Math.round(r.page.bytes / 1024)} KiB, ${ms(r.page.medianMs)}) | ${ms(r.cacheMs)} (${Math.round(r.cachePageBytes / 1024)} KiB) | ${ms(r.restartMs)} | ${ms(r.invalidateRouteMs)} |`);
  }
  out.push('', 'The issue\'s "Done when": hit p99 with a browser tab against without (goal: at most ×2), and what the status page, `/metrics` and one-key invalidation cost the proxy (goal: at most ×3 from the smallest size to the largest).', '',
    '| keys | hit p99 without tab (each round) | with tab (each round) | ratio of the medians | loop stall without / with tab; longest GC pause (full GCs) without / with | tab refreshes; requests the tab made | first screen: CPU, time, loop stall, size | refresh: CPU | opening the tab (page + assets): CPU | /metrics: CPU, time | invalidate one key: CPU, time |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of scale.rows) {
    const t = r.tab;
    const asked = t ? Object.entries(t.asked).map(([p, n]) => `${p} ×${n}`).join(', ') : '';
    const each = (s) => s.p99s.map(ms).join(', ');
    out.push(`| ${r.keys} | ${t ? `${ms(t.alone.p99)} (${each(t.alone)})` : '–'} | ${t ? `${ms(t.withTab.p99)} (${each(t.withTab)})` : '–'} | ${t ? x(t.withTab.p99, t.alone.p99) : '–'} | ${t ? `${ms(t.alone.loopMaxMs)} / ${ms(t.withTab.loopMaxMs)}; ${ms(t.alone.gcMaxMs)} (${t.alone.majorGcs}) / ${ms(t.withTab.gcMaxMs)} (${t.withTab.majorGcs})` : '–'} | ${t ? `${t.refreshes}; ${asked}` : '–'} | ${ms(r.firstScreen.cpuMs)}, ${ms(r.firstScreen.medianMs)}, ${ms(r.firstScreen.loopMaxMs)}, ${Math.round(r.firstScreen.bytes / 1024)} KiB | ${ms(r.refreshCost.cpuMs)} | ${t ? ms(t.openCpuMs) : '–'} | ${ms(r.metrics.cpuMs)}, ${ms(r.metrics.medianMs)} | ${ms(r.invalidateOneCpuMs)}, ${ms(r.invalidateOneMs)} |`);
  }
  if (scale.rows.length > 1) {
    const [a, b] = [scale.rows[0], scale.rows.at(-1)];
    out.push('', `Ratios ${b.keys} / ${a.keys} keys: first screen CPU ${x(b.firstScreen.cpuMs, a.firstScreen.cpuMs)}, time ${x(b.firstScreen.medianMs, a.firstScreen.medianMs)}; refresh CPU ${x(b.refreshCost.cpuMs, a.refreshCost.cpuMs)}; ` +
      `/metrics CPU ${x(b.metrics.cpuMs, a.metrics.cpuMs)}, time ${x(b.metrics.medianMs, a.metrics.medianMs)}; invalidate one key CPU ${x(b.invalidateOneCpuMs, a.invalidateOneCpuMs)}, time ${x(b.invalidateOneMs, a.invalidateOneMs)}.`);
  }
  out.push('');
  return out;
}
