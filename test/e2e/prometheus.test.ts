// End to end against the real thing: Debian's Prometheus, node_exporter and
// blackbox_exporter, with scrapecache between Prometheus and the exporters.
// Install them with `bash .ci/install-e2e.sh`; without them this file skips.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answers200, canRead, Child, freePort, get, isExecutable, sumSamples, waitFor } from '../helpers/processes.js';

const binaries = {
  prometheus: process.env.SCRAPECACHE_E2E_PROMETHEUS ?? '/usr/bin/prometheus',
  nodeExporter: process.env.SCRAPECACHE_E2E_NODE_EXPORTER ?? '/usr/bin/prometheus-node-exporter',
  blackboxExporter: process.env.SCRAPECACHE_E2E_BLACKBOX_EXPORTER ?? '/usr/bin/prometheus-blackbox-exporter',
};
// dist/test/e2e/prometheus.test.js -> dist/src/cli.js
const cliPath = process.env.SCRAPECACHE_E2E_CLI ?? fileURLToPath(new URL('../../src/cli.js', import.meta.url));

const NODE_TTL_SECONDS = 5;
const SCRAPE_INTERVAL_SECONDS = 1;
const MIN_SCRAPES = 12;
const MIN_OBSERVED_SECONDS = 12;
const SLOW_EXPORTER_MS = 1500;

const missing = Object.values(binaries).filter((path) => !isExecutable(path));
const skipReason =
  missing.length > 0
    ? `missing ${missing.join(', ')}: run \`bash .ci/install-e2e.sh\` (as root) to install Prometheus and the exporters`
    : !canRead(cliPath)
      ? `missing ${cliPath}: run \`npm run build\` first`
      : undefined;

const children: Child[] = [];
const servers: Server[] = [];
let workDir: string | undefined;

function startChild(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): Child {
  const child = new Child(name, command, args, env);
  children.push(child);
  return child;
}

interface Target {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: string;
  lastError: string;
}

let ports: Record<'nodeExporter' | 'blackbox' | 'proxy' | 'admin' | 'prometheus', number>;
let probeOrigin: { port: number; requests: number };
let slowOrigin: { port: number; requests: number };
let prometheusChild: Child;
let proxyChild: Child;
let exporterChildren: Child[];
let baselineAt: number;

const prometheusUrl = () => `http://127.0.0.1:${ports.prometheus}`;
const adminUrl = () => `http://127.0.0.1:${ports.admin}`;

async function query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const { status, body } = await get(`${prometheusUrl()}/api/v1/query?query=${encodeURIComponent(promql)}`);
  assert.equal(status, 200, `query ${promql}: ${body}`);
  const parsed = JSON.parse(body) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  return parsed.data.result;
}

async function scalar(promql: string): Promise<number | undefined> {
  const result = await query(promql);
  return result[0] ? Number(result[0].value[1]) : undefined;
}

let baselineServed = 0;
let directReads = 0;

/**
 * How many scrapes node_exporter answered since the baseline, other than the test's own direct
 * reads. promhttp counts a scrape once it is answered, so the read in progress is not included.
 */
async function nodeExporterFetchesSinceBaseline(): Promise<number> {
  const { body } = await get(`http://127.0.0.1:${ports.nodeExporter}/metrics`);
  const served = sumSamples(body, 'promhttp_metric_handler_requests_total', { code: '200' });
  const earlierDirectReads = directReads++;
  return served - earlierDirectReads - baselineServed;
}

if (skipReason) {
  test('Prometheus scrapes exporters through scrapecache (end to end)', { skip: skipReason }, () => {});
} else {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'scrapecache-e2e-'));
    ports = {
      nodeExporter: await freePort(),
      blackbox: await freePort(),
      proxy: await freePort(),
      admin: await freePort(),
      prometheus: await freePort(),
    };

    // The blackbox probe's target: a tiny origin that counts its requests.
    probeOrigin = { port: 0, requests: 0 };
    const origin = createServer((_req, res) => {
      probeOrigin.requests++;
      res.end('ok\n');
    });
    servers.push(origin);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    probeOrigin.port = (origin.address() as AddressInfo).port;

    // An exporter slower than Prometheus's scrape timeout.
    slowOrigin = { port: 0, requests: 0 };
    const slow = createServer((_req, res) => {
      slowOrigin.requests++;
      setTimeout(() => {
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end('# TYPE slow_exporter_collections_total counter\nslow_exporter_collections_total 1\n');
      }, SLOW_EXPORTER_MS);
    });
    servers.push(slow);
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    slowOrigin.port = (slow.address() as AddressInfo).port;

    const blackboxConfig = join(workDir, 'blackbox.yml');
    await writeFile(
      blackboxConfig,
      ['modules:', '  http_2xx:', '    prober: http', '    timeout: 5s', '    http:', '      preferred_ip_protocol: ip4', ''].join('\n'),
    );
    const nodeExporter = startChild('node_exporter', binaries.nodeExporter, [
      `--web.listen-address=127.0.0.1:${ports.nodeExporter}`,
      // Debian enables the systemd collector, which fails without a running systemd.
      '--no-collector.systemd',
      '--log.level=warn',
    ]);
    const blackbox = startChild('blackbox_exporter', binaries.blackboxExporter, [
      `--config.file=${blackboxConfig}`,
      `--web.listen-address=127.0.0.1:${ports.blackbox}`,
      '--log.level=warn',
    ]);
    exporterChildren = [nodeExporter, blackbox];
    await waitFor('node_exporter /metrics', () => answers200(`http://127.0.0.1:${ports.nodeExporter}/metrics`), { watch: [nodeExporter] });
    await waitFor('blackbox_exporter /-/healthy', () => answers200(`http://127.0.0.1:${ports.blackbox}/-/healthy`), { watch: [blackbox] });

    const proxyConfig = join(workDir, 'proxy.yaml');
    await writeFile(
      proxyConfig,
      `listen: 127.0.0.1:${ports.proxy}
admin:
  listen: 127.0.0.1:${ports.admin}
log:
  level: warn
routes:
  - name: node
    path: /node/metrics
    upstream: http://127.0.0.1:${ports.nodeExporter}/metrics
    ttl: ${NODE_TTL_SECONDS}s
  - name: blackbox
    path: /probe
    upstream: http://127.0.0.1:${ports.blackbox}/probe
    ttl: 5s
    query_keys: [target, module]
  - name: slow
    path: /slow/metrics
    upstream: http://127.0.0.1:${slowOrigin.port}/metrics
    ttl: 1m
    timeout: 10s
`,
    );
    proxyChild = startChild('scrapecache', process.execPath, [cliPath, '--config.file', proxyConfig]);
    await waitFor('scrapecache /-/ready', () => answers200(`${adminUrl()}/-/ready`), { watch: [proxyChild] });

    baselineServed = await nodeExporterFetchesSinceBaseline();
    baselineAt = Date.now();

    const prometheusConfig = join(workDir, 'prometheus.yml');
    await writeFile(
      prometheusConfig,
      `global:
  scrape_interval: ${SCRAPE_INTERVAL_SECONDS}s
  scrape_timeout: ${SCRAPE_INTERVAL_SECONDS}s
  evaluation_interval: 15s
scrape_configs:
  # node_exporter through the proxy: the proxy's route path is the metrics_path.
  - job_name: node
    metrics_path: /node/metrics
    static_configs:
      - targets: ['127.0.0.1:${ports.proxy}']
  # blackbox_exporter through the proxy, relabelled as in blackbox_exporter's README,
  # with the proxy in place of the exporter.
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: ['http://127.0.0.1:${probeOrigin.port}/health']
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:${ports.proxy}
  # An exporter that takes longer than scrape_timeout: the first scrape times out, the fill
  # goes on and is stored, and later scrapes are hits.
  - job_name: slow
    metrics_path: /slow/metrics
    static_configs:
      - targets: ['127.0.0.1:${ports.proxy}']
  # The proxy's own metrics from its admin listener.
  - job_name: scrapecache
    static_configs:
      - targets: ['127.0.0.1:${ports.admin}']
`,
    );
    prometheusChild = startChild('prometheus', binaries.prometheus, [
      `--config.file=${prometheusConfig}`,
      `--storage.tsdb.path=${join(workDir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${ports.prometheus}`,
      '--log.level=warn',
    ]);
    await waitFor('Prometheus /-/ready', () => answers200(`${prometheusUrl()}/-/ready`), { watch: [prometheusChild] });
  });

  after(async () => {
    // Prometheus first, so that it does not log the others going away.
    const [first, ...rest] = [...children].reverse();
    if (first) await first.stop();
    await Promise.all(rest.map((child) => child.stop()));
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const everyone = () => [prometheusChild, proxyChild, ...exporterChildren];

  test('Prometheus scrapes every target through the proxy with up == 1', async () => {
    const targets = await waitFor(
      'node, blackbox and scrapecache targets to be up',
      async () => {
        const { body } = await get(`${prometheusUrl()}/api/v1/targets?state=active`);
        const active = (JSON.parse(body) as { data: { activeTargets: Target[] } }).data.activeTargets;
        const jobs = ['node', 'blackbox', 'scrapecache'];
        const ready = jobs.every((job) => active.some((t) => t.labels.job === job && t.health === 'up'));
        return ready && active.every((t) => t.health === 'up' || t.labels.job === 'slow') ? active : undefined;
      },
      { watch: everyone() },
    ).catch(async (err: Error) => {
      const { body } = await get(`${prometheusUrl()}/api/v1/targets?state=active`);
      throw new Error(`${err.message}\ntargets: ${body}`);
    });
    const byJob = new Map(targets.map((t) => [t.labels.job, t]));
    assert.equal(new URL(byJob.get('node')!.scrapeUrl).port, String(ports.proxy), 'node is scraped through the proxy');
    const probeUrl = new URL(byJob.get('blackbox')!.scrapeUrl);
    assert.equal(probeUrl.port, String(ports.proxy), 'the probe goes through the proxy');
    assert.equal(probeUrl.searchParams.get('target'), `http://127.0.0.1:${probeOrigin.port}/health`);
    for (const job of ['node', 'blackbox', 'scrapecache']) {
      assert.equal(await scalar(`up{job="${job}"}`), 1, `up{job="${job}"}`);
    }
  });

  test('node_exporter series arrive in Prometheus through the proxy', async () => {
    const cpuSeries = await waitFor('node_cpu_seconds_total', async () => {
      const n = await scalar('count(node_cpu_seconds_total{job="node"})');
      return n && n > 0 ? n : undefined;
    }, { watch: everyone() });
    assert.ok(cpuSeries >= 1);
    const instance = await query('node_uname_info{job="node"}');
    assert.equal(instance.length, 1, 'one node_uname_info series');
    assert.equal(instance[0]!.metric.instance, `127.0.0.1:${ports.proxy}`);
  });

  test('a blackbox probe through the proxy succeeds', async () => {
    const success = await waitFor('probe_success', () => scalar('probe_success{job="blackbox"}'), { watch: everyone() });
    assert.equal(success, 1, 'probe_success');
    assert.equal(await scalar('probe_http_status_code{job="blackbox"}'), 200);
    assert.ok(probeOrigin.requests >= 1, 'the blackbox exporter reached the probe origin');
  });

  test('an exporter slower than the scrape timeout becomes scrapable through the proxy', async (t) => {
    await waitFor('up{job="slow"} == 1', async () => ((await scalar('up{job="slow"}')) === 1 ? true : undefined), {
      watch: everyone(),
    });
    const value = await scalar('slow_exporter_collections_total{job="slow"}');
    assert.equal(value, 1, 'the slow exporter\'s series arrived');
    const scrapes = (await scalar('sum(count_over_time(up{job="slow"}[5m]))')) ?? 0;
    const failed = scrapes - ((await scalar('sum(sum_over_time(up{job="slow"}[5m]))')) ?? 0);
    t.diagnostic(`slow exporter (${SLOW_EXPORTER_MS} ms, scrape_timeout ${SCRAPE_INTERVAL_SECONDS}s): ${scrapes} scrapes, ${failed} timed out, ${slowOrigin.requests} upstream fetches`);
    // The first scrape (or two, while the fill runs) times out; the one fill serves the rest.
    assert.equal(slowOrigin.requests, 1, 'one fetch, which ran on past the scrape timeout and was stored');
    assert.ok(failed >= 1, 'the first scrape timed out, as Prometheus alone would');
    assert.ok(failed <= 2, `at most the scrapes during the first fill failed (${failed})`);
  });

  test('node_exporter is fetched about once per TTL, not once per scrape', async (t) => {
    await waitFor(
      `${MIN_SCRAPES} scrapes over ${MIN_OBSERVED_SECONDS}s`,
      async () => {
        const n = await scalar('sum(count_over_time(up{job="node"}[5m]))');
        return n !== undefined && n >= MIN_SCRAPES && Date.now() - baselineAt >= MIN_OBSERVED_SECONDS * 1000 ? n : undefined;
      },
      { timeoutMs: 30_000, watch: everyone() },
    );
    // Fetches first, then scrapes: every fetch counted was caused by a scrape counted.
    const fetches = await nodeExporterFetchesSinceBaseline();
    const scrapes = (await scalar('sum(count_over_time(up{job="node"}[5m]))')) ?? 0;
    const failed = scrapes - ((await scalar('sum(sum_over_time(up{job="node"}[5m]))')) ?? 0);
    // Scrapes come once per interval, so they span at most scrapes * interval seconds,
    // and a key is fetched at most once per TTL in that span, plus the first fill.
    const mostFetches = Math.ceil((scrapes * SCRAPE_INTERVAL_SECONDS) / NODE_TTL_SECONDS) + 1;
    const elapsedSeconds = (Date.now() - baselineAt) / 1000;
    const report = `${scrapes} scrapes (${failed} failed), ${fetches} upstream fetches in ${elapsedSeconds.toFixed(1)}s, ttl ${NODE_TTL_SECONDS}s`;
    t.diagnostic(report);
    assert.equal(failed, 0, `no failed scrapes: ${report}`);
    assert.ok(fetches >= 2, `the entry expires and is fetched again: ${report}`);
    assert.ok(fetches <= mostFetches, `at most ${mostFetches} fetches: ${report}`);
    assert.ok(scrapes >= fetches * 2, `most scrapes are served from the cache: ${report}`);
  });

  test("the proxy's self-metrics count the fetches node_exporter saw", async (t) => {
    const { status, body } = await get(`${adminUrl()}/metrics`);
    assert.equal(status, 200);
    const fetches = await nodeExporterFetchesSinceBaseline();
    const upstream = sumSamples(body, 'scrapecache_upstream_requests_total', { route: 'node' });
    const upstreamOk = sumSamples(body, 'scrapecache_upstream_requests_total', { route: 'node', code: '200' });
    const hits = sumSamples(body, 'scrapecache_requests_total', { route: 'node', cache: 'hit' });
    const requests = sumSamples(body, 'scrapecache_requests_total', { route: 'node' });
    const report = `upstream ${upstream} (200: ${upstreamOk}), requests ${requests} (hit: ${hits}); node_exporter saw ${fetches}`;
    t.diagnostic(report);
    // A fetch may complete between the two reads.
    assert.ok(Math.abs(upstream - fetches) <= 1, `upstream fetches agree with node_exporter: ${report}`);
    assert.ok(upstreamOk >= 2, report);
    assert.ok(hits >= requests - upstream - 1 && hits >= MIN_SCRAPES - upstream, `the rest are hits: ${report}`);
    const viaPrometheus = await waitFor('scrapecache_requests_total in Prometheus', () =>
      scalar('sum(scrapecache_requests_total{job="scrapecache",route="node"})'),
    );
    assert.ok(viaPrometheus >= 1, 'Prometheus stores the proxy self-metrics');
  });

  // SPEC 5. prom-client's nodejs_active_*_total gauges are dropped in src/metrics.ts for this.
  test("promtool check metrics accepts the proxy's /metrics", async (t) => {
    const promtool = join(binaries.prometheus, '..', 'promtool');
    if (!isExecutable(promtool)) return t.skip(`no ${promtool}`);
    const { status, body } = await get(`${adminUrl()}/metrics`);
    assert.equal(status, 200);
    const result = spawnSync(promtool, ['check', 'metrics'], { input: body, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  test('scrapecache exits 0 on SIGTERM while Prometheus scrapes it', async () => {
    const { code, signal } = await proxyChild.stop(10_000);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, proxyChild.describe());
  });
}
