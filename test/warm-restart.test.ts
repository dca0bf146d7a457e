/**
 * SPEC 2.1: an app with a disk level, stopped or killed, started again: its first scrapes are hits,
 * Age counts from the original fetch, and the exporter is not asked again. Real processes of the
 * built CLI (SIGTERM, kill -9 of a cluster), and apps in this process on a TestClock, where the
 * time between the fetch and the restart passes by moving the clock.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, SCRAPE_HEADERS, sleep, startProxy } from './helpers/proxy.js';
import { TestClock } from './helpers/test-clock.js';

const cli = new URL('../src/cli.js', import.meta.url).pathname;
let exporter: FakeExporter;

before(async () => {
  exporter = await startFakeExporter();
});
after(() => exporter.close());

interface Running {
  child: ChildProcess;
  scrapeUrl: string;
  logs: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

async function start(file: string): Promise<Running> {
  const child = spawn(process.execPath, [cli, '--config.file', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const scrapeUrl = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`no "scrapecache listening" line within 15 s; stderr: ${stderr}`)), 15_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n').slice(0, -1)) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry['msg'] === 'scrapecache listening') {
          clearTimeout(timer);
          resolve(`http://${String(entry['scrape'])}`);
        }
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before listening; stderr: ${stderr}`)));
  });
  return { child, scrapeUrl, logs, exited };
}

function setUp(workers: number): { file: string; dir: string } {
  const base = mkdtempSync(join(tmpdir(), 'scrapecache-warm-'));
  const dir = join(base, 'cache');
  const file = join(base, 'proxy.yaml');
  writeFileSync(file, `listen: 127.0.0.1:0\nworkers: ${workers}\nadmin:\n  listen: 127.0.0.1:0\n${cacheYaml(dir)}`);
  return { file, dir };
}

/** A disk level in `dir` and two routes to the fake exporter. */
function cacheYaml(dir: string): string {
  return `cache:
  disk:
    path: ${dir}
    max_bytes: 64MiB
routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
    ttl: 1h
  - name: probe
    path: /probe
    upstream: ${exporter.url}/probe
    ttl: 1h
`;
}

const PATHS = ['/node/metrics', '/probe?target=a&module=http_2xx', '/probe?target=b&module=http_2xx'];

/** Fills every path once; returns the bodies and when they were fetched (by `now`, the app's clock). */
async function fill(scrapeUrl: string, now: () => number = Date.now): Promise<{ bodies: string[]; fetchedAt: number }> {
  const fetchedAt = now();
  const bodies = [];
  for (const path of PATHS) {
    const res = await get(`${scrapeUrl}${path}`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-status'], 'scrapecache; fwd=miss; stored');
    bodies.push(res.body.toString('base64'));
  }
  return { bodies, fetchedAt };
}

async function assertWarm(
  scrapeUrl: string,
  filled: { bodies: string[]; fetchedAt: number },
  fetchesBefore: number,
  { now = Date.now, minAge = 1 }: { now?: () => number; minAge?: number } = {},
): Promise<void> {
  for (const [i, path] of PATHS.entries()) {
    const res = await get(`${scrapeUrl}${path}`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['cache-status']), /^scrapecache; hit; ttl=\d+$/, path);
    // Age counts from the original fetch, not from the load.
    const age = Number(res.headers['age']);
    const since = Math.floor((now() - filled.fetchedAt) / 1000);
    assert.ok(age >= minAge && age <= since + 1, `${path}: Age ${age}, ${since} s since the fetch`);
    assert.equal(res.body.toString('base64'), filled.bodies[i], `${path}: the body stored before the restart`);
  }
  assert.equal(exporter.count, fetchesBefore, 'the exporter was not asked again');
}

test('after SIGTERM and a start, the first scrapes are hits from disk with Age from the original fetch, and the exporter is not asked', async () => {
  const { file } = setUp(1);
  const first = await start(file);
  const filled = await fill(first.scrapeUrl);
  const fetches = exporter.count;
  // Kept: the CLI is a child process on the system clock, so only a real second makes Age at least 1
  // (the in-process test below shows Age counting from the fetch on a moved clock).
  await sleep(1100);
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0);

  const second = await start(file);
  try {
    const loaded = second.logs.find((l) => l['msg'] === 'cache loaded');
    assert.equal(loaded?.['loaded'], PATHS.length);
    await assertWarm(second.scrapeUrl, filled, fetches);
  } finally {
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  }
});

test('after kill -9 of a cluster, every entry on disk before the kill is a hit at the next start', async () => {
  const { file, dir } = setUp(2);
  const first = await start(file);
  const filled = await fill(first.scrapeUrl);
  const fetches = exporter.count;
  // Stored on disk means renamed into place; the answer goes out before the write ends.
  for (let i = 0; i < 100 && readdirSync(dir).filter((n) => n.endsWith('.rec')).length < PATHS.length; i++) await sleep(50);
  // Kept: the cluster's processes run on the system clock, so only a real second makes Age at least 1.
  await sleep(1100);
  first.child.kill('SIGKILL');
  await first.exited;

  const second = await start(file);
  try {
    await assertWarm(second.scrapeUrl, filled, fetches);
  } finally {
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  }
});

test('an app stopped and a new one started on the same disk directory 90 s of its clock later: hits with Age 90 from the original fetch', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'scrapecache-warm-')), 'cache');
  const clock = new TestClock();
  const first = await startProxy(cacheYaml(dir), { clock });
  const filled = await fill(first.url, clock.now);
  const fetches = exporter.count;
  await first.close();
  clock.advance(90_000);

  const second = await startProxy(cacheYaml(dir), { clock });
  try {
    const loaded = second.logs.find((l) => l['msg'] === 'cache loaded');
    assert.equal(loaded?.['loaded'], PATHS.length);
    await assertWarm(second.url, filled, fetches, { now: clock.now, minAge: 90 });
  } finally {
    await second.close();
  }
});
