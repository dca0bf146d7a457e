/**
 * `workers: N` reload is atomic (issue 8, defect 2): the primary reads proxy.yaml once and hands
 * the same text to every worker, so an editor rewriting the file mid-reload cannot leave workers
 * serving from the old upstream while the primary reports success.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startCli } from './helpers/cli-process.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS } from './helpers/proxy.js';

let a: FakeExporter;
let b: FakeExporter;
let child: ChildProcess;
let file: string;
let scrapeUrl: string;
let adminUrl: string;
let exited: Promise<number | null>;

const config = (upstream: string) => `listen: 127.0.0.1:0
workers: 2
admin:
  listen: 127.0.0.1:0
routes:
  - name: node
    path: /node/metrics
    upstream: ${upstream}
    ttl: 10m
`;

before(async () => {
  a = await startFakeExporter();
  b = await startFakeExporter();
  file = join(mkdtempSync(join(tmpdir(), 'scrapecache-workers-reload-')), 'proxy.yaml');
  writeFileSync(file, config(`${a.url}/from-a`));
  ({ child, exited, scrapeUrl, adminUrl } = await startCli(file));
});

after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await a.close();
  await b.close();
});

/** Scrapes on fresh connections, which the kernel spreads over the workers; the body names its upstream path. */
const burst = async (n: number) =>
  (await Promise.all(Array.from({ length: n }, () => get(`${scrapeUrl}/node/metrics`, SCRAPE_HEADERS)))).map((r) => {
    assert.equal(r.status, 200);
    return /path="([^"]*)"/.exec(gunzipSync(r.body).toString())![1];
  });

test('a reload with workers applies the text the primary read: a file rewritten right after the read changes nothing', async () => {
  assert.deepEqual(new Set(await burst(30)), new Set(['/from-a']));
  // The file becomes a FIFO: the first read gets the new config, every later read garbage,
  // which is what an editor truncating and rewriting the file looks like to a late reader.
  unlinkSync(file);
  execFileSync('mkfifo', [file]);
  let stopped = false;
  const writer = (async () => {
    await writeFile(file, config(`${b.url}/from-b`));
    // Let the first reader see the end of its text before anyone else can open the FIFO
    // (a late reader blocks until then, then gets garbage).
    await new Promise((r) => setTimeout(r, 500));
    while (!stopped) await writeFile(file, 'routes: [ this is not yaml\n');
  })();
  try {
    const res = await post(`${adminUrl}/-/reload`);
    assert.equal(res.status, 200, res.body.toString());
    assert.deepEqual(new Set(await burst(30)), new Set(['/from-b']), 'every worker serves from the new upstream');
    const metrics = (await get(`${adminUrl}/metrics`)).body.toString();
    assert.match(metrics, /^scrapecache_config_last_reload_successful 1$/m);
  } finally {
    stopped = true;
    // Releases the writer waiting for a reader.
    const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    await writer.catch(() => undefined);
    closeSync(fd);
  }
});

test('the workers stop with the primary', async () => {
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('a reload a worker could not apply answers 400 with its error and sets last_reload_successful to 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-workers-reload-'));
  const path = join(dir, 'proxy.yaml');
  const yaml = `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${a.url}/x\n`;
  writeFileSync(path, yaml);
  const applied: string[] = [];
  const app = await startApp({
    config: loadConfig(path),
    log: createLogger('error', new Writable({ write: (_c, _e, done) => done() })),
    defaultMetrics: false,
    listeners: { scrape: false, admin: true },
    afterReload: async (source) => {
      applied.push(source);
      return 'worker 4242: cannot read /run/secrets/hw';
    },
  });
  try {
    const res = await post(`http://127.0.0.1:${app.adminAddress.port}/-/reload`);
    assert.equal(res.status, 400);
    assert.equal(res.body.toString(), 'worker 4242: cannot read /run/secrets/hw\n');
    assert.deepEqual(applied, [yaml], 'the workers get the text the primary read');
    const metrics = (await get(`http://127.0.0.1:${app.adminAddress.port}/metrics`)).body.toString();
    assert.match(metrics, /^scrapecache_config_last_reload_successful 0$/m);
  } finally {
    await app.close(100);
  }
});
