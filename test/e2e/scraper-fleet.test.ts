// End to end, issue 16: the scrapers people run now and the ones they ran before, scraping one
// route without `format` through scrapecache, in front of a real client_golang exporter
// (Pushgateway 1.11 holding every metric type, native histograms and UTF-8 names):
// Prometheus 3.5 with native histograms (protobuf first), Prometheus 2.42 (OpenMetrics first),
// vmagent 1.145 and vmagent 1.79 (text). Every target is up, each scraper stores every series
// its direct scrape of the same exporter has, and the exporter is fetched once per TTL for all.
// Then the same fleet on an exporter without protobuf: one fetch per format it answers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricFamilyType } from '../../src/expfmt/metrics-proto.js';
import { pushedFamilies } from '../fixtures/expfmt/pushed-families.js';
import { startFakeExporter, type FakeExporter } from '../helpers/fake-exporter.js';
import { answers200, Child, freePort, get, isExecutable, sleep, waitFor } from '../helpers/processes.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startPushgateway, type Pushgateway } from '../helpers/pushgateway.js';
import { unstableBinary } from '../helpers/unstable-binaries.js';

const binaries = {
  prometheus3: unstableBinary('prometheus3'),
  vmagentCurrent: unstableBinary('vmagentCurrent'),
  pushgateway: unstableBinary('pushgateway'),
  prometheus2: isExecutable(process.env.SCRAPECACHE_E2E_PROMETHEUS ?? '/usr/bin/prometheus') ? (process.env.SCRAPECACHE_E2E_PROMETHEUS ?? '/usr/bin/prometheus') : undefined,
  vmagentOld: isExecutable(process.env.SCRAPECACHE_E2E_VMAGENT ?? '/usr/bin/vmagent') ? (process.env.SCRAPECACHE_E2E_VMAGENT ?? '/usr/bin/vmagent') : undefined,
};
const missing = Object.entries(binaries)
  .filter(([, path]) => path === undefined)
  .map(([name]) => name);
const skipReason = missing.length === 0 ? undefined : `missing ${missing.join(', ')}: run .ci/install-e2e.sh and .ci/install-unstable.sh`;
if (skipReason && process.env.CI === 'true') throw new Error(skipReason);

const TTL_SECONDS = 3;
const OBSERVED_SECONDS = 12;

interface Target {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: string;
  lastError: string;
  lastSamplesScraped?: number;
}

/** A loopback forwarder that counts what passes: the proxy's fetches of the upstream behind it. */
async function countingForwarder(target: string): Promise<{ url: string; count: () => number; accepts: string[]; server: Server }> {
  let count = 0;
  const accepts: string[] = [];
  const to = new URL(target);
  const server = createServer((req, res) => {
    count++;
    accepts.push(String(req.headers.accept));
    const out = httpRequest({ host: to.hostname, port: to.port, path: req.url, headers: { ...req.headers, host: to.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => count, accepts, server };
}

const children: Child[] = [];
const servers: Server[] = [];
let workDir: string;
let pg: Pushgateway;
let front: Awaited<ReturnType<typeof countingForwarder>>;
let noProtobuf: FakeExporter;
let proxy: TestProxy;
const scrapers: Array<{ name: string; url: string; kind: 'prometheus' | 'vmagent' }> = [];

async function activeTargets(base: string): Promise<Target[]> {
  const { status, body } = await get(`${base}/api/v1/targets`);
  assert.equal(status, 200, body);
  return (JSON.parse(body) as { data: { activeTargets: Target[] } }).data.activeTargets;
}

/** Series a Prometheus stored for a job, less the labels the scrape itself adds. */
async function seriesOf(base: string, job: string): Promise<Set<string>> {
  const { body } = await get(`${base}/api/v1/series?match[]=${encodeURIComponent(`{job="${job}"}`)}`);
  const data = (JSON.parse(body) as { data: Array<Record<string, string>> }).data;
  return new Set(
    data
      .filter((s) => !['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling', 'scrape_series_added'].includes(s['__name__']!))
      .map((s) => {
        const { job: _job, instance: _instance, ...rest } = s;
        return JSON.stringify(Object.entries(rest).sort());
      }),
  );
}

if (skipReason) {
  test('Prometheus 3.5, Prometheus 2.42 and two vmagents share one fetch per TTL through a route without format (end to end)', { skip: skipReason }, () => {});
} else {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'scrapecache-fleet-'));
    pg = await startPushgateway();
    await pg.push('fleet', Buffer.concat(pushedFamilies.map((f) => MetricFamilyType.encodeDelimited(f as never).finish())));
    front = await countingForwarder(pg.url);
    servers.push(front.server);
    noProtobuf = await startFakeExporter();
    const receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    servers.push(receiver);
    proxy = await startProxy(`routes:
  - name: fleet
    path: /fleet/metrics
    upstream: ${front.url}/metrics
    ttl: ${TTL_SECONDS}s
  - name: plain
    path: /plain/metrics
    upstream: ${noProtobuf.url}/metrics
    ttl: ${TTL_SECONDS}s
`);
    const proxyHost = new URL(proxy.url).host;
    const pgHost = new URL(pg.url).host;
    // The direct jobs scrape the same exporter without the proxy: what each scraper gets there is the reference.
    const scrapeConfig = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: proxied
    metrics_path: /fleet/metrics
    static_configs: [{ targets: ['${proxyHost}'] }]
  - job_name: direct
    static_configs: [{ targets: ['${pgHost}'] }]
  - job_name: plain
    metrics_path: /plain/metrics
    static_configs: [{ targets: ['${proxyHost}'] }]
`;
    const remote = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/api/v1/write`;
    const start = async (name: string, kind: 'prometheus' | 'vmagent', binary: string, extra: string[] = []) => {
      const port = await freePort();
      const dir = join(workDir, name);
      await writeFile(`${dir}.yml`, scrapeConfig);
      const args =
        kind === 'prometheus'
          ? [`--config.file=${dir}.yml`, `--storage.tsdb.path=${dir}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...extra]
          : [`-promscrape.config=${dir}.yml`, `-httpListenAddr=127.0.0.1:${port}`, `-remoteWrite.url=${remote}`, `-remoteWrite.tmpDataPath=${dir}`, '-loggerLevel=ERROR', ...extra];
      const child = new Child(name, binary, args);
      children.push(child);
      const url = `http://127.0.0.1:${port}`;
      await waitFor(`${name} ready`, () => answers200(`${url}/${kind === 'prometheus' ? '-/ready' : 'health'}`), { watch: [child] });
      scrapers.push({ name, url, kind });
    };
    await start('prometheus-3.5', 'prometheus', binaries.prometheus3!, ['--enable-feature=native-histograms']);
    await start('prometheus-2.42', 'prometheus', binaries.prometheus2!);
    await start('vmagent-current', 'vmagent', binaries.vmagentCurrent!);
    await start('vmagent-1.79', 'vmagent', binaries.vmagentOld!);
  });

  after(async () => {
    await Promise.all(children.map((c) => c.stop()));
    await proxy?.close();
    await pg?.stop();
    await noProtobuf?.close();
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('Prometheus 3.5, Prometheus 2.42 and two vmagents: every target up, every series of the direct scrape, one fetch per TTL for all', async (t) => {
    for (const s of scrapers) {
      await waitFor(
        `${s.name}: every target up`,
        async () => {
          const targets = await activeTargets(s.url);
          return targets.length === 3 && targets.every((x) => x.health === 'up') ? true : undefined;
        },
        { watch: children, timeoutMs: 20_000 },
      );
    }
    const before = front.count();
    const plainBefore = noProtobuf.count;
    const startedAt = Date.now();
    // Real scrapers (Prometheus, vmagent) scrape on their own schedule: this waits for them, on real time.
    await sleep(OBSERVED_SECONDS * 1000);
    const seconds = (Date.now() - startedAt) / 1000;
    const fetches = front.count() - before;
    const plainFetches = noProtobuf.count - plainBefore;
    const rows = JSON.parse((await get(`${proxy.adminUrl}/cache`)).body) as Array<{ route: string; representation: string; fresh: boolean; renderings?: string[] }>;
    const report = `client_golang exporter: ${fetches} fetches in ${seconds.toFixed(1)}s at ttl ${TTL_SECONDS}s for 4 scrapers; exporter without protobuf: ${plainFetches}; entries: ${rows
      .map((r) => `${r.route} ${r.representation}${r.fresh ? '' : ' (expired)'}${r.renderings ? ` [${r.renderings.join(', ')}]` : ''}`)
      .join('; ')}`;
    t.diagnostic(report);
    const perTtl = Math.ceil(seconds / TTL_SECONDS) + 1;
    assert.ok(fetches >= 2 && fetches <= perTtl, `one fetch per TTL for the whole fleet (at most ${perTtl}): ${report}`);
    // Prometheus 2.42 and vmagent get text from it, Prometheus 3.5 OpenMetrics: two formats.
    assert.ok(plainFetches <= 2 * perTtl, `one fetch per format it answers: ${report}`);
    // Once learned, every fetch asks for protobuf (names unescaped) and the rest is rendered.
    assert.deepEqual(
      [...new Set(front.accepts.slice(before))],
      ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8'],
      report,
    );

    for (const s of scrapers) {
      const targets = await activeTargets(s.url);
      for (const x of targets) assert.equal(x.health, 'up', `${s.name} ${x.scrapeUrl}: ${x.lastError}`);
      if (s.kind === 'prometheus') {
        const direct = await seriesOf(s.url, 'direct');
        const proxied = await seriesOf(s.url, 'proxied');
        const lost = [...direct].filter((x) => !proxied.has(x));
        // The pushgateway's own metrics (request counts, go_*) move between scrapes: compare the pushed job's.
        const pushedLost = lost.filter((x) => x.includes('"exported_job","fleet"'));
        assert.ok(direct.size > 0);
        assert.deepEqual(pushedLost, [], `${s.name} lacks series through the proxy that it stores directly`);
        assert.ok([...proxied].some((x) => x.includes('"exported_job","fleet"')), `${s.name} stored the pushed series`);
      } else {
        const byJob = new Map(targets.map((x) => [x.labels['job'], x.lastSamplesScraped]));
        if (byJob.get('direct') !== undefined) {
          assert.ok((byJob.get('proxied') ?? 0) > 0, `${s.name}: samples through the proxy`);
          const diff = Math.abs((byJob.get('direct') ?? 0) - (byJob.get('proxied') ?? 0));
          // The pushgateway's own counters (one request more or less) are the only difference in size.
          assert.ok(diff <= 10, `${s.name}: ${byJob.get('proxied')} samples through the proxy, ${byJob.get('direct')} directly`);
        }
      }
    }
  });
}
