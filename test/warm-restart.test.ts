/**
 * SPEC 2.1 with real processes: the built CLI with a disk level, stopped with SIGTERM or killed
 * with -9, started again: its first scrapes are hits, Age counts from the original fetch, and
 * the exporter is not asked again.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, SCRAPE_HEADERS, sleep } from './helpers/proxy.js';

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
  writeFileSync(
    file,
    `listen: 127.0.0.1:0
workers: ${workers}
admin:
  listen: 127.0.0.1:0
cache:
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
`,
  );
  return { file, dir };
}

const PATHS = ['/node/metrics', '/probe?target=a&module=http_2xx', '/probe?target=b&module=http_2xx'];

/** Fills every path once; returns the bodies and when they were fetched. */
async function fill(scrapeUrl: string): Promise<{ bodies: string[]; fetchedAt: number }> {
  const fetchedAt = Date.now();
  const bodies = [];
  for (const path of PATHS) {
    const res = await get(`${scrapeUrl}${path}`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-status'], 'scrapecache; fwd=miss; stored');
    bodies.push(res.body.toString('base64'));
  }
  return { bodies, fetchedAt };
}

async function assertWarm(scrapeUrl: string, filled: { bodies: string[]; fetchedAt: number }, fetchesBefore: number): Promise<void> {
  for (const [i, path] of PATHS.entries()) {
    const res = await get(`${scrapeUrl}${path}`, SCRAPE_HEADERS);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['cache-status']), /^scrapecache; hit; ttl=\d+$/, path);
    // Age counts from the original fetch, not from the load.
    const age = Number(res.headers['age']);
    const since = Math.floor((Date.now() - filled.fetchedAt) / 1000);
    assert.ok(age >= 1 && age <= since + 1, `${path}: Age ${age}, ${since} s since the fetch`);
    assert.equal(res.body.toString('base64'), filled.bodies[i], `${path}: the body stored before the restart`);
  }
  assert.equal(exporter.count, fetchesBefore, 'the exporter was not asked again');
}

test('after SIGTERM and a start, the first scrapes are hits from disk with Age from the original fetch, and the exporter is not asked', async () => {
  const { file } = setUp(1);
  const first = await start(file);
  const filled = await fill(first.scrapeUrl);
  const fetches = exporter.count;
  // The CLI is a child process on the system clock: a real second passes, so Age is at least 1.
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
  // The CLI is a child process on the system clock: a real second passes, so Age is at least 1.
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
