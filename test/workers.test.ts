/** `workers: N`: hits from every worker's memory, one upstream fetch per key for the whole group. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { startCli } from './helpers/cli-process.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, sleep } from './helpers/proxy.js';
import { headersOf, SCRAPERS } from './helpers/scrapers.js';

let exporter: FakeExporter;
/** The upstream of route `fleet`, scraped by every scraper in test/helpers/scrapers.ts. */
let fleetExporter: FakeExporter;
let child: ChildProcess;
let file: string;
let scrapeUrl: string;
let adminUrl: string;
let exited: Promise<number | null>;
/** Processes that have logged: the primary and each worker. */
const pids = new Set<number>();

const config = (extra = '') => `listen: 127.0.0.1:0
workers: 2
admin:
  listen: 127.0.0.1:0
routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
    ttl: 1m
  - name: fleet
    path: /fleet/metrics
    upstream: ${fleetExporter.url}/metrics
    ttl: 1m
${extra}`;

before(async () => {
  exporter = await startFakeExporter();
  fleetExporter = await startFakeExporter();
  file = join(mkdtempSync(join(tmpdir(), 'scrapecache-workers-')), 'proxy.yaml');
  writeFileSync(file, config());
  ({ child, exited, scrapeUrl, adminUrl } = await startCli(file, { onEntry: (entry) => pids.add(entry.pid), timeoutMs: 10_000 }));
});

after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await exporter.close();
  await fleetExporter.close();
});

/** Scrapes on fresh connections, which the kernel spreads over the workers. */
const burst = (n: number) => Promise.all(Array.from({ length: n }, () => get(`${scrapeUrl}/node/metrics`, SCRAPE_HEADERS)));
/** Which answer of the fake exporter a (gzip) body is. */
const versionOf = (r: { body: Buffer }) => Number(/fake_version\{[^}]*\} (\d+)/.exec(gunzipSync(r.body).toString())?.[1]);

test('many scrapes spread over the workers cause one upstream fetch, then are hits', async () => {
  for (let i = 0; i < 50 && pids.size < 3; i++) await sleep(100);
  assert.equal(pids.size, 3, 'a primary and two workers logged');
  exporter.delayMs = 200;
  const cold = await burst(40);
  assert.equal(exporter.count, 1, 'one fetch for the whole group');
  assert.equal(new Set(cold.map((r) => r.body.toString('base64'))).size, 1);
  exporter.delayMs = 0;
  const warm = await burst(40);
  for (const res of warm) assert.match(String(res.headers['cache-status']), /^scrapecache; hit/);
  assert.equal(exporter.count, 1);
});

test('invalidation reaches every worker', async () => {
  const res = await post(`${adminUrl}/invalidate`, { route: 'node' });
  assert.deepEqual(JSON.parse(res.body.toString()), { invalidated: 1 });
  const after = await burst(40);
  assert.equal(exporter.count, 2, 'one new fetch after the invalidation');
  const fresh = after.filter((r) => /fake_version\{[^}]*\} 2/.test(gunzipSync(r.body).toString()));
  assert.equal(fresh.length, 40, 'no worker served the invalidated copy');
});

test('the admin /metrics adds up the workers', async () => {
  const text = (await get(`${adminUrl}/metrics`)).body.toString();
  const value = (cache: string) => Number(new RegExp(`^scrapecache_requests_total\\{route="node",cache="${cache}"\\} (\\d+)`, 'm').exec(text)?.[1]);
  assert.equal(value('hit') + value('miss') + value('collapsed'), 120);
  assert.match(text, /^scrapecache_upstream_requests_total\{route="node",code="200"\} 2$/m);
  assert.match(text, /^scrapecache_cache_entries\{route="node"\} 1$/m);
  // Reported once for the group, not summed over its processes.
  assert.equal(text.match(/^scrapecache_build_info\{.*\} (\d+)$/gm)?.length, 1);
  assert.match(text, /^scrapecache_build_info\{.*\} 1$/m);
  assert.match(text, /^scrapecache_cache_oldest_age_seconds\{route="node"\} [\d.]+$/m);
});

test("the scrape listener's /metrics is the group's, whichever worker answers", async () => {
  const answers = await Promise.all(Array.from({ length: 8 }, () => get(`${scrapeUrl}/metrics`)));
  for (const res of answers) {
    assert.equal(res.status, 200);
    const text = res.body.toString();
    const value = (cache: string) => Number(new RegExp(`^scrapecache_requests_total\\{route="node",cache="${cache}"\\} (\\d+)`, 'm').exec(text)?.[1]);
    assert.equal(value('hit') + value('miss') + value('collapsed'), 120);
    assert.equal(text.match(/^scrapecache_build_info\{.*\} (\d+)$/gm)?.length, 1);
  }
});

test('GET /cache counts the hits the workers served', async () => {
  const before = JSON.parse((await get(`${adminUrl}/cache`)).body.toString()) as Array<{ route: string; hits: number }>;
  await burst(10);
  const after = JSON.parse((await get(`${adminUrl}/cache`)).body.toString()) as Array<{ route: string; hits: number }>;
  const hits = (list: typeof before) => list.filter((e) => e.route === 'node').reduce((n, e) => n + e.hits, 0);
  assert.equal(hits(after) - hits(before), 10);
});

test('the status page on the primary shows the scrapes and hits the workers served, as /metrics and /cache count them', async () => {
  await burst(5);
  const metrics = (await get(`${adminUrl}/metrics`)).body.toString();
  const scrapes = [...metrics.matchAll(/^scrapecache_requests_total\{route="node",cache="\w+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  const cached = JSON.parse((await get(`${adminUrl}/cache`)).body.toString()) as Array<{ route: string; hits: number }>;
  const page = (await get(`${adminUrl}/`)).body.toString();
  assert.match(page, new RegExp(`data-live="route/node/total" class="big">${scrapes}<`));
  assert.ok(scrapes > 100);
  const hits = cached.find((e) => e.route === 'node')!.hits;
  assert.ok(hits > 0);
  assert.match(page, new RegExp(`data-live="entry/node /node/metrics\\? openmetrics;1\\.0\\.0/hits">${hits}<`));
  assert.match(page, /data-live="route\/node\/fetch"><span class="badge good">HTTP 200<\/span>/, 'the primary made the fetches');
  // The landing page comes from the workers.
  const landing = await get(`${scrapeUrl}/`);
  assert.equal(landing.status, 200);
  assert.match(landing.body.toString(), /<a href="\/node\/metrics">/);
});

test('a soft invalidation reaches every worker: all serve the old copy while the primary refetches once, then the new copy', async () => {
  const [old] = await burst(1);
  const fetched = exporter.count;
  const release = exporter.hold();
  try {
    const res = await post(`${adminUrl}/invalidate`, { route: 'node', soft: true });
    assert.deepEqual(JSON.parse(res.body.toString()), { invalidated: 1, refetching: 1 });
    for (let i = 0; i < 100 && exporter.count === fetched; i++) await sleep(20);
    // The exporter is held: a scrape that waited for it would not answer until release.
    const during = await burst(30);
    for (const r of during) {
      assert.match(String(r.headers['cache-status']), /^scrapecache; hit; fwd=stale/);
      assert.equal(versionOf(r), versionOf(old!));
    }
    assert.equal(exporter.count, fetched + 1, 'one refetch for the whole group');
  } finally {
    release();
  }
  let after = await burst(20);
  for (let i = 0; i < 100 && !after.every((r) => /^scrapecache; hit; ttl=/.test(String(r.headers['cache-status']))); i++) {
    await sleep(50);
    after = await burst(20);
  }
  for (const r of after) assert.equal(versionOf(r), versionOf(old!) + 1, 'every worker serves the new copy');
  assert.equal(exporter.count, fetched + 1);
});

test('a reload reaches every worker', async () => {
  writeFileSync(file, config(`  - name: added\n    path: /added\n    upstream: ${exporter.url}/added\n`));
  assert.equal((await post(`${adminUrl}/-/reload`)).status, 200);
  await sleep(300);
  const results = await Promise.all(Array.from({ length: 20 }, () => get(`${scrapeUrl}/added`, SCRAPE_HEADERS)));
  assert.deepEqual(new Set(results.map((r) => r.status)), new Set([200]));
});

test('a worker that dies is replaced, and the new one answers from the group cache without a fetch', async () => {
  await burst(10);
  const fetched = exporter.count;
  const worker = [...pids].find((pid) => pid !== child.pid)!;
  const before = pids.size;
  process.kill(worker, 'SIGKILL');
  for (let i = 0; i < 100 && pids.size === before; i++) await sleep(100);
  assert.equal(pids.size, before + 1, 'a replacement worker logged');
  await sleep(200);
  const results = await burst(40);
  for (const res of results) assert.match(String(res.headers['cache-status']), /^scrapecache; hit/);
  assert.equal(exporter.count, fetched, 'the replacement did not make the primary fetch again');
});

test('with workers, requests that waited for a fill in flight say collapsed, not fwd=miss; stored', async () => {
  await post(`${adminUrl}/invalidate`, { route: 'node' });
  const fetched = exporter.count;
  exporter.delayMs = 300;
  const results = await burst(30);
  exporter.delayMs = 0;
  const statuses = results.map((r) => String(r.headers['cache-status']));
  const fills = exporter.count - fetched;
  const accepts = exporter.requests.slice(fetched).map((r) => r.headers.accept);
  assert.equal(fills, 1, `fetches: ${fills} ${JSON.stringify(accepts)}; the answers were:\n${statuses.join('\n')}`);
  assert.equal(statuses.filter((s) => s === 'scrapecache; fwd=miss; stored').length, 1, statuses.join('\n'));
  assert.equal(statuses.filter((s) => s === 'scrapecache; fwd=miss; stored; collapsed').length, 29, statuses.join('\n'));
});

/** A worker process of the group that is still running. */
function liveWorker(): number {
  return [...pids].find((pid) => {
    if (pid === child.pid) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  })!;
}

test('an invalidation answers once every worker has dropped its copy: a stopped worker holds the answer until it runs again', async () => {
  await burst(10);
  const held = exporter.version;
  const stopped = liveWorker();
  process.kill(stopped, 'SIGSTOP');
  let answered = false;
  try {
    const answer = post(`${adminUrl}/invalidate`, { route: 'node' }).then((res) => {
      answered = true;
      return res;
    });
    await sleep(500);
    assert.equal(answered, false, 'the answer waits for the stopped worker');
    process.kill(stopped, 'SIGCONT');
    assert.deepEqual(JSON.parse((await answer).body.toString()), { invalidated: 1 });
  } finally {
    process.kill(stopped, 'SIGCONT');
  }
  // Right after the answer, whichever worker a scrape reaches: none serves the dropped copy.
  for (const r of await burst(30)) assert.ok(versionOf(r) > held, String(r.headers['cache-status']));
});

test('a worker that does not confirm an invalidation in time makes its answer say so, and the status page too', async () => {
  await burst(5);
  const stopped = liveWorker();
  process.kill(stopped, 'SIGSTOP');
  let answer: { invalidated: number; reached?: string; reason?: string };
  try {
    answer = JSON.parse((await post(`${adminUrl}/invalidate`, { route: 'node' })).body.toString()) as typeof answer;
  } finally {
    process.kill(stopped, 'SIGCONT');
  }
  assert.equal(answer.invalidated, 1);
  assert.equal(answer.reached, 'unconfirmed');
  assert.match(answer.reason!, new RegExp(`worker ${stopped} did not confirm within 5 s`));
  assert.match((await get(`${adminUrl}/`)).body.toString(), /reached this replica, and the others unconfirmed: worker \d+ did not confirm/);
  // Running again, it applies the invalidation it missed: the next one is confirmed by all.
  assert.deepEqual(JSON.parse((await post(`${adminUrl}/invalidate`, { route: 'node' })).body.toString()), { invalidated: 0 });
});

test('after a worker is replaced, a fleet of scrapers with mixed Accept headers costs the group one fetch per key, as one process would', async () => {
  const scrape = (s: (typeof SCRAPERS)[number]) => get(`${scrapeUrl}/fleet/metrics`, headersOf(s));
  // The group learns what this upstream speaks (OpenMetrics and text, no protobuf, no escaping term).
  for (let round = 0; round < 3; round++) for (const s of SCRAPERS) assert.equal((await scrape(s)).status, 200, s.name);
  const before = pids.size;
  process.kill(liveWorker(), 'SIGKILL');
  for (let i = 0; i < 100 && pids.size === before; i++) await sleep(100);
  assert.equal(pids.size, before + 1, 'a replacement worker logged');
  await sleep(300);
  assert.deepEqual(JSON.parse((await post(`${adminUrl}/invalidate`, { route: 'fleet' })).body.toString()), { invalidated: 2 });
  const fetched = fleetExporter.count;
  fleetExporter.delayMs = 300;
  // Three connections per scraper at once, which the kernel spreads over the old and the new worker.
  const answers = await Promise.all(SCRAPERS.flatMap((s) => [scrape(s), scrape(s), scrape(s)]));
  fleetExporter.delayMs = 0;
  for (const res of answers) assert.equal(res.status, 200);
  const asked = fleetExporter.requests.slice(fetched).map((r) => r.headers.accept);
  const entries = (JSON.parse((await get(`${adminUrl}/cache`)).body.toString()) as Array<{ route: string; representation: string }>).filter((e) => e.route === 'fleet');
  assert.deepEqual(entries.map((e) => e.representation).sort(), ['openmetrics;1.0.0', 'text;0.0.4']);
  assert.equal(asked.length, 2, `one fetch per key; the group sent:\n${asked.join('\n')}`);
  const again = await Promise.all(SCRAPERS.flatMap((s) => [scrape(s), scrape(s)]));
  for (const res of again) assert.match(String(res.headers['cache-status']), /^scrapecache; hit/);
  assert.equal(fleetExporter.count, fetched + 2);
});

test('SIGTERM stops the primary and its workers with exit code 0', async () => {
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  await assert.rejects(get(`${scrapeUrl}/node/metrics`), /ECONNREFUSED/);
});
