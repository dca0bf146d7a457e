/**
 * The monitoring that deploy/kubernetes ships: the PrometheusRule says what README.md says,
 * promtool checks and unit-tests it, and a real Prometheus 3 that scrapes a running proxy (on
 * the central-disk overlay's proxy.yaml) loads the rules as healthy and evaluates every
 * expression of the Grafana dashboard; every metric they name is one the proxy exports.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { build, kubernetesDir, named, root } from './helpers/kubernetes-manifests.js';
import { answers200, Child, freePort, isExecutable, waitFor } from './helpers/processes.js';
import { skipUnlessUnstable, unstableBinary } from './helpers/unstable-binaries.js';

const PROMTOOL = '/usr/bin/promtool';
const cli = join(root, 'dist/src/cli.js');

/** promtool comes with Debian's prometheus package (.ci/install-e2e.sh); in CI its absence fails. */
function skipUnlessPromtool(): false | string {
  if (isExecutable(PROMTOOL)) return false;
  const reason = `no ${PROMTOOL}: run \`bash .ci/install-e2e.sh\``;
  if (process.env.CI === 'true') throw new Error(reason);
  return reason;
}

interface RuleGroup {
  name: string;
  rules: Array<{ record?: string; alert?: string; expr: string }>;
}

const ruleGroups = (): RuleGroup[] => (parse(readFileSync(join(kubernetesDir, 'monitoring/prometheusrule.yaml'), 'utf8')) as { spec: { groups: RuleGroup[] } }).spec.groups;

/** The README's alert-rules block (in README.md, or a docs/ page it moved to). */
function readmeRules(): RuleGroup[] {
  const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  for (const page of pages) {
    const match = /<!-- alert-rules:start -->\n```yaml\n([\s\S]*?)```\n<!-- alert-rules:end -->/.exec(readFileSync(join(root, page), 'utf8'));
    if (match) return (parse(match[1]!) as { groups: RuleGroup[] }).groups;
  }
  assert.fail('README.md or docs/*.md has the alert-rules block');
}

/** The rules as a Prometheus rule file, in a fresh folder. */
function writeRuleFile(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-k8s-rules-'));
  const file = join(dir, 'rules.yml');
  writeFileSync(file, stringify({ groups: ruleGroups() }));
  return { dir, file };
}

interface Dashboard {
  panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; type: string; query: string | { query: string } }> };
}
const dashboard = (): Dashboard => JSON.parse(readFileSync(join(kubernetesDir, 'monitoring/scrapecache-dashboard.json'), 'utf8')) as Dashboard;

/** Grafana's variables as Grafana fills them in for "All" over a short range. */
const fillVariables = (expr: string) =>
  expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1m').replace(/\$(job|instance|route)\b/g, '.*');

/** Every PromQL expression of the dashboard: panel targets, and the selectors of label_values() variables. */
function dashboardExpressions(): Array<{ where: string; expr: string }> {
  const found: Array<{ where: string; expr: string }> = [];
  for (const panel of dashboard().panels) for (const t of panel.targets ?? []) found.push({ where: `panel "${panel.title}"`, expr: fillVariables(t.expr) });
  for (const v of dashboard().templating.list) {
    if (v.type !== 'query') continue;
    const query = typeof v.query === 'string' ? v.query : v.query.query;
    const selector = /^label_values\((.+), *\w+\)$/.exec(query)?.[1];
    assert.ok(selector, `variable ${v.name}: label_values(selector, label)`);
    found.push({ where: `variable ${v.name}`, expr: fillVariables(selector) });
  }
  return found;
}

test("the PrometheusRule holds the README's alert rules", () => {
  assert.deepEqual(ruleGroups(), readmeRules());
  const monitoring = build('monitoring');
  assert.deepEqual(named(monitoring, 'PrometheusRule', 'scrapecache').spec.groups, ruleGroups());
  const dashboardMap = named(monitoring, 'ConfigMap', 'scrapecache-dashboard');
  assert.equal(dashboardMap.metadata.labels?.['grafana_dashboard'], '1', "Grafana's dashboard sidecar finds it");
  assert.deepEqual(JSON.parse(dashboardMap.data['scrapecache-dashboard.json'] as string), dashboard());
});

test('the dashboard is well formed for Grafana: unique ids and refIds, panels that do not overlap, one data source variable', () => {
  type Panel = { id: number; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Array<{ refId: string; datasource?: { uid: string } }> };
  const d = dashboard() as unknown as { uid: string; panels: Panel[]; templating: Dashboard['templating'] };
  assert.equal(d.uid, 'scrapecache');
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const cells = new Set<string>();
  for (const panel of d.panels) {
    const { x, y, w, h } = panel.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `panel ${panel.id} fits the 24 columns`);
    for (let row = y; row < y + h; row++) for (let col = x; col < x + w; col++) {
      assert.ok(!cells.has(`${row}:${col}`), `panel ${panel.id} overlaps another at ${row}:${col}`);
      cells.add(`${row}:${col}`);
    }
    const refIds = (panel.targets ?? []).map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `panel ${panel.id}: refIds are unique`);
    for (const t of panel.targets ?? []) assert.equal(t.datasource?.uid, '${datasource}', `panel ${panel.id} queries the chosen data source`);
  }
  assert.deepEqual(d.templating.list.filter((v) => v.type === 'datasource').map((v) => v.name), ['datasource']);
  const titles = d.panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const subject of ['hit ratio', 'fetches saved', 'latency', 'errors', 'oldest', 'second level', 'bytes']) assert.ok(titles.includes(subject), `a panel about ${subject}`);
});

test('promtool check rules accepts the PrometheusRule', { skip: skipUnlessPromtool() }, () => {
  const result = spawnSync(PROMTOOL, ['check', 'rules', writeRuleFile().file], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /SUCCESS: 3 rules found/);
});

test("promtool test rules: the PrometheusRule's alerts fire for a dead upstream and a collapsed hit ratio, and not before", { skip: skipUnlessPromtool() }, () => {
  const { dir } = writeRuleFile();
  copyFileSync(join(root, 'test/fixtures/alert-rules/scrapecache.test.yml'), join(dir, 'scrapecache.test.yml'));
  const result = spawnSync(PROMTOOL, ['test', 'rules', join(dir, 'scrapecache.test.yml')], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

describe('Prometheus 3 scraping a running proxy loads the rules and evaluates the dashboard', { skip: skipUnlessUnstable('prometheus3') || skipUnlessUnstable('kustomize') }, () => {
  const children: Child[] = [];
  let exporter: FakeExporter;
  let work: string;
  let prometheusUrl: string;
  let adminUrl: string;
  let token: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'scrapecache-k8s-prom-'));
    exporter = await startFakeExporter();
    // The central-disk overlay's proxy.yaml as the Pod gets it, moved to loopback and this folder:
    // the disk level gives scrapecache_store_up and the store operations their series.
    const configMap = build('overlays/central-disk').find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('scrapecache-config'));
    assert.ok(configMap);
    const proxyConfig = parse(configMap.data['proxy.yaml'] as string) as {
      listen: string;
      admin: { listen: string; token_file: string };
      cache: { disk: { path: string } };
      routes: Array<{ upstream: string }>;
    };
    const [scrapePort, adminPort, prometheusPort] = [await freePort(), await freePort(), await freePort()];
    token = 'k8s-monitoring-token';
    writeFileSync(join(work, 'token'), `${token}\n`);
    proxyConfig.listen = `127.0.0.1:${scrapePort}`;
    proxyConfig.admin.listen = `127.0.0.1:${adminPort}`;
    proxyConfig.admin.token_file = join(work, 'token');
    proxyConfig.cache.disk.path = join(work, 'disk');
    for (const route of proxyConfig.routes) route.upstream = exporter.url + new URL(route.upstream).pathname;
    writeFileSync(join(work, 'proxy.yaml'), stringify(proxyConfig));
    const proxy = new Child('scrapecache', process.execPath, [cli, '--config.file', join(work, 'proxy.yaml')]);
    children.push(proxy);
    adminUrl = `http://127.0.0.1:${adminPort}`;
    await waitFor('scrapecache /-/ready', () => answers200(`${adminUrl}/-/ready`), { watch: [proxy] });

    // The scrape objects of the overlay, as plain scrape configs. The proxy's own metrics come
    // from the admin listener here (the same text that the scrape port's /metrics serves).
    const { file: rules } = writeRuleFile();
    writeFileSync(
      join(work, 'prometheus.yml'),
      stringify({
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        rule_files: [rules],
        scrape_configs: [
          { job_name: 'scrapecache', authorization: { credentials: token }, static_configs: [{ targets: [`127.0.0.1:${adminPort}`] }] },
          { job_name: 'node', metrics_path: '/node/metrics', static_configs: [{ targets: [`127.0.0.1:${scrapePort}`] }] },
          {
            job_name: 'blackbox',
            metrics_path: '/probe',
            params: { module: ['http_2xx'], target: ['https://prometheus.io'] },
            static_configs: [{ targets: [`127.0.0.1:${scrapePort}`] }],
          },
        ],
      }),
    );
    const prometheus = new Child('prometheus', unstableBinary('prometheus3')!, [
      `--config.file=${join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(work, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${prometheusPort}`,
      '--log.level=warn',
    ]);
    children.push(prometheus);
    prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
    await waitFor('Prometheus /-/ready', () => answers200(`${prometheusUrl}/-/ready`), { watch: [prometheus] });
  });

  after(async () => {
    await Promise.all(children.map((child) => child.stop()));
    await exporter?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function query(expr: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> {
    const res = await fetch(`${prometheusUrl}/api/v1/query?${new URLSearchParams({ query: expr })}`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  }
  const nonEmpty = (expr: string) => async () => ((await query(expr)).data?.result.length ?? 0) > 0 || undefined;

  test('the rules load healthy and the recording rule has data from the proxy', async () => {
    await waitFor('the recording rule has a series per scraped route', async () => ((await query('route:scrapecache_hit_ratio:rate15m')).data?.result.length ?? 0) >= 2 || undefined, { timeoutMs: 30_000, watch: children });
    const evaluated = await waitFor('every rule evaluated', async () => {
      const res = await fetch(`${prometheusUrl}/api/v1/rules`);
      const body = (await res.json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
      const rules = body.data.groups.flatMap((g) => g.rules);
      return rules.length === 3 && rules.every((r) => r.health !== 'unknown') ? rules : undefined;
    }, { watch: children });
    for (const rule of evaluated) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError ?? ''}`);
    // Prometheus scrapes /node/metrics every second; the route's ttl is 30 s: hits.
    await waitFor('a hit ratio above 0 for node', nonEmpty('route:scrapecache_hit_ratio:rate15m{route="node"} > 0'), { timeoutMs: 30_000, watch: children });
  });

  test('every dashboard expression parses and answers with data from the proxy', async () => {
    await waitFor('upstream fetch histogram', nonEmpty('scrapecache_upstream_request_duration_seconds_bucket'), { timeoutMs: 30_000, watch: children });
    await waitFor('two samples of the hit counter', nonEmpty('rate(scrapecache_requests_total{cache="hit"}[1m]) > 0'), { timeoutMs: 30_000, watch: children });
    const expressions = dashboardExpressions();
    assert.ok(expressions.length >= 18, `${expressions.length} expressions`);
    for (const { where, expr } of expressions) {
      const answer = await query(expr);
      assert.equal(answer.status, 'success', `${where}: ${expr}\n${answer.error ?? ''}`);
      // Errors and failed store operations have no series while all is well; their metric does.
      const healthy = /code!~"2\.\."|result!="ok"/.test(expr);
      const probe = healthy ? expr.replace(',code!~"2.."', '').replace(',result!="ok"', '') : expr;
      assert.ok(((await query(probe)).data?.result.length ?? 0) > 0, `${where}: ${probe} has data`);
    }
  });

  test('every metric the rules and the dashboard name is in the proxy /metrics', async () => {
    const res = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const exposition = await res.text();
    const families = new Set([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!));
    const records = ruleGroups().flatMap((g) => g.rules.map((r) => r.record)).filter((r): r is string => r !== undefined);
    let text = [...ruleGroups().flatMap((g) => g.rules.map((r) => r.expr)), ...dashboardExpressions().map((e) => e.expr)].join('\n');
    for (const record of records) text = text.replaceAll(record, '');
    const names = new Set([...text.matchAll(/\b((?:scrapecache|process|nodejs)_[a-z_]+)\b/g)].map((m) => m[1]!));
    assert.ok(names.size >= 10, [...names].join(', '));
    for (const name of names) {
      const family = name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(families.has(name) || families.has(family), `${name} is in the proxy's /metrics`);
    }
  });
});
