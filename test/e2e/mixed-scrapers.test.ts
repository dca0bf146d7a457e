// End to end with two kinds of scrapers on one expensive exporter: Debian's Prometheus (prefers
// OpenMetrics) and vmagent from victoria-metrics (prefers text) scrape one `format: text` route
// through scrapecache. Both are up, and the exporter is fetched about once per TTL, not once per
// TTL per format. Install them with `bash .ci/install-e2e.sh`; without them this file skips.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeExporter, type FakeExporter } from '../helpers/fake-exporter.js';
import { answers200, canRead, Child, freePort, get, isExecutable, sleep, sumSamples, waitFor } from '../helpers/processes.js';

const binaries = {
  prometheus: process.env.SCRAPECACHE_E2E_PROMETHEUS ?? '/usr/bin/prometheus',
  vmagent: process.env.SCRAPECACHE_E2E_VMAGENT ?? '/usr/bin/vmagent',
};
// dist/test/e2e/mixed-scrapers.test.js -> dist/src/cli.js
const cliPath = process.env.SCRAPECACHE_E2E_CLI ?? fileURLToPath(new URL('../../src/cli.js', import.meta.url));

const TTL_SECONDS = 3;
const OBSERVED_SECONDS = 12;

const missing = Object.values(binaries).filter((path) => !isExecutable(path));
const skipReason =
  missing.length > 0
    ? `missing ${missing.join(', ')}: run \`bash .ci/install-e2e.sh\` (as root) to install Prometheus and vmagent`
    : !canRead(cliPath)
      ? `missing ${cliPath}: run \`npm run build\` first`
      : undefined;

interface Target {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: string;
  lastError: string;
}

const children: Child[] = [];
let workDir: string | undefined;
let exporter: FakeExporter;
let receiver: Server;
let remoteWrites = 0;
let ports: Record<'proxy' | 'admin' | 'prometheus' | 'vmagent', number>;

const start = (name: string, command: string, args: string[]) => {
  const child = new Child(name, command, args);
  children.push(child);
  return child;
};

async function activeTargets(base: string): Promise<Target[]> {
  const { status, body } = await get(`${base}/api/v1/targets`);
  assert.equal(status, 200, body);
  return (JSON.parse(body) as { data: { activeTargets: Target[] } }).data.activeTargets;
}

const prometheusUrl = () => `http://127.0.0.1:${ports.prometheus}`;
const vmagentUrl = () => `http://127.0.0.1:${ports.vmagent}`;

/** Scrapes the proxy answered on the route, from its own metrics. */
async function proxyScrapes(): Promise<number> {
  const { body } = await get(`http://127.0.0.1:${ports.admin}/metrics`);
  return sumSamples(body, 'scrapecache_requests_total', { route: 'pinned' });
}

if (skipReason) {
  test('Prometheus and vmagent share one fetch per TTL through a format: text route (end to end)', { skip: skipReason }, () => {});
} else {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'scrapecache-mixed-'));
    ports = { proxy: await freePort(), admin: await freePort(), prometheus: await freePort(), vmagent: await freePort() };
    exporter = await startFakeExporter();
    // vmagent needs somewhere to remote-write to: a loopback receiver that only counts.
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        remoteWrites++;
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));

    const proxyConfig = join(workDir, 'proxy.yaml');
    await writeFile(
      proxyConfig,
      `listen: 127.0.0.1:${ports.proxy}
admin:
  listen: 127.0.0.1:${ports.admin}
log:
  level: warn
routes:
  - name: pinned
    path: /pinned/metrics
    upstream: ${exporter.url}/metrics
    ttl: ${TTL_SECONDS}s
    format: text
`,
    );
    const proxy = start('scrapecache', process.execPath, [cliPath, '--config.file', proxyConfig]);
    await waitFor('scrapecache /-/ready', () => answers200(`http://127.0.0.1:${ports.admin}/-/ready`), { watch: [proxy] });

    const scrapeConfig = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pinned
    metrics_path: /pinned/metrics
    static_configs:
      - targets: ['127.0.0.1:${ports.proxy}']
`;
    await writeFile(join(workDir, 'prometheus.yml'), scrapeConfig);
    await writeFile(join(workDir, 'vmagent.yml'), scrapeConfig);
    const prometheus = start('prometheus', binaries.prometheus, [
      `--config.file=${join(workDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(workDir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${ports.prometheus}`,
      '--log.level=warn',
    ]);
    const vmagent = start('vmagent', binaries.vmagent, [
      `-promscrape.config=${join(workDir, 'vmagent.yml')}`,
      `-httpListenAddr=127.0.0.1:${ports.vmagent}`,
      `-remoteWrite.url=http://127.0.0.1:${(receiver.address() as AddressInfo).port}/api/v1/write`,
      `-remoteWrite.tmpDataPath=${join(workDir, 'vmagent-data')}`,
      '-remoteWrite.flushInterval=1s',
      '-loggerLevel=ERROR',
    ]);
    await waitFor('Prometheus /-/ready', () => answers200(`${prometheusUrl()}/-/ready`), { watch: [prometheus] });
    await waitFor('vmagent /health', () => answers200(`${vmagentUrl()}/health`), { watch: [vmagent] });
  });

  after(async () => {
    await Promise.all(children.map((child) => child.stop()));
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
    await exporter.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('Prometheus and vmagent both scrape a format: text route through the proxy with up, and the exporter is fetched once per TTL for both', async (t) => {
    const up = async (base: string) => {
      const targets = await activeTargets(base);
      return targets.length === 1 && targets[0]!.health === 'up' ? targets[0] : undefined;
    };
    const promTarget = await waitFor('Prometheus target up', () => up(prometheusUrl()), { watch: children });
    const vmTarget = await waitFor('vmagent target up', () => up(vmagentUrl()), { watch: children });
    for (const target of [promTarget, vmTarget]) assert.equal(new URL(target.scrapeUrl).port, String(ports.proxy), 'scraped through the proxy');

    const fetchesBefore = exporter.count;
    const scrapesBefore = await proxyScrapes();
    const startedAt = Date.now();
    // Real scrapers (Prometheus, vmagent) scrape on their own schedule: this waits for them, on real time.
    await sleep(OBSERVED_SECONDS * 1000);
    const fetches = exporter.count - fetchesBefore;
    const scrapes = (await proxyScrapes()) - scrapesBefore;
    const seconds = (Date.now() - startedAt) / 1000;
    const report = `${scrapes} scrapes by Prometheus and vmagent, ${fetches} exporter fetches in ${seconds.toFixed(1)}s, ttl ${TTL_SECONDS}s`;
    t.diagnostic(report);

    // One key: at most one fetch per TTL in the window, plus one already under way at its start.
    // Without format, each scraper's format would be a key of its own: twice that.
    const most = Math.ceil(seconds / TTL_SECONDS) + 1;
    assert.ok(fetches >= 2, `the entry expires and is fetched again: ${report}`);
    assert.ok(fetches <= most, `at most ${most} fetches for both scrapers: ${report}`);
    assert.ok(scrapes >= fetches * 2, `most scrapes are served from the one entry: ${report}`);
    // Text only; the escaping term goes once the exporter is seen to ignore it (no term in its Content-Type).
    for (const req of exporter.requests) assert.match(req.headers.accept ?? '', /^text\/plain;version=0\.0\.4(;escaping=underscores)?$/);

    const rows = JSON.parse((await get(`http://127.0.0.1:${ports.admin}/cache`)).body) as Array<{ representation: string }>;
    assert.deepEqual(rows.map((r) => r.representation), ['text;0.0.4'], 'one entry serves both');

    // Both got usable answers throughout: still up, Prometheus stored the series, vmagent wrote them on.
    for (const base of [prometheusUrl(), vmagentUrl()]) {
      const [target] = await activeTargets(base);
      assert.equal(target!.health, 'up', `${base}: ${target!.lastError}`);
    }
    const { body } = await get(`${prometheusUrl()}/api/v1/query?query=${encodeURIComponent('min_over_time(up{job="pinned"}[10s])')}`);
    assert.equal((JSON.parse(body) as { data: { result: Array<{ value: [number, string] }> } }).data.result[0]?.value[1], '1');
    const series = await get(`${prometheusUrl()}/api/v1/query?query=${encodeURIComponent('count(fake_series{job="pinned"})')}`);
    assert.equal((JSON.parse(series.body) as { data: { result: Array<{ value: [number, string] }> } }).data.result[0]?.value[1], '50');
    await waitFor('vmagent to remote-write what it scraped', async () => (remoteWrites > 0 ? true : undefined), { watch: children });
  });
}
