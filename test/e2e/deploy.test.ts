// The deployment files agree with each other: docker-compose.yml, deploy/prometheus.yml,
// deploy/proxy.docker.yaml and the Dockerfile. No Docker engine runs here, so this checks
// what `docker compose up` relies on: service names, ports, paths and mounts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// dist/test/e2e/deploy.test.js -> the repository root
const root = fileURLToPath(new URL('../../../', import.meta.url));
const cliPath = join(root, 'dist/src/cli.js');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const parseFile = (path: string, text = read(path)) => parse(text, { uniqueKeys: true }) as unknown;

interface Compose {
  services: Record<string, { image?: string; build?: unknown; volumes?: string[]; ports?: string[]; depends_on?: unknown }>;
}
interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  static_configs: Array<{ targets: string[] }>;
  relabel_configs?: Array<{ target_label?: string; replacement?: string }>;
}
interface ProxyConfig {
  listen: string;
  admin: { listen: string };
  routes: Array<{ name: string; path?: string; upstream: string; query_keys?: string[] }>;
}

const compose = parseFile('docker-compose.yml') as Compose;
const prometheus = parseFile('deploy/prometheus.yml') as { scrape_configs: ScrapeConfig[] };
// The defaults of ${VAR:-default}, as the proxy sees them without the variables set.
const proxy = parseFile(
  'deploy/proxy.docker.yaml',
  read('deploy/proxy.docker.yaml').replace(/\$\{\w+(?::-([^}]*))?\}/g, (_m, fallback?: string) => fallback ?? ''),
) as ProxyConfig;
const dockerfile = read('Dockerfile');
const port = (hostPort: string) => hostPort.slice(hostPort.lastIndexOf(':') + 1);

/** Where Prometheus connects for a job: the relabelled __address__, else the static target. */
function scrapeAddress(job: ScrapeConfig): string {
  const relabelled = job.relabel_configs?.find((r) => r.target_label === '__address__')?.replacement;
  const address = relabelled ?? job.static_configs[0]?.targets[0];
  assert.ok(address, `job ${job.job_name} has a target`);
  return address;
}

test('every Prometheus job in compose scrapes through scrapecache or its admin listener', () => {
  const jobs = new Map(prometheus.scrape_configs.map((job) => [job.job_name, job]));
  assert.deepEqual([...jobs.keys()].sort(), ['blackbox', 'node', 'scrapecache']);
  const routePaths = new Set(proxy.routes.map((r) => r.path));
  for (const job of jobs.values()) {
    const address = scrapeAddress(job);
    assert.equal(address.split(':')[0], 'scrapecache', `job ${job.job_name} goes to the scrapecache service`);
    if (job.job_name === 'scrapecache') {
      assert.equal(port(address), port(proxy.admin.listen), 'self-metrics come from the admin port');
      assert.equal(job.metrics_path ?? '/metrics', '/metrics');
    } else {
      assert.equal(port(address), port(proxy.listen), `job ${job.job_name} uses the scrape port`);
      assert.ok(routePaths.has(job.metrics_path), `job ${job.job_name}: ${job.metrics_path} is a route path`);
    }
  }
});

test('every route upstream in the compose config is a compose service', () => {
  for (const route of proxy.routes) {
    const host = new URL(route.upstream).hostname;
    assert.ok(compose.services[host], `route ${route.name}: ${host} is a service in docker-compose.yml`);
  }
  const blackbox = proxy.routes.find((r) => r.path === '/probe');
  assert.deepEqual(blackbox?.query_keys?.slice().sort(), ['module', 'target']);
});

test('compose mounts files that exist at the paths the images read', () => {
  const mounts = Object.values(compose.services).flatMap((s) => s.volumes ?? []).filter((v) => v.startsWith('./'));
  for (const mount of mounts) {
    const [source] = mount.split(':');
    assert.ok(existsSync(join(root, source!)), `${source} exists`);
  }
  assert.ok(mounts.includes('./deploy/proxy.docker.yaml:/etc/scrapecache/proxy.yaml:ro'));
  assert.ok(mounts.includes('./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro'));
  assert.ok(compose.services.scrapecache?.build, 'scrapecache is built from the Dockerfile');
  const ports = compose.services.scrapecache?.ports ?? [];
  assert.ok(ports.some((p) => p.endsWith(`:${port(proxy.listen)}`)), 'the scrape port is published');
});

test('the Dockerfile runs the shipped config as a non-root user with a healthcheck', () => {
  assert.match(dockerfile, /^ENTRYPOINT \["node", "--max-semi-space-size=4", "\/app\/dist\/src\/cli\.js", "--config\.file", "\/etc\/scrapecache\/proxy\.yaml"\]$/m);
  assert.match(dockerfile, /^COPY deploy\/proxy\.docker\.yaml \/etc\/scrapecache\/proxy\.yaml$/m);
  assert.match(dockerfile, new RegExp(`^EXPOSE ${port(proxy.listen)} ${port(proxy.admin.listen)}$`, 'm'));
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /^HEALTHCHECK .*\n?.*CMD \["node", "\/app\/healthcheck\.mjs"\]$/m);
  const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1] ?? '';
  assert.match(base, /^node:\d+\.\d+\.\d+-[a-z]+-slim$/, 'the base image is pinned to a full version tag');
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  assert.doesNotMatch(finalStage, /npm (ci|install)/, 'the final stage installs nothing');
  const allowed = new Set(read('.dockerignore').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, '')));
  for (const line of dockerfile.split('\n').filter((l) => /^COPY (?!--from)/.test(l))) {
    const sources = line.split(/\s+/).slice(1, -1).filter((w) => !w.startsWith('--'));
    for (const source of sources) assert.ok(allowed.has(source.replace(/\/$/, '')), `.dockerignore lets ${source} in`);
  }
});

test('promtool accepts deploy/prometheus.yml', (t) => {
  if (!existsSync('/usr/bin/promtool')) return t.skip('no /usr/bin/promtool: run `bash .ci/install-e2e.sh`');
  const result = spawnSync('/usr/bin/promtool', ['check', 'config', join(root, 'deploy/prometheus.yml')], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test('scrapecache --check-config accepts deploy/proxy.docker.yaml', (t) => {
  if (!existsSync(cliPath)) return t.skip(`no ${cliPath}: run \`npm run build\``);
  const result = spawnSync(process.execPath, [cliPath, '--config.file', join(root, 'deploy/proxy.docker.yaml'), '--check-config'], {
    encoding: 'utf8',
    env: { ...process.env, SCRAPECACHE_ADMIN_TOKEN: '' },
  });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});
